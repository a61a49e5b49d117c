"""Chemical short-range order: Warren–Cowley parameters of the first neighbour shell.

For species i and j with concentrations c_i, c_j, the first-shell
Warren–Cowley parameter is

    alpha_ij = 1 - p(j | i) / c_j,

with p(j | i) the fraction of the first-shell neighbours of i-atoms that are
j-atoms (Cowley, Phys. Rev. 77, 669 (1950)). alpha = 0 for a random
arrangement, < 0 where unlike neighbours are preferred (ordering; -1/3 for
the ideal L1_2 and L1_0 structures on the fcc lattice), > 0 where like
neighbours are (clustering, up to 1). The first shell is chosen per atom by
SANN (the parameter-free rule of :mod:`nestdb.structures.steinhardt`: 12 neighbours in fcc
and hcp, 14 in bcc), a fixed number of nearest neighbours, or a cutoff.
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms

from nestdb.structures.neighbours import first_shell

__all__ = ["neighbour_pairs", "warren_cowley", "warren_cowley_of_bonds", "pair_label", "random_reference"]


def pair_label(a: str, b: str) -> str:
    """Column name of a pair's parameter, e.g. ``alpha_Cu-Au``."""
    return f"alpha_{a}-{b}"


def neighbour_pairs(atoms: Atoms, neighbours: str | int | float = "sann") -> tuple[np.ndarray, np.ndarray]:
    """(centre, neighbour) atom indices of every first-shell bond (periodic images map to their atom).

    Parameters
    ----------
    atoms
        A configuration; periodic images count as neighbours.
    neighbours
        ``'sann'``, the number of nearest neighbours (int), or a cutoff in Å (float).
    """
    i, j, _ = first_shell(atoms, neighbours, "Warren-Cowley parameters")
    return i, j


def warren_cowley(
    atoms: Atoms, neighbours: str | int | float = "sann", elements: list[str] | None = None
) -> dict[str, float]:
    """First-shell Warren–Cowley parameters of every pair of different species.

    Parameters
    ----------
    atoms
        A configuration with at least two species.
    neighbours
        First-shell rule (see :func:`neighbour_pairs`).
    elements
        Species order of the pairs (default: order of first appearance).

    Returns
    -------
    dict
        ``{pair_label(a, b): alpha_ab}`` for every pair a before b in
        ``elements`` (alpha of the pair seen from a's neighbours; for a cell
        where every atom has the same number of neighbours alpha_ab = alpha_ba).
        Species absent from ``atoms`` give NaN.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    if elements is None:
        elements = list(dict.fromkeys(symbols))
    centre, neighbour = neighbour_pairs(atoms, neighbours)
    return warren_cowley_of_bonds(symbols, centre, neighbour, elements)


def warren_cowley_of_bonds(
    symbols: np.ndarray, centre: np.ndarray, neighbour: np.ndarray, elements: list[str]
) -> dict[str, float]:
    """:func:`warren_cowley` from given bonds (``neighbour_pairs``), e.g. for many species arrangements of one cell."""
    result = {}
    for a, b in itertools.combinations(elements, 2):
        c_b = float(np.mean(symbols == b))
        bonds_of_a = symbols[centre] == a
        if c_b == 0 or not bonds_of_a.any():
            result[pair_label(a, b)] = float("nan")
            continue
        p_b_given_a = float(np.mean(symbols[neighbour[bonds_of_a]] == b))
        result[pair_label(a, b)] = 1.0 - p_b_given_a / c_b
    return result


def random_reference(
    atoms: Atoms,
    neighbours: str | int | float = "sann",
    elements: list[str] | None = None,
    n_shuffles: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Mean Warren–Cowley parameters of random arrangements of the same species on the same sites.

    In a small periodic cell a random arrangement does not give alpha = 0
    (in a 4-atom AB cell an atom's other sites hold fewer like atoms than
    the composition says); the mean over ``n_shuffles`` random permutations
    of the species is the cell's own zero of order.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    if elements is None:
        elements = list(dict.fromkeys(symbols))
    centre, neighbour = neighbour_pairs(atoms, neighbours)
    rng = np.random.default_rng(seed)
    draws = [warren_cowley_of_bonds(rng.permutation(symbols), centre, neighbour, elements) for _ in range(n_shuffles)]
    return {key: float(np.mean([d[key] for d in draws])) for key in draws[0]}
