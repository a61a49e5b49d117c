"""Vectorised Lennard-Jones with the energy shifted to zero at the cutoff."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from nestdb.errors import ConfigError
from nestdb.potentials.neighbours import half_neighbour_list, inverse_and_volume
from nestdb.potentials.results import remember_atoms, store_results

#: Mg-like Lennard-Jones defaults. With the energy shifted to zero at the
#: cutoff (2.5 sigma), static ideal hcp has its minimum at a nearest-neighbour
#: distance of 3.20 A (fcc 3.197 A) with a cohesive energy of 1.500 eV/atom
#: (fcc 1.498); real Mg: 3.20 A and 1.51 eV/atom. Checked in
#: tests/test_calculators.py.
LJ_DEFAULTS: dict[str, float] = {"epsilon": 0.2007, "sigma": 2.918, "cutoff": 7.295}


class FastLennardJones(Calculator):
    """Pairwise Lennard-Jones, energy shifted to zero at the cutoff, vectorised.

    E = sum_{i<j, r<rc} 4 eps [(s/r)^12 - (s/r)^6] - e_shift, with per-atom
    energies, forces and the (Voigt, ASE sign convention) stress; periodic
    images are all counted, also when the cutoff exceeds half the cell.
    Same energies as ASE's ``LennardJones(smooth=False)``. Forces and stress
    are computed only when asked for.

    Parameters
    ----------
    epsilon : float
        Well depth in eV.
    sigma : float
        Zero-crossing distance in Angstrom.
    cutoff : float
        Interaction cutoff in Angstrom; the pair energy is shifted so it is
        continuous (not smooth) there.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        epsilon: float = LJ_DEFAULTS["epsilon"],
        sigma: float = LJ_DEFAULTS["sigma"],
        cutoff: float = LJ_DEFAULTS["cutoff"],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("epsilon", epsilon), ("sigma", sigma), ("cutoff", cutoff)):
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"calculator key {name!r} must be a positive number, got {value!r}")
        self.epsilon = float(epsilon)
        self.sigma = float(sigma)
        self.cutoff = float(cutoff)
        sr6 = (self.sigma / self.cutoff) ** 6
        self.energy_shift = 4.0 * self.epsilon * (sr6 * sr6 - sr6)

    def compute(
        self, positions: np.ndarray, cell: np.ndarray, pbc, per_atom: bool = True, forces: bool = True
    ) -> tuple[float, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Energy, per-atom energies (None unless ``per_atom``), forces and the
        3x3 stress (ASE sign) from plain arrays; ``forces`` False skips forces
        and stress (returned as None).

        Coinciding atoms give an infinite energy and NaN forces; a cell of zero
        volume gives stress None.
        """
        n_atoms = len(positions)
        inverse, volume = inverse_and_volume(np.asarray(cell, dtype=float))
        first, second, vectors, distances = half_neighbour_list(positions, cell, pbc, self.cutoff, inverse)
        if len(distances) and distances.min() <= 0.0:
            if not forces:
                return np.inf, np.full(n_atoms, np.inf), None, None
            return np.inf, np.full(n_atoms, np.inf), np.full((n_atoms, 3), np.nan), np.full((3, 3), np.nan)
        inv_r2 = 1.0 / (distances * distances)
        sr6 = (self.sigma * self.sigma * inv_r2) ** 3
        pair = 4.0 * self.epsilon * (sr6 * sr6 - sr6) - self.energy_shift
        energies = None
        if per_atom:
            energies = np.bincount(first, weights=0.5 * pair, minlength=n_atoms) + np.bincount(
                second, weights=0.5 * pair, minlength=n_atoms
            )
        if not forces:
            return float(pair.sum()), energies, None, None
        # (dE/dr) / r; the force on `first` is this times the vector to `second`
        de_dr_over_r = 4.0 * self.epsilon * (6.0 * sr6 - 12.0 * sr6 * sr6) * inv_r2
        pair_forces = de_dr_over_r[:, None] * vectors
        force_array = np.empty((n_atoms, 3))
        for axis in range(3):
            force_array[:, axis] = np.bincount(first, weights=pair_forces[:, axis], minlength=n_atoms) - np.bincount(
                second, weights=pair_forces[:, axis], minlength=n_atoms
            )
        stress = pair_forces.T @ vectors / volume if volume > 0 else None
        return float(pair.sum()), energies, force_array, stress

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """ASE calculate(): forces and stress only when ``properties`` asks for either."""
        atoms = remember_atoms(self, atoms)
        energy, energies, forces, stress = self.compute(
            atoms.positions,
            atoms.cell.array,
            atoms.pbc,
            per_atom="energies" in properties,
            forces="forces" in properties or "stress" in properties,
        )
        store_results(self, energy, energies, forces, stress)
