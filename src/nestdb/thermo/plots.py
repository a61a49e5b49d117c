"""Figures of NS thermodynamics for the workflow report (:mod:`nestdb.plotting`: each is returned)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nestdb.errors import DataError
from nestdb.plotting import save, subplots
from nestdb.structures.steinhardt import IDEAL_Q6_W6
from nestdb.thermo.transitions import Transition
from nestdb.units import KB_EV_PER_K

__all__ = ["plot_analysis", "plot_selection", "plot_order_parameters"]

_KIND_COLOURS = {"melting": "C3", "solid-solid": "C2", "fluid": "C0", "unknown": "0.5"}


def plot_analysis(
    table: pd.DataFrame,
    path: str | Path,
    title: str = "",
    n_atoms: int | None = None,
    transitions: Sequence[Transition] | None = None,
) -> Figure:
    """Plot C_p(T) and <V>(T) of an :func:`~nestdb.thermo.analyse` table to a PNG file.

    With ``n_atoms`` (or ``table.attrs['n_atoms']``) C_p is shown in kB/atom
    and V per atom, otherwise whole-system values. Columns ``Cp_err`` and
    ``V_err`` (from :func:`~nestdb.thermo.bootstrap`) are drawn as bands;
    ``transitions`` (from :func:`~nestdb.thermo.detect_transitions`, per-atom
    values) are marked by their peak and FWHM.
    """
    missing = [c for c in ("T", "Cp", "V") if c not in table.columns]
    if missing:
        raise DataError(f"plot_analysis: table lacks columns {missing}; pass the output of analyse()")
    n_atoms = n_atoms or table.attrs.get("n_atoms") or None
    kB = table.attrs.get("kB", KB_EV_PER_K)
    fig, (ax_cp, ax_v) = subplots(2, 1, figsize=(6.0, 6.5), sharex=True)
    cp_scale, v_scale = (n_atoms * kB, n_atoms) if n_atoms else (1.0, 1.0)
    temps = table["T"].to_numpy()
    for axis, key, scale in ((ax_cp, "Cp", cp_scale), (ax_v, "V", v_scale)):
        values = table[key].to_numpy() / scale
        axis.plot(temps, values, color="k", lw=1.2)
        if f"{key}_err" in table.columns:
            err = table[f"{key}_err"].to_numpy() / scale
            axis.fill_between(temps, values - err, values + err, color="0.7", lw=0, label="bootstrap ±1σ")
    ax_cp.set_ylabel(r"$C_p$ ($k_B$/atom)" if n_atoms else r"$C_p$ (eV/K)")
    ax_v.set_ylabel(r"$\langle V\rangle/N$ (Å$^3$)" if n_atoms else r"$\langle V\rangle$ (Å$^3$)")
    ax_v.set_xlabel("T (K)")
    for t in transitions or ():
        colour = _KIND_COLOURS.get(t.kind, "0.5")
        cp_at = t.cp_peak if n_atoms else t.cp_peak * cp_scale
        ax_cp.errorbar(
            [t.temperature],
            [cp_at],
            xerr=[[t.temperature - t.low], [t.high - t.temperature]],
            fmt="o",
            color=colour,
            capsize=3,
            label=f"{t.kind} {t.temperature:.0f} K",
        )
        ax_v.axvspan(t.low, t.high, color=colour, alpha=0.15, lw=0)
    if transitions or "Cp_err" in table.columns:
        ax_cp.legend(fontsize=7)
    if title:
        ax_cp.set_title(title)
    return save(fig, path, dpi=120)


def plot_selection(
    iters: np.ndarray,
    enthalpy: np.ndarray,
    temperatures: np.ndarray,
    chosen: pd.DataFrame,
    path: str | Path,
    title: str = "",
) -> Figure:
    """Enthalpy per atom vs NS iteration and vs sample temperature, selected samples marked (study Fig. 2).

    Parameters
    ----------
    iters, enthalpy, temperatures : np.ndarray
        Iteration, enthalpy per atom (eV) and temperature (K) of the culled samples.
    chosen : pandas.DataFrame
        Columns ``iter``, ``enthalpy`` (per atom) and ``temp`` of the selected ones.
    """
    fig, (left, right) = subplots(1, 2, figsize=(9.0, 3.6))
    left.plot(iters, enthalpy, lw=0.8, color="0.4", label="culled samples")
    left.plot(chosen["iter"], chosen["enthalpy"], "o", ms=3, color="C3", label="selected")
    left.set_xlabel("NS iteration")
    left.set_ylabel("H / atom (eV)")
    left.legend(fontsize=8)
    finite = np.isfinite(temperatures)
    right.plot(temperatures[finite], enthalpy[finite], ".", ms=2, color="0.4")
    chosen_finite = np.isfinite(chosen["temp"].to_numpy(dtype=float))
    right.plot(chosen["temp"][chosen_finite], chosen["enthalpy"][chosen_finite], "o", ms=3, color="C3")
    right.set_xscale("log")
    right.set_xlabel("sample temperature (K)")
    right.set_ylabel("H / atom (eV)")
    # The first culls of a random start are orders of magnitude above the rest: show what matters.
    if enthalpy.size:
        top = max(np.quantile(enthalpy, 0.9), chosen["enthalpy"].max() if len(chosen) else -np.inf)
        bottom = enthalpy.min()
        if np.isfinite(top) and top > bottom:
            margin = 0.05 * (top - bottom)
            for axis in (left, right):
                axis.set_ylim(bottom - margin, top + margin)
    if title:
        fig.suptitle(title)
    return save(fig, path, dpi=110)


def plot_order_parameters(
    q6: np.ndarray, w6: np.ndarray, temperatures: np.ndarray, path: str | Path, title: str = ""
) -> Figure:
    """Q6-W6 scatter of samples coloured by temperature, with the ideal fcc/hcp/bcc points."""
    fig, axis = subplots(figsize=(5.2, 4.2))
    temps = np.asarray(temperatures, dtype=float)
    finite = np.isfinite(temps)
    if np.any(~finite):
        axis.scatter(np.asarray(q6)[~finite], np.asarray(w6)[~finite], s=10, color="0.6", label="T unknown")
    points = axis.scatter(np.asarray(q6)[finite], np.asarray(w6)[finite], c=temps[finite], s=10, cmap="plasma")
    if finite.any():
        fig.colorbar(points, ax=axis, label="T (K)")
    for name, (q, w) in IDEAL_Q6_W6.items():
        axis.plot([q], [w], "k*", ms=9)
        axis.annotate(name, (q, w), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set_xlabel(r"$Q_6$")
    axis.set_ylabel(r"$W_6$")
    if title:
        axis.set_title(title)
    return save(fig, path, dpi=110)
