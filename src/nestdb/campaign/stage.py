"""The campaign stages of the workflow: the oracle's test set and the learning curve against it."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from ase.io import read

from nestdb.campaign.learning_curve import campaign_curve, plot_learning_curve
from nestdb.campaign.testset import DEFAULT_TEST_SET, make_test_set
from nestdb.io import write_json

log = logging.getLogger(__name__)


def test_set_stage(
    oracle_spec: dict,
    composition: dict[str, int],
    settings: dict,
    ns_defaults: dict,
    out_path: str | Path,
    summary_path: str | Path,
) -> dict:
    """The oracle's test set and a JSON summary of its classes (rule ``bench_test_set``).

    The test set is :func:`~nestdb.campaign.testset.make_test_set`'s.
    """
    frames = make_test_set(oracle_spec, composition, settings, ns_defaults, out_path)
    summary = {
        "n_configs": len(frames),
        "phase": dict(Counter(a.info["phase_class"] for a in frames)),
        "t_bin": dict(Counter(a.info["t_bin"] for a in frames)),
        "pressure": dict(Counter(f"{a.info['pressure']:g}" for a in frames)),
        "settings": {**DEFAULT_TEST_SET, **(settings or {})},
    }
    write_json(summary_path, summary)
    return summary


def learning_curve_stage(
    test_set_path: str | Path,
    results_dir: str | Path,
    n_cycles: int,
    name: str,
    table_path: str | Path,
    json_path: str | Path,
    plot_path: str | Path,
) -> pd.DataFrame:
    """Every cycle's model of a campaign on the oracle's test set (rule ``bench_learning_curve``): table, JSON, plot."""
    frames = read(test_set_path, index=":")
    rows, details = campaign_curve(name, results_dir, frames, n_cycles)
    table = pd.DataFrame(rows)
    table.to_csv(table_path, index=False)
    write_json(json_path, {"rows": rows, "by_cycle": {str(k): v for k, v in details.items()}})
    plot_learning_curve(table, plot_path, title=f"{name}: test errors against the oracle")
    for row in rows:
        log.info(
            "cycle %d, %d labels: crystal %.2f, liquid %.2f, dilute %.2f meV/atom; Spearman %s",
            row["cycle"],
            row["labels"],
            row["crystal_energy_rmse_mev"],
            row["liquid_energy_rmse_mev"],
            row["dilute_energy_rmse_mev"],
            row["spearman"],
        )
    return table
