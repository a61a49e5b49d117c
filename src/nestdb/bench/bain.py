"""Bain path bcc → fcc: body-centred tetragonal cells from c/a = 1 to √2."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from ase import Atoms

from nestdb.errors import ConfigError
from nestdb.relax import relax_cell
from nestdb.structures.crystals import reference_volume_per_atom
from nestdb.units import GPA

BAIN_COLUMNS = (
    "pressure_gpa",
    "c_over_a",
    "enthalpy_per_atom",
    "energy_per_atom",
    "volume_per_atom",
    "converged",
    "steps",
    "abandoned",
)


def bct_cell(c_over_a: float, volume_per_atom: float, element: str) -> Atoms:
    """One-atom primitive body-centred tetragonal cell.

    The conventional bct cell has edges a, a, c and two atoms; c/a = 1 is
    bcc and c/a = √2 is fcc (the conventional fcc cube seen along [001]
    with a_fcc = c).

    Parameters
    ----------
    c_over_a
        Tetragonal ratio of the conventional cell.
    volume_per_atom
        Å³/atom (the conventional cell holds two atoms).
    element
        Chemical symbol.
    """
    if not (c_over_a > 0 and volume_per_atom > 0):
        raise ConfigError(f"bct_cell: c/a and volume must be positive, got {c_over_a!r}, {volume_per_atom!r}")
    a = (2.0 * volume_per_atom / c_over_a) ** (1 / 3)
    c = c_over_a * a
    # Primitive vectors of the body-centred lattice.
    cell = 0.5 * np.array([[-a, a, c], [a, -a, c], [a, a, -c]])
    return Atoms(element, positions=[[0.0, 0.0, 0.0]], cell=cell, pbc=True)


def bain_path(
    calculator_for: Callable[[str, Atoms], object],
    pressures_gpa,
    element: str,
    n_points: int = 10,
    volume_per_atom: float | None = None,
    fmax: float = 5e-3,
    max_steps: int = 40,
) -> pd.DataFrame:
    """Enthalpy along the Bain path at fixed pressures, volume relaxed at each c/a.

    At each c/a the cell shape is fixed and only the volume relaxes at the
    given pressure (a 1-D minimisation of H = E + PV with ASE's Fréchet
    filter, ``hydrostatic_strain``); one atom per cell, so there are no
    internal degrees of freedom. Each point starts from the previous
    point's volume.

    Cost: about ``len(pressures) * n_points * (steps + 1)`` calls on a
    one-atom cell (typically 3–5 calls a point).

    Parameters
    ----------
    calculator_for
        ``(label, atoms) -> calculator``, called once per point.
    pressures_gpa
        Pressures (GPa).
    n_points
        c/a values equally spaced from 1 (bcc) to √2 (fcc), ends included.
    element
        Chemical symbol.
    volume_per_atom
        Starting volume at the lowest pressure (Å³/atom); default the
        element's reference volume (:func:`~nestdb.structures.crystals.reference_volume_per_atom`).
    fmax, max_steps
        Convergence threshold (eV/Å) and step limit of each relaxation.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BAIN_COLUMNS`; ``converged=False`` rows are kept.
    """
    if int(n_points) < 2:
        raise ConfigError(f"bench.bain.n_points must be at least 2, got {n_points!r}")
    ratios = np.linspace(1.0, np.sqrt(2.0), int(n_points))
    rows = []
    if volume_per_atom is None:
        volume_per_atom = reference_volume_per_atom(element)
    start_volume = float(volume_per_atom)
    for pressure in np.sort(np.asarray(pressures_gpa, dtype=float)):
        volume = start_volume
        for k, ratio in enumerate(ratios):
            atoms = bct_cell(ratio, volume, element)
            relaxed, info = relax_cell(
                atoms,
                calculator_for(f"bain_P{pressure:g}_{k}", atoms),
                fmax=fmax,
                pressure_gpa=float(pressure),
                keep_symmetry=False,
                max_steps=max_steps,
                hydrostatic_strain=True,
            )
            rows.append(
                {
                    "pressure_gpa": float(pressure),
                    "c_over_a": float(ratio),
                    "enthalpy_per_atom": info["energy_per_atom"] + pressure * GPA * info["volume_per_atom"],
                    "energy_per_atom": info["energy_per_atom"],
                    "volume_per_atom": info["volume_per_atom"],
                    "converged": bool(info["converged"]),
                    "steps": int(info["steps"]),
                    "abandoned": info["abandoned"],
                }
            )
            if not info["abandoned"]:
                volume = info["volume_per_atom"]
            if k == 0:
                start_volume = volume  # next pressure starts near this pressure's bcc volume
    return pd.DataFrame(rows, columns=list(BAIN_COLUMNS))
