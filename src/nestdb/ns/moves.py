"""Pure move proposals for constant-pressure nested sampling.

Cells are 3x3 arrays with the lattice vectors as rows (ASE convention).
Every function here is side-effect free: it takes the current state and an
``np.random.Generator`` and returns a proposal; the engine decides about
acceptance (energy limit, bounds) so that these stay easy to test.

A walk makes ~10^8 of these calls per production run on 3x3 cells and
8-64 atoms, where numpy's per-call cost (~1-20 us for ``det``, ``cross``,
``solve``) exceeds the arithmetic: 3x3 quantities are computed in plain
Python floats, and coordinates are transformed by one matrix product.
"""

from __future__ import annotations

import math

import numpy as np

from nestdb.potentials.neighbours import inverse_and_volume

#: Cartesian index pairs (i, j), i != j, for stretch moves.
_STRETCH_PAIRS = ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1))


def cell_volume(cell: np.ndarray) -> float:
    """Volume (A^3) of a cell given as rows of lattice vectors."""
    (a, b, c), (d, e, f), (g, h, i) = cell.tolist()
    return abs(a * (e * i - f * h) + b * (f * g - d * i) + c * (d * h - e * g))


def min_aspect_ratio(cell: np.ndarray) -> float:
    """Smallest face-to-face height of the cell divided by V^(1/3).

    1 for a cube, smaller for thin or skewed cells; pymatnest's
    ``MC_cell_min_aspect_ratio`` criterion. The height between the faces
    spanned by two lattice vectors is V / |their cross product|.
    """
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = cell.tolist()
    # b x c, c x a, a x b
    bc = (by * cz - bz * cy, bz * cx - bx * cz, bx * cy - by * cx)
    ca = (cy * az - cz * ay, cz * ax - cx * az, cx * ay - cy * ax)
    ab = (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)
    volume = abs(ax * bc[0] + ay * bc[1] + az * bc[2])
    if volume <= 0.0:
        return 0.0
    largest = max(v[0] * v[0] + v[1] * v[1] + v[2] * v[2] for v in (bc, ca, ab))
    return volume / math.sqrt(largest) / volume ** (1.0 / 3.0)


def propose_volume(
    cell: np.ndarray, step_per_atom: float, n_atoms: int, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Isotropic volume change dV ~ N(0, (step_per_atom * N)^2).

    Returns
    -------
    new_cell, volume_ratio
        ``volume_ratio`` = V'/V (<= 0 when the proposal went through zero; the
        caller rejects it). The caller applies the (V'/V)^N prior factor.
    """
    volume = cell_volume(cell)
    new_volume = volume + rng.normal(0.0, step_per_atom * n_atoms)
    ratio = new_volume / volume
    if ratio <= 0.0:
        return cell.copy(), ratio
    return cell * ratio ** (1.0 / 3.0), ratio


def propose_shear(cell: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """Volume-preserving shear: add to one lattice vector a random vector in the
    plane of the other two.

    ``step`` is dimensionless: the displacement has standard deviation
    ``step * V^(1/3)`` along each of two orthonormal in-plane directions, so
    the same step size means the same strain in a gas and in a crystal.
    """
    index = int(rng.integers(3))
    rows = cell.tolist()
    other_a, other_b = rows[(index + 1) % 3], rows[(index + 2) % 3]
    norm_a = math.sqrt(sum(x * x for x in other_a))
    dir_1 = [x / norm_a for x in other_a]
    along = sum(x * y for x, y in zip(other_b, dir_1, strict=True))
    dir_2 = [x - along * y for x, y in zip(other_b, dir_1, strict=True)]
    norm_2 = math.sqrt(sum(x * x for x in dir_2))
    scale = step * cell_volume(cell) ** (1.0 / 3.0)
    kick_1, kick_2 = rng.normal(0.0, scale, size=2).tolist()
    rows[index] = [x + kick_1 * y + kick_2 * z / norm_2 for x, y, z in zip(rows[index], dir_1, dir_2, strict=True)]
    return np.array(rows)


def propose_stretch(cell: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """Volume-preserving stretch: scale Cartesian axis i by e^rho and j by e^-rho,
    rho ~ N(0, step)."""
    i, j = _STRETCH_PAIRS[int(rng.integers(len(_STRETCH_PAIRS)))]
    rho = rng.normal(0.0, step)
    factors = np.ones(3)
    factors[i] = np.exp(rho)
    factors[j] = np.exp(-rho)
    return cell * factors[None, :]


def transform_positions(positions: np.ndarray, cell: np.ndarray, new_cell: np.ndarray) -> np.ndarray:
    """Positions at the same fractional coordinates in ``new_cell`` (atoms follow a cell move)."""
    return positions @ (inverse_and_volume(cell)[0] @ new_cell)


def wrap_positions(positions: np.ndarray, cell: np.ndarray, inverse: np.ndarray | None = None) -> np.ndarray:
    """Positions mapped into the cell (fractional coordinates in [0, 1)).

    ``inverse`` is the cell's inverse when the caller has it (an MD move
    wraps at every step of a fixed cell).
    """
    if inverse is None:
        inverse = inverse_and_volume(cell)[0]
    fractional = positions @ inverse
    fractional -= np.floor(fractional)
    # floor() can leave exactly 1.0 after round-off of tiny negatives
    fractional[fractional >= 1.0] = 0.0
    return fractional @ cell


def kinetic_energy(velocities: np.ndarray, masses: np.ndarray) -> float:
    """0.5 sum m v^2 (eV with amu and A/ASE-time-unit)."""
    return 0.5 * float(np.sum(masses[:, None] * velocities * velocities))


def random_velocities(kinetic: float, masses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Velocities with exactly the given kinetic energy and a uniformly random
    direction in the mass-weighted 3N-dimensional space."""
    direction = rng.normal(size=(len(masses), 3))
    direction /= np.linalg.norm(direction)
    return np.sqrt(2.0 * kinetic) * direction / np.sqrt(masses)[:, None]


def redraw_kinetic_energy(ke_limit: float, n_atoms: int, rng: np.random.Generator) -> float:
    """Rejection-free kinetic energy draw below ``ke_limit``.

    The density of states of 3N momenta is ~ KE^(3N/2 - 1), so a uniform draw
    in phase space below the limit is KE = ke_limit * U^(2/(3N)).
    """
    return max(ke_limit, 0.0) * rng.random() ** (2.0 / (3.0 * n_atoms))


def verlet_half_kick(velocities: np.ndarray, forces: np.ndarray, masses: np.ndarray, timestep: float) -> np.ndarray:
    """v + dt/2 * F/m (one half of a velocity-Verlet step)."""
    return velocities + (0.5 * timestep) * forces / masses[:, None]
