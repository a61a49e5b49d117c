"""Errors of a fitted model against DFT labels, committee statistics, parity plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from nestdb.fit.dataset import ENERGY_KEY, FORCES_KEY, VIRIAL_KEY, frame_groups
from nestdb.plotting import save, subplots

#: Fewest configurations for which the rank correlation STD vs |error| is reported.
MIN_CONFIGS_FOR_SPEARMAN = 5


def abs_energy_errors(frames: list[Atoms], prediction: dict) -> np.ndarray:
    """|predicted - DFT| energy per atom (eV/atom) of every frame."""
    reference = np.array([float(a.info[ENERGY_KEY]) / len(a) for a in frames])
    return np.abs(prediction["energy_per_atom"] - reference)


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else float("nan")


def error_metrics(frames: list[Atoms], prediction: dict) -> dict[str, Any]:
    """RMSE/MAE of energies, forces and virials, and committee statistics.

    Parameters
    ----------
    frames
        Labelled configurations (``dft_energy``, ``dft_forces``, optional ``dft_virial``).
    prediction
        Output of :func:`nestdb.models.ace_committee.predict_frames` for the same frames.

    Returns
    -------
    dict
        ``n_configs``, ``n_atoms``, ``energy_rmse_mev_per_atom``,
        ``energy_mae_mev_per_atom``, ``energy_max_abs_mev_per_atom``,
        ``force_rmse_mev_per_a`` (over Cartesian components), ``force_mae_mev_per_a``,
        ``virial_rmse_mev_per_atom`` (only when every frame has ``dft_virial`` and
        a 3D cell), ``committee_std_{mean,median,max}_mev_per_atom`` and, for at
        least :data:`MIN_CONFIGS_FOR_SPEARMAN` configurations,
        ``spearman_std_vs_abs_error`` (rank correlation of the committee STD with
        the absolute per-atom energy error; ``None`` if undefined).
    """
    n_atoms = prediction["n_atoms"]
    reference = np.array([float(a.info[ENERGY_KEY]) / len(a) for a in frames])
    energy_error = prediction["energy_per_atom"] - reference
    force_error = np.concatenate(
        [
            (f - np.asarray(a.arrays[FORCES_KEY], dtype=float)).reshape(-1)
            for f, a in zip(prediction["forces"], frames, strict=True)
        ]
    )
    std = prediction["energy_std_per_atom"]
    metrics: dict[str, Any] = {
        "n_configs": len(frames),
        "n_atoms": int(np.sum(n_atoms)),
        "energy_rmse_mev_per_atom": 1000 * _rmse(energy_error),
        "energy_mae_mev_per_atom": 1000 * float(np.mean(np.abs(energy_error))),
        "energy_max_abs_mev_per_atom": 1000 * float(np.max(np.abs(energy_error))),
        "force_rmse_mev_per_a": 1000 * _rmse(force_error),
        "force_mae_mev_per_a": 1000 * float(np.mean(np.abs(force_error))),
        "committee_std_mean_mev_per_atom": 1000 * float(np.mean(std)),
        "committee_std_median_mev_per_atom": 1000 * float(np.median(std)),
        "committee_std_max_mev_per_atom": 1000 * float(np.max(std)),
    }
    if all(VIRIAL_KEY in a.info for a in frames) and np.all(np.isfinite(prediction["virial"])):
        # per-atom virial error, the study's "virial (meV)" unit
        virial_ref = np.array([np.asarray(a.info[VIRIAL_KEY], dtype=float).reshape(9) for a in frames])
        virial_error = (prediction["virial"] - virial_ref) / n_atoms[:, None]
        metrics["virial_rmse_mev_per_atom"] = 1000 * _rmse(virial_error)
    if len(frames) >= MIN_CONFIGS_FOR_SPEARMAN:
        metrics["spearman_std_vs_abs_error"] = spearman(std, np.abs(energy_error))
    return metrics


def grouped_metrics(frames: list[Atoms], prediction: dict) -> dict[str, dict[str, dict[str, Any]]]:
    """Energy, force and virial RMSEs per cycle, per pressure and per config type.

    Returns
    -------
    dict
        ``{"cycle": {label: metrics}, "pressure": {...}, "config_type": {...}}``,
        each ``metrics`` holding ``n_configs``, ``energy_rmse_mev_per_atom``,
        ``force_rmse_mev_per_a`` and (when available) ``virial_rmse_mev_per_atom``.
    """
    labels = [frame_groups(a) for a in frames]
    keep = ("n_configs", "energy_rmse_mev_per_atom", "force_rmse_mev_per_a", "virial_rmse_mev_per_atom")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ("cycle", "pressure", "config_type"):
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label[kind], []).append(i)
        out[kind] = {}
        for label in sorted(groups, key=_natural_key):
            members = groups[label]
            subset = {
                key: (value[members] if isinstance(value, np.ndarray) else [value[i] for i in members])
                for key, value in prediction.items()
            }
            full = error_metrics([frames[i] for i in members], subset)
            out[kind][label] = {key: full[key] for key in keep if key in full}
    return out


def _natural_key(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation, ``None`` when either input is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def plot_parity(
    train_frames: list[Atoms],
    train_prediction: dict,
    test_frames: list[Atoms],
    test_prediction: dict | None,
    path: str | Path,
    reference_energies: dict[str, float] | None = None,
) -> Figure:
    """Energy (per atom) and force-component parity plots, train and test, to ``path`` (the figure is returned).

    With ``reference_energies`` the energy axis shows E - E0 per atom, which
    keeps tick labels short for absolute DFT energies (~ -1689 eV/atom for Mg).
    """
    e0 = reference_energies or {}
    fig, (ax_energy, ax_force) = subplots(1, 2, figsize=(10, 4.5))
    sets = [("train", train_frames, train_prediction, "tab:blue")]
    if test_frames and test_prediction is not None:
        sets.append(("test", test_frames, test_prediction, "tab:orange"))
    for label, frames, prediction, colour in sets:
        shift = np.array([sum(e0.get(s, 0.0) for s in a.get_chemical_symbols()) / len(a) for a in frames])
        reference = np.array([float(a.info[ENERGY_KEY]) / len(a) for a in frames]) - shift
        ax_energy.scatter(reference, prediction["energy_per_atom"] - shift, s=8, alpha=0.7, color=colour, label=label)
        f_ref = np.concatenate([np.asarray(a.arrays[FORCES_KEY]).reshape(-1) for a in frames])
        f_pred = np.concatenate([f.reshape(-1) for f in prediction["forces"]])
        ax_force.scatter(f_ref, f_pred, s=3, alpha=0.5, color=colour, label=label)
    energy_unit = "energy - E0 (eV/atom)" if e0 else "energy (eV/atom)"
    for ax, unit in ((ax_energy, energy_unit), (ax_force, "force component (eV/Å)")):
        low, high = ax.get_xlim()
        ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        ax.set_xlabel(f"DFT {unit}")
        ax.set_ylabel(f"ACE {unit}")
        ax.legend()
    ax_energy.ticklabel_format(useOffset=False)
    return save(fig, path, dpi=120)
