"""ASE Calculator plumbing shared by the fast potentials."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

#: Flat indices of xx, yy, zz, yz, xz, xy in a 3x3 array.
_VOIGT = np.array([0, 4, 8, 5, 2, 1])


def remember_atoms(calc: Calculator, atoms: Atoms | None) -> Atoms:
    """What ``Calculator.calculate`` does first (keep a copy of the atoms for
    ASE's change detection), without a full ``Atoms.copy()`` per call.

    Nested sampling evaluates one reused Atoms object millions of times, and
    the copy costs ~10% of a 16-atom EAM call. When the atoms hold nothing but
    positions and numbers (and no constraints), the calculator's private copy
    from the previous call is updated in place; it survives ``calc.reset()``.
    """
    if atoms is None:
        return calc.atoms
    kept = getattr(calc, "_kept_atoms", None)
    if (
        kept is not None
        and len(atoms.arrays) == 2
        and not atoms.constraints
        and len(kept.arrays) == 2
        and kept.numbers.tobytes() == atoms.numbers.tobytes()
    ):
        kept.positions[:] = atoms.positions
        kept.cell.array[:] = atoms.cell.array
        kept.pbc[:] = atoms.pbc
    else:
        kept = atoms.copy()
        calc._kept_atoms = kept
    calc.atoms = kept
    return kept


def store_results(
    calc: Calculator, energy: float, energies: np.ndarray | None, forces: np.ndarray | None, stress: np.ndarray | None
) -> None:
    """Fill ``calc.results`` (stress as Voigt 6-vector; None for a cell without
    volume or an energy-only call; forces None for an energy-only call).
    Results a call did not compute are removed, never left from an earlier one."""
    results = calc.results
    results["energy"] = energy
    results["free_energy"] = energy
    for key, value in (
        ("energies", energies),
        ("forces", forces),
        ("stress", None if stress is None else stress.flat[_VOIGT]),
    ):
        if value is None:
            results.pop(key, None)
        else:
            results[key] = value
