"""0 K enthalpy against pressure, symmetry kept, and transition pressures by crossing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.relax import relax_cell
from nestdb.structures.crystals import build_structure
from nestdb.units import GPA

#: Columns of :func:`enthalpy_curve` tables.
ENTHALPY_COLUMNS = (
    "structure",
    "pressure_gpa",
    "enthalpy_per_atom",
    "energy_per_atom",
    "volume_per_atom",
    "c_over_a",
    "converged",
    "steps",
    "abandoned",
)


def _c_over_a(atoms: Atoms) -> float:
    lengths = atoms.cell.lengths()
    return float(lengths[2] / lengths[0])


def _volume_guess(volume_per_atom: float, bulk_modulus_gpa: float, delta_p_gpa: float) -> float:
    """Murnaghan-like first guess of the volume after a pressure step (B' = 4)."""
    ratio = 1.0 + 4.0 * delta_p_gpa / bulk_modulus_gpa
    return volume_per_atom * max(ratio, 0.05) ** (-0.25)


def enthalpy_curve(
    name: str,
    calculator_for: Callable[[str, Atoms], object],
    pressures_gpa,
    element: str,
    relax_c_over_a: bool = False,
    fmax: float = 5e-3,
    max_steps: int = 40,
    bulk_modulus_guess_gpa: float = 40.0,
) -> pd.DataFrame:
    """Relaxed 0 K enthalpy per atom of one structure at each pressure.

    Each pressure is a symmetry-preserving cell relaxation at fixed external
    pressure (``FixSymmetry`` and ASE's Fréchet cell filter with
    ``scalar_pressure``). With ``relax_c_over_a=False`` (the study's choice)
    only the volume changes: angles and cell ratios stay those of the ideal
    structure (the element's reference c/a for hcp/dhcp), a 1-D minimisation of H = E + PV.
    With ``relax_c_over_a=True`` the cell shape relaxes within the space
    group (c/a of hcp/dhcp free, cubic cells stay cubic). Pressures are done
    in increasing order, each starting from the previous volume scaled by a
    Murnaghan guess, so a relaxation typically takes 3–6 calculator calls.

    Cost: about ``len(pressures) * (steps + 1)`` calculator calls (at most
    ``max_steps + 1`` each); a relaxation that does not converge or collapses
    is reported with ``converged=False``, never dropped.

    Parameters
    ----------
    name
        Structure name (:data:`nestdb.structures.crystals.KNOWN_STRUCTURES`).
    calculator_for
        ``(label, atoms) -> calculator``; called once per pressure with
        ``label = f"{name}_P{p:g}"`` (fresh DFT directories per point).
    pressures_gpa
        Pressures in GPa.
    element
        Chemical symbol.
    relax_c_over_a
        Relax cell ratios within the space group instead of only the volume.
    fmax
        Convergence threshold (eV/Å) of forces and cell forces.
    max_steps
        Step limit per pressure.
    bulk_modulus_guess_gpa
        Only used for the starting volume of the next pressure.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ENTHALPY_COLUMNS`, one row per pressure (enthalpy,
        energy in eV/atom, volume in Å³/atom).
    """
    pressures = np.sort(np.asarray(pressures_gpa, dtype=float))
    if pressures.size == 0:
        raise ConfigError("bench.enthalpy.pressures: give at least one pressure (GPa)")
    atoms = build_structure(name, element=element)
    rows = []
    previous_p = 0.0
    for pressure in pressures:
        volume = atoms.get_volume() / len(atoms)
        guess = _volume_guess(volume, bulk_modulus_guess_gpa + 4.0 * max(previous_p, 0.0), pressure - previous_p)
        start = atoms.copy()
        start.set_cell(atoms.cell * (guess / volume) ** (1 / 3), scale_atoms=True)
        relaxed, info = relax_cell(
            start,
            calculator_for(f"{name}_P{pressure:g}", start),
            fmax=fmax,
            pressure_gpa=float(pressure),
            keep_symmetry=True,
            max_steps=max_steps,
            hydrostatic_strain=not relax_c_over_a,
        )
        rows.append(
            {
                "structure": name,
                "pressure_gpa": float(pressure),
                "enthalpy_per_atom": info["energy_per_atom"] + pressure * GPA * info["volume_per_atom"],
                "energy_per_atom": info["energy_per_atom"],
                "volume_per_atom": info["volume_per_atom"],
                "c_over_a": _c_over_a(relaxed) if name in ("hcp", "dhcp") else float("nan"),
                "converged": bool(info["converged"]),
                "steps": int(info["steps"]),
                "abandoned": info["abandoned"],
            }
        )
        # A collapsed/exploded cell is no start for the next pressure.
        if not info["abandoned"]:
            atoms, previous_p = relaxed, float(pressure)
    return pd.DataFrame(rows, columns=list(ENTHALPY_COLUMNS))


def relative_enthalpies(table: pd.DataFrame, reference_structure: str = "hcp") -> pd.DataFrame:
    """ΔH(P) of every structure relative to ``reference_structure`` (eV/atom).

    Parameters
    ----------
    table
        Rows of :func:`enthalpy_curve` for several structures at the same pressures.
    reference_structure
        The zero of ΔH; must be in the table.

    Returns
    -------
    pandas.DataFrame
        ``table`` with a ``delta_enthalpy_per_atom`` column.
    """
    if reference_structure not in set(table.structure):
        raise DataError(
            f"relative_enthalpies: {reference_structure!r} not in the table "
            f"(structures: {', '.join(sorted(set(table.structure)))})"
        )
    zero = table[table.structure == reference_structure].set_index("pressure_gpa")["enthalpy_per_atom"]
    out = table.copy()
    out["delta_enthalpy_per_atom"] = out["enthalpy_per_atom"] - out["pressure_gpa"].map(zero)
    return out


def transition_pressures(table: pd.DataFrame) -> list[dict]:
    """Pressures where the structure of lowest enthalpy changes.

    Between two neighbouring pressures where the lowest-enthalpy structure
    changes from A to B, the crossing of H_A and H_B is found by linear
    interpolation of H_B − H_A. Unconverged points are used but flagged.

    Parameters
    ----------
    table
        Rows of :func:`enthalpy_curve` (several structures, common pressures).

    Returns
    -------
    list of dict
        ``{"from", "to", "pressure_gpa", "bracket_gpa", "converged"}`` in
        increasing pressure; empty when one structure is lowest throughout.
    """
    wide = table.pivot_table(index="pressure_gpa", columns="structure", values="enthalpy_per_atom")
    ok = table.pivot_table(index="pressure_gpa", columns="structure", values="converged", aggfunc="all")
    wide = wide.dropna(axis=0, how="any").sort_index()
    if wide.empty:
        return []
    lowest = wide.idxmin(axis=1)
    pressures = wide.index.to_numpy(dtype=float)
    transitions = []
    for i in range(1, len(pressures)):
        before, after = lowest.iloc[i - 1], lowest.iloc[i]
        if before == after:
            continue
        d0 = wide[after].iloc[i - 1] - wide[before].iloc[i - 1]
        d1 = wide[after].iloc[i] - wide[before].iloc[i]
        fraction = d0 / (d0 - d1) if d0 != d1 else 0.5
        p_cross = pressures[i - 1] + float(np.clip(fraction, 0.0, 1.0)) * (pressures[i] - pressures[i - 1])
        converged = bool(
            ok.loc[pressures[i - 1], [before, after]].all() and ok.loc[pressures[i], [before, after]].all()
        )
        transitions.append(
            {
                "from": before,
                "to": after,
                "pressure_gpa": float(p_cross),
                "bracket_gpa": [float(pressures[i - 1]), float(pressures[i])],
                "converged": converged,
            }
        )
    return transitions


def stable_structure(table: pd.DataFrame, pressure_gpa: float) -> str:
    """Name of the structure with the lowest enthalpy at one of the table's pressures."""
    rows = table[np.isclose(table.pressure_gpa, pressure_gpa)]
    if rows.empty:
        raise DataError(f"no enthalpies at {pressure_gpa} GPa (pressures: {sorted(set(table.pressure_gpa))})")
    return str(rows.loc[rows.enthalpy_per_atom.idxmin(), "structure"])
