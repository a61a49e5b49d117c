"""The first neighbour shell of every atom: SANN, a fixed number of nearest neighbours, or a cutoff.

Shared by the Steinhardt order parameters (bond vectors) and the
Warren–Cowley short-range order (bonded species). SANN is the
parameter-free rule of van Meel et al., J. Chem. Phys. 136, 234107 (2012):
the shell of an atom holds its m nearest neighbours for the smallest m >= 3
with ``sum(r_1..r_m) / (m - 2) < r_(m+1)`` (12 neighbours in fcc and hcp,
14 in bcc).
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from nestdb.errors import ConfigError, DataError

__all__ = ["first_shell", "sann_count"]


def sann_count(sorted_dist: np.ndarray) -> int:
    """SANN neighbour count from the sorted neighbour distances of one atom."""
    cumulative = np.cumsum(sorted_dist)
    for m in range(3, sorted_dist.size):
        if cumulative[m - 1] / (m - 2) < sorted_dist[m]:
            return m
    return sorted_dist.size


def first_shell(
    atoms: Atoms, neighbours: str | int | float = "sann", what: str = "neighbour shells"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre index, neighbour index and bond vector (Å) of every first-shell bond.

    Periodic images count as neighbours and map to their atom's index.

    Parameters
    ----------
    atoms
        A configuration.
    neighbours
        ``'sann'``, the number of nearest neighbours (int >= 1), or a cutoff in Å (float).
    what
        What the shells are for, in the error messages.

    Returns
    -------
    (i, j, D)
        Bonds sorted by centre and, within a centre, by length (a cutoff keeps
        ASE's order).

    Raises
    ------
    DataError
        Fewer than 2 atoms without a periodic cell, no neighbour within a
        cutoff, or too few neighbours for some atom.
    ConfigError
        ``neighbours`` of another kind.
    """
    n = len(atoms)
    if n < 2 and not atoms.pbc.any():
        raise DataError(f"{what} need at least 2 atoms or a periodic cell")
    if isinstance(neighbours, float):
        i, j, d = neighbor_list("ijD", atoms, neighbours)
        if i.size == 0:
            raise DataError(f"no neighbours within cutoff {neighbours} Å; use a larger cutoff")
        return i, j, d
    if neighbours != "sann" and (
        isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or neighbours < 1
    ):
        raise ConfigError(
            f"neighbours must be 'sann', a number of nearest neighbours (int >= 1) or a cutoff "
            f"in Å (float), got {neighbours!r}"
        )
    wanted = 40 if neighbours == "sann" else int(neighbours) + 1
    # Radius expected to hold `wanted` neighbours at the mean density, grown until every atom has them.
    volume = abs(atoms.get_volume()) if atoms.pbc.all() else np.ptp(atoms.positions, axis=0).prod() + 1.0
    cutoff = (3 * wanted * volume / (4 * math.pi * n)) ** (1 / 3)
    for _ in range(8):
        i, j, d = neighbor_list("ijD", atoms, cutoff)
        counts = np.bincount(i, minlength=n)
        if counts.min() >= wanted:
            break
        cutoff *= 1.5
    else:
        raise DataError(f"could not find {wanted} neighbours for every atom (cutoff up to {cutoff:.1f} Å)")
    dist = np.linalg.norm(d, axis=1)
    order = np.lexsort((dist, i))
    i, j, d, dist = i[order], j[order], d[order], dist[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    keep = np.zeros(i.size, dtype=bool)
    for atom in range(n):
        shell = slice(starts[atom], starts[atom] + counts[atom])
        m = int(neighbours) if neighbours != "sann" else sann_count(dist[shell])
        keep[starts[atom] : starts[atom] + m] = True
    return i[keep], j[keep], d[keep]
