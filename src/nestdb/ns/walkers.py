"""Walker state (plain numpy arrays) and the model evaluator shared by all walkers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

from nestdb.errors import ConfigError


@dataclass
class WalkerSet:
    """The live set: K walkers of N atoms, one row per walker.

    ``enthalpy`` = ``potential`` + P ``volume`` + ``kinetic`` (the NS energy);
    ``forces`` are those of the current configuration so that an MD move
    needs no extra model call; ``committee_std`` is in eV/atom (NaN when the
    model has none).
    """

    positions: np.ndarray      # (K, N, 3) A, wrapped into the cell
    cells: np.ndarray          # (K, 3, 3) A, rows = lattice vectors
    velocities: np.ndarray     # (K, N, 3) A / ASE time unit
    forces: np.ndarray         # (K, N, 3) eV/A
    potential: np.ndarray      # (K,) eV
    kinetic: np.ndarray        # (K,) eV
    volume: np.ndarray         # (K,) A^3
    enthalpy: np.ndarray       # (K,) eV
    committee_std: np.ndarray  # (K,) eV/atom

    @classmethod
    def empty(cls, n_walkers: int, n_atoms: int) -> "WalkerSet":
        """Zero-filled arrays of the right shapes."""
        return cls(
            positions=np.zeros((n_walkers, n_atoms, 3)),
            cells=np.zeros((n_walkers, 3, 3)),
            velocities=np.zeros((n_walkers, n_atoms, 3)),
            forces=np.zeros((n_walkers, n_atoms, 3)),
            potential=np.zeros(n_walkers),
            kinetic=np.zeros(n_walkers),
            volume=np.zeros(n_walkers),
            enthalpy=np.zeros(n_walkers),
            committee_std=np.full(n_walkers, np.nan),
        )

    def copy_walker(self, source: int, target: int) -> None:
        """Overwrite walker ``target`` with a copy of walker ``source`` (cloning)."""
        for array in (self.positions, self.cells, self.velocities, self.forces, self.potential,
                      self.kinetic, self.volume, self.enthalpy, self.committee_std):
            array[target] = array[source]


@dataclass
class Evaluation:
    """Result of one model call."""

    energy: float
    forces: np.ndarray
    std_per_atom: float  # eV/atom, NaN when the model gives none


class Evaluator:
    """Evaluates configurations with one calculator and one reused Atoms object.

    Counts the model calls (``n_calls``) and reads the committee STD from
    ``calculator.results["energy_std_per_atom"]`` when present.

    Parameters
    ----------
    numbers : array of int
        Atomic numbers.
    calculator : ase Calculator
    need_std : bool
        If True, a calculator that does not report ``energy_std_per_atom``
        raises ConfigError (the committee restriction cannot work without it).
    """

    def __init__(self, numbers: np.ndarray, calculator, need_std: bool = False) -> None:
        self.atoms = Atoms(numbers=numbers, cell=np.eye(3), pbc=True)
        self.atoms.calc = calculator
        self.calculator = calculator
        self.need_std = need_std
        self.n_calls = 0

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> Evaluation:
        atoms, calc = self.atoms, self.calculator
        atoms.set_cell(cell, scale_atoms=False)
        atoms.set_positions(positions)
        # Every call is a new configuration, so go straight to calculate():
        # ASE's get_property() would compare the atoms with the last ones
        # (np.allclose twice per call), which costs ~40% of a small LJ call.
        calc.reset()
        calc.calculate(atoms, ["energy", "forces"], all_changes)
        results = calc.results
        energy = float(results["energy"]) if "energy" in results else float(atoms.get_potential_energy())
        forces = np.array(results["forces"]) if "forces" in results else np.array(atoms.get_forces())
        self.n_calls += 1
        std = results.get("energy_std_per_atom")
        if std is None:
            if self.need_std:
                raise ConfigError(
                    "committee_std_max / committee_stop_std are set but the calculator "
                    f"{type(self.calculator).__name__} does not report results['energy_std_per_atom']; "
                    "use an 'ace_committee' model or unset these keys"
                )
            std = np.nan
        return Evaluation(energy, forces, float(std))
