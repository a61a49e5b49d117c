"""Results of a ``fit.hyperopt`` study: trial records, Pareto front, the choice, table, summary and plot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nestdb.errors import DataError
from nestdb.fit.settings import FLOAT_KEYS
from nestdb.plotting import save, subplots


def completed_trials(study) -> list[dict]:
    """One record per complete trial: number, settings, errors, loss, functions, time, worker."""
    from optuna.trial import TrialState  # optional: optuna is installed for fit.hyperopt only

    records = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        result = trial.user_attrs.get("result")
        if result is None or not np.isfinite(result["loss"]):
            continue
        records.append(
            {
                "number": trial.number,
                **result,
                "worker": trial.user_attrs.get("worker"),
                "fit_settings": bool(trial.user_attrs.get("fit_settings", False)),
            }
        )
    return records


def pareto_front(records: list[dict]) -> list[dict]:
    """Trials no other trial beats in both loss and number of functions, by increasing size."""
    front = []
    for record in sorted(records, key=lambda r: (r["n_functions"], r["loss"])):
        if not front or record["loss"] < front[-1]["loss"]:
            front.append(record)
    return front


def select_trial(records: list[dict], rule: str, tolerance: float) -> dict:
    """The chosen trial: ``best`` loss, ``knee`` of the Pareto front, or the smallest ``within`` tolerance.

    The knee minimises the sum of the front's loss and log(size), each scaled
    to [0, 1] over the front (the point farthest below the line joining its ends).
    """
    if not records:
        raise DataError("the hyperparameter study has no complete trial with finite loss")
    best = min(records, key=lambda r: r["loss"])
    if rule == "best":
        return best
    front = pareto_front(records)
    if rule == "within":
        return min((r for r in front if r["loss"] <= best["loss"] * (1.0 + tolerance)), key=lambda r: r["n_functions"])
    loss = np.array([r["loss"] for r in front])
    size = np.log(np.array([r["n_functions"] for r in front], dtype=float))

    def unit(values):
        span = np.ptp(values)
        return (values - values.min()) / span if span > 0 else np.zeros_like(values)

    return front[int(np.argmin(unit(loss) + unit(size)))]


def _flat(record: dict) -> dict:
    settings = record["settings"]
    return {
        "trial": record["number"],
        "loss": record["loss"],
        "n_functions": record["n_functions"],
        "energy_rmse_mev_per_atom": record["energy_rmse_mev_per_atom"],
        "force_rmse_mev_per_a": record["force_rmse_mev_per_a"],
        "virial_rmse_mev_per_atom": record["virial_rmse_mev_per_atom"],
        "cutoff": settings["cutoff"],
        "nradmax_by_orders": " ".join(map(str, settings["nradmax_by_orders"])),
        "lmax_by_orders": " ".join(map(str, settings["lmax_by_orders"])),
        **{key: settings[key] for key in FLOAT_KEYS},
        "seconds": record["seconds"],
        "worker": record["worker"],
        "fit_settings": record["fit_settings"],
    }


def write_trials_csv(records: list[dict], path: str | Path) -> None:
    """Every complete trial, one row each, by trial number."""
    rows = [_flat(r) for r in sorted(records, key=lambda r: r["number"])]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_summary(result: dict, records: list[dict], path: str | Path) -> None:
    """Markdown for the workflow report: the choice, the Pareto front and the config's own settings."""
    columns = [
        "trial",
        "n_functions",
        "loss",
        "energy_rmse_mev_per_atom",
        "force_rmse_mev_per_a",
        "cutoff",
        "nradmax_by_orders",
        "lmax_by_orders",
        *FLOAT_KEYS,
    ]
    header = [
        "trial",
        "functions",
        "loss",
        "E (meV/atom)",
        "F (meV/Å)",
        "cutoff",
        "nradmax",
        "lmax",
        "E weight",
        "V weight",
        "prior p",
        "l weight",
    ]

    def row(record, mark=""):
        flat = _flat(record)
        cells = [f"{flat[c]:.4g}" if isinstance(flat[c], float) else str(flat[c]) for c in columns]
        return "| " + " | ".join([cells[0] + mark] + cells[1:]) + " |"

    objective = result["objective"]
    lines = [
        f"# Hyperparameter study ({result['n_complete']} complete trials)",
        "",
        f"Objective: {objective['energy']:g} RMSE_E (meV/atom) + {objective['force']:g} RMSE_F (meV/Å) + "
        f"{objective['virial']:g} RMSE_V (meV/atom), {result['cv']['folds']}-fold cross-validation "
        f"x {result['cv']['repeats']} on {result['cv']['n_configs']} configurations. "
        f"Chosen: trial {result['trial']} ({result['select']}, tolerance {result['tolerance']:g}).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += [row(r, " (chosen)" if r["number"] == result["trial"] else "") for r in result["pareto_front"]]
    if result["fit_settings_trial"] is not None:
        lines += [row(result["fit_settings_trial"], " (config's fit settings)")]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")


def plot_pareto(records: list[dict], chosen: dict, path: str | Path, objective: dict | None = None) -> Figure:
    """Loss against number of basis functions: every trial, the Pareto front, the choice."""
    front = pareto_front(records)
    fig, ax = subplots(figsize=(6.5, 4.5))
    ax.scatter([r["n_functions"] for r in records], [r["loss"] for r in records], s=10, color="0.65", label="trials")
    ax.plot(
        [r["n_functions"] for r in front],
        [r["loss"] for r in front],
        "o-",
        color="tab:blue",
        ms=4,
        label="Pareto front",
    )
    reference = [r for r in records if r["fit_settings"]]
    if reference:
        ax.scatter(
            [reference[0]["n_functions"]],
            [reference[0]["loss"]],
            marker="s",
            s=60,
            facecolor="none",
            edgecolor="tab:red",
            label="config's fit settings",
        )
    ax.scatter(
        [chosen["n_functions"]],
        [chosen["loss"]],
        marker="*",
        s=160,
        color="tab:orange",
        zorder=5,
        label=f"chosen (trial {chosen['number']})",
    )
    ax.set_xscale("log")
    ax.set_xlabel("basis functions")
    weights = objective or {"energy": 1.0, "force": 0.1, "virial": 0.0}
    ax.set_ylabel(
        f"CV loss = {weights['energy']:g} E + {weights['force']:g} F"
        + (f" + {weights['virial']:g} V" if weights["virial"] else "")
    )
    ax.legend(fontsize=8)
    return save(fig, path, dpi=120)
