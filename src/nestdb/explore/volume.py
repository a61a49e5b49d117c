"""The density an exploration starts from: the model's own volume per atom at the pressure."""

from __future__ import annotations

import numpy as np

from nestdb.errors import DataError
from nestdb.relax import relax_cell
from nestdb.structures.crystals import build_structure


def model_volume_per_atom(calculator, element: str, pressure_gpa: float, bounds: tuple[float, float]) -> float:
    """The model's volume per atom of fcc at the pressure (a symmetric cell relaxation).

    The density of each pressure comes from the cycle's own model, never the
    reference: cycle 0 knows only its classical potential.

    Raises
    ------
    DataError
        The relaxed volume leaves ``bounds`` (Å³/atom) or is not finite.
    """
    start = build_structure("fcc", element=element, volume_per_atom=0.5 * (bounds[0] + min(bounds[1], 40.0)))
    relaxed, info = relax_cell(
        start,
        calculator,
        fmax=0.005,
        pressure_gpa=pressure_gpa,
        keep_symmetry=True,
        max_steps=200,
        optimizer="BFGS",
        hydrostatic_strain=True,
    )
    volume = info["volume_per_atom"]
    if not np.isfinite(volume) or not bounds[0] <= volume <= bounds[1]:
        raise DataError(
            f"the model's fcc volume at {pressure_gpa:g} GPa is {volume:.3g} A^3/atom, outside "
            f"ns.min/max_volume_per_atom {bounds}; the model cannot set the exploration's density"
        )
    return float(volume)
