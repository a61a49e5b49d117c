"""Figures and comparison tables of the benchmarks, model against reference (:mod:`nestdb.plotting`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nestdb.bench.enthalpy import relative_enthalpies
from nestdb.bench.phonons import frequency_rmse
from nestdb.errors import DataError
from nestdb.plotting import save, subplots

_LINESTYLES = ("-", "--", ":", "-.")


def plot_ev(curves: dict[str, dict[str, pd.DataFrame]], path, relative: bool = True) -> Figure:
    """Energy–volume curves of several models and structures in one figure.

    Cost: no calculator calls.

    Parameters
    ----------
    curves
        ``{"model": {"hcp": df, "bcc": df}, "reference": {...}}`` with the
        DataFrames of :func:`nestdb.bench.eos.ev_curve`. One colour per
        structure, one line style per model (markers on the points).
    path
        Output image (format from the suffix, e.g. ``.png`` or ``.pdf``).
    relative
        Shift each model by its lowest energy over all its structures, so
        that models with different energy zeros (DFT vs fitted reference
        energies) can share an axis; structure differences are unchanged.
    """
    if not curves or not any(curves.values()):
        raise DataError("plot_ev: no curves given")
    structures = sorted({name for per_model in curves.values() for name in per_model})
    colours = {name: f"C{i}" for i, name in enumerate(structures)}
    fig, ax = subplots(figsize=(6, 4.5))
    for i, (model, per_structure) in enumerate(curves.items()):
        shift = 0.0
        if relative and per_structure:
            shift = min(float(df["energy_per_atom"].min()) for df in per_structure.values())
        for structure, df in per_structure.items():
            ax.plot(
                df["volume_per_atom"],
                df["energy_per_atom"] - shift,
                linestyle=_LINESTYLES[i % len(_LINESTYLES)],
                marker="o",
                markersize=3,
                color=colours[structure],
                label=f"{model} {structure}",
            )
    ax.set_xlabel("volume (Å$^3$/atom)")
    ax.set_ylabel("energy (eV/atom)" + (", relative to model minimum" if relative else ""))
    ax.legend(fontsize=8)
    return save(fig, path, dpi=150)


def _zero_structure(structures) -> str:
    return "hcp" if "hcp" in structures else sorted(structures)[0]


def compare_enthalpy(model: dict, reference: dict, csv_path, plot_path, title: str = "") -> tuple[dict, Figure]:
    """Table, figure and summary of model against reference enthalpy–pressure curves.

    Cost: no calculator calls.

    Parameters
    ----------
    model, reference
        Results of ``compute_property("enthalpy", ...)`` (``table`` rows and
        ``transitions``).
    csv_path
        Table: one row per structure and pressure with H and ΔH (relative to
        hcp) of both sides, their difference (meV/atom), volumes and the
        ``converged`` flag of each relaxation.
    plot_path
        H(P) and ΔH(P), model solid and reference dashed, transitions marked.

    Returns
    -------
    (dict, Figure)
        ``delta_h_rmse_meV_per_atom``, the transitions of both sides,
        ``all_converged`` of both.
    """

    m_table, r_table = pd.DataFrame(model["table"]), pd.DataFrame(reference["table"])
    zero = _zero_structure(set(m_table.structure))
    m_rel = relative_enthalpies(m_table, zero)
    r_rel = relative_enthalpies(r_table, zero)
    keys = ["structure", "pressure_gpa"]
    columns = ["enthalpy_per_atom", "delta_enthalpy_per_atom", "volume_per_atom", "converged"]
    merged = m_rel[keys + columns].merge(r_rel[keys + columns], on=keys, how="outer", suffixes=("_model", "_reference"))
    merged["delta_difference_meV"] = 1000 * (
        merged.delta_enthalpy_per_atom_model - merged.delta_enthalpy_per_atom_reference
    )
    merged.to_csv(csv_path, index=False)

    fig, (left, right) = subplots(1, 2, figsize=(10, 4))
    structures = sorted(set(m_table.structure) | set(r_table.structure))
    for i, name in enumerate(structures):
        for rel, style, side in ((m_rel, "-", "model"), (r_rel, "--", "reference")):
            rows = rel[rel.structure == name].sort_values("pressure_gpa")
            if rows.empty:
                continue
            left.plot(
                rows.pressure_gpa,
                rows.enthalpy_per_atom,
                style,
                marker="o",
                ms=3,
                color=f"C{i}",
                label=f"{side} {name}",
            )
            right.plot(rows.pressure_gpa, 1000 * rows.delta_enthalpy_per_atom, style, marker="o", ms=3, color=f"C{i}")
            bad = rows[~rows.converged.astype(bool)]
            right.plot(bad.pressure_gpa, 1000 * bad.delta_enthalpy_per_atom, "x", color="k", ms=8)
    for transitions, style in ((model["transitions"], "-"), (reference["transitions"], "--")):
        for t in transitions:
            right.axvline(t["pressure_gpa"], color="0.5", ls=style, lw=0.8)
    left.set_xlabel("pressure (GPa)")
    left.set_ylabel("H (eV/atom)")
    left.legend(fontsize=7)
    right.set_xlabel("pressure (GPa)")
    right.set_ylabel(f"H − H({zero}) (meV/atom)")
    right.set_title("× unconverged; vertical lines: transitions", fontsize=8)
    fig.suptitle(title or "enthalpy vs pressure: model (solid) and reference (dashed)")
    save(fig, plot_path)
    both = merged.dropna(subset=["delta_difference_meV"])
    return {
        "zero_structure": zero,
        "delta_h_rmse_meV_per_atom": float(np.sqrt(np.mean(both.delta_difference_meV**2))) if len(both) else None,
        "transitions_model": model["transitions"],
        "transitions_reference": reference["transitions"],
        "all_converged_model": bool(m_table.converged.all()),
        "all_converged_reference": bool(r_table.converged.all()),
    }, fig


def compare_bain(model: dict, reference: dict, csv_path, plot_path, title: str = "") -> tuple[dict, Figure]:
    """Table, figure and summary of model against reference Bain paths.

    Cost: no calculator calls. Enthalpies are shown relative to bcc
    (c/a = 1) at each pressure; the table holds both sides and their
    ``converged`` flags.

    Returns
    -------
    (dict, Figure)
        ``rmse_meV_per_atom`` of the relative enthalpies and, per pressure
        and side, the c/a of the lowest enthalpy.
    """
    tables = {}
    for side, result in (("model", model), ("reference", reference)):
        df = pd.DataFrame(result["table"])
        first = df.groupby("pressure_gpa").enthalpy_per_atom.transform("first")
        tables[side] = df.assign(relative_enthalpy_meV=1000 * (df.enthalpy_per_atom - first))
    keys = ["pressure_gpa", "c_over_a"]
    columns = ["enthalpy_per_atom", "relative_enthalpy_meV", "volume_per_atom", "converged"]
    merged = tables["model"][keys + columns].merge(
        tables["reference"][keys + columns], on=keys, how="outer", suffixes=("_model", "_reference")
    )
    merged.to_csv(csv_path, index=False)
    fig, ax = subplots(figsize=(6, 4))
    for i, pressure in enumerate(sorted(set(merged.pressure_gpa))):
        rows = merged[merged.pressure_gpa == pressure]
        ax.plot(
            rows.c_over_a, rows.relative_enthalpy_meV_model, "-o", ms=3, color=f"C{i}", label=f"model {pressure:g} GPa"
        )
        ax.plot(
            rows.c_over_a,
            rows.relative_enthalpy_meV_reference,
            "--s",
            ms=3,
            color=f"C{i}",
            label=f"reference {pressure:g} GPa",
        )
    ax.set_xlabel("c/a (1: bcc, √2: fcc)")
    ax.set_ylabel("H − H(bcc) (meV/atom)")
    ax.legend(fontsize=7)
    ax.set_title(title or "Bain path")
    save(fig, plot_path)
    difference = (merged.relative_enthalpy_meV_model - merged.relative_enthalpy_meV_reference).dropna()
    minima = {
        side: {
            f"{p:g}": float(df.loc[df[df.pressure_gpa == p].enthalpy_per_atom.idxmin(), "c_over_a"])
            for p in sorted(set(df.pressure_gpa))
        }
        for side, df in tables.items()
    }
    return {
        "rmse_meV_per_atom": float(np.sqrt(np.mean(difference**2))) if len(difference) else None,
        "lowest_c_over_a": minima,
        "all_converged_model": bool(tables["model"].converged.all()),
        "all_converged_reference": bool(tables["reference"].converged.all()),
    }, fig


def _path_segments(result: dict) -> tuple[np.ndarray, np.ndarray]:
    """x and frequencies with NaN rows at the breaks of a band path (so no line jumps across)."""
    x = np.asarray(result["x"], dtype=float)
    frequencies = np.asarray(result["frequencies_thz"], dtype=float)
    breaks = np.flatnonzero(np.diff(x) <= 1e-12) + 1  # a new segment restarts at the same x
    nan_row = np.full((1, frequencies.shape[1]), np.nan)
    return (
        np.insert(x, breaks, np.nan),
        np.insert(frequencies, breaks, nan_row, axis=0) if len(breaks) else frequencies,
    )


def _path_ticks(result: dict) -> tuple[list[float], list[str]]:
    """Special points, labels of a break merged as ``L|M``; Γ for G."""
    ticks: list[float] = []
    labels: list[str] = []
    for x, label in zip(result["special_x"], result["special_labels"], strict=True):
        label = "Γ" if label == "G" else label
        if ticks and abs(x - ticks[-1]) < 1e-12:
            labels[-1] = f"{labels[-1]}|{label}"
        else:
            ticks.append(x)
            labels.append(label)
    return ticks, labels


def compare_phonons(model: dict, reference: dict, csv_path, plot_path, title: str = "") -> tuple[dict, Figure]:
    """Frequency RMSE, imaginary-mode flags and dispersion figures, model against reference.

    Cost: no calculator calls. One figure per structure is drawn side by
    side in ``plot_path``.

    Returns
    -------
    (dict, Figure)
        Per structure: ``rmse_thz``, ``imaginary_model``,
        ``imaginary_reference``, minimum frequencies, Γ acoustic frequencies.
    """

    names = list(model)
    fig, axes = subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    summary, rows = {}, []
    for ax, name in zip(axes[0], names, strict=True):
        m, r = model[name], reference.get(name)
        rmse = frequency_rmse(m, r) if r is not None else None
        summary[name] = {
            "rmse_thz": rmse,
            "imaginary_model": m["imaginary"],
            "imaginary_reference": None if r is None else r["imaginary"],
            "min_frequency_model_thz": m["min_frequency_thz"],
            "min_frequency_reference_thz": None if r is None else r["min_frequency_thz"],
            "gamma_acoustic_model_thz": m["gamma_acoustic_thz"],
        }
        rows.append(
            {
                "structure": name,
                **{k: v for k, v in summary[name].items() if k != "gamma_acoustic_model_thz"},
                "max_gamma_acoustic_model_thz": max(m["gamma_acoustic_thz"]),
                "relaxed_model": (m["relaxation"] or {}).get("converged", True),
                "relaxed_reference": None if r is None else (r["relaxation"] or {}).get("converged", True),
            }
        )
        for result, style, colour, label in ((r, "--", "k", "reference"), (m, "-", "C3", "model")):
            if result is None:
                continue
            x, frequencies = _path_segments(result)
            lines = ax.plot(x, frequencies, style, color=colour, lw=1)
            lines[0].set_label(label)
        ticks, tick_labels = _path_ticks(m)
        ax.set_xticks(ticks)
        ax.set_xticklabels(tick_labels)
        for x in ticks:
            ax.axvline(x, color="0.85", lw=0.5)
        ax.axhline(0.0, color="0.6", lw=0.5)
        ax.set_xlim(m["x"][0], m["x"][-1])
        ax.set_ylabel("frequency (THz)")
        flag = " (imaginary modes)" if m["imaginary"] else ""
        ax.set_title(f"{name}: RMSE {rmse:.2f} THz{flag}" if rmse is not None else name, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title or "phonon dispersions")
    save(fig, plot_path)
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    return summary, fig
