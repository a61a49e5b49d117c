"""Half neighbour lists for small periodic cells, vectorised with numpy.

Nested sampling evaluates 8-64 atom cells millions of times, often with the
cutoff larger than half the cell (so an atom sees several images of the same
neighbour). Enumerating every atom pair against every lattice translation
that can bring it within the cutoff is then cheaper than a binned search:
one (pairs x translations) matrix of squared distances and one mask.
Large or non-periodic systems go to matscipy's binned neighbour list.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from matscipy.neighbours import neighbour_list

#: Above this many (atom pair x translation) candidates the binned search is used.
MAX_DENSE_CANDIDATES = 400_000
#: Row sums of (M, 3) arrays as a product with this: numpy's axis-1 sum of
#: length-3 rows is ~5x slower, and these run millions of times.
_ONES3 = np.ones(3)


@lru_cache(maxsize=16)
def _upper_pairs(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.triu_indices(n_atoms, 1)
    return first, second


@lru_cache(maxsize=64)
def _translation_grid(n_a: int, n_b: int, n_c: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer translations in [-n, n]^3: all of them, and the 'positive half'
    (first non-zero component > 0) used for an atom's own images."""
    grid = np.stack(
        np.meshgrid(np.arange(-n_a, n_a + 1), np.arange(-n_b, n_b + 1), np.arange(-n_c, n_c + 1), indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    first_nonzero = np.where(grid[:, 0] != 0, grid[:, 0], np.where(grid[:, 1] != 0, grid[:, 1], grid[:, 2]))
    return grid.astype(float), grid[first_nonzero > 0].astype(float)


def translation_range(inverse_cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Largest |n_k| per lattice direction for which a translation can bring a
    minimum-image pair (fractional difference in [-1/2, 1/2]) within ``cutoff``.

    The spacing h_k of the lattice planes of direction k bounds |D| from
    below, |D| >= |x_k| h_k, and 1/h_k is the norm of column k of the
    inverse cell.
    """
    inverse_spacing = np.sqrt(_ONES3 @ (inverse_cell * inverse_cell))
    return np.floor(cutoff * inverse_spacing + 0.5).astype(int)


def inverse_and_volume(cell: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverse of a 3x3 cell and its volume |det| (cofactors in plain floats:
    several times faster than numpy.linalg for one 3x3 matrix).

    Returns a zero inverse and volume 0 for a singular cell.
    """
    (a, b, c), (d, e, f), (g, h, i) = cell.tolist()
    co_a, co_b, co_c = e * i - f * h, f * g - d * i, d * h - e * g
    det = a * co_a + b * co_b + c * co_c
    if det == 0.0:
        return np.zeros((3, 3)), 0.0
    inverse = np.array(
        [
            [co_a, c * h - b * i, b * f - c * e],
            [co_b, a * i - c * g, c * d - a * f],
            [co_c, b * g - a * h, a * e - b * d],
        ]
    )
    inverse *= 1.0 / det
    return inverse, abs(det)


def lattice_translations(cell: np.ndarray, inverse_cell: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian lattice translations that can bring a minimum-image pair within
    ``cutoff`` (all of them, and the positive half used for an atom's own images)."""
    n_a, n_b, n_c = translation_range(inverse_cell, cutoff).tolist()
    all_shifts, half_shifts = _translation_grid(n_a, n_b, n_c)
    return all_shifts @ cell, half_shifts @ cell


def half_neighbour_list(
    positions: np.ndarray, cell: np.ndarray, pbc, cutoff: float, inverse_cell: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of atoms (or atom and periodic image) closer than ``cutoff``, once.

    Parameters
    ----------
    positions : (N, 3) array
        Cartesian positions in A; need not be wrapped into the cell.
    cell : (3, 3) array
        Lattice vectors as rows.
    pbc : sequence of 3 bool
    cutoff : float
        Pairs with distance < cutoff are returned.
    inverse_cell : (3, 3) array, optional
        ``inverse_and_volume(cell)[0]`` if the caller has it already.

    Returns
    -------
    first, second : int arrays (M,)
        Atom indices of each pair; an atom and its own image give first == second.
    vectors : (M, 3) array
        Vector from ``first`` to (the image of) ``second``.
    distances : (M,) array
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    n_atoms = len(positions)
    if n_atoms >= 1 and all(pbc):
        if inverse_cell is None:
            inverse_cell = inverse_and_volume(cell)[0]
        if inverse_cell.any():  # zero for a singular cell
            n_max = translation_range(inverse_cell, cutoff)
            n_a, n_b, n_c = n_max.tolist()
            n_translations = (2 * n_a + 1) * (2 * n_b + 1) * (2 * n_c + 1)
            if n_atoms * (n_atoms - 1) // 2 * n_translations <= MAX_DENSE_CANDIDATES:
                return _dense_half_list(positions, cell, inverse_cell, cutoff, (n_a, n_b, n_c))
    return _binned_half_list(positions, cell, pbc, cutoff)


def _dense_half_list(positions, cell, inverse_cell, cutoff, n_max):
    n_atoms = len(positions)
    first, second = _upper_pairs(n_atoms)
    fractional = positions @ inverse_cell
    delta = fractional.take(second, axis=0) - fractional.take(first, axis=0)
    delta -= np.rint(delta)  # minimum image in fractional coordinates
    base = delta @ cell
    all_shifts, half_shifts = _translation_grid(*n_max)
    shifts = all_shifts @ cell
    # |base + shift|^2 for every (pair, translation) without building the 3-vectors
    dist2 = (2.0 * base) @ shifts.T
    dist2 += ((base * base) @ _ONES3)[:, None]
    dist2 += (shifts * shifts) @ _ONES3
    pair_index, shift_index = np.divmod(np.flatnonzero(dist2 < cutoff * cutoff), len(shifts))
    vectors = base.take(pair_index, axis=0) + shifts.take(shift_index, axis=0)
    first, second = first.take(pair_index), second.take(pair_index)
    # an atom and its own periodic images: the same vectors for every atom
    own = half_shifts @ cell
    own = own[(own * own) @ _ONES3 < cutoff * cutoff]
    if len(own):
        atoms = np.repeat(np.arange(n_atoms), len(own))
        first = np.concatenate((first, atoms))
        second = np.concatenate((second, atoms))
        vectors = np.concatenate((vectors, np.tile(own, (n_atoms, 1))))
    distances = np.sqrt((vectors * vectors) @ _ONES3)
    return first, second, vectors, distances


def _binned_half_list(positions, cell, pbc, cutoff):
    first, second, vectors, shifts = neighbour_list(
        "ijDS", positions=positions, cell=cell, pbc=np.asarray(pbc, dtype=bool), cutoff=cutoff
    )
    # keep one of (i, j, S) and (j, i, -S)
    first_nonzero = np.where(shifts[:, 0] != 0, shifts[:, 0], np.where(shifts[:, 1] != 0, shifts[:, 1], shifts[:, 2]))
    keep = (first < second) | ((first == second) & (first_nonzero > 0))
    vectors = vectors[keep]
    return first[keep], second[keep], vectors, np.sqrt((vectors * vectors) @ _ONES3)
