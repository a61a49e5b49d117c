"""Labeller interface and the single-point driver that never raises on a failed calculation.

Conventions of the labelled records (the same as the magnesium study's
``cycle_*.edb.extxyz``; checked there: ``dft_virial == -dft_stress * V * GPa``
to machine precision, and ``dft_stress`` is negative under compression):

- ``dft_energy``: total (force-consistent / free) energy in eV,
- ``dft_forces``: per-atom array, eV/Å,
- ``dft_stress``: 9 numbers (3×3 row-major), GPa, ASE sign convention
  (stress = (1/V) dE/dstrain, negative when the cell is compressed),
- ``dft_virial``: 9 numbers, eV, ``-stress * V`` (positive under compression).

Names carry a ``dft_`` prefix because ASE's extxyz reader turns plain
``energy``/``forces``/``stress`` into calculator results.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.stress import voigt_6_to_full_3x3_stress

from nestdb.errors import ConfigError
from nestdb.units import GPA

#: Labeller codes and the ``module:class`` implementing each (imported lazily,
#: so that a code whose package is missing only fails when it is chosen).
_LABELLER_CLASSES: dict[str, str] = {
    "gpaw": "nestdb.label.gpaw:GpawLabeller",
    "castep": "nestdb.label.castep:CastepLabeller",
    "potential": "nestdb.label.potential:PotentialLabeller",
}
KNOWN_LABELLERS: tuple[str, ...] = tuple(_LABELLER_CLASSES)

#: Info keys written by :func:`label_configuration`; stale copies are removed first.
RESULT_INFO_KEYS = ("dft_energy", "dft_stress", "dft_virial")
RESULT_ARRAY_KEYS = ("dft_forces",)
STATUS_KEYS = (
    "label_status",
    "label_error",
    "label_code",
    "label_settings_hash",
    "label_cpu_s",
    "label_wall_s",
)


class LabellingFailure(Exception):
    """A configuration cannot or should not be labelled (recorded, not raised to the caller)."""


def settings_hash(code: str, settings: dict[str, Any]) -> str:
    """Stable short hash of a labeller's code and resolved settings.

    Parameters
    ----------
    code
        Labeller name, e.g. ``"gpaw"``.
    settings
        JSON-serialisable settings; key order does not matter.

    Returns
    -------
    str
        ``"sha256-"`` followed by 16 hex digits. The prefix keeps ASE's extxyz
        reader from parsing an all-digit hash as a number.
    """
    text = json.dumps({"code": code, "settings": settings}, sort_keys=True, default=str)
    return "sha256-" + hashlib.sha256(text.encode()).hexdigest()[:16]


class Labeller:
    """Base class of the labelling codes.

    Subclasses set :attr:`name`, store their validated, fully resolved
    settings in :attr:`settings` and implement :meth:`calculator`.
    """

    name: str = "base"

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    @property
    def settings_hash(self) -> str:
        """Hash of :attr:`settings` (see :func:`settings_hash`)."""
        return settings_hash(self.name, self.settings)

    def calculator(self, directory: Path):
        """Return a fresh ASE calculator that writes its raw output into ``directory``."""
        raise NotImplementedError

    def precheck(self, atoms: Atoms) -> str | None:
        """Reason to skip ``atoms`` without calculating (cost guard), or None to go ahead."""
        return None

    def explain(self, error: Exception) -> str | None:
        """Readable reason for a code's exception whose own message is empty or cryptic."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(settings={self.settings!r})"


def make_labeller(spec: dict[str, Any], base_dir: str | Path = ".") -> Labeller:
    """Build the labeller described by a ``label`` config section.

    Parameters
    ----------
    spec
        ``{"code": "gpaw", "gpaw": {...settings}}`` or
        ``{"code": "potential", "potential": {calculator spec}}``. The settings
        sub-dictionary is optional for codes with defaults.
    base_dir
        Folder that relative paths in the settings (potential files) refer to.

    Returns
    -------
    Labeller

    Raises
    ------
    ConfigError
        Unknown code (the message lists :data:`KNOWN_LABELLERS`), or settings
        the code rejects.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"label: expected a mapping with a 'code' key, got {spec!r}")
    code = spec.get("code")
    if code not in _LABELLER_CLASSES:
        raise ConfigError(
            f"label.code: unknown labeller {code!r}; choose one of {', '.join(KNOWN_LABELLERS)}"
        )
    extra = set(spec) - {"code", *KNOWN_LABELLERS}
    if extra:
        raise ConfigError(
            f"label: unknown key(s) {sorted(extra)}; allowed: 'code' and one settings "
            f"section named after the code ({', '.join(KNOWN_LABELLERS)})"
        )
    settings = spec.get(code) or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"label.{code}: expected a mapping of settings, got {settings!r}")
    module_name, class_name = _LABELLER_CLASSES[code].split(":")
    labeller_class = getattr(importlib.import_module(module_name), class_name)
    return labeller_class(settings, base_dir=base_dir)


def _one_line(error: BaseException, explanation: str | None = None) -> str:
    message = " ".join((explanation or str(error)).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _calculate(atoms: Atoms, calc) -> dict[str, np.ndarray | float]:
    """Energy, forces and (for periodic cells) stress; raise LabellingFailure if unusable."""
    atoms.calc = calc
    try:
        energy = atoms.get_potential_energy(force_consistent=True)
    except PropertyNotImplementedError:
        # Calculators without smearing may only provide the plain energy.
        energy = atoms.get_potential_energy()
    results: dict[str, Any] = {
        "energy": float(energy),
        "forces": np.array(atoms.get_forces(), dtype=float),
    }
    if atoms.pbc.all():
        stress = np.asarray(atoms.get_stress(voigt=False), dtype=float)
        if stress.shape == (6,):
            stress = voigt_6_to_full_3x3_stress(stress)
        results["stress"] = stress
    for key, value in results.items():
        if not np.all(np.isfinite(value)):
            raise LabellingFailure(f"calculator returned non-finite {key}")
    if results["forces"].shape != (len(atoms), 3):
        raise LabellingFailure(f"forces have shape {results['forces'].shape}, expected ({len(atoms)}, 3)")
    return results


def label_configuration(atoms: Atoms, labeller: Labeller, workdir: str | Path) -> Atoms:
    """Single-point label of one configuration; a failed calculation is recorded, not raised.

    Cost: one calculator call (zero when the labeller's cost guard rejects the cell).

    Parameters
    ----------
    atoms
        Configuration; its positions, cell, pbc, arrays and all ``info`` keys
        (NS provenance) are kept in the returned copy.
    labeller
        From :func:`make_labeller`.
    workdir
        Folder for the code's raw output (created); on failure the full
        traceback goes to ``workdir/label_error.txt``.

    Returns
    -------
    ase.Atoms
        A copy without calculator. On success ``info`` holds
        ``label_status="ok"``, ``dft_energy`` (eV), ``dft_stress`` (GPa, 9),
        ``dft_virial`` (eV, 9, ``= -dft_stress*V*GPa``) and ``arrays["dft_forces"]``
        (eV/Å); on failure ``label_status="failed"`` and a one-line
        ``label_error``, without any ``dft_*`` key. Both carry ``label_code``,
        ``label_settings_hash``, ``label_cpu_s`` and ``label_wall_s``.

    Raises
    ------
    ConfigError
        Only for configuration problems (they would fail every configuration).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    labelled = atoms.copy()
    labelled.calc = None
    for key in RESULT_INFO_KEYS + STATUS_KEYS:
        labelled.info.pop(key, None)
    for key in RESULT_ARRAY_KEYS:
        if key in labelled.arrays:
            del labelled.arrays[key]
    labelled.info["label_code"] = labeller.name
    labelled.info["label_settings_hash"] = labeller.settings_hash

    # Work on a separate copy so that a calculator cannot leave state on the record.
    work_atoms = labelled.copy()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    try:
        reason = labeller.precheck(work_atoms)
        if reason is not None:
            raise LabellingFailure(reason)
        results = _calculate(work_atoms, labeller.calculator(workdir))
    except ConfigError:
        raise
    except Exception as error:  # any code failure becomes a record: one bad cell must not stop a batch
        labelled.info["label_status"] = "failed"
        labelled.info["label_error"] = _one_line(error, labeller.explain(error))
        (workdir / "label_error.txt").write_text(traceback.format_exc())
    else:
        stress = results.get("stress")
        labelled.info["label_status"] = "ok"
        labelled.info["dft_energy"] = results["energy"]
        labelled.arrays["dft_forces"] = results["forces"]
        if stress is not None:
            labelled.info["dft_stress"] = (stress / GPA).reshape(9)
            labelled.info["dft_virial"] = (-stress * labelled.get_volume()).reshape(9)
    finally:
        work_atoms.calc = None
    labelled.info["label_cpu_s"] = round(time.process_time() - cpu_start, 3)
    labelled.info["label_wall_s"] = round(time.perf_counter() - wall_start, 3)
    return labelled
