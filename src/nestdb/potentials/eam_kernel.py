"""Compiled EAM kernel (numba): neighbour search, energy, forces and virial in one pass.

The numpy path of :class:`nestdb.potentials.eam.FastEAM` makes ~50 numpy
calls per evaluation, whose fixed cost (~0.2 ms) dominates for the 8-64 atom
cells of nested sampling. This kernel does the same arithmetic (the same
pair enumeration over lattice translations, the same spline tables) in
compiled loops, from the cell itself: its inverse, the translation range
and the translations are computed inside, so that one call from Python does
everything. Without forces (``want_forces`` False, what nested sampling's
cell moves ask for) no pair is stored and the force pass is skipped; the
energy is bit for bit the one of a call with forces. numba is optional:
:data:`AVAILABLE` is False without it and FastEAM then uses numpy.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover - numba is pinned in requirements.txt
    AVAILABLE = False

    def njit(*args, **kwargs):
        return lambda function: function


#: Status codes of :func:`eam_kernel`.
OK, COINCIDING, NOT_HANDLED = 0, 1, 2


@njit(cache=True)
def _cubic(table, row, column, t):
    c3 = table[row, column]
    c2 = table[row, column + 1]
    c1 = table[row, column + 2]
    c0 = table[row, column + 3]
    return ((c3 * t + c2) * t + c1) * t + c0, (3.0 * c3 * t + 2.0 * c2) * t + c1


@njit(cache=True)
def _translations(cell, inverse, cutoff):
    """All lattice translations that can bring a minimum-image pair within the
    cutoff (Cartesian, (T, 3)) and a flag per translation for the 'positive
    half' (first non-zero index > 0) used for an atom's own images; as
    :func:`nestdb.potentials.neighbours.lattice_translations`."""
    counts = np.empty(3, np.int64)
    for k in range(3):
        # 1 / spacing of the lattice planes of direction k = norm of column k of the inverse
        norm = math.sqrt(inverse[0, k] * inverse[0, k] + inverse[1, k] * inverse[1, k] + inverse[2, k] * inverse[2, k])
        counts[k] = int(math.floor(cutoff * norm + 0.5))
    n_a, n_b, n_c = counts[0], counts[1], counts[2]
    total = (2 * n_a + 1) * (2 * n_b + 1) * (2 * n_c + 1)
    shifts = np.empty((total, 3))
    positive = np.empty(total, np.bool_)
    s = 0
    for a in range(-n_a, n_a + 1):
        for b in range(-n_b, n_b + 1):
            for c in range(-n_c, n_c + 1):
                for k in range(3):
                    shifts[s, k] = a * cell[0, k] + b * cell[1, k] + c * cell[2, k]
                first_nonzero = a if a != 0 else (b if b != 0 else c)
                positive[s] = first_nonzero > 0
                s += 1
    return shifts, positive


@njit(cache=True)
def eam_kernel(
    positions,
    cell,
    types,
    n_elements,
    symmetric,
    cutoff,
    pair_table,
    n_r_int,
    dr,
    embed_table,
    n_rho_int,
    drho,
    rho_max,
    want_forces,
    max_candidates,
):
    """Energy, per-atom energies, forces and virial sum_pairs (dE/dr / r) d (x) d.

    Returns ``(status, energy, energies, forces, virial, volume)``: status
    :data:`OK`, :data:`COINCIDING` (two atoms at one point: the caller
    returns an infinite energy) or :data:`NOT_HANDLED` (a cell without
    volume, or more than ``max_candidates`` pair x translation candidates:
    the caller uses the numpy path). ``forces`` and ``virial`` are empty
    arrays when ``want_forces`` is False.
    """
    n_atoms = positions.shape[0]
    empty_forces = np.empty((0, 3))
    empty_virial = np.empty((0, 3))
    # inverse cell from cofactors (rows of the cell are the lattice vectors)
    a, b, c = cell[0, 0], cell[0, 1], cell[0, 2]
    d, e, f = cell[1, 0], cell[1, 1], cell[1, 2]
    g, h, k = cell[2, 0], cell[2, 1], cell[2, 2]
    co_a, co_b, co_c = e * k - f * h, f * g - d * k, d * h - e * g
    det = a * co_a + b * co_b + c * co_c
    if det == 0.0:
        return NOT_HANDLED, 0.0, np.empty(0), empty_forces, empty_virial, 0.0
    inverse = np.empty((3, 3))
    inverse[0, 0], inverse[0, 1], inverse[0, 2] = co_a, c * h - b * k, b * f - c * e
    inverse[1, 0], inverse[1, 1], inverse[1, 2] = co_b, a * k - c * g, c * d - a * f
    inverse[2, 0], inverse[2, 1], inverse[2, 2] = co_c, b * g - a * h, a * e - b * d
    for row in range(3):
        for col in range(3):
            inverse[row, col] /= det
    volume = abs(det)
    shifts, positive = _translations(cell, inverse, cutoff)
    n_shifts = shifts.shape[0]
    if (n_atoms * (n_atoms - 1)) // 2 * n_shifts > max_candidates:
        return NOT_HANDLED, 0.0, np.empty(0), empty_forces, empty_virial, volume

    cutoff2 = cutoff * cutoff
    inv_dr = 1.0 / dr
    fractional = np.empty((n_atoms, 3))
    for i in range(n_atoms):
        for col in range(3):
            fractional[i, col] = (
                positions[i, 0] * inverse[0, col]
                + positions[i, 1] * inverse[1, col]
                + positions[i, 2] * inverse[2, col]
            )
    max_pairs = (n_atoms * (n_atoms - 1)) // 2 * n_shifts + n_atoms * n_shifts if want_forces else 0
    first = np.empty(max_pairs, np.int64)
    second = np.empty(max_pairs, np.int64)
    vectors = np.empty((max_pairs, 3))
    distance = np.empty(max_pairs)
    slopes = np.empty((max_pairs, 3))  # d rho(at first)/dr, d rho(at second)/dr, d phi/dr
    density = np.zeros(n_atoms)
    energies = np.zeros(n_atoms)
    width = 8 if symmetric else 12
    n_pairs = 0
    status = OK
    for i in range(n_atoms):
        for j in range(i, n_atoms):
            bx = by = bz = 0.0
            if j > i:
                for col in range(3):
                    delta = fractional[j, col] - fractional[i, col]
                    delta -= math.floor(delta + 0.5)  # minimum image in fractional coordinates
                    bx += delta * cell[col, 0]
                    by += delta * cell[col, 1]
                    bz += delta * cell[col, 2]
            pair_type = (types[i] * n_elements + types[j]) if n_elements > 1 else 0
            for s in range(n_shifts):
                if j == i and not positive[s]:
                    continue  # an atom's own images: one of each +-pair
                dx = bx + shifts[s, 0]
                dy = by + shifts[s, 1]
                dz = bz + shifts[s, 2]
                r2 = dx * dx + dy * dy + dz * dz
                if r2 >= cutoff2:
                    continue
                if r2 == 0.0:
                    status = COINCIDING
                    continue
                r = math.sqrt(r2)
                interval = int(r * inv_dr)
                if interval > n_r_int - 1:
                    interval = n_r_int - 1
                t = r - interval * dr
                row = pair_type * n_r_int + interval
                rho_first, slope_first = _cubic(pair_table, row, 0, t)
                if symmetric:
                    rho_second, slope_second = rho_first, slope_first
                else:
                    rho_second, slope_second = _cubic(pair_table, row, 4, t)
                phi, slope_phi = _cubic(pair_table, row, width - 4, t)
                density[i] += rho_first
                density[j] += rho_second
                energies[i] += 0.5 * phi
                energies[j] += 0.5 * phi
                if want_forces:
                    first[n_pairs] = i
                    second[n_pairs] = j
                    vectors[n_pairs, 0] = dx
                    vectors[n_pairs, 1] = dy
                    vectors[n_pairs, 2] = dz
                    distance[n_pairs] = r
                    slopes[n_pairs, 0] = slope_first
                    slopes[n_pairs, 1] = slope_second
                    slopes[n_pairs, 2] = slope_phi
                    n_pairs += 1
    embed_slope = np.empty(n_atoms)
    for i in range(n_atoms):
        clipped = min(density[i], rho_max)
        interval = int(clipped / drho)
        interval = min(max(interval, 0), n_rho_int - 1)
        row = (types[i] * n_rho_int if n_elements > 1 else 0) + interval
        value, slope = _cubic(embed_table, row, 0, clipped - interval * drho)
        # LAMMPS: F continues linearly above the largest tabulated density
        energies[i] += value + slope * (density[i] - clipped)
        embed_slope[i] = slope
    energy = energies.sum()
    if not want_forces:
        return status, energy, energies, empty_forces, empty_virial, volume
    forces = np.zeros((n_atoms, 3))
    virial = np.zeros((3, 3))
    for p in range(n_pairs):
        i = first[p]
        j = second[p]
        de_dr = slopes[p, 2] + embed_slope[i] * slopes[p, 0] + embed_slope[j] * slopes[p, 1]
        scale = de_dr / distance[p]
        for x in range(3):
            force = scale * vectors[p, x]
            forces[i, x] += force
            forces[j, x] -= force
            for y in range(3):
                virial[x, y] += force * vectors[p, y]
    return status, energy, energies, forces, virial, volume
