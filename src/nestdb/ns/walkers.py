"""Walker state (plain numpy arrays) and the model evaluator shared by all walkers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

from nestdb.errors import ConfigError


#: The per-walker arrays of a WalkerSet (what a snapshot or a worker needs).
WALKER_FIELDS: tuple[str, ...] = ("positions", "cells", "velocities", "forces", "potential", "kinetic",
                                  "volume", "enthalpy", "committee_std")


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
        for name in WALKER_FIELDS:
            array = getattr(self, name)
            array[target] = array[source]

    def state(self, index: int) -> dict[str, np.ndarray]:
        """Copies of walker ``index``'s arrays, by field name (to send to a worker)."""
        return {name: np.array(getattr(self, name)[index]) for name in WALKER_FIELDS}

    def set_state(self, index: int, state: dict[str, np.ndarray]) -> None:
        """Overwrite walker ``index`` from a :meth:`state` mapping."""
        for name in WALKER_FIELDS:
            getattr(self, name)[index] = state[name]


@dataclass
class Evaluation:
    """Result of one model call."""

    energy: float
    forces: np.ndarray
    std_per_atom: float  # eV/atom, NaN when the model gives none

    @property
    def ok(self) -> bool:
        """False when the model failed or gave a non-finite energy or force."""
        return bool(np.isfinite(self.energy) and np.isfinite(self.forces).all())


class Evaluator:
    """Evaluates configurations with one calculator and one reused Atoms object.

    Counts the model calls (``n_calls``) and reads the committee STD from
    ``calculator.results["energy_std_per_atom"]`` when present. A calculator
    that raises, or returns a non-finite energy or force, gives an Evaluation
    with NaN energy (``ok`` is False, so the move is rejected) and is counted
    in ``n_failed``; ``last_error`` keeps the latest exception text.

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
        self.n_failed = 0
        self.last_error = ""

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> Evaluation:
        atoms, calc = self.atoms, self.calculator
        atoms.set_cell(cell, scale_atoms=False)
        atoms.set_positions(positions)
        # Every call is a new configuration, so go straight to calculate():
        # ASE's get_property() would compare the atoms with the last ones
        # (np.allclose twice per call), which costs ~40% of a small LJ call.
        self.n_calls += 1
        try:
            calc.reset()
            calc.calculate(atoms, ["energy", "forces"], all_changes)
            results = calc.results
            energy = float(results["energy"]) if "energy" in results else float(atoms.get_potential_energy())
            forces = np.array(results["forces"], dtype=float) if "forces" in results \
                else np.array(atoms.get_forces(), dtype=float)
            if forces.shape != positions.shape:
                raise ValueError(f"forces of shape {forces.shape}, expected {positions.shape}")
        except Exception as err:  # noqa: BLE001 - any model failure only rejects this move
            self.n_failed += 1
            self.last_error = f"{type(err).__name__}: {err}"
            return Evaluation(np.nan, np.full(positions.shape, np.nan), np.nan)
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            self.n_failed += 1
            self.last_error = "non-finite energy or forces"
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
