"""Oracle campaigns (issue 16): config checks and dry runs of the explore kinds, the oracle's test set,
learning-curve metrics, the hand-built baseline, melting statistics."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ase.build import bulk
from test_workflow import job_counts

from conftest import REPO, snakemake

EAM = {"type": "eam", "file": "Mg1.eam.fs"}


def _oracle_config(shared_mg, **changes) -> dict:
    config = yaml.safe_load((REPO / "config" / "oracle-mg.yaml").read_text())
    config["label"]["potential"]["file"] = str(shared_mg / "Mg1.eam.fs")
    for key, value in changes.items():
        config[key] = value
    return config


def _dry_run(tmp_path, config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))


def _baseline_cycles():
    return [
        {
            "ns": {"calculator": {"type": "lj"}},
            "explore": {"kind": "random_crystals", "count": 4},
            "select": {"kind": "random", "count": 3},
        },
        {
            "explore": {"kind": "md", "temperatures": [300, 2000], "steps": 40, "interval": 10},
            "select": {"kind": "trust_window", "sigma_lo": 2, "sigma_hi": 100, "count": 3},
        },
        {"select": {"kind": "trust_window", "sigma_lo": 2, "sigma_hi": 100, "count": 3}},
    ]


def test_dry_run_oracle_campaign(tmp_path, shared_mg):
    result = _dry_run(tmp_path, _oracle_config(shared_mg))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["ns"] == 4 * 4 and counts["fit"] == 4 and "explore" not in counts
    assert counts["bench_test_set"] == 1 and counts["bench_learning_curve"] == 1


def test_dry_run_explore_kinds_replace_ns_and_trust_window_on_ns_reads_the_committee(tmp_path, shared_mg):
    result = _dry_run(tmp_path, _oracle_config(shared_mg, cycles=_baseline_cycles()))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    # cycles 0 and 1 explore without NS at each of the 4 pressures; cycle 2 runs NS
    assert counts["explore"] == 2 * 4 and counts["ns"] == 4 and counts["select"] == 3 * 4
    assert "results/explore/cycle0/P15GPa/pool.extxyz" in result.stdout
    assert "results/analyse/cycle0/" not in result.stdout


def test_trust_window_on_ns_samples_scores_them_with_the_committee(tmp_path, shared_mg):
    """stages.select_run with a model: NS samples without committee_std get the committee's STD first."""
    import json

    from ase.io import read

    from nestdb.campaign.testset import oracle_label
    from nestdb.fit import fit_linear_ace
    from nestdb.models.calculators import make_calculator
    from nestdb.ns import NSSettings, output_paths, run_nested_sampling
    from nestdb.select.stage import select_run
    from nestdb.thermo.stage import analyse_run

    settings = NSSettings(
        n_walkers=8,
        walk_length=4,
        pressure_gpa=5.0,
        max_iter=300,
        converge_down_to_T=None,
        max_volume_per_atom=40.0,
        min_volume_per_atom=5.0,
        seed=3,
        snapshot_seconds=None,
    )
    prefix = tmp_path / "ns"
    run_nested_sampling({"Mg": 4}, make_calculator({"type": "lj"}), settings, prefix)
    paths = output_paths(prefix)
    frames = read(paths["traj"], index=":")
    assert "committee_std" not in frames[0].info
    oracle = make_calculator({"type": "eam", "file": str(shared_mg / "Mg1.eam.fs")})
    for atoms in (training := oracle_label(frames[::20], oracle)):
        atoms.info.update(cycle=0, pressure=5.0)
    fit_linear_ace(
        training,
        {
            "cutoff": 4.5,
            "nradmax_by_orders": [4, 2],
            "lmax_by_orders": [0, 1],
            "reference_energies": {"Mg": 0.0},
            "elements": ["Mg"],
            "committee_size": 4,
            "test_fraction": 0.0,
            "calibration_fraction": 0.0,
            "feature_cache": None,
        },
        tmp_path / "model",
    )
    analyse_run(
        paths["energies"],
        tmp_path / "thermo.csv",
        tmp_path / "temps.csv",
        tmp_path / "thermo.png",
        {"t_min": 50, "t_max": 4000, "t_step": 50},
    )
    rule = {"kind": "trust_window", "sigma_lo": 0.0, "sigma_hi": 1.0e9, "count": 4}
    chosen = select_run(
        paths["traj"],
        paths["summary"],
        tmp_path / "temps.csv",
        rule,
        1,
        5.0,
        0.0,
        tmp_path / "candidates.extxyz",
        tmp_path / "configs",
        tmp_path / "selection.png",
        final_path=paths["final"],
        model_dir=tmp_path / "model",
    )
    assert len(chosen) == 4 and all(a.info["committee_std"] > 0 for a in chosen)
    assert json.loads(paths["summary"].read_text())["n_iter"] > 0


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda c: c["cycles"][0]["ns"].update(calculator=dict(c["label"]["potential"], implementation="ase")),
            "is the same model as cycles\\[0\\].ns.calculator",
        ),
        (
            lambda c: c["cycles"][0].update(select={"kind": "trust_window", "sigma_lo": 1, "sigma_hi": 9, "count": 2}),
            "has no committee",
        ),
        (
            lambda c: c["cycles"][1].update(select={"kind": "trust_window", "sigma_lo": 9, "sigma_hi": 9, "count": 2}),
            "sigma_lo \\(9 meV/atom\\) must be below sigma_hi",
        ),
        (
            lambda c: c["cycles"][0].update(
                explore={"kind": "random_crystals", "space_groups": [194, 166, 169]},
                select={"kind": "random", "count": 3},
            ),
            "space group\\(s\\) 166, 169 cannot hold Mg16",
        ),
        (lambda c: c["cycles"][0].update(explore={"kind": "md"}), "needs nested-sampling thermodynamics"),
        (lambda c: c.update(label={"code": "gpaw"}), "bench.learning_curve needs an oracle"),
    ],
)
def test_bad_oracle_configs_are_refused_before_any_job(tmp_path, shared_mg, change, message):
    import re

    config = _oracle_config(shared_mg)
    change(config)
    result = _dry_run(tmp_path, config)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), (result.stdout + result.stderr)[-2000:]


def test_same_model_compares_content_and_parameters(tmp_path, shared_mg):
    from nestdb.config import same_model

    copy_of_eam = tmp_path / "copy.eam.fs"
    copy_of_eam.write_bytes((shared_mg / "Mg1.eam.fs").read_bytes())
    eam = {"type": "eam", "file": str(shared_mg / "Mg1.eam.fs")}
    assert same_model(eam, {"type": "eam", "file": str(copy_of_eam), "implementation": "ase"})
    assert not same_model(eam, {"type": "lj"})
    assert same_model({"type": "lj"}, {"type": "lj", "sigma": 2.918})
    assert not same_model({"type": "lj"}, {"type": "lj", "sigma": 3.0})


# --------------------------------------------------------------------------- test set, metrics, baselines
def test_classes_of_crystal_liquid_and_dilute(shared_mg):
    from nestdb.campaign.testset import classify, temperature_bin

    crystal = bulk("Mg", "hcp", a=3.2, c=5.2).repeat((2, 2, 2))
    assert classify(crystal, 23.0, 1.4) == "crystal"
    rng = np.random.default_rng(0)
    liquid = crystal.copy()
    liquid.positions += rng.normal(scale=0.9, size=liquid.positions.shape)
    assert classify(liquid, 23.0, 1.4) == "liquid"
    gas = liquid.copy()
    gas.set_cell(gas.cell * 1.5, scale_atoms=True)
    assert classify(gas, 23.0, 1.4) == "dilute"
    liquid.info["temp"] = 6000.0  # a supercritical fluid is no liquid
    assert classify(liquid, 23.0, 1.4, liquid_t_max=4000.0) == "dilute"
    assert temperature_bin(0.0).startswith("0 K") and temperature_bin(1500.0) == "1000-2000 K"
    assert temperature_bin(5000.0) == "> 2000 K"


def test_small_oracle_test_set_is_labelled_and_classed(tmp_path, shared_mg):
    from nestdb.campaign.testset import make_test_set

    oracle = {"type": "eam", "file": str(shared_mg / "Mg1.eam.fs")}
    settings = {
        "pressures": [0, 20],
        "n_walkers": 12,
        "walk_length": 6,
        "samples_per_run": 5,
        "crystals": ["hcp", "bcc"],
        "strained_per_crystal": 2,
    }
    ns = {
        "max_iter": 1200,
        "converge_down_to_T": 400,
        "max_volume_per_atom": 40.0,
        "min_volume_per_atom": 5.0,
        "kemax_max_T": 4000,
        "min_aspect_ratio": 0.6,
    }
    frames = make_test_set(oracle, {"Mg": 8}, settings, ns, tmp_path / "test_set.extxyz")
    assert len(frames) == 2 * (5 + 2 * 2)
    assert {a.info["test_source"] for a in frames} == {"ns", "strained_crystal"}
    assert all(a.info["phase_class"] in ("crystal", "liquid", "dilute") for a in frames)
    strained = [a for a in frames if a.info["test_source"] == "strained_crystal"]
    assert all(a.info["phase_class"] == "crystal" and a.info["temp"] == 0.0 for a in strained)
    # the labels are the oracle's: recompute one
    from nestdb.models.calculators import make_calculator

    atoms = frames[3].copy()
    atoms.calc = make_calculator(oracle)
    assert atoms.get_potential_energy() == pytest.approx(frames[3].info["dft_energy"], abs=1e-8)
    assert frames[3].arrays["dft_forces"].shape == (8, 3)
    # the dense runs at 20 GPa are smaller per atom than at 0 GPa
    v0 = [a.info["reference_volume_per_atom"] for a in frames if a.info["pressure"] == 0.0][0]
    v20 = [a.info["reference_volume_per_atom"] for a in frames if a.info["pressure"] == 20.0][0]
    assert v20 < v0


def test_hand_built_database_fills_the_budget(shared_mg):
    from nestdb.campaign.baselines import hand_built_database, melting_temperature
    from nestdb.models.calculators import make_calculator

    assert melting_temperature(1.0) == pytest.approx(1051.0) and melting_temperature(45.0) == pytest.approx(1623.0)
    oracle = make_calculator({"type": "eam", "file": str(shared_mg / "Mg1.eam.fs")})
    frames = hand_built_database(oracle, "Mg", 8, [0.0, 30.0], 13, md_steps=40)
    assert len(frames) == 13
    kinds = [a.info["hand_built"] for a in frames]
    assert kinds.count("crystal") == 6 and kinds.count("md") == 7
    assert len({a.info["config_id"] for a in frames}) == 13
    assert max(a.info["temp"] for a in frames) == pytest.approx(2 * melting_temperature(30.0))


def test_group_metrics_and_melting_statistics():
    from nestdb.campaign.learning_curve import _group_metrics
    from nestdb.campaign.melting import melting_statistics

    energy = np.array([0.001, -0.002, 0.003, 0.0, 0.004, -0.001])
    std = np.array([0.001, 0.002, 0.003, 0.0005, 0.004, 0.0005])
    forces = [np.full(3, 0.01)] * 6
    metrics = _group_metrics(energy, forces, std, list(range(6)))
    assert metrics["energy_rmse_mev"] == pytest.approx(1000 * np.sqrt(np.mean(energy**2)))
    assert metrics["force_rmse_mev_per_a"] == pytest.approx(10.0)
    assert metrics["spearman_std_vs_error"] > 0.9 and metrics["within_1_std"] == pytest.approx(5 / 6)
    stats = melting_statistics([{"melting_T": 1000.0}, {"melting_T": 1200.0}, {"melting_T": float("nan")}])
    assert stats == pytest.approx({"n_seeds": 3, "n_found": 2, "mean": 1100.0, "std": np.sqrt(2e4), "sem": 100.0})


def test_learning_curve_figure_draws_each_campaigns_rmse_against_labels(tmp_path):
    import pandas as pd

    from nestdb.campaign.learning_curve import plot_learning_curve

    rng = np.random.default_rng(0)
    rows = []
    for campaign, labels in (("nestdb", [40, 10, 25]), ("md", [30, 60])):  # unsorted: the plot sorts by labels
        for n in labels:
            row = {"campaign": campaign, "labels": n}
            for phase in ("crystal", "liquid", "dilute"):
                row[f"{phase}_energy_rmse_mev"] = rng.uniform(1, 30)
                row[f"{phase}_force_rmse_mev_per_a"] = rng.uniform(20, 300)
            rows.append(row)
    table = pd.DataFrame(rows)
    fig = plot_learning_curve(table, tmp_path / "lc.png", "title")
    axes = np.array(fig.axes).reshape(2, 3)
    assert (
        axes[0, 0].get_ylabel() == "test energy RMSE (meV/atom)"
        and axes[1, 0].get_ylabel() == "test force RMSE (meV/Å)"
    )
    for col, phase in enumerate(("crystal", "liquid", "dilute")):
        assert axes[0, col].get_title() == phase and axes[0, col].get_yscale() == "log"
        for row, column in ((0, f"{phase}_energy_rmse_mev"), (1, f"{phase}_force_rmse_mev_per_a")):
            lines = {line.get_label(): line for line in axes[row, col].lines if not line.get_label().startswith("_")}
            assert set(lines) == {"nestdb", "md"}
            for campaign, line in lines.items():
                expected = table[table.campaign == campaign].sort_values("labels")
                np.testing.assert_array_equal(line.get_data(), [expected.labels, expected[column]])


@pytest.mark.slow
def test_campaign_vs_baselines_smoke(tmp_path, shared_mg):
    """The whole comparison with tiny settings: three workflow campaigns, hand-built, test set, melting."""
    import json
    import subprocess
    import sys

    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "campaign_vs_baselines.py"),
            "--smoke",
            "--workdir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "campaign_vs_baselines_smoke.json").read_text())
    campaigns = {row["campaign"] for row in report["learning_curve"]}
    assert campaigns == {"nestdb", "random_crystals", "md", "hand-built"}
    nestdb = [row for row in report["learning_curve"] if row["campaign"] == "nestdb"]
    assert [row["cycle"] for row in nestdb] == [0, 1]
    assert nestdb[1]["labels"] > nestdb[0]["labels"] == report["per_cycle_labels_nestdb"][0]
    hand = [row for row in report["learning_curve"] if row["campaign"] == "hand-built"][0]
    assert hand["labels"] == sum(report["per_cycle_labels_nestdb"])
    for row in report["learning_curve"]:
        assert np.isfinite(row["crystal_energy_rmse_mev"]) and np.isfinite(row["ev_shape_rmse_mev"])
    assert {row["model"] for row in report["melting"]} == {"oracle", "nestdb cycle 1"}
    assert (out / "campaign_vs_baselines_smoke_learning_curve.png").is_file()  # its content: test below
    assert (tmp_path / "runs" / "md" / "results" / "explore" / "cycle1" / "P30GPa" / "pool.extxyz").is_file()
