"""Pure move proposals for constant-pressure nested sampling.

Cells are 3x3 arrays with the lattice vectors as rows (ASE convention).
Every function here is side-effect free: it takes the current state and an
``np.random.Generator`` and returns a proposal; the engine decides about
acceptance (energy limit, bounds) so that these stay easy to test.
"""

from __future__ import annotations

import numpy as np

#: Cartesian index pairs (i, j), i != j, for stretch moves.
_STRETCH_PAIRS = ((0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1))


def cell_volume(cell: np.ndarray) -> float:
    """Volume (A^3) of a cell given as rows of lattice vectors."""
    return float(abs(np.linalg.det(cell)))


def min_aspect_ratio(cell: np.ndarray) -> float:
    """Smallest face-to-face height of the cell divided by V^(1/3).

    1 for a cube, smaller for thin or skewed cells; pymatnest's
    ``MC_cell_min_aspect_ratio`` criterion.
    """
    volume = cell_volume(cell)
    if volume <= 0.0:
        return 0.0
    cross_norms = np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    heights = volume / cross_norms
    return float(heights.min() / volume ** (1.0 / 3.0))


def propose_volume(cell: np.ndarray, step_per_atom: float, n_atoms: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, float]:
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
    other_a = cell[(index + 1) % 3]
    other_b = cell[(index + 2) % 3]
    dir_1 = other_a / np.linalg.norm(other_a)
    dir_2 = other_b - (other_b @ dir_1) * dir_1
    dir_2 /= np.linalg.norm(dir_2)
    scale = step * cell_volume(cell) ** (1.0 / 3.0)
    kick = rng.normal(0.0, scale, size=2)
    new_cell = cell.copy()
    new_cell[index] += kick[0] * dir_1 + kick[1] * dir_2
    return new_cell


def propose_stretch(cell: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """Volume-preserving stretch: scale Cartesian axis i by e^rho and j by e^-rho,
    rho ~ N(0, step)."""
    i, j = _STRETCH_PAIRS[int(rng.integers(len(_STRETCH_PAIRS)))]
    rho = rng.normal(0.0, step)
    factors = np.ones(3)
    factors[i] = np.exp(rho)
    factors[j] = np.exp(-rho)
    return cell * factors[None, :]


def wrap_positions(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Positions mapped into the cell (fractional coordinates in [0, 1))."""
    fractional = np.linalg.solve(cell.T, positions.T).T
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


def verlet_half_kick(velocities: np.ndarray, forces: np.ndarray, masses: np.ndarray,
                     timestep: float) -> np.ndarray:
    """v + dt/2 * F/m (one half of a velocity-Verlet step)."""
    return velocities + (0.5 * timestep) * forces / masses[:, None]
