"""Energy models for nested sampling and benchmarks, built from a small config dict.

``make_calculator({"type": "lj"})`` and friends return a ready ASE calculator.
The built-in Lennard-Jones and EAM are fast paths (:mod:`nestdb.potentials`)
because the nested-sampling engine calls them millions of times; ASE's own
``EAM`` is ~300-450x slower per call for the 8-64 atom cells used here
(benchmarks/ns_speed.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator
from ase.calculators.eam import EAM as AseEAM
from ase.calculators.emt import EMT
from matscipy.calculators.eam import EAM as MatscipyEAM

from nestdb.errors import ConfigError, DataError
from nestdb.models.ace_committee import CommitteeACECalculator
from nestdb.models.pacemaker_committee import PacemakerCommitteeCalculator
from nestdb.models.registry import Registry, Spec
from nestdb.potentials.eam import EAM_KINDS, FastEAM, guess_kind
from nestdb.potentials.lj import LJ_DEFAULTS, FastLennardJones

#: Implementations of ``type: eam``: ours (vectorised), ASE's and matscipy's.
EAM_IMPLEMENTATIONS: tuple[str, ...] = ("nestdb", "ase", "matscipy")
#: Calculator types that are a fitted committee read from a ``model`` folder (the previous cycle's fit).
COMMITTEE_TYPES: tuple[str, ...] = ("ace_committee", "pacemaker_committee")

__all__ = [
    "CALCULATORS",
    "COMMITTEE_TYPES",
    "EAM_IMPLEMENTATIONS",
    "KNOWN_CALCULATORS",
    "check_calculator_spec",
    "parse_calculator_spec",
    "make_calculator",
]


def _resolve_file(value: Any, key: str, calc_type: str, base_dir: Path, must_be_dir: bool = False) -> Path:
    """Return an existing path for ``spec[key]``, relative paths taken from base_dir."""
    if not isinstance(value, (str, Path)) or str(value) == "":
        raise ConfigError(f"calculator {calc_type!r}: key {key!r} must be a path, got {value!r}")
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise ConfigError(
            f"calculator {calc_type!r}: {key}={str(value)!r} does not exist (looked for {path}); "
            f"give an absolute path or one relative to {base_dir}"
        )
    if must_be_dir and not path.is_dir():
        raise ConfigError(f"calculator {calc_type!r}: {key}={str(value)!r} must be a directory ({path})")
    return path


def parse_calculator_spec(spec: Any) -> Spec:
    """The :class:`~nestdb.models.registry.Spec` of a ``calculator`` config section (``type`` + settings beside it)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"calculator spec must be a mapping with a 'type' key, got {spec!r}")
    return Spec(spec.get("type"), {key: value for key, value in spec.items() if key != "type"})


def make_calculator(spec: dict, base_dir: str | Path = ".") -> Calculator:
    """Build an ASE calculator from a config dict.

    Parameters
    ----------
    spec : dict
        ``{"type": <one of KNOWN_CALCULATORS>, ...}``. Keys per type:

        - ``lj``: ``epsilon`` (eV), ``sigma`` (A), ``cutoff`` (A); defaults in
          :data:`LJ_DEFAULTS` are Mg-like (nn distance 3.2 A, 1.5 eV/atom).
        - ``eam``: ``file`` (LAMMPS potential file), ``kind`` (``"eam/fs"``,
          ``"eam/alloy"`` or ``"eam"``; default from the file name: ``.fs``
          eam/fs, ``.alloy``/``.setfl`` eam/alloy, ``.eam`` eam, else eam/fs),
          ``implementation`` (``"nestdb"``, default: the vectorised
          :class:`~nestdb.potentials.eam.FastEAM`; ``"ase"``:
          ``ase.calculators.eam.EAM``; ``"matscipy"``: matscipy's EAM).
        - ``emt``: no keys; ASE's EMT.
        - ``ace_committee``: ``model`` (a fitted committee model directory).
        - ``pacemaker_committee``: ``model`` (a collected pacemaker committee
          directory, with ``committee.json``).
    base_dir : str or Path
        Directory that relative ``file``/``model`` paths are taken from.

    Returns
    -------
    ase.calculators.calculator.Calculator

    Raises
    ------
    ConfigError
        Unknown type, unknown keys, or a missing file.
    """
    return CALCULATORS.build(parse_calculator_spec(spec), base_dir=Path(base_dir))


def check_calculator_spec(spec: Any, where: str, base_dir: str | Path = ".", *, committee_model: bool = True) -> None:
    """Check a ``calculator`` config section without building it (config parse time).

    The type and its keys (:data:`CALCULATORS`), LJ parameters, the EAM
    file (an existing file, not a folder), its ``kind`` and
    ``implementation``. A committee's ``model`` is not looked for: the
    workflow fits it in an earlier cycle.

    Parameters
    ----------
    spec
        The section, ``{"type": ..., ...}``.
    where
        Its place in the config, for messages (``cycles[0].ns.calculator``).
    base_dir
        Folder relative file paths are taken from.
    committee_model
        Whether a committee type may stand here (False: cycle 0, which has no earlier fit).

    Raises
    ------
    ConfigError
        Naming ``where``, the key, the value and the fix.
    """
    parsed = parse_calculator_spec(spec)
    CALCULATORS.check_keys(parsed, where)
    settings = parsed.settings
    if parsed.kind in COMMITTEE_TYPES and not committee_model:
        raise ConfigError(
            f"{where}: type {parsed.kind!r} is a committee fitted by an earlier cycle, and there is none before "
            "cycle 0; sample cycle 0 with a classical potential: `{type: lj}`, `{type: emt}` or "
            "`{type: eam, file: path/to/X.eam.fs}`"
        )
    if parsed.kind == "lj":
        _lj_parameters(settings, where)
    if parsed.kind == "eam":
        if "file" not in settings:
            raise ConfigError(f"{where}: type 'eam' needs key 'file' (a LAMMPS eam, eam.fs or eam.alloy file)")
        try:
            path = _resolve_file(settings["file"], "file", "eam", Path(base_dir))
        except ConfigError as err:
            raise ConfigError(f"{where}.file: {err}") from None
        if not path.is_file():
            raise ConfigError(
                f"{where}.file: {str(settings['file'])!r} is a folder ({path}); give the potential file in it, "
                "e.g. file: path/to/Mg.eam.fs"
            )
        kind = settings.get("kind", guess_kind(path))
        if kind not in EAM_KINDS:
            raise ConfigError(f"{where}.kind: {kind!r} is unknown; use one of {', '.join(EAM_KINDS)}")
        implementation = settings.get("implementation", "nestdb")
        if implementation not in EAM_IMPLEMENTATIONS:
            raise ConfigError(
                f"{where}.implementation: {implementation!r} is unknown; use one of {', '.join(EAM_IMPLEMENTATIONS)}"
            )


def _lj_parameters(settings: dict, where: str = "calculator 'lj'") -> dict[str, float]:
    """The LJ parameters (defaults filled), each a positive number; ConfigError naming the key otherwise."""
    params = {}
    for key, default in LJ_DEFAULTS.items():
        value = settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{where}.{key}: must be a positive number ({key} default {default}), got {value!r}")
        params[key] = float(value)
    return params


def _lj(settings: dict, base_dir: Path) -> Calculator:
    return FastLennardJones(**_lj_parameters(settings))


def _emt(settings: dict, base_dir: Path) -> Calculator:
    return EMT()


def _model_dir(settings: dict, calc_type: str, base_dir: Path) -> Path:
    if "model" not in settings:
        raise ConfigError(f"calculator {calc_type!r} needs key 'model' (a fitted committee model directory)")
    return _resolve_file(settings["model"], "model", calc_type, base_dir, must_be_dir=True)


def _ace_committee(settings: dict, base_dir: Path) -> Calculator:
    return CommitteeACECalculator(_model_dir(settings, "ace_committee", base_dir))


def _pacemaker_committee(settings: dict, base_dir: Path) -> Calculator:
    return PacemakerCommitteeCalculator.from_folder(_model_dir(settings, "pacemaker_committee", base_dir))


def _eam(settings: dict, base_dir: Path) -> Calculator:
    if "file" not in settings:
        raise ConfigError("calculator 'eam' needs key 'file' (a LAMMPS eam/eam.fs/eam.alloy potential file)")
    path = _resolve_file(settings["file"], "file", "eam", base_dir)
    kind = settings.get("kind", guess_kind(path))
    if kind not in EAM_KINDS:
        raise ConfigError(f"calculator 'eam': kind={kind!r} unknown; use one of {', '.join(EAM_KINDS)}")
    implementation = settings.get("implementation", "nestdb")
    if implementation not in EAM_IMPLEMENTATIONS:
        raise ConfigError(
            f"calculator 'eam': implementation={implementation!r} unknown; use one of "
            f"{', '.join(EAM_IMPLEMENTATIONS)} (nestdb is the fast one)"
        )
    try:
        if implementation == "nestdb":
            return FastEAM(path, kind=kind)
        if implementation == "ase":
            return AseEAM(potential=str(path), form={"eam": "eam", "eam/alloy": "alloy", "eam/fs": "fs"}[kind])
        return MatscipyEAM(str(path), kind=kind)
    except DataError as err:
        raise ConfigError(f"calculator 'eam': {err}") from err
    except Exception as err:  # the ASE/matscipy parsers fail with bare IndexError/ValueError on a wrong kind
        raise ConfigError(
            f"calculator 'eam': could not read file={str(path)!r} as {kind!r} "
            f"with the {implementation} implementation: {err}"
        ) from err


#: The energy models a config can name (``calculator: {type: <name>, ...}``) and the keys each accepts.
CALCULATORS = Registry("calculator", "type")
CALCULATORS.register("lj", _lj, keys=tuple(LJ_DEFAULTS))
CALCULATORS.register("eam", _eam, keys=("file", "kind", "implementation"))
CALCULATORS.register("emt", _emt, keys=())
CALCULATORS.register("ace_committee", _ace_committee, keys=("model",))
CALCULATORS.register("pacemaker_committee", _pacemaker_committee, keys=("model",))
KNOWN_CALCULATORS: tuple[str, ...] = CALCULATORS.names
