"""Per-element settings of the labellers, checked against the campaign's elements before any job.

Every element must be covered by the labelling code's per-element data:
GPAW's PAW setups (``label.gpaw.setups``, files in GPAW's setup paths),
CASTEP's and Quantum ESPRESSO's pseudopotentials (``pseudopotentials:
{element: ...}``), VASP's POTCARs (``$VASP_PP_PATH``), and a potential's
parametrisation (ASE's EMT knows a fixed list of elements). A missing one is
a :class:`~nestdb.errors.ConfigError` naming the element and the key to set,
raised while the config is read rather than in the first label job.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase.calculators.emt import parameters

from nestdb.errors import ConfigError

#: GPAW setup names that need no file (all-electron, ghost atoms) or are not PAW data files.
_GPAW_NO_FILE = ("ae", "ghost")
#: Functionals with setups of their own; GPAW uses the PBE setups for the others.
_GPAW_SETUP_XC = ("LDA", "PBE", "revPBE", "RPBE", "GLLBSC")


def gpaw_setup_name(setups: Any, element: str) -> str:
    """The setup type GPAW uses for ``element`` given ``label.gpaw.setups`` (None/"paw", a name, or a mapping)."""
    if setups is None:
        return "paw"
    if isinstance(setups, str):
        return setups
    return str(setups.get(element, setups.get("default", "paw")))


def gpaw_setup_file(element: str, name: str, xc: str, paths: Sequence[str | Path]) -> Path | None:
    """The PAW data file of ``element`` for setup ``name`` and functional ``xc`` in ``paths``, or None."""
    tag = xc if xc in _GPAW_SETUP_XC else "PBE"
    stem = f"{element}.{tag}" if name == "paw" else f"{element}.{name}.{tag}"
    for folder in paths:
        for suffix in ("", ".gz"):
            candidate = Path(folder) / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _check_gpaw(settings: dict, elements: Sequence[str], where: str) -> None:
    try:
        from gpaw import setup_paths  # optional: GPAW is built by install.sh, not a package dependency
    except ImportError:  # GPAW lives in the label environment only; its jobs check again
        return
    setups = settings.get("setups")
    xc = settings.get("xc") or "PBE"
    if not isinstance(xc, str):
        return
    missing = []
    for element in elements:
        name = gpaw_setup_name(setups, element)
        if name in _GPAW_NO_FILE or "/" in name:
            continue
        if gpaw_setup_file(element, name, xc, setup_paths) is None:
            missing.append(f"{element} ({name!r} setup for {xc})")
    if missing:
        raise ConfigError(
            f"{where}.gpaw.setups: GPAW has no PAW setup for {', '.join(missing)} in {[str(p) for p in setup_paths]}; "
            f"choose a setup that exists for each element (e.g. `setups: {{{elements[0]}: paw}}`; "
            "`gpaw install-data` adds the standard set) or set GPAW_SETUP_PATH."
        )


def _check_mapping(
    settings: dict, key: str, elements: Sequence[str], where: str, required: bool, folder_variable: str | None = None
) -> None:
    mapping = settings.get(key)
    if mapping is None and not required:
        return
    mapping = mapping or {}
    missing = [e for e in elements if e not in mapping]
    if missing:
        raise ConfigError(
            f"{where}.{key} has no entry for {missing}: give one per element of `elements` {list(elements)}, "
            f"e.g. `{key}: {{{missing[0]}: <file>}}`."
        )
    folder = os.environ.get(folder_variable or "")
    if folder:
        absent = [
            f"{e}: {mapping[e]}"
            for e in elements
            if "|" not in str(mapping[e]) and not (Path(folder) / str(mapping[e])).is_file()
        ]
        if absent:
            raise ConfigError(f"{where}.{key}: file(s) not found in ${folder_variable}={folder}: {', '.join(absent)}")


def _check_vasp(settings: dict, elements: Sequence[str], where: str) -> None:
    root = os.environ.get("VASP_PP_PATH")
    if not root:  # a workstation preparing a cluster run; the label job checks again
        return
    xc = str(settings.get("xc") or "PBE").upper()
    folder = Path(root) / ("potpaw" if xc == "LDA" else "potpaw_PBE")
    setups = settings.get("setups") or {}
    missing = []
    for element in elements:
        suffix = setups.get(element, "") if isinstance(setups, dict) else ""
        if not (folder / f"{element}{suffix}" / "POTCAR").is_file():
            missing.append(f"{element}{suffix}")
    if missing:
        raise ConfigError(
            f"{where}.vasp.setups: no POTCAR for {missing} under {folder}; choose an existing "
            "POTCAR per element (e.g. `setups: {Mg: _pv}`) or fix $VASP_PP_PATH."
        )


def check_calculator_elements(spec: dict, elements: Sequence[str], where: str) -> None:
    """A classical potential (``emt``) must know every element it is given."""
    if spec.get("type") == "emt":
        missing = [e for e in elements if e not in parameters]
        if missing:
            raise ConfigError(
                f"{where}: ASE's EMT has no parameters for {missing} (it knows "
                f"{', '.join(sorted(parameters))}); use another calculator, e.g. an EAM file "
                "for these elements."
            )


def check_label_elements(spec: dict, elements: Sequence[str], where: str = "label") -> None:
    """Raise a :class:`ConfigError` when the labeller ``spec`` lacks per-element data for one of ``elements``.

    Parameters
    ----------
    spec
        ``{"code": ..., <code>: settings}`` (``label`` or ``bench.reference``).
    elements
        The campaign's elements.
    where
        Config key of the spec, for the message.
    """
    code = spec.get("code")
    settings = spec.get(code) or {}
    if not isinstance(settings, dict):
        return  # the labeller itself names a malformed section
    if code == "gpaw":
        _check_gpaw(settings, elements, where)
    elif code == "castep":
        _check_mapping(
            settings, "pseudopotentials", elements, f"{where}.castep", required=False, folder_variable="PSPOT_DIR"
        )
    elif code == "espresso":
        _check_mapping(
            settings,
            "pseudopotentials",
            elements,
            f"{where}.espresso",
            required=True,
            folder_variable="ESPRESSO_PSEUDO",
        )
    elif code == "vasp":
        _check_vasp(settings, elements, where)
    elif code == "potential":
        check_calculator_elements(settings, elements, f"{where}.potential")
