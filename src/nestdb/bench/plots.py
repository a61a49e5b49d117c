"""Figures of the benchmarks (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nestdb.errors import DataError

_LINESTYLES = ("-", "--", ":", "-.")


def plot_ev(curves: dict[str, dict[str, pd.DataFrame]], path, relative: bool = True) -> None:
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves or not any(curves.values()):
        raise DataError("plot_ev: no curves given")
    structures = sorted({name for per_model in curves.values() for name in per_model})
    colours = {name: f"C{i}" for i, name in enumerate(structures)}
    fig, ax = plt.subplots(figsize=(6, 4.5))
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
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
