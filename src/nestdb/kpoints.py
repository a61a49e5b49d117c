"""Monkhorst–Pack grids from a maximal k-point spacing, in the conventions of the codes.

Two conventions are in use for "k-points per reciprocal length"; both give
``n_i = ceil(|b_i| / spacing)`` for the reciprocal vectors of the cell:

- **CASTEP** (``kpoints_mp_spacing``, the study's 0.015): reciprocal vectors
  *without* 2π (``|b_i| = 1/d_i``, ``d_i`` the distance between lattice
  planes), spacing in 1/Å. Checked on the 12 real CASTEP outputs of the study:
  this gives their printed MP grids exactly.
- **VASP** (``KSPACING``) and ASE's ``kspacing``: reciprocal vectors *with* 2π,
  spacing in 1/Å. ``KSPACING = 2π × kpoints_mp_spacing``.
- ASE's ``kpts={"density": d}`` (GPAW) is points per Å⁻¹ with 2π:
  ``n_i = ceil(2π |b_i| d)``, i.e. a CASTEP spacing of ``1 / (2π d)``.

:func:`monkhorst_pack_grid` takes exactly one of the three and returns the
explicit grid, which is what the VASP and Quantum ESPRESSO labellers write
(ASE 3.29's Espresso fails on a ``density`` dictionary).
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError

TWO_PI = 2.0 * math.pi


def castep_spacing_from_density(density: float) -> float:
    """CASTEP ``kpoints_mp_spacing`` (1/Å, no 2π) equivalent to ASE's ``kpts={"density": density}``."""
    return 1.0 / (TWO_PI * density)


def vasp_kspacing_from_castep(spacing: float) -> float:
    """VASP ``KSPACING`` (1/Å, with 2π) equivalent to a CASTEP ``kpoints_mp_spacing``."""
    return TWO_PI * spacing


def monkhorst_pack_grid(
    atoms: Atoms,
    *,
    castep_spacing: float | None = None,
    kspacing: float | None = None,
    density: float | None = None,
    even: bool = False,
) -> tuple[int, int, int]:
    """Smallest MP grid whose spacing is at most the requested one along each reciprocal vector.

    Parameters
    ----------
    atoms
        Structure; non-periodic directions get 1 k-point.
    castep_spacing
        1/Å without 2π (CASTEP ``kpoints_mp_spacing``).
    kspacing
        1/Å with 2π (VASP ``KSPACING``, ASE ``kspacing``).
    density
        Points per Å⁻¹ with 2π (ASE ``kpts={"density": ...}``).
    even
        Round every count up to an even number (ASE's ``even`` option).

    Returns
    -------
    tuple of 3 int

    Raises
    ------
    ConfigError
        Not exactly one of the three given, or not positive.
    """
    given = {"castep_spacing": castep_spacing, "kspacing": kspacing, "density": density}
    chosen = {key: value for key, value in given.items() if value is not None}
    if len(chosen) != 1:
        raise ConfigError(f"k-points: give exactly one of {', '.join(given)}; got {chosen or 'none'}")
    ((key, value),) = chosen.items()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"k-points: {key} must be a positive number, got {value!r}")
    if key == "castep_spacing":
        spacing = float(value)
    elif key == "kspacing":
        spacing = float(value) / TWO_PI
    else:
        spacing = castep_spacing_from_density(float(value))
    lengths = np.linalg.norm(atoms.cell.reciprocal(), axis=1)  # no 2π
    grid = []
    for length, periodic in zip(lengths, atoms.pbc, strict=True):
        # 1e-9: a spacing that divides |b| exactly must not gain a point from rounding noise.
        count = max(1, math.ceil(length / spacing - 1e-9)) if periodic else 1
        if even and periodic and count % 2:
            count += 1
        grid.append(count)
    return tuple(grid)
