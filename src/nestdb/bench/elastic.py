"""Elastic constants from matscipy stress–strain fits of a relaxed cell (:func:`nestdb.relax.relax_cell`)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.optimize import BFGS
from matscipy.elasticity import fit_elastic_constants, strain_patterns

from nestdb.errors import ConfigError
from nestdb.relax import relax_cell
from nestdb.units import GPA

#: Independent constants reported by name for each symmetry (others: all 21).
_NAMED_CONSTANTS = {
    "hexagonal": ("C11", "C12", "C13", "C33", "C44", "C66"),
    "cubic": ("C11", "C12", "C44"),
}
#: Strain patterns per symmetry in matscipy (cost of a fit = patterns x n_steps).
_N_PATTERNS = {
    "cubic": 1,
    "hexagonal": 4,
    "trigonal_high": 4,
    "trigonal_low": 3,
    "tetragonal": 2,
    "orthorhombic": 3,
    "monoclinic": 4,
    "triclinic": 6,
}


def elastic_constants(
    atoms: Atoms,
    calculator,
    symmetry: str = "hexagonal",
    delta: float = 5e-3,
    n_steps: int = 5,
    relax: bool = True,
    fmax: float = 1e-3,
    relax_internal: bool = True,
    max_steps: int = 200,
) -> dict:
    """Elastic constants at zero pressure from stress–strain fits (matscipy).

    Cost: relaxation (about ``steps + 1`` calls when ``relax``) plus
    ``n_patterns * n_steps`` strained cells (hexagonal 4 patterns, cubic 1,
    triclinic 6), each costing one call plus its internal relaxation steps
    when ``relax_internal`` and the cell has more than one atom. Hexagonal
    with defaults: ~20 strained cells, typically 60–100 calls in all.

    Parameters
    ----------
    atoms
        Crystal in standard orientation (see :func:`build_structure`).
    calculator
        ASE calculator with stress.
    symmetry
        matscipy symmetry name: ``hexagonal`` (hcp/dhcp), ``cubic`` (bcc/fcc),
        or a lower one (``triclinic`` fits all 21 constants, a symmetry check).
    delta, n_steps
        Strain increment and number of strains per pattern (strains span
        ±delta*(n_steps-1)/2). The study used 5e-5 with CASTEP; DFT noise
        here asks for ~5e-3.
    relax
        Relax cell and positions (symmetry kept) at 0 GPa first.
    fmax
        Force tolerance (eV/Å) of the relaxations.
    relax_internal
        Relax atomic positions in every strained cell (needed for hcp).
    max_steps
        Step limit of each relaxation.

    Returns
    -------
    dict
        Named constants in GPa (hexagonal: C11 C12 C13 C33 C44 C66; cubic: C11
        C12 C44; otherwise every Cij with i ≤ j), ``C_gpa`` and ``C_err_gpa``
        (6×6 lists), ``bulk_modulus_voigt_gpa``, ``positive_definite``,
        ``min_eigenvalue_gpa``, ``relaxation`` (info of :func:`relax_cell` or
        None), ``internal_relaxation`` (``{"count", "all_converged",
        "max_steps_taken"}``), ``volume_per_atom`` and the fit settings.
    """
    known = sorted(key for key in strain_patterns if isinstance(key, str))
    if symmetry not in known:
        raise ConfigError(f"elastic_constants: unknown symmetry {symmetry!r}; choose from {', '.join(known)}")
    if not (delta > 0 and int(n_steps) >= 2):
        raise ConfigError(f"elastic_constants: need delta > 0 and n_steps >= 2, got {delta!r}, {n_steps!r}")

    relaxation = None
    cell = atoms.copy()
    if relax:
        relaxed, relaxation = relax_cell(cell, calculator, fmax=fmax, max_steps=max_steps)
        # An abandoned (collapsing/exploding) relaxation leaves no meaningful
        # cell: strain the starting structure instead and say so.
        if not relaxation["abandoned"]:
            cell = relaxed
    cell.set_constraint()
    cell.calc = calculator

    internal_runs: list[tuple[bool, int]] = []

    def recording_optimizer(strained: Atoms, logfile=None):
        # matscipy calls optimizer(atoms, logfile=...).run(**kwargs); record each outcome.
        opt = BFGS(strained, logfile=logfile)
        run = opt.run

        def run_and_record(**kwargs):
            converged = run(**kwargs)
            internal_runs.append((bool(converged), int(opt.nsteps)))
            return converged

        opt.run = run_and_record
        return opt

    fit_kwargs = {}
    if relax_internal and len(cell) > 1:  # one-atom cells have no internal freedom
        fit_kwargs = {"optimizer": recording_optimizer, "fmax": fmax, "steps": max_steps}
    C, C_err = fit_elastic_constants(
        cell, symmetry=symmetry, N_steps=int(n_steps), delta=float(delta), verbose=False, **fit_kwargs
    )
    cell.calc = None
    C_gpa = np.asarray(C) / GPA
    C_err_gpa = np.asarray(C_err) / GPA
    symmetric = 0.5 * (C_gpa + C_gpa.T)
    eigenvalues = np.linalg.eigvalsh(symmetric)

    names = _NAMED_CONSTANTS.get(symmetry, tuple(f"C{i + 1}{j + 1}" for i in range(6) for j in range(i, 6)))
    result: dict = {name: float(C_gpa[int(name[1]) - 1, int(name[2]) - 1]) for name in names}
    result.update(
        C_gpa=C_gpa.tolist(),
        C_err_gpa=C_err_gpa.tolist(),
        bulk_modulus_voigt_gpa=float(
            (C_gpa[0, 0] + C_gpa[1, 1] + C_gpa[2, 2] + 2 * (C_gpa[0, 1] + C_gpa[0, 2] + C_gpa[1, 2])) / 9
        ),
        positive_definite=bool(eigenvalues.min() > 0),
        min_eigenvalue_gpa=float(eigenvalues.min()),
        relaxation=relaxation,
        internal_relaxation={
            "count": len(internal_runs),
            "all_converged": all(conv for conv, _ in internal_runs),
            "max_steps_taken": max((steps for _, steps in internal_runs), default=0),
        },
        volume_per_atom=float(cell.get_volume()) / len(cell),
        symmetry=symmetry,
        delta=float(delta),
        n_steps=int(n_steps),
        n_strained_cells=_N_PATTERNS.get(symmetry, 0) * int(n_steps),
    )
    return result
