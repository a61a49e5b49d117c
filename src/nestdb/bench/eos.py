"""Energy–volume curves and equation-of-state fits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.eos import EquationOfState

from nestdb.errors import DataError
from nestdb.units import GPA

DEFAULT_VOLUME_SCALES = np.linspace(0.85, 1.15, 7)


def _energy(atoms: Atoms) -> float:
    try:
        return float(atoms.get_potential_energy(force_consistent=True))
    except PropertyNotImplementedError:
        return float(atoms.get_potential_energy())


def ev_curve(atoms: Atoms, calculator, volume_scales=DEFAULT_VOLUME_SCALES) -> pd.DataFrame:
    """Energy per atom along an isotropic volume scan (no relaxation).

    Cost: ``len(volume_scales)`` calculator calls (7 by default).

    Parameters
    ----------
    atoms
        Starting cell; every point is this cell scaled isotropically, atoms
        moving with it (shape and c/a kept).
    calculator
        ASE calculator, reused for every point.
    volume_scales
        Factors applied to the volume (not the lattice constant).

    Returns
    -------
    pandas.DataFrame
        Columns ``volume_scale``, ``volume_per_atom`` (Å^3), ``energy_per_atom``
        (eV; force-consistent energy where the calculator has one), sorted by volume.
    """
    rows = []
    natoms = len(atoms)
    for scale in np.asarray(volume_scales, dtype=float):
        if not scale > 0:
            raise DataError(f"volume_scales must be positive, got {scale}")
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell * scale ** (1 / 3), scale_atoms=True)
        scaled.calc = calculator
        energy = _energy(scaled)
        rows.append(
            {
                "volume_scale": float(scale),
                "volume_per_atom": float(scaled.get_volume()) / natoms,
                "energy_per_atom": energy / natoms,
            }
        )
        scaled.calc = None
    return pd.DataFrame(rows).sort_values("volume_per_atom", ignore_index=True)


def fit_eos(df: pd.DataFrame, eos: str = "birchmurnaghan") -> dict:
    """Fit an equation of state to an E–V curve.

    Cost: no calculator calls.

    Parameters
    ----------
    df
        Output of :func:`ev_curve` (columns ``volume_per_atom``,
        ``energy_per_atom``), at least 4 points.
    eos
        Any form :class:`ase.eos.EquationOfState` knows; Birch–Murnaghan by default.

    Returns
    -------
    dict
        ``V0`` (Å^3/atom), ``E0`` (eV/atom), ``B0`` (GPa), ``minimum_in_range``
        (False when the fitted or sampled minimum lies at/beyond an end of the
        scan: then V0/E0/B0 are extrapolations and should not be trusted),
        ``fit_ok`` (False when the fit itself failed; then the values come from
        the lowest sampled point and ``B0`` is NaN), ``message``.
    """
    for column in ("volume_per_atom", "energy_per_atom"):
        if column not in df:
            raise DataError(f"fit_eos: missing column {column!r}; pass the DataFrame from ev_curve")
    volumes = df["volume_per_atom"].to_numpy(dtype=float)
    energies = df["energy_per_atom"].to_numpy(dtype=float)
    if len(volumes) < 4 or not np.all(np.isfinite(energies)):
        raise DataError(f"fit_eos: need at least 4 finite points, got {len(volumes)} ({energies})")
    i_min = int(np.argmin(energies))
    lowest_at_edge = bool(i_min in (0, len(volumes) - 1))
    result = {
        "V0": float(volumes[i_min]),
        "E0": float(energies[i_min]),
        "B0": float("nan"),
        "minimum_in_range": not lowest_at_edge,
        "fit_ok": False,
        "message": "",
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v0, e0, b0 = EquationOfState(volumes, energies, eos=eos).fit()
    except Exception as error:  # ASE raises RuntimeError/ValueError/np.linalg errors on bad curves
        result["message"] = f"EOS fit failed ({type(error).__name__}: {error}); lowest sampled point reported"
        return result
    if not all(np.isfinite([v0, e0, b0])):
        result["message"] = "EOS fit gave non-finite values; lowest sampled point reported"
        return result
    in_range = bool(volumes.min() < v0 < volumes.max() and not lowest_at_edge)
    result.update(V0=float(v0), E0=float(e0), B0=float(b0) / GPA, fit_ok=True, minimum_in_range=in_range)
    if not in_range:
        result["message"] = (
            f"minimum outside the scanned range {volumes.min():.2f}-{volumes.max():.2f} A^3/atom; "
            "V0, E0, B0 are extrapolated: widen or shift volume_scales"
        )
    return result
