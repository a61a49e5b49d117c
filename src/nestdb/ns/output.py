"""Writers for the pymatnest-compatible output files of a nested-sampling run.

``<prefix>.energies``, ``<prefix>.traj.extxyz``, ``<prefix>.final.extxyz`` and
``<prefix>.summary.json`` (formats in reference/pymatnest-format.md section 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np
from ase import Atoms
from ase.io import write

from nestdb.io import write_json

#: Suffix of a snapshot after the run's prefix.
SNAPSHOT_SUFFIX = ".restart.npz"


def output_paths(prefix: str | Path) -> dict[str, Path]:
    """The four output files of a run with this prefix, and its restart snapshot."""
    prefix = str(prefix)
    return {
        "restart": Path(prefix + SNAPSHOT_SUFFIX),
        "energies": Path(prefix + ".energies"),
        "traj": Path(prefix + ".traj.extxyz"),
        "final": Path(prefix + ".final.extxyz"),
        "summary": Path(prefix + ".summary.json"),
    }


def energies_header(n_walkers: int, n_cull: int, n_atoms: int, n_extra_dof: int = 0) -> str:
    """First line of ``.energies``: K, n_cull, nExtraDOF (0: KE is inside H; 3N
    when momenta are integrated out, i.e. without MD), flat-V prior, N."""
    return f"{int(n_walkers)} {int(n_cull)} {int(n_extra_dof)} False {int(n_atoms)}\n"


def energies_line(iteration: int, enthalpy: float, volume: float) -> str:
    """One ``.energies`` line, 60 decimals as pymatnest writes them."""
    return f"{int(iteration)} {float(enthalpy):.60f} {float(volume):.60f}\n"


def walker_frame(
    numbers: np.ndarray,
    masses: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    velocities: np.ndarray,
    *,
    enthalpy: float,
    volume: float,
    kemax: float,
    pressure: float,
    iteration: int,
    config_type: str,
    config_n_global: int,
    kinetic: float,
    committee_std: float | None,
) -> Atoms:
    """A plain Atoms (no calculator) carrying one walker and its NS info keys.

    Info keys are inserted in pymatnest's order: ns_energy, volume, KEmax,
    ns_P, iter, config_type, config_n_global, ns_KE (+ committee_std).
    """
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    atoms.set_masses(masses)
    atoms.set_momenta(masses[:, None] * velocities)
    atoms.info["ns_energy"] = float(enthalpy)
    atoms.info["volume"] = float(volume)
    atoms.info["KEmax"] = float(kemax)
    atoms.info["ns_P"] = float(pressure)
    atoms.info["iter"] = int(iteration)
    atoms.info["config_type"] = config_type
    atoms.info["config_n_global"] = int(config_n_global)
    atoms.info["ns_KE"] = float(kinetic)
    if committee_std is not None and np.isfinite(committee_std):
        atoms.info["committee_std"] = float(committee_std)
    return atoms


def write_frame(handle: TextIO, atoms: Atoms) -> None:
    """Append one extxyz frame to an open text file."""
    write(handle, atoms, format="extxyz")


def write_summary(path: Path, summary: dict) -> None:
    """Write the run summary as indented JSON (:func:`nestdb.io.write_json`)."""
    write_json(path, summary)
