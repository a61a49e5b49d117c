"""Compiled EAM kernel (numba): neighbour search, energy, forces and virial in one pass.

The numpy path of :class:`nestdb.potentials.eam.FastEAM` makes ~50 numpy
calls per evaluation, whose fixed cost (~0.2 ms) dominates for the 8-64 atom
cells of nested sampling. This kernel does the same arithmetic (the same
pair enumeration over lattice translations, the same spline tables) in
compiled loops. numba is optional: :data:`AVAILABLE` is False without it and
FastEAM then uses numpy.
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


@njit(cache=True)
def _cubic(table, row, column, t):
    c3 = table[row, column]
    c2 = table[row, column + 1]
    c1 = table[row, column + 2]
    c0 = table[row, column + 3]
    return ((c3 * t + c2) * t + c1) * t + c0, (3.0 * c3 * t + 2.0 * c2) * t + c1


@njit(cache=True)
def eam_kernel(positions, cell, inverse, types, n_elements, symmetric, cutoff, pair_table, n_r_int, dr,
               embed_table, n_rho_int, drho, rho_max, shifts, half_shifts):
    """Energy, per-atom energies, forces and virial sum_pairs (dE/dr / r) d (x) d.

    ``shifts`` (all translations within range, Cartesian) and ``half_shifts``
    (one of each +-pair, for an atom's own images) as in
    :mod:`nestdb.potentials.neighbours`. Returns ``ok`` = False for
    coinciding atoms.
    """
    n_atoms = positions.shape[0]
    cutoff2 = cutoff * cutoff
    inv_dr = 1.0 / dr
    fractional = np.empty((n_atoms, 3))
    for i in range(n_atoms):
        for k in range(3):
            fractional[i, k] = (positions[i, 0] * inverse[0, k] + positions[i, 1] * inverse[1, k]
                                + positions[i, 2] * inverse[2, k])
    max_pairs = (n_atoms * (n_atoms - 1)) // 2 * shifts.shape[0] + n_atoms * half_shifts.shape[0]
    first = np.empty(max_pairs, np.int64)
    second = np.empty(max_pairs, np.int64)
    vectors = np.empty((max_pairs, 3))
    distance = np.empty(max_pairs)
    slopes = np.empty((max_pairs, 3))  # d rho(at first)/dr, d rho(at second)/dr, d phi/dr
    density = np.zeros(n_atoms)
    energies = np.zeros(n_atoms)
    width = 8 if symmetric else 12
    n_pairs = 0
    ok = True
    for i in range(n_atoms):
        for j in range(i, n_atoms):
            base = np.zeros(3)
            if j > i:
                for k in range(3):
                    delta = fractional[j, k] - fractional[i, k]
                    delta -= math.floor(delta + 0.5)  # minimum image in fractional coordinates
                    base[0] += delta * cell[k, 0]
                    base[1] += delta * cell[k, 1]
                    base[2] += delta * cell[k, 2]
            translations = shifts if j > i else half_shifts
            pair_type = (types[i] * n_elements + types[j]) if n_elements > 1 else 0
            for s in range(translations.shape[0]):
                dx = base[0] + translations[s, 0]
                dy = base[1] + translations[s, 1]
                dz = base[2] + translations[s, 2]
                r2 = dx * dx + dy * dy + dz * dz
                if r2 >= cutoff2:
                    continue
                if r2 == 0.0:
                    ok = False
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
    forces = np.zeros((n_atoms, 3))
    virial = np.zeros((3, 3))
    for p in range(n_pairs):
        i = first[p]
        j = second[p]
        de_dr = slopes[p, 2] + embed_slope[i] * slopes[p, 0] + embed_slope[j] * slopes[p, 1]
        scale = de_dr / distance[p]
        for a in range(3):
            f = scale * vectors[p, a]
            forces[i, a] += f
            forces[j, a] -= f
            for b in range(3):
                virial[a, b] += f * vectors[p, b]
    return ok, energies.sum(), energies, forces, virial
