"""A campaign's learning curve on the oracle's test set.

For every cycle's model: labels so far against the test errors (energy per
atom and force components) by phase class (crystal / liquid / dilute), by
pressure and by temperature bin; the committee's energy STD against the
absolute energy error (Spearman rank correlation, fraction of errors within
1 and 2 STD); E–V curve shapes and elastic constants against the oracle
(from the workflow's ``bench`` outputs or :func:`nestdb.bench.properties.compare_ev_elastic`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms
from ase.io import read
from matplotlib.figure import Figure

from nestdb.fit.metrics import spearman
from nestdb.models.ace_committee import predict_frames
from nestdb.plotting import save, subplots

log = logging.getLogger(__name__)


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")


def _errors(frames: list[Atoms], prediction: dict) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    reference = np.array([float(a.info["dft_energy"]) / len(a) for a in frames])
    energy = prediction["energy_per_atom"] - reference
    forces = [
        (f - np.asarray(a.arrays["dft_forces"])).reshape(-1) for f, a in zip(prediction["forces"], frames, strict=True)
    ]
    return energy, forces, np.asarray(prediction["energy_std_per_atom"])


def _group_metrics(energy: np.ndarray, forces: list[np.ndarray], std: np.ndarray, members: list[int]) -> dict:
    e = energy[members]
    f = np.concatenate([forces[i] for i in members]) if members else np.array([])
    s = std[members]
    out = {
        "n": len(members),
        "energy_rmse_mev": 1000 * _rmse(e),
        "force_rmse_mev_per_a": 1000 * _rmse(f),
        "energy_max_abs_mev": 1000 * float(np.max(np.abs(e))) if len(e) else float("nan"),
    }
    if len(members) >= 5:
        rho = spearman(s, np.abs(e))
        out["spearman_std_vs_error"] = float("nan") if rho is None else rho
        out["within_1_std"] = float(np.mean(np.abs(e) <= s))
        out["within_2_std"] = float(np.mean(np.abs(e) <= 2 * s))
    return out


def evaluate_model(model_dir: str | Path, frames: list[Atoms]) -> dict[str, Any]:
    """Errors of one model on the test set, overall and by phase class, pressure and temperature bin.

    Parameters
    ----------
    model_dir
        A fitted linear-ACE model folder (``committee.npz``, ``potential.yaml``).
    frames
        The oracle's test set (:func:`nestdb.campaign.testset.make_test_set`).

    Returns
    -------
    dict
        ``all``, ``phase`` ``{class: metrics}``, ``pressure`` ``{GPa: metrics}``,
        ``t_bin`` ``{bin: metrics}``; metrics hold ``n``, ``energy_rmse_mev``
        (meV/atom), ``force_rmse_mev_per_a``, ``energy_max_abs_mev`` and, for
        5 or more configurations, ``spearman_std_vs_error``, ``within_1_std``,
        ``within_2_std``.
    """
    prediction = predict_frames(model_dir, frames)
    energy, forces, std = _errors(frames, prediction)
    out: dict[str, Any] = {"all": _group_metrics(energy, forces, std, list(range(len(frames))))}
    for key, name in (("phase_class", "phase"), ("pressure", "pressure"), ("t_bin", "t_bin")):
        groups: dict[str, list[int]] = {}
        for i, atoms in enumerate(frames):
            value = atoms.info.get(key)
            label = f"{float(value):g}" if key == "pressure" else str(value)
            groups.setdefault(label, []).append(i)
        out[name] = {label: _group_metrics(energy, forces, std, members) for label, members in groups.items()}
    # liquid and hot configurations together: the "liquid and high-temperature" comparison
    hot = [
        i
        for i, a in enumerate(frames)
        if a.info.get("phase_class") == "liquid" or float(a.info.get("temp", 0.0)) > 2000.0
    ]
    out["liquid_or_hot"] = _group_metrics(energy, forces, std, hot)
    return out


def ev_elastic_summary(summary: dict) -> dict[str, float]:
    """Mean E–V shape RMSE (meV/atom), |ΔV0| (%), and mean |ΔC_ij| (GPa) from a bench ``summary.json``."""
    ev = summary.get("ev_shape_rmse_meV_per_atom", {})
    out = {"ev_shape_rmse_mev": float(np.mean(list(ev.values()))) if ev else float("nan")}
    dv = []
    for fits in summary.get("eos", {}).values():
        model, reference = fits.get("model") or {}, fits.get("reference") or {}
        if model.get("V0") and reference.get("V0"):
            dv.append(abs(model["V0"] / reference["V0"] - 1.0) * 100)
    out["v0_error_percent"] = float(np.mean(dv)) if dv else float("nan")
    differences = []
    for name, result in (summary.get("elastic_model") or {}).items():
        reference = (summary.get("elastic_reference") or {}).get(name, {})
        differences += [
            abs(result[k] - reference[k]) for k in reference if k.startswith("C") and len(k) == 3 and k in result
        ]
    out["elastic_mae_gpa"] = float(np.mean(differences)) if differences else float("nan")
    return out


def count_labels(paths: list[str | Path]) -> int:
    """Labelled configurations (``label_status`` ok) in extended-XYZ databases."""
    total = 0
    for path in paths:
        if Path(path).stat().st_size == 0:
            continue
        total += sum(1 for a in read(path, index=":") if a.info.get("label_status", "ok") == "ok")
    return total


def curve_row(name: str, cycle: int, n_labels: int, evaluation: dict, bench: dict | None = None) -> dict:
    """One flat row of the learning-curve table."""
    row: dict[str, Any] = {"campaign": name, "cycle": cycle, "labels": n_labels}
    overall = evaluation["all"]
    row.update(
        energy_rmse_mev=overall["energy_rmse_mev"],
        force_rmse_mev_per_a=overall["force_rmse_mev_per_a"],
        spearman=overall.get("spearman_std_vs_error"),
        within_1_std=overall.get("within_1_std"),
        within_2_std=overall.get("within_2_std"),
    )
    for phase in ("crystal", "liquid", "dilute"):
        metrics = evaluation["phase"].get(phase)
        row[f"{phase}_energy_rmse_mev"] = metrics["energy_rmse_mev"] if metrics else float("nan")
        row[f"{phase}_force_rmse_mev_per_a"] = metrics["force_rmse_mev_per_a"] if metrics else float("nan")
    row["liquid_or_hot_energy_rmse_mev"] = evaluation["liquid_or_hot"]["energy_rmse_mev"]
    row["liquid_or_hot_force_rmse_mev_per_a"] = evaluation["liquid_or_hot"]["force_rmse_mev_per_a"]
    if bench:
        row.update(ev_elastic_summary(bench))
    return row


def campaign_curve(name: str, results_dir: str | Path, frames: list[Atoms], n_cycles: int) -> tuple[list[dict], dict]:
    """Learning-curve rows of a workflow campaign (its ``results/`` folder) on the test set.

    Labels so far are counted from ``label/cycle{c}/labelled.extxyz``; E–V and
    elastic constants come from ``bench/cycle{c}/summary.json`` when present.
    """
    results_dir = Path(results_dir)
    rows, details = [], {}
    for cycle in range(n_cycles):
        model = results_dir / "fit" / f"cycle{cycle}"
        if not (model / "committee.npz").is_file():
            log.warning("%s: no model for cycle %d", name, cycle)
            continue
        n_labels = count_labels([results_dir / "label" / f"cycle{c}" / "labelled.extxyz" for c in range(cycle + 1)])
        evaluation = evaluate_model(model, frames)
        bench_path = results_dir / "bench" / f"cycle{cycle}" / "summary.json"
        bench = json.loads(bench_path.read_text()) if bench_path.is_file() else None
        rows.append(curve_row(name, cycle, n_labels, evaluation, bench))
        details[cycle] = evaluation
    return rows, details


def plot_learning_curve(table: pd.DataFrame, path: str | Path, title: str = "") -> Figure:
    """Test energy and force RMSE by phase against labels so far, one line per campaign (log scale)."""
    fig, axes = subplots(2, 3, figsize=(13, 7), sharex=True)
    for col, phase in enumerate(("crystal", "liquid", "dilute")):
        for campaign, rows in table.groupby("campaign", sort=False):
            rows = rows.sort_values("labels")
            axes[0, col].plot(rows.labels, rows[f"{phase}_energy_rmse_mev"], "o-", label=campaign)
            axes[1, col].plot(rows.labels, rows[f"{phase}_force_rmse_mev_per_a"], "o-", label=campaign)
        axes[0, col].set_title(phase)
        axes[0, col].set_yscale("log")
        axes[1, col].set_yscale("log")
        axes[1, col].set_xlabel("labels so far")
    for row, limit in ((0, 3.0), (1, 50.0)):
        for ax in axes[row]:
            ax.axhline(limit, color="0.5", ls=":", lw=1)
    axes[0, 0].set_ylabel("test energy RMSE (meV/atom)")
    axes[1, 0].set_ylabel("test force RMSE (meV/Å)")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path, dpi=110)


def markdown_table(table: pd.DataFrame, columns: list[str]) -> str:
    """A Markdown table of the chosen columns (numbers to 3 significant figures)."""

    def cell(value):
        if isinstance(value, (float, np.floating)):
            return "-" if not np.isfinite(value) else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)
