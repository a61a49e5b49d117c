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

from nestdb.errors import ConfigError, DataError
from nestdb.potentials.eam import EAM_KINDS, FastEAM, guess_kind
from nestdb.potentials.lj import LJ_DEFAULTS, FastLennardJones

KNOWN_CALCULATORS: tuple[str, ...] = ("lj", "eam", "emt", "ace_committee", "pacemaker_committee")
#: Implementations of ``type: eam``: ours (vectorised), ASE's and matscipy's.
EAM_IMPLEMENTATIONS: tuple[str, ...] = ("nestdb", "ase", "matscipy")

#: Keys each calculator type accepts besides "type".
_ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "lj": ("epsilon", "sigma", "cutoff"),
    "eam": ("file", "kind", "implementation"),
    "emt": (),
    "ace_committee": ("model",),
    "pacemaker_committee": ("model",),
}

__all__ = ["EAM_IMPLEMENTATIONS", "KNOWN_CALCULATORS", "LJ_DEFAULTS", "FastEAM", "FastLennardJones",
           "make_calculator"]


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
    if not isinstance(spec, dict):
        raise ConfigError(f"calculator spec must be a mapping with a 'type' key, got {spec!r}")
    calc_type = spec.get("type")
    if calc_type not in KNOWN_CALCULATORS:
        raise ConfigError(
            f"calculator type {calc_type!r} is unknown; set 'type' to one of {', '.join(KNOWN_CALCULATORS)}"
        )
    extra = sorted(set(spec) - {"type"} - set(_ALLOWED_KEYS[calc_type]))
    if extra:
        allowed = ", ".join(_ALLOWED_KEYS[calc_type]) or "none"
        raise ConfigError(
            f"calculator {calc_type!r}: unknown key(s) {', '.join(map(repr, extra))}; allowed keys: {allowed}"
        )
    base = Path(base_dir)

    if calc_type == "lj":
        params = {key: spec.get(key, default) for key, default in LJ_DEFAULTS.items()}
        try:
            params = {key: float(value) for key, value in params.items()}
        except (TypeError, ValueError) as err:
            raise ConfigError(f"calculator 'lj': epsilon/sigma/cutoff must be numbers ({err})") from None
        return FastLennardJones(**params)

    if calc_type == "eam":
        return _make_eam(spec, base)

    if calc_type == "emt":
        from ase.calculators.emt import EMT

        return EMT()

    # ace_committee, pacemaker_committee
    if "model" not in spec:
        raise ConfigError(f"calculator {calc_type!r} needs key 'model' (a fitted committee model directory)")
    model_dir = _resolve_file(spec["model"], "model", calc_type, base, must_be_dir=True)
    if calc_type == "pacemaker_committee":
        from nestdb.fit.pacemaker_calculator import PacemakerCommitteeCalculator

        return PacemakerCommitteeCalculator.from_folder(model_dir)
    from nestdb.fit.committee import CommitteeACECalculator

    return CommitteeACECalculator(model_dir)


def _make_eam(spec: dict, base: Path) -> Calculator:
    if "file" not in spec:
        raise ConfigError("calculator 'eam' needs key 'file' (a LAMMPS eam/eam.fs/eam.alloy potential file)")
    path = _resolve_file(spec["file"], "file", "eam", base)
    kind = spec.get("kind", guess_kind(path))
    if kind not in EAM_KINDS:
        raise ConfigError(f"calculator 'eam': kind={kind!r} unknown; use one of {', '.join(EAM_KINDS)}")
    implementation = spec.get("implementation", "nestdb")
    if implementation not in EAM_IMPLEMENTATIONS:
        raise ConfigError(f"calculator 'eam': implementation={implementation!r} unknown; use one of "
                          f"{', '.join(EAM_IMPLEMENTATIONS)} (nestdb is the fast one)")
    try:
        if implementation == "nestdb":
            return FastEAM(path, kind=kind)
        if implementation == "ase":
            from ase.calculators.eam import EAM as AseEAM

            return AseEAM(potential=str(path), form={"eam": "eam", "eam/alloy": "alloy", "eam/fs": "fs"}[kind])
        from matscipy.calculators.eam import EAM as MatscipyEAM

        return MatscipyEAM(str(path), kind=kind)
    except DataError as err:
        raise ConfigError(f"calculator 'eam': {err}") from err
    except Exception as err:  # the ASE/matscipy parsers fail with bare IndexError/ValueError on a wrong kind
        raise ConfigError(f"calculator 'eam': could not read file={str(path)!r} as {kind!r} "
                          f"with the {implementation} implementation: {err}") from err
