"""Reading and checking DFT-labelled training configurations.

The training set is one or more extended-XYZ files written by the labelling
step (or the study's ``.edb.extxyz`` files).  Every configuration carries

* ``info["dft_energy"]``  total DFT energy in eV,
* ``arrays["dft_forces"]`` forces in eV/Angstrom, shape ``(n_atoms, 3)``,

and optionally ``info["dft_virial"]`` (eV, 9 numbers, ``-stress * volume``),
``info["dft_stress"]``, ``info["label_status"]`` (``"ok"``/``"failed"``),
``info["weight"]``, ``info["cycle"]``, ``info["pressure"]``,
``info["config_type"]`` and ``info["config_id"]``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read
from ase.units import GPa

from nestdb.errors import DataError
from nestdb.label.core import check_label_values, record_name

ENERGY_KEY = "dft_energy"
FORCES_KEY = "dft_forces"
VIRIAL_KEY = "dft_virial"
STATUS_KEY = "label_status"
WEIGHT_KEY = "weight"

_logger = logging.getLogger("nestdb.fit")


def check_frame(atoms: Atoms, source: str, index: int) -> None:
    """Raise :class:`DataError` unless ``atoms`` carries usable DFT labels.

    Every label field is checked (:func:`nestdb.label.core.check_label_values`):
    ``dft_energy`` and ``dft_forces`` present, finite and of the right shape,
    ``dft_stress``/``dft_virial`` (when present) 9 finite numbers; and the
    positions and ``weight`` are finite.

    Parameters
    ----------
    atoms
        One configuration.
    source
        File name used in the message.
    index
        Position of the configuration in its file (0-based), used in the message
        with its ``config_id``.
    """
    where = record_name(atoms, source, index)
    if len(atoms) == 0:
        raise DataError(f"{where}: has no atoms; remove it from the training set")
    check_label_values(
        atoms,
        where,
        fix="relabel the configuration (delete its labelled file and rerun) "
        "or set label_status='failed' to leave it out of the fit",
    )
    if not np.all(np.isfinite(atoms.positions)):
        raise DataError(f"{where}: positions contain NaN/inf")
    if WEIGHT_KEY in atoms.info:
        try:
            weight = float(atoms.info[WEIGHT_KEY])
        except (TypeError, ValueError):
            raise DataError(f"{where}: info '{WEIGHT_KEY}'={atoms.info[WEIGHT_KEY]!r} is not a number") from None
        if not np.isfinite(weight) or weight < 0:
            raise DataError(f"{where}: info '{WEIGHT_KEY}'={weight} must be a finite number >= 0")


def read_training_set(paths: list[str | Path] | str | Path) -> tuple[list[Atoms], dict]:
    """Read labelled configurations and a summary of what was kept.

    Configurations with ``label_status == "failed"`` (or any status other than
    ``"ok"``) are skipped and counted; configurations without a status are used.

    Parameters
    ----------
    paths
        Extended-XYZ files (one path or a list).

    Returns
    -------
    frames, summary
        The usable configurations (each gets ``info["source_file"]`` and
        ``info["source_index"]``) and a dict with ``n_read``, ``n_used``,
        ``n_skipped_status`` and per-file counts.

    Raises
    ------
    DataError
        A file is missing or unreadable, a used configuration lacks
        ``dft_energy``/``dft_forces`` or has NaN labels, or nothing usable is left.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames: list[Atoms] = []
    per_file: dict[str, dict[str, int]] = {}
    skipped_status: Counter[str] = Counter()
    n_read = 0
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"training file '{path}' does not exist")
        try:
            file_frames = read(path, index=":", format="extxyz")
        except Exception as exc:  # ASE raises many types on malformed files
            raise DataError(f"training file '{path}' could not be read as extended XYZ: {exc}") from exc
        used = 0
        for index, atoms in enumerate(file_frames):
            n_read += 1
            status = str(atoms.info.get(STATUS_KEY, "ok")).strip().lower()
            if status != "ok":
                skipped_status[status] += 1
                continue
            check_frame(atoms, str(path), index)
            atoms.info["source_file"] = str(path)
            atoms.info["source_index"] = index
            frames.append(atoms)
            used += 1
        per_file[str(path)] = {"n_read": len(file_frames), "n_used": used}
    if not frames:
        raise DataError(
            f"no usable labelled configurations in {[str(p) for p in paths]} "
            f"({n_read} read, {sum(skipped_status.values())} skipped by label_status)"
        )
    summary = {
        "n_read": n_read,
        "n_used": len(frames),
        "n_skipped_status": int(sum(skipped_status.values())),
        "skipped_by_status": dict(skipped_status),
        "files": per_file,
    }
    return frames, summary


def load_training_frames(paths: list[str | Path] | str | Path) -> list[Atoms]:
    """Read labelled configurations for fitting; see :func:`read_training_set`.

    The summary (configurations read / used / skipped because of
    ``label_status``) goes to the ``nestdb.fit`` logger.
    """
    frames, summary = read_training_set(paths)
    _logger.info(
        f"training set: {summary['n_used']} of {summary['n_read']} configurations used, "
        f"{summary['n_skipped_status']} skipped by label_status {summary['skipped_by_status']}"
    )
    return frames


def frame_weight(atoms: Atoms) -> float:
    """Sample weight of a configuration (``info["weight"]``, default 1)."""
    return float(atoms.info.get(WEIGHT_KEY, 1.0))


def summarise_frames(frames: list[Atoms]) -> dict:
    """Counts describing a set of configurations, for ``model.json``."""
    n_atoms = np.array([len(a) for a in frames])
    volumes = [a.get_volume() / len(a) for a in frames if a.cell.rank == 3]
    symbols = Counter(s for a in frames for s in a.get_chemical_symbols())
    summary: dict[str, Any] = {
        "n_configs": len(frames),
        "n_atoms_total": int(n_atoms.sum()),
        "n_atoms_min": int(n_atoms.min()),
        "n_atoms_max": int(n_atoms.max()),
        "elements": dict(symbols),
        "config_types": dict(Counter(str(a.info.get("config_type", "unknown")) for a in frames)),
    }
    if volumes:
        summary["volume_per_atom_min"] = float(min(volumes))
        summary["volume_per_atom_max"] = float(max(volumes))
    cycles = [a.info["cycle"] for a in frames if "cycle" in a.info]
    if cycles:
        summary["cycles"] = {str(k): v for k, v in Counter(cycles).items()}
    return summary


def frame_cycle(atoms: Atoms) -> str:
    """Cycle of a configuration: ``info["cycle"]``, else ``cycle_<n>`` in its file name, else ``"?"``."""
    if "cycle" in atoms.info:
        return str(atoms.info["cycle"])
    match = re.search(r"cycle_?(\d+)", Path(str(atoms.info.get("source_file", ""))).name)
    return match.group(1) if match else "?"


def frame_pressure_gpa(atoms: Atoms) -> float | None:
    """NS pressure in GPa: ``info["pressure"]`` (GPa) or the study's ``info["ns_P"]`` (eV/Angstrom^3)."""
    if "pressure" in atoms.info:
        return float(atoms.info["pressure"])
    if "ns_P" in atoms.info:
        return float(atoms.info["ns_P"]) / GPa
    return None


def frame_groups(atoms: Atoms) -> dict[str, str]:
    """Labels used for per-group metrics: cycle, pressure (GPa, rounded) and config type."""
    pressure = frame_pressure_gpa(atoms)
    return {
        "cycle": frame_cycle(atoms),
        "pressure": "?" if pressure is None else f"{round(pressure, 1) + 0.0:g}",  # + 0.0: no "-0"
        "config_type": str(atoms.info.get("config_type", "?")),
    }


def stratified_split(frames: list[Atoms], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test split stratified by cycle and pressure.

    Each (cycle, pressure) stratum contributes ``test_fraction`` of its
    configurations; the fractional remainders are given out (largest first,
    random ties) so the total is ``round(test_fraction * n)``.  At least one
    configuration stays in training.
    """
    n_configs = len(frames)
    if test_fraction <= 0 or n_configs < 2:
        return np.arange(n_configs), np.array([], dtype=int)
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, str], list[int]] = {}
    for i, atoms in enumerate(frames):
        groups = frame_groups(atoms)
        strata.setdefault((groups["cycle"], groups["pressure"]), []).append(i)
    n_test = min(max(int(round(test_fraction * n_configs)), 1), n_configs - 1)
    members = [rng.permutation(indices) for indices in strata.values()]
    quota = np.array([test_fraction * len(m) for m in members])
    counts = np.floor(quota).astype(int)
    remainder = quota - counts + rng.random(len(members)) * 1e-9  # random tie-break
    for k in np.argsort(-remainder)[: max(0, n_test - counts.sum())]:
        counts[k] += 1
    test = np.concatenate([m[:c] for m, c in zip(members, counts, strict=True)]).astype(int)
    return np.setdiff1d(np.arange(n_configs), test), np.sort(test)


def split_train_test(n_configs: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/test split that always leaves at least one training configuration.

    Parameters
    ----------
    n_configs
        Number of configurations.
    test_fraction
        Fraction in [0, 1) put in the test set (rounded to the nearest
        integer, at least 1 when the fraction is > 0 and ``n_configs >= 2``).
    seed
        Seed of the permutation.

    Returns
    -------
    train_indices, test_indices
        Sorted index arrays.
    """
    if test_fraction <= 0 or n_configs < 2:
        return np.arange(n_configs), np.array([], dtype=int)
    n_test = int(round(test_fraction * n_configs))
    n_test = min(max(n_test, 1), n_configs - 1)
    order = np.random.default_rng(seed).permutation(n_configs)
    return np.sort(order[n_test:]), np.sort(order[:n_test])
