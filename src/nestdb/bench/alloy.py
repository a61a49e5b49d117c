"""Alloy benchmarks: formation energies of ordered structures and the convex hull.

For every pair of elements A, B the ordered structures on the fcc and bcc
lattices that users of the field check first — L1_2 (A3B and AB3), L1_0 (AB)
and B2 (AB) — and each element's pure crystals are relaxed at 0 GPa with
the space group kept (volume only by default, cell shape too with
``relax_shape``). The formation energy per atom is

    E_f(s) = E(s)/N - sum_i x_i mu_i,

with mu_i the lowest energy per atom among element i's pure structures.
The convex hull is the lower envelope of E_f over composition; the energy
above the hull of a structure is E_f minus the hull at its composition (a
linear programme, so any number of elements works). Model and reference
(DFT) are compared structure by structure: formation-energy errors, energies
above the hull and which structures are on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.data import atomic_numbers, reference_states
from matplotlib.figure import Figure
from scipy.optimize import linprog

from nestdb.errors import ConfigError, DataError
from nestdb.plotting import save, subplots
from nestdb.relax import relax_cell
from nestdb.structures.crystals import build_structure, reference_volume_per_atom

#: Ordered prototypes of a binary pair, with the A:B ratios they make.
PROTOTYPES: dict[str, tuple[tuple[int, int], ...]] = {"L1_2": ((3, 1), (1, 3)), "L1_0": ((1, 1),), "B2": ((1, 1),)}
#: Pure-element structures (built by :func:`nestdb.structures.crystals.build_structure`).
PURE_STRUCTURES = ("fcc", "bcc", "hcp")
#: Defaults of ``bench.alloy``.
ALLOY_DEFAULTS = {
    "structures": ["L1_2", "L1_0", "B2"],
    "pure": None,
    "relax_shape": False,
    "fmax": 0.01,
    "max_steps": 40,
    "hull_tolerance": 0.001,
}
#: Columns of the formation-energy table of one side.
FORMATION_COLUMNS = (
    "name",
    "prototype",
    "formula",
    "n_atoms",
    "energy_per_atom",
    "volume_per_atom",
    "formation_energy",
    "e_above_hull",
    "on_hull",
    "converged",
    "steps",
)

CalculatorFor = Callable[[str, Atoms], object]


def alloy_settings(bench: dict) -> dict:
    """``bench.alloy`` with its defaults; unknown prototypes or structures raise a :class:`ConfigError`."""
    settings = dict(ALLOY_DEFAULTS, **{k: v for k, v in (bench.get("alloy") or {}).items() if k != "enabled"})
    unknown = sorted(set(settings["structures"]) - set(PROTOTYPES))
    if unknown:
        raise ConfigError(
            f"bench.alloy.structures: unknown prototype(s) {unknown}; choose from {', '.join(PROTOTYPES)}"
        )
    for element, names in (settings["pure"] or {}).items():
        bad = sorted(set(names) - set(PURE_STRUCTURES))
        if bad:
            raise ConfigError(
                f"bench.alloy.pure.{element}: unknown structure(s) {bad}; choose from {', '.join(PURE_STRUCTURES)}"
            )
    return settings


def formula(counts: dict[str, int]) -> str:
    """``{"Cu": 3, "Au": 1}`` -> ``Cu3Au`` (elements in the given order, counts reduced, 1 omitted)."""
    present = {e: int(n) for e, n in counts.items() if n}
    divisor = math.gcd(*present.values())
    return "".join(f"{e}{n // divisor if n // divisor > 1 else ''}" for e, n in present.items())


def default_pure_structures(element: str) -> list[str]:
    """The element's ground-state lattice in ASE's reference data if it is fcc, bcc or hcp, else fcc."""
    state = reference_states[atomic_numbers[element]] or {}
    return [state["symmetry"]] if state.get("symmetry") in PURE_STRUCTURES else ["fcc"]


def ordered_cell(
    prototype: str, a_element: str, b_element: str, volume_per_atom: float, ratio: tuple[int, int] = (1, 1)
) -> Atoms:
    """Ideal ordered cell of a binary prototype at a volume per atom.

    Parameters
    ----------
    prototype
        ``L1_2`` (4-atom simple cubic cell: the minority atom at the corner,
        the majority on the face centres), ``L1_0`` (2-atom tetragonal cell
        a/√2, a/√2, a of the fcc lattice: A and B layers alternate along c)
        or ``B2`` (2-atom cubic cell, CsCl).
    a_element, b_element
        The pair; for L1_2 ``ratio`` (3, 1) makes A3B and (1, 3) AB3.
    volume_per_atom
        Å³/atom.
    ratio
        A:B counts of the cell.
    """
    if prototype == "L1_2":
        major, minor = (a_element, b_element) if ratio == (3, 1) else (b_element, a_element)
        a = (4.0 * volume_per_atom) ** (1 / 3)
        return Atoms(
            [minor, major, major, major],
            cell=[a, a, a],
            pbc=True,
            scaled_positions=[[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
        )
    if prototype == "L1_0":
        a = (4.0 * volume_per_atom) ** (1 / 3)
        return Atoms(
            [a_element, b_element],
            cell=[a / math.sqrt(2), a / math.sqrt(2), a],
            pbc=True,
            scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]],
        )
    if prototype == "B2":
        a = (2.0 * volume_per_atom) ** (1 / 3)
        return Atoms([a_element, b_element], cell=[a, a, a], pbc=True, scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]])
    raise ConfigError(f"unknown ordered prototype {prototype!r}; choose from {', '.join(PROTOTYPES)}")


def alloy_structures(elements: Sequence[str], settings: dict | None = None) -> list[dict]:
    """The structures of the hull benchmark: pure crystals of every element, ordered cells of every pair.

    Starting volumes: each element's reference volume
    (:func:`~nestdb.structures.crystals.reference_volume_per_atom`) for its
    pure crystals, Vegard's law (the composition-weighted mean) for the
    ordered cells.

    Returns
    -------
    list of dict
        ``name`` (e.g. ``Cu3Au_L1_2``, ``Cu_fcc``), ``prototype``, ``counts``
        (atoms per element in the cell), ``atoms``.
    """
    settings = settings or dict(ALLOY_DEFAULTS)
    elements = list(elements)
    if len(elements) < 2:
        raise ConfigError(f"the alloy benchmark needs at least two elements, got {elements}")
    volumes = {e: reference_volume_per_atom(e) for e in elements}
    pure = settings.get("pure") or {}
    structures = []
    for element in elements:
        for name in pure.get(element) or default_pure_structures(element):
            structures.append(
                {
                    "name": f"{element}_{name}",
                    "prototype": name,
                    "counts": {element: 1},
                    "atoms": build_structure(name, element),
                }
            )
    for a_element, b_element in itertools.combinations(elements, 2):
        for prototype in settings["structures"]:
            for ratio in PROTOTYPES[prototype]:
                counts = {a_element: ratio[0], b_element: ratio[1]}
                volume = (ratio[0] * volumes[a_element] + ratio[1] * volumes[b_element]) / sum(ratio)
                structures.append(
                    {
                        "name": f"{formula(counts)}_{prototype}",
                        "prototype": prototype,
                        "counts": counts,
                        "atoms": ordered_cell(prototype, a_element, b_element, volume, ratio),
                    }
                )
    return structures


def hull_energies(fractions: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Energy of the lower convex hull of ``(fractions, energies)`` at each point's own composition.

    The hull at composition c is min sum_k l_k E_k over l >= 0 with
    sum_k l_k x_k = c (the fractions sum to 1, so sum_k l_k = 1): a linear
    programme per point, valid for any number of elements.

    Parameters
    ----------
    fractions
        (n_points, n_elements) atomic fractions.
    energies
        (n_points,) formation energies (eV/atom).
    """
    fractions = np.asarray(fractions, dtype=float)
    energies = np.asarray(energies, dtype=float)
    hull = np.empty(len(energies))
    for k, target in enumerate(fractions):
        result = linprog(energies, A_eq=fractions.T, b_eq=target, bounds=(0, None), method="highs")
        if not result.success:
            raise DataError(
                f"convex hull: no combination of the structures reaches composition {target} ({result.message})"
            )
        hull[k] = min(float(result.fun), float(energies[k]))
    return hull


def formation_table(results: list[dict], elements: Sequence[str], hull_tolerance: float = 0.001) -> pd.DataFrame:
    """Formation energies, energies above the hull and hull membership of relaxed structures.

    Parameters
    ----------
    results
        One dict per structure with ``name``, ``prototype``, ``counts``,
        ``energy_per_atom`` (eV), and optionally ``volume_per_atom``,
        ``converged``, ``steps``.
    elements
        Elements in order (columns ``x_<element>`` of the table).
    hull_tolerance
        eV/atom: a structure at most this far above the hull is on it.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FORMATION_COLUMNS` plus ``x_<element>``.

    Raises
    ------
    DataError
        An element without a pure structure (no chemical potential), or a
        non-finite energy.
    """
    elements = list(elements)
    rows = pd.DataFrame(results)
    energies = rows["energy_per_atom"].to_numpy(dtype=float)
    if not np.all(np.isfinite(energies)):
        bad = rows.loc[~np.isfinite(energies), "name"].tolist()
        raise DataError(f"alloy benchmark: non-finite energies for {bad}")
    fractions = np.array([[counts.get(e, 0) / sum(counts.values()) for e in elements] for counts in rows["counts"]])
    mu = {}
    for j, element in enumerate(elements):
        pure = np.isclose(fractions[:, j], 1.0)
        if not pure.any():
            raise DataError(
                f"alloy benchmark: no pure {element} structure, so no reference for its formation "
                "energies; add one with bench.alloy.pure"
            )
        mu[element] = float(energies[pure].min())
    formation = energies - fractions @ np.array([mu[e] for e in elements])
    hull = hull_energies(fractions, formation)
    table = pd.DataFrame(
        {
            "name": rows["name"],
            "prototype": rows["prototype"],
            "formula": [formula(c) for c in rows["counts"]],
            "n_atoms": [int(sum(c.values())) for c in rows["counts"]],
            "energy_per_atom": energies,
            "volume_per_atom": rows.get("volume_per_atom", pd.Series([np.nan] * len(rows))).to_numpy(dtype=float),
            "formation_energy": formation,
            "e_above_hull": formation - hull,
            "on_hull": formation - hull <= hull_tolerance,
            "converged": rows.get("converged", pd.Series([True] * len(rows))).astype(bool).to_numpy(),
            "steps": rows.get("steps", pd.Series([0] * len(rows))).astype(int).to_numpy(),
        }
    )
    for j, element in enumerate(elements):
        table[f"x_{element}"] = fractions[:, j]
    return table


def relax_structures(calculator_for: CalculatorFor, elements: Sequence[str], settings: dict) -> list[dict]:
    """Relax every structure of :func:`alloy_structures` at 0 GPa with one calculator factory.

    Cost: about ``steps + 1`` calls per structure (3–8 for volume-only
    relaxations from the Vegard start); 2 × (number of pairs × 4) + pure
    structures in all, cells of 1–4 atoms.
    """
    results = []
    for structure in alloy_structures(elements, settings):
        atoms = structure["atoms"]
        relaxed, info = relax_cell(
            atoms,
            calculator_for(f"alloy_{structure['name']}", atoms),
            fmax=settings["fmax"],
            pressure_gpa=0.0,
            keep_symmetry=True,
            max_steps=settings["max_steps"],
            hydrostatic_strain=not settings["relax_shape"],
        )
        results.append(
            {
                "name": structure["name"],
                "prototype": structure["prototype"],
                "counts": structure["counts"],
                "energy_per_atom": info["energy_per_atom"],
                "volume_per_atom": info["volume_per_atom"],
                "converged": bool(info["converged"]),
                "steps": int(info["steps"]),
                "abandoned": info.get("abandoned", ""),
            }
        )
    return results


def compute_alloy(calculator_for: CalculatorFor, bench: dict, elements: Sequence[str]) -> dict:
    """One side (model or reference) of the alloy benchmark: relaxed structures and their formation table.

    Returns
    -------
    dict
        ``elements``, ``structures`` (relaxation results) and ``table``
        (rows of :func:`formation_table`).
    """
    settings = alloy_settings(bench)
    results = relax_structures(calculator_for, elements, settings)
    table = formation_table(results, elements, settings["hull_tolerance"])
    return {"elements": list(elements), "structures": results, "table": table.to_dict("records")}


def compare_alloy(model: dict, reference: dict, csv_path: str | Path, plot_path: str | Path, title: str = "") -> dict:
    """Table, figure and summary of model against reference formation energies and hulls.

    Cost: no calculator calls.

    Writes ``csv_path`` (one row per structure: formation energies and
    energies above the hull of both sides, the error in meV/atom, hull
    membership) and ``plot_path`` (convex hull of each pair, model and
    reference, and the formation-energy parity).

    Returns
    -------
    dict
        ``formation_mae_meV_per_atom``, ``formation_max_error_meV_per_atom``,
        ``errors_meV_per_atom`` per structure, ``hull_reference`` and
        ``hull_model`` (names on each hull) and ``same_hull``.
    """
    m_table, r_table = pd.DataFrame(model["table"]), pd.DataFrame(reference["table"])
    keys = ["name", "prototype", "formula"]
    columns = ["formation_energy", "e_above_hull", "on_hull", "volume_per_atom", "converged"]
    merged = m_table[keys + columns].merge(
        r_table[keys + columns], on=keys, how="outer", suffixes=("_model", "_reference")
    )
    merged["formation_error_meV"] = 1000 * (merged.formation_energy_model - merged.formation_energy_reference)
    for element in reference["elements"]:
        merged[f"x_{element}"] = merged["name"].map(r_table.set_index("name")[f"x_{element}"])
    merged.to_csv(csv_path, index=False)
    errors = merged.dropna(subset=["formation_error_meV"])
    # pure structures have E_f = 0 by construction only when they are the element's reference
    alloys = errors[errors.formula.map(lambda f: sum(c.isupper() for c in f) > 1)]
    hull_model = sorted(m_table.loc[m_table.on_hull.astype(bool), "name"])
    hull_reference = sorted(r_table.loc[r_table.on_hull.astype(bool), "name"])
    summary = {
        "formation_mae_meV_per_atom": float(alloys.formation_error_meV.abs().mean()) if len(alloys) else None,
        "formation_max_error_meV_per_atom": float(alloys.formation_error_meV.abs().max()) if len(alloys) else None,
        "errors_meV_per_atom": {row.name: float(row.formation_error_meV) for row in errors.itertuples()},
        "hull_model": hull_model,
        "hull_reference": hull_reference,
        "same_hull": hull_model == hull_reference,
        "all_converged": bool(
            merged.converged_model.fillna(False).astype(bool).all()
            and merged.converged_reference.fillna(False).astype(bool).all()
        ),
    }
    plot_alloy(m_table, r_table, reference["elements"], plot_path, title)
    return summary


def _pair_rows(table: pd.DataFrame, a_element: str, b_element: str) -> pd.DataFrame:
    """Structures made of only A and B (pure ones included), with x = fraction of B."""
    others = [c for c in table.columns if c.startswith("x_") and c not in (f"x_{a_element}", f"x_{b_element}")]
    rows = table[(table[others].sum(axis=1) == 0) if others else np.ones(len(table), dtype=bool)].copy()
    rows["x"] = rows[f"x_{b_element}"]
    return rows.sort_values("x")


def _lower_hull(x: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the lower convex hull of points in the plane, left to right (monotone chain)."""
    points = sorted(zip(x, e, strict=True))
    hull: list[tuple[float, float]] = []
    for point in points:
        while (
            len(hull) >= 2
            and (
                (hull[-1][0] - hull[-2][0]) * (point[1] - hull[-2][1])
                - (hull[-1][1] - hull[-2][1]) * (point[0] - hull[-2][0])
            )
            <= 0
        ):
            hull.pop()
        hull.append(point)
    return np.array([p[0] for p in hull]), np.array([p[1] for p in hull])


def plot_alloy(
    model: pd.DataFrame, reference: pd.DataFrame, elements: Sequence[str], path: str | Path, title: str = ""
) -> Figure:
    """Convex hull of each pair (model solid, reference dashed) and formation-energy parity, one figure."""
    pairs = list(itertools.combinations(elements, 2))
    fig, axes = subplots(1, len(pairs) + 1, figsize=(5 * (len(pairs) + 1), 4.2))
    for ax, (a_element, b_element) in zip(axes, pairs, strict=False):  # the last axis is the parity plot
        for table, style, marker, side in ((model, "-", "o", "model"), (reference, "--", "s", "reference")):
            rows = _pair_rows(table, a_element, b_element)
            colour = "C0" if side == "model" else "C1"
            ax.plot(rows.x, 1000 * rows.formation_energy, marker, color=colour, mfc="none", ls="none", label=side)
            hx, he = _lower_hull(rows.x.to_numpy(), 1000 * rows.formation_energy.to_numpy())
            ax.plot(hx, he, style, color=colour)
            for row in rows.itertuples():
                if side == "reference":
                    ax.annotate(
                        f"{row.formula} {row.prototype}",
                        (row.x, 1000 * row.formation_energy),
                        fontsize=6,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(f"x({b_element}) in {a_element}$_{{1-x}}${b_element}$_x$")
        ax.set_ylabel("formation energy (meV/atom)")
        ax.set_title(f"{a_element}–{b_element} convex hull")
        ax.legend(fontsize=8)
    parity = axes[-1]
    both = model.merge(reference, on="name", suffixes=("_model", "_reference"))
    ref_mev, model_mev = 1000 * both.formation_energy_reference, 1000 * both.formation_energy_model
    parity.plot(ref_mev, model_mev, "o", ms=5)
    for row, x, y in zip(both.itertuples(), ref_mev, model_mev, strict=True):
        parity.annotate(row.name, (x, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
    low, high = min(ref_mev.min(), model_mev.min()) - 20, max(ref_mev.max(), model_mev.max()) + 20
    parity.plot([low, high], [low, high], "k--", lw=0.8)
    parity.set_xlabel("reference formation energy (meV/atom)")
    parity.set_ylabel("model formation energy (meV/atom)")
    parity.set_title("formation energies")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path, dpi=120)
