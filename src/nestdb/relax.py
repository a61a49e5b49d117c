"""Relaxation of positions and cell at fixed pressure, optionally keeping the space group.

Used by the benchmarks (elastic constants, enthalpy curves, Bain path,
phonons, alloy formation energies) and by the explorations (the model's
density at a pressure, relaxed random crystals).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

from nestdb.errors import ConfigError
from nestdb.units import GPA

_OPTIMIZERS = {"BFGS": BFGS, "FIRE": FIRE}

#: A relaxation whose volume leaves this range (ratio to the start) is abandoned.
VOLUME_RATIO_LIMITS = (0.5, 2.0)


def _max_residual(filtered) -> float:
    """Largest force-like component the optimizer sees (eV/Å, cell dofs included)."""
    forces = filtered.get_forces()
    return float(np.sqrt((forces**2).sum(axis=1)).max())


def relax_cell(
    atoms: Atoms,
    calculator,
    fmax: float = 1e-3,
    pressure_gpa: float = 0.0,
    keep_symmetry: bool = True,
    max_steps: int = 200,
    optimizer: str = "BFGS",
    hydrostatic_strain: bool = False,
) -> tuple[Atoms, dict]:
    """Relax positions and cell at fixed pressure, optionally keeping the space group.

    Cost: about ``steps + 1`` calculator calls (at most ``max_steps + 1``).

    Parameters
    ----------
    atoms
        Starting structure (not modified).
    calculator
        ASE calculator with stress.
    fmax
        Convergence on forces and cell "forces" (eV/Å) of the Fréchet cell filter.
    pressure_gpa
        External hydrostatic pressure; the relaxation minimises the enthalpy.
    keep_symmetry
        Attach :class:`ase.constraints.FixSymmetry` (hcp stays hexagonal, c/a free).
    max_steps
        Optimizer step limit; hitting it is reported as ``converged=False``.
    optimizer
        ``"BFGS"`` or ``"FIRE"``.
    hydrostatic_strain
        Keep cell shape and ratios, relax only the volume (the study's
        fixed-ratio enthalpy minimisation).

    Returns
    -------
    (ase.Atoms, dict)
        The relaxed copy (no constraints, no calculator) and
        ``{"converged", "steps", "final_fmax", "energy_per_atom",
        "volume_per_atom", "pressure_gpa", "symmetry_kept_by"}``. Non-convergence is reported,
        never raised.
    """
    if optimizer not in _OPTIMIZERS:
        raise ConfigError(f"relax_cell: unknown optimizer {optimizer!r}; choose {', '.join(_OPTIMIZERS)}")
    work = atoms.copy()
    work.calc = calculator
    symmetry_kept_by = "none"
    if keep_symmetry:
        try:
            work.set_constraint(FixSymmetry(work))
            symmetry_kept_by = "FixSymmetry"
        except ImportError:
            # FixSymmetry needs spglib; an exactly symmetric start keeps its symmetry
            # under symmetric forces/stress anyway, up to numerical noise.
            symmetry_kept_by = "none (spglib missing)"
    filtered = FrechetCellFilter(work, scalar_pressure=pressure_gpa * GPA, hydrostatic_strain=hydrostatic_strain)
    opt = _OPTIMIZERS[optimizer](filtered, logfile=None)
    # A poor model (an early cycle's fit) can collapse or explode a cell; a
    # collapsed cell has so many neighbours that each call takes minutes.
    # Stop such a relaxation and report it instead of waiting.
    start_volume = work.get_volume()
    converged, abandoned = False, ""
    for converged in opt.irun(fmax=fmax, steps=max_steps):
        ratio = work.get_volume() / start_volume
        if not VOLUME_RATIO_LIMITS[0] < ratio < VOLUME_RATIO_LIMITS[1]:
            abandoned = f"volume changed by a factor {ratio:.2f}"
            converged = False
            break
    converged = bool(converged)
    info = {
        "converged": converged,
        "abandoned": abandoned,
        "steps": int(opt.nsteps),
        "final_fmax": _max_residual(filtered),
        "energy_per_atom": float(work.get_potential_energy()) / len(work),
        "volume_per_atom": float(work.get_volume()) / len(work),
        "pressure_gpa": float(pressure_gpa),
        "symmetry_kept_by": symmetry_kept_by,
    }
    relaxed = work.copy()
    relaxed.set_constraint()
    relaxed.calc = None
    work.calc = None
    return relaxed, info
