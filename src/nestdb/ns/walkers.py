"""Walker state (plain numpy arrays) and the model evaluator shared by all walkers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

from nestdb.errors import ConfigError

#: The per-walker arrays of a WalkerSet (what a snapshot or a worker needs).
WALKER_FIELDS: tuple[str, ...] = (
    "positions",
    "cells",
    "velocities",
    "forces",
    "potential",
    "kinetic",
    "volume",
    "enthalpy",
    "committee_std",
)


@dataclass
class WalkerSet:
    """The live set: K walkers of N atoms, one row per walker.

    ``enthalpy`` = ``potential`` + P ``volume`` + ``kinetic`` (the NS energy);
    ``forces`` are those of the current configuration, or NaN when its last
    accepted move was evaluated without forces (an MD move then computes
    them first; see :func:`forces_known`); ``committee_std`` is in eV/atom
    (NaN when the model has none).
    """

    positions: np.ndarray  # (K, N, 3) A, wrapped into the cell
    cells: np.ndarray  # (K, 3, 3) A, rows = lattice vectors
    velocities: np.ndarray  # (K, N, 3) A / ASE time unit
    forces: np.ndarray  # (K, N, 3) eV/A
    potential: np.ndarray  # (K,) eV
    kinetic: np.ndarray  # (K,) eV
    volume: np.ndarray  # (K,) A^3
    enthalpy: np.ndarray  # (K,) eV
    committee_std: np.ndarray  # (K,) eV/atom

    @classmethod
    def empty(cls, n_walkers: int, n_atoms: int) -> WalkerSet:
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


def forces_known(forces: np.ndarray) -> bool:
    """False for a walker's forces marked unknown (NaN) after an energy-only move."""
    first = forces.flat[0]
    return bool(first == first)


class Evaluation:
    """Result of one model call: ``energy`` (eV), ``forces`` ((N, 3) eV/A, or
    None after an energy-only call the model answered without them),
    ``std_per_atom`` (eV/atom, NaN when the model gives none or was not asked)
    and ``ok`` (False when the model failed or gave a non-finite energy or
    force: the move must be rejected)."""

    __slots__ = ("energy", "forces", "std_per_atom", "ok")

    def __init__(self, energy: float, forces: np.ndarray | None, std_per_atom: float, ok: bool) -> None:
        self.energy = energy
        self.forces = forces
        self.std_per_atom = std_per_atom
        self.ok = ok


#: Properties asked of the calculator, by (forces, committee STD) needed.
_PROPERTIES = {
    (True, True): ["energy", "forces", "energy_std_per_atom"],
    (True, False): ["energy", "forces"],
    (False, True): ["energy", "energy_std_per_atom"],
    (False, False): ["energy"],
}


class Evaluator:
    """Evaluates configurations with one calculator and one reused Atoms object.

    Each call asks the calculator only for what the move needs: cell moves,
    single-atom and swap moves ask for the energy alone (``forces=False``:
    ``calculate(atoms, ["energy"])``; calculators that compute forces only on
    request, such as nestdb's EAM and Lennard-Jones and ASE's EAM, then skip
    them); MD steps ask for forces too. ``"energy_std_per_atom"`` is listed in
    the properties where the committee STD is used; committee calculators
    with a ``std_on_request`` attribute (set to True for each call here, and
    restored after it) skip the committee elsewhere.

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
        #: True for committee calculators that can skip the committee unless asked
        self.std_on_request = hasattr(calculator, "std_on_request")
        self.need_std = need_std
        self.n_calls = 0
        self.n_failed = 0
        self.last_error = ""
        # written in place: Atoms.set_cell/set_positions cost ~10 us per call
        self._positions = self.atoms.arrays["positions"]
        self._cell = self.atoms.cell.array

    def __call__(self, positions: np.ndarray, cell: np.ndarray, forces: bool = True, std: bool = True) -> Evaluation:
        """Energy (and forces unless ``forces`` is False) of one configuration;
        ``std`` False says that the committee STD is not needed."""
        atoms, calc = self.atoms, self.calculator
        self._positions[...] = positions
        self._cell[...] = cell
        # Every call is a new configuration, so go straight to calculate():
        # ASE's get_property() would compare the atoms with the last ones
        # (np.allclose twice per call), which costs ~40% of a small LJ call.
        self.n_calls += 1
        try:
            calc.reset()
            if self.std_on_request:  # only for this call: the caller's calculator keeps its setting
                previous, calc.std_on_request = calc.std_on_request, True
                try:
                    calc.calculate(atoms, _PROPERTIES[forces, std], all_changes)
                finally:
                    calc.std_on_request = previous
            else:
                calc.calculate(atoms, _PROPERTIES[forces, std], all_changes)
            results = calc.results
            energy = float(results["energy"]) if "energy" in results else float(atoms.get_potential_energy())
            # forces a calculator gives unasked (pyace, EMT) are kept: an MD move can start from them
            result_forces = results.get("forces")
            if result_forces is None and forces:
                result_forces = atoms.get_forces()
            if result_forces is not None:
                result_forces = np.array(result_forces, dtype=float)
                if result_forces.shape != positions.shape:
                    raise ValueError(f"forces of shape {result_forces.shape}, expected {positions.shape}")
        except Exception as err:  # noqa: BLE001 - any model failure only rejects this move
            self.n_failed += 1
            self.last_error = f"{type(err).__name__}: {err}"
            return Evaluation(math.nan, np.full(positions.shape, np.nan) if forces else None, math.nan, False)
        # a sum is finite only if every term is (inf - inf and NaN propagate)
        ok = math.isfinite(energy) and (result_forces is None or math.isfinite(result_forces.sum()))
        if not ok:
            self.n_failed += 1
            self.last_error = "non-finite energy or forces"
        std_value = results.get("energy_std_per_atom")
        if std_value is None:
            if self.need_std and std:
                raise ConfigError(
                    "committee_std_max / committee_stop_std are set but the calculator "
                    f"{type(self.calculator).__name__} does not report results['energy_std_per_atom']; "
                    "use an 'ace_committee' model or unset these keys"
                )
            std_value = math.nan
        return Evaluation(energy, result_forces, float(std_value), ok)
