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
import json
import resource
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.stress import voigt_6_to_full_3x3_stress

from nestdb.errors import ConfigError, DataError
from nestdb.units import GPA

#: Info keys written by :func:`label_configuration`; stale copies are removed first.
RESULT_INFO_KEYS = ("dft_energy", "dft_stress", "dft_virial", "dft_free_energy")
RESULT_ARRAY_KEYS = ("dft_forces",)
STATUS_KEYS = (
    "label_status",
    "label_error",
    "label_failure_kind",
    "label_code",
    "label_settings_hash",
    "label_cpu_s",
    "label_wall_s",
    "label_requested_hash",
    "label_settings",
    "label_attempts",
    "label_cached",
)

#: Info keys of a successful record holding 9 numbers (3x3, row-major), with their units.
NINE_NUMBER_KEYS = {"dft_stress": "GPa", "dft_virial": "eV"}


def record_name(atoms: Atoms, source: str | Path | None = None, index: int | None = None) -> str:
    """``"<file>, configuration <index> (config_id <id>)"``: how messages name a configuration."""
    parts = [str(source)] if source is not None else []
    if index is not None:
        parts.append(f"configuration {index}")
    config_id = atoms.info.get("config_id")
    name = ", ".join(parts) or "configuration"
    return f"{name} (config_id {config_id})" if config_id is not None else name


def check_label_values(
    atoms: Atoms,
    where: str,
    fix: str = "relabel it (delete its labelled file and rerun) or set label_status='failed' to leave it out",
) -> None:
    """Refuse a successful record whose DFT fields are missing, not numbers, misshapen or not finite.

    Checked: ``dft_energy`` (required) and ``dft_free_energy`` (optional)
    are finite numbers; ``arrays["dft_forces"]`` (required) is finite with
    shape ``(n_atoms, 3)``; ``dft_stress`` and ``dft_virial`` (optional)
    are 9 finite numbers.

    Parameters
    ----------
    atoms
        The record.
    where
        How the message names it (e.g. from :func:`record_name`).
    fix
        What the user should do, appended to the message.

    Raises
    ------
    nestdb.errors.DataError
        Naming ``where`` and the key.
    """

    def refuse(problem: str) -> None:
        raise DataError(f"{where}: {problem}; {fix}")

    for key, required in (("dft_energy", True), ("dft_free_energy", False)):
        if key not in atoms.info:
            if required:
                refuse(f"info key '{key}' (total DFT energy, eV) is missing")
            continue
        try:
            value = float(atoms.info[key])
        except (TypeError, ValueError):
            refuse(f"info '{key}'={atoms.info[key]!r} is not a number")
        if not np.isfinite(value):
            refuse(f"info '{key}' is {value} (not finite)")
    if "dft_forces" not in atoms.arrays:
        refuse("per-atom array 'dft_forces' (eV/Angstrom) is missing")
    forces = np.asarray(atoms.arrays["dft_forces"])
    if forces.shape != (len(atoms), 3) or not np.issubdtype(forces.dtype, np.number):
        refuse(f"array 'dft_forces' has shape {forces.shape}, expected ({len(atoms)}, 3)")
    if not np.all(np.isfinite(forces)):
        atom = int(np.flatnonzero(~np.isfinite(forces).all(axis=1))[0])
        refuse(f"array 'dft_forces' contains NaN/inf (atom {atom})")
    for key, unit in NINE_NUMBER_KEYS.items():
        if key not in atoms.info:
            continue
        try:
            values = np.asarray(atoms.info[key], dtype=float)
        except (TypeError, ValueError):
            refuse(f"info '{key}'={atoms.info[key]!r} is not numeric")
        if values.size != 9:
            refuse(f"info '{key}' has {values.size} number(s), expected 9 (3x3 row-major, {unit})")
        if not np.all(np.isfinite(values)):
            refuse(f"info '{key}' contains NaN/inf: {values.reshape(-1).tolist()}")


#: Failure kinds recorded in ``label_failure_kind`` (and the failures table).
FAILURE_KINDS = ("rejected", "scf", "timeout", "unphysical", "crash")


class LabellingFailure(Exception):
    """A configuration cannot or should not be labelled (recorded, not raised to the caller).

    Parameters
    ----------
    message
        One-line reason.
    kind
        One of :data:`FAILURE_KINDS`; ``rejected`` (a cost guard refused the
        cell before calculating) is never retried.
    """

    def __init__(self, message: str, kind: str = "crash"):
        super().__init__(message)
        self.kind = kind


class LabellingTimeout(LabellingFailure):
    """The calculation ran past ``label.timeout_s``."""

    def __init__(self, message: str):
        super().__init__(message, kind="timeout")


@contextmanager
def _wall_limit(seconds: float | None):
    """Raise :class:`LabellingTimeout` in the main thread after ``seconds`` (no limit: None).

    SIGALRM interrupts both a Python calculation and a wait on a child process
    (``subprocess.run`` then kills the child).
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise LabellingTimeout(f"calculation exceeded label.timeout_s={seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (external codes), s."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


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

    def calculator_for(self, atoms: Atoms, directory: Path):
        """Fresh calculator for ``atoms`` (codes whose input depends on the cell, e.g. an explicit k-grid)."""
        return self.calculator(directory)

    def precheck(self, atoms: Atoms) -> str | None:
        """Reason to skip ``atoms`` without calculating (cost guard), or None to go ahead."""
        return None

    def explain(self, error: Exception) -> str | None:
        """Readable reason for a code's exception whose own message is empty or cryptic."""
        return None

    def energy(self, atoms: Atoms) -> float:
        """The energy recorded as ``dft_energy``: force-consistent (free) energy where available."""
        try:
            return float(atoms.get_potential_energy(force_consistent=True))
        except PropertyNotImplementedError:
            # Calculators without smearing may only provide the plain energy.
            return float(atoms.get_potential_energy())

    def extra_info(self, atoms: Atoms) -> dict[str, Any]:
        """Further ``info`` keys of a successful record (e.g. CASTEP's ``dft_free_energy``)."""
        return {}

    def code_cpu_s(self, directory: Path) -> float | None:
        """Core-seconds the code itself reports in ``directory`` (MPI ranks included), or None."""
        return None

    def shares_mpi_ranks(self) -> bool:
        """Whether the code parallelises over the MPI ranks this Python process was
        started with (GPAW built with MPI); otherwise only rank 0 needs to run."""
        return False

    def launch_prefix(self) -> list[str]:
        """MPI launcher argv (``["srun", "-n", "16"]``) set by :meth:`set_launcher`; empty: serial."""
        return list(getattr(self, "_launcher", []))

    def set_launcher(self, argv: list[str]) -> None:
        """Prefix the code's command line with ``argv`` (from Snakemake resources)."""
        self._launcher = [str(part) for part in argv]

    def isolated_atom_overrides(self, magnetic: bool) -> dict[str, Any]:
        """Settings changes for one atom in a big box: Γ-point only, spin-polarised if ``magnetic``."""
        return {}

    def with_overrides(self, overrides: dict[str, Any]) -> Labeller:
        """A labeller of the same code with some settings replaced (safer retry settings).

        Raises
        ------
        ConfigError
            When an override is not a setting of this code.
        """
        merged = {**self.settings, **overrides}
        clone = type(self)(merged, base_dir=getattr(self, "base_dir", "."))
        clone.set_launcher(self.launch_prefix())
        return clone

    def __repr__(self) -> str:
        return f"{type(self).__name__}(settings={self.settings!r})"


def _one_line(error: BaseException, explanation: str | None = None) -> str:
    message = " ".join((explanation or str(error)).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


#: Default sanity limits of :func:`label_configuration` (``label.limits`` in the config).
DEFAULT_LIMITS: dict[str, float] = {
    "max_force": 100.0,  # eV/Å: beyond this a DFT result is a broken SCF or overlapping atoms
    "max_stress": 5000.0,  # GPa, any component
    "max_abs_energy_per_atom": 1.0e5,  # eV: absolute pseudopotential energies are ~1e2-1e4 eV/atom
}


def _calculate(atoms: Atoms, calc, labeller: Labeller) -> dict[str, np.ndarray | float]:
    """Energy, forces and (for periodic cells) stress; raise LabellingFailure if unusable."""
    atoms.calc = calc
    energy = labeller.energy(atoms)
    results: dict[str, Any] = {
        "energy": float(energy),
        "forces": np.array(atoms.get_forces(), dtype=float),
    }
    extra = labeller.extra_info(atoms)
    if atoms.pbc.all():
        stress = np.asarray(atoms.get_stress(voigt=False), dtype=float)
        if stress.shape == (6,):
            stress = voigt_6_to_full_3x3_stress(stress)
        results["stress"] = stress
    name = record_name(atoms)
    if results["forces"].shape != (len(atoms), 3):
        raise LabellingFailure(f"{name}: forces have shape {results['forces'].shape}, expected ({len(atoms)}, 3)")
    if "stress" in results and results["stress"].shape != (3, 3):
        raise LabellingFailure(f"{name}: stress has shape {results['stress'].shape}, expected (3, 3) or 6 Voigt")
    for key, value in [*results.items(), *extra.items()]:
        if np.asarray(value).dtype.kind in "fiuc" and not np.all(np.isfinite(value)):
            raise LabellingFailure(f"{name}: the calculator returned a non-finite {key}", kind="unphysical")
    results["extra_info"] = extra
    return results


def _check_limits(results: dict[str, Any], limits: dict[str, float]) -> None:
    """Raise an ``unphysical`` :class:`LabellingFailure` when a result exceeds ``limits``."""
    energy_per_atom = abs(results["energy"]) / max(len(results["forces"]), 1)
    if energy_per_atom > limits["max_abs_energy_per_atom"]:
        raise LabellingFailure(
            f"|energy| of {energy_per_atom:.3g} eV/atom exceeds label.limits.max_abs_energy_per_atom="
            f"{limits['max_abs_energy_per_atom']:g}",
            kind="unphysical",
        )
    largest_force = float(np.linalg.norm(results["forces"], axis=1).max()) if len(results["forces"]) else 0.0
    if largest_force > limits["max_force"]:
        raise LabellingFailure(
            f"largest force {largest_force:.3g} eV/A exceeds label.limits.max_force={limits['max_force']:g}",
            kind="unphysical",
        )
    if "stress" in results:
        largest_stress = float(np.abs(results["stress"]).max()) / GPA
        if largest_stress > limits["max_stress"]:
            raise LabellingFailure(
                f"largest stress component {largest_stress:.3g} GPa exceeds "
                f"label.limits.max_stress={limits['max_stress']:g}",
                kind="unphysical",
            )


def _failure_kind(error: Exception) -> str:
    if isinstance(error, LabellingFailure):
        return error.kind
    name = type(error).__name__
    if "Convergence" in name or "SCF" in str(error)[:200]:
        return "scf"
    return "crash"


def label_configuration(
    atoms: Atoms,
    labeller: Labeller,
    workdir: str | Path,
    timeout_s: float | None = None,
    limits: dict[str, float] | None = None,
) -> Atoms:
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
    timeout_s
        Wall-time limit of the calculation in seconds (None: no limit); a run
        past it is stopped and recorded with ``label_failure_kind="timeout"``.
    limits
        Sanity limits, keys of :data:`DEFAULT_LIMITS` (missing keys take the
        defaults); results beyond them are recorded as ``unphysical`` failures.

    Returns
    -------
    ase.Atoms
        A copy without calculator. On success ``info`` holds
        ``label_status="ok"``, ``dft_energy`` (eV), ``dft_stress`` (GPa, 9),
        ``dft_virial`` (eV, 9, ``= -dft_stress*V*GPa``) and ``arrays["dft_forces"]``
        (eV/Å); on failure ``label_status="failed"``, a one-line
        ``label_error`` and ``label_failure_kind`` (one of
        :data:`FAILURE_KINDS`), without any ``dft_*`` key. Both carry
        ``label_code``, ``label_settings_hash``, ``label_cpu_s`` (core-seconds:
        this process, its children, or what the code reports for its MPI
        ranks) and ``label_wall_s``.

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
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    cpu_start, wall_start = _cpu_seconds(), time.perf_counter()
    try:
        reason = labeller.precheck(work_atoms)
        if reason is not None:
            raise LabellingFailure(reason, kind="rejected")
        with _wall_limit(timeout_s):
            results = _calculate(work_atoms, labeller.calculator_for(work_atoms, workdir), labeller)
        _check_limits(results, limits)
    except ConfigError:
        raise
    except Exception as error:  # any code failure becomes a record: one bad cell must not stop a batch
        labelled.info["label_status"] = "failed"
        labelled.info["label_error"] = _one_line(error, labeller.explain(error))
        labelled.info["label_failure_kind"] = _failure_kind(error)
        (workdir / "label_error.txt").write_text(traceback.format_exc())
    else:
        stress = results.get("stress")
        labelled.info["label_status"] = "ok"
        labelled.info["dft_energy"] = results["energy"]
        labelled.info.update(results["extra_info"])
        labelled.arrays["dft_forces"] = results["forces"]
        if stress is not None:
            labelled.info["dft_stress"] = (stress / GPA).reshape(9)
            labelled.info["dft_virial"] = (-stress * labelled.get_volume()).reshape(9)
    finally:
        work_atoms.calc = None
    code_cpu = labeller.code_cpu_s(workdir)
    labelled.info["label_cpu_s"] = round(code_cpu if code_cpu is not None else _cpu_seconds() - cpu_start, 3)
    labelled.info["label_wall_s"] = round(time.perf_counter() - wall_start, 3)
    return labelled
