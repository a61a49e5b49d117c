"""Is one periodic structure the same as another, up to lattice basis, wrapping, order and shift?

Used to find the database record a code's output belongs to: the study's
workflow wrote CASTEP ``.cell`` files with another (reduced) basis of the same
lattice and with atoms wrapped differently from ``cycle_0.edb.extxyz``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms


def match_atoms(a: Atoms, b: Atoms, atol: float = 1e-3) -> np.ndarray | None:
    """Permutation mapping ``a`` onto ``b`` when both are the same periodic structure.

    The same structure means: the same lattice (each cell vector of ``a`` an
    integer combination of those of ``b``, equal volumes), the same species,
    and every atom of ``a`` at a lattice translate of an atom of ``b`` after
    one rigid shift common to all atoms (so wrapping, atom order and origin
    may differ).

    Cost: O(N^2) per trial shift, N trial shifts at most; trivial for N ~ 100.

    Parameters
    ----------
    a, b
        Periodic structures.
    atol
        Tolerance in Å for positions and cell vectors.

    Returns
    -------
    numpy.ndarray or None
        ``perm`` with ``a[i]`` ↔ ``b[perm[i]]``, or None when they differ.
    """
    if len(a) != len(b) or sorted(a.get_chemical_symbols()) != sorted(b.get_chemical_symbols()):
        return None
    cell_b = b.cell.array
    if abs(abs(np.linalg.det(a.cell.array)) - abs(np.linalg.det(cell_b))) > atol * len(a):
        return None
    basis_change = a.cell.array @ np.linalg.inv(cell_b)
    if np.abs(basis_change - np.round(basis_change)).max() * np.abs(cell_b).max() > atol:
        return None
    frac_a = a.positions @ np.linalg.inv(cell_b)
    frac_b = b.get_scaled_positions(wrap=False)
    numbers_a, numbers_b = a.numbers, b.numbers
    for anchor in np.flatnonzero(numbers_b == numbers_a[0]):
        shifted = frac_a + (frac_b[anchor] - frac_a[0])
        delta = shifted[:, None, :] - frac_b[None, :, :]
        delta -= np.round(delta)
        distance = np.linalg.norm(delta @ cell_b, axis=2)
        distance[numbers_a[:, None] != numbers_b[None, :]] = np.inf
        perm = distance.argmin(axis=1)
        if distance[np.arange(len(a)), perm].max() <= atol and len(set(perm.tolist())) == len(a):
            return perm
    return None


def find_match(atoms: Atoms, candidates: list[Atoms], atol: float = 1e-3) -> tuple[int, np.ndarray] | None:
    """Index of the first of ``candidates`` that is the same structure as ``atoms``, and the permutation.

    Parameters
    ----------
    atoms
        Structure to look up.
    candidates
        Structures to search (e.g. a labelled database).
    atol
        See :func:`match_atoms`.

    Returns
    -------
    (index, perm) or None
        ``atoms[i]`` ↔ ``candidates[index][perm[i]]``.
    """
    volume = atoms.get_volume()
    for index, candidate in enumerate(candidates):
        if abs(candidate.get_volume() - volume) > atol * len(atoms):
            continue
        perm = match_atoms(atoms, candidate, atol)
        if perm is not None:
            return index, perm
    return None
