"""fit.hyperopt: column-subset rows, cross-validation from cached normal equations, the optuna study
(tiny, on EMT-labelled Al), resuming a killed study, the choice feeding the fit, bad keys, the DAG."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

pytest.importorskip("pyace")
pytest.importorskip("optuna")

from nestdb.errors import ConfigError  # noqa: E402
from nestdb.fit import compute_features, fit_linear_ace, validate_fit_settings  # noqa: E402
from nestdb.fit.bayesian import bayesian_ridge  # noqa: E402
from nestdb.fit.features import build_basis  # noqa: E402
from nestdb.fit.hyperopt import (  # noqa: E402
    HyperoptProblem,
    apply_hyperopt_result,
    largest_basis_settings,
    open_study,
    run_study,
    seed_feature_cache,
    study_name,
    summarise_study,
)
from nestdb.fit.hyperopt_cv import CrossValidation, FunctionTable, stratified_folds  # noqa: E402
from nestdb.fit.hyperopt_report import completed_trials, plot_pareto, select_trial  # noqa: E402
from nestdb.fit.linear_ace import _equations, prior_weights  # noqa: E402
from nestdb.fit.settings import validate_hyperopt_settings  # noqa: E402
from nestdb.fit.stage import fit_hyperopt_rows, fit_hyperopt_summary, fit_hyperopt_worker  # noqa: E402

from conftest import REPO, snakemake  # noqa: E402

LARGE = {"cutoff": 5.0, "nradmax_by_orders": [6, 3, 2], "lmax_by_orders": [0, 2, 1]}
SMALL = {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 1, 1]}


def _label(atoms: Atoms) -> Atoms:
    atoms.calc = EMT()
    atoms.info["dft_energy"] = atoms.get_potential_energy()
    atoms.arrays["dft_forces"] = atoms.get_forces()
    atoms.info["dft_virial"] = (-atoms.get_stress(voigt=False) * atoms.get_volume()).reshape(9)
    atoms.calc = None
    return atoms


def emt_frames(n: int, seed: int = 0, alloy: bool = False) -> list[Atoms]:
    """Rattled, strained 8-atom fcc Al (or Al-Cu) cells labelled with EMT."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1)
        if alloy:
            atoms.numbers = np.where(rng.random(len(atoms)) < 0.4, 29, 13)
        atoms.set_cell(
            atoms.cell @ (np.eye(3) * rng.uniform(0.95, 1.05) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True
        )
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.info["config_type"] = f"emt_{i}"
        frames.append(_label(atoms))
    return frames


def _e0(symbol: str) -> float:
    atom = Atoms(symbol, cell=[20, 20, 20])
    atom.calc = EMT()
    return atom.get_potential_energy()


def fit_settings(**changes) -> dict:
    base = {
        "elements": ["Al"],
        "reference_energies": {"Al": _e0("Al")},
        "fit_reference_energies": True,
        "energy_weight": 9.0,
        "virial_weight": 0.3,
        "committee_size": 4,
        "calibration_fraction": 0.0,
        "test_fraction": 0.0,
        "refit_on_all_data": False,
        **LARGE,
    }
    return validate_fit_settings({**base, **changes})


TINY_SEARCH = {
    "n_trials": 4,
    "n_startup_trials": 2,
    "cv_folds": 3,
    "min_nradmax_by_orders": [2, 1, 1],
    "min_lmax_by_orders": [0, 0, 0],
    "energy_weight": [3.0, 30.0],
    "smoothness_prior": [0.0, 4.0],
}


@pytest.fixture(scope="module")
def frames():
    return emt_frames(14)


@pytest.mark.parametrize("alloy", [False, True])
def test_smaller_basis_rows_are_exact_columns_of_the_larger(alloy):
    frames = emt_frames(3, seed=1, alloy=alloy)
    elements = ["Al", "Cu"] if alloy else ["Al"]
    large = fit_settings(elements=elements, reference_energies={e: 0.0 for e in elements})
    small = dict(large, **SMALL)
    big_rows, _ = compute_features(frames, large)
    small_rows, _ = compute_features(frames, small)
    table = FunctionTable.from_basis(build_basis(large))
    columns = table.columns_of(build_basis(small))
    # the size rule (n <= nradmax, l <= lmax per rank) names exactly the functions pyace builds
    assert sorted(columns) == list(table.mask(SMALL["nradmax_by_orders"], SMALL["lmax_by_orders"]))
    assert 0 < len(columns) < table.n_functions
    for big, direct in zip(big_rows, small_rows, strict=True):
        assert np.array_equal(big.phi[columns], direct.phi)
        assert np.array_equal(big.force_rows[:, columns], direct.force_rows)
        assert np.array_equal(big.virial_rows[:, columns], direct.virial_rows)
    with pytest.raises(ConfigError, match="max_nradmax_by_orders"):
        FunctionTable.from_basis(build_basis(small)).columns_of(build_basis(large))


def test_a_rank_with_more_radial_functions_than_rank_1_is_no_subset():
    """pyace builds every rank's radial functions from nradmax_by_orders[0] of them: [2, 3, 1]'s n = 3
    functions differ from [6, 3, 2]'s, so such sizes are refused (and never suggested)."""
    frames = emt_frames(2, seed=2)
    large = fit_settings()
    table = FunctionTable.from_basis(build_basis(large))
    bad = dict(large, nradmax_by_orders=[2, 3, 1], lmax_by_orders=[0, 2, 1])
    keys = {key: i for i, key in enumerate(table.keys)}
    columns = [keys[key] for key in FunctionTable.from_basis(build_basis(bad)).keys]  # the same names...
    big_rows, _ = compute_features(frames, large)
    bad_rows, _ = compute_features(frames, bad)
    assert not np.allclose(big_rows[0].phi[columns], bad_rows[0].phi)  # ...but other functions
    with pytest.raises(ConfigError, match="more radial functions than rank 1"):
        table.columns_of(build_basis(bad))
    with pytest.raises(ConfigError, match="more radial functions than rank 1"):
        table.mask([2, 3, 1], [0, 2, 1])
    edge = dict(large, nradmax_by_orders=[2, 2, 2], lmax_by_orders=[0, 2, 1])  # equal counts are a subset
    edge_rows, _ = compute_features(frames, edge)
    assert np.array_equal(big_rows[0].force_rows[:, table.columns_of(build_basis(edge))], edge_rows[0].force_rows)


def test_column_subset_fit_equals_the_direct_fit_and_pyace_evaluates_it(frames, tmp_path):
    from pyace import PyACECalculator

    large = fit_settings()
    small = dict(large, **SMALL, smoothness_prior=2.0, smoothness_l_weight=1.5, energy_weight=20.0)
    rows, _ = compute_features(frames, large)
    cv = CrossValidation(
        frames, rows, FunctionTable.from_basis(build_basis(large)), large, [stratified_folds(frames, 3, seed=0)]
    )
    columns, subset_fit = cv.fit(small)
    # the real fit of the small basis (its own pyace rows, its own normal equations)
    metrics = fit_linear_ace(frames, small, tmp_path / "direct")
    with np.load(tmp_path / "direct" / "committee.npz") as model:
        direct_mean, reference = model["mean"], float(model["reference_energies"][0])
    small_basis = build_basis(small)
    order = FunctionTable.from_basis(build_basis(large)).columns_of(small_basis)
    position = {c: k for k, c in enumerate(columns)}
    subset_in_small_order = subset_fit.mean[[position[c] for c in order]]
    np.testing.assert_allclose(subset_in_small_order, direct_mean, rtol=1e-6, atol=1e-9 * np.abs(direct_mean).max())
    # (to the tolerance of the evidence iterations, 1e-8 relative on the coefficients)
    assert reference == pytest.approx(large["reference_energies"]["Al"] + subset_fit.mean[-1], abs=1e-6)
    assert metrics["n_functions"] == len(order)
    # pyace evaluating the small basis with the subset coefficients gives the column-subset energy
    small_basis.basis_coeffs = subset_in_small_order
    for atoms, row in zip(frames[:4], rows[:4], strict=True):
        predicted = row.phi[columns[columns < len(row.phi)]] @ subset_fit.mean[:-1]
        probe = atoms.copy()
        probe.calc = PyACECalculator(small_basis)
        assert probe.get_potential_energy() == pytest.approx(predicted, abs=1e-9 * len(atoms))
    # the same equations as the fit's own accumulation
    direct_rows, _ = compute_features(frames, small)
    equations = _equations(direct_rows, frames, np.arange(len(frames)), small)
    refit = bayesian_ridge(equations, prior_weights=prior_weights(small_basis, small))
    np.testing.assert_allclose(refit.mean[:-1], direct_mean, rtol=1e-8, atol=1e-12)


def test_cross_validation_errors_are_those_of_refits_per_fold(frames):
    large = fit_settings()
    params = dict(large, **SMALL, energy_weight=15.0)
    folds = stratified_folds(frames, 3, seed=4)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(frames)))
    rows, _ = compute_features(frames, large)
    table = FunctionTable.from_basis(build_basis(large))
    result = CrossValidation(frames, rows, table, large, [folds]).evaluate(params)
    small_rows, _ = compute_features(frames, params)
    small_basis = build_basis(params)
    energy_errors, force_errors, virial_errors = [], [], []
    for k, held_out in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        fit = bayesian_ridge(
            _equations(small_rows, frames, train, params), prior_weights=prior_weights(small_basis, params)
        )
        for i in held_out:
            atoms, row = frames[i], small_rows[i]
            energy = row.phi @ fit.mean[:-1] + len(atoms) * (fit.mean[-1] + params["reference_energies"]["Al"])
            energy_errors.append((energy - atoms.info["dft_energy"]) / len(atoms))
            force_errors.append(row.force_rows @ fit.mean[:-1] - atoms.arrays["dft_forces"].reshape(-1))
            virial_errors.append((row.virial_rows @ fit.mean[:-1] - atoms.info["dft_virial"]) / len(atoms))
    rmse = lambda values: 1000 * np.sqrt(np.mean(np.square(np.concatenate(values))))  # noqa: E731
    assert result["energy_rmse_mev_per_atom"] == pytest.approx(rmse([np.array(energy_errors)]), rel=1e-6)
    assert result["force_rmse_mev_per_a"] == pytest.approx(rmse(force_errors), rel=1e-6)
    assert result["virial_rmse_mev_per_atom"] == pytest.approx(rmse(virial_errors), rel=1e-5)
    assert result["n_functions"] == len(small_basis.basis_coeffs) and result["finite"]


def test_tiny_study_chooses_and_feeds_the_fit(frames, tmp_path):
    settings = fit_settings(feature_cache=str(tmp_path / "cache"), hyperopt=dict(TINY_SEARCH, cutoffs=[4.5, 5.0]))
    summary = run_study(frames, settings, None, tmp_path / "study")
    assert summary["n_complete"] == 4 and summary["n_run"] == 4
    best = summarise_study(frames, settings, None, tmp_path / "study")
    study = open_study(
        tmp_path / "study",
        study_name(frames, settings, validate_hyperopt_settings(settings["hyperopt"], settings)),
        settings["hyperopt"],
    )
    trials = study.trials
    assert all(
        max(t.user_attrs["result"]["settings"]["nradmax_by_orders"])
        == t.user_attrs["result"]["settings"]["nradmax_by_orders"][0]
        for t in trials
    )
    for name in ("best.json", "trials.csv", "summary.md", "pareto.png"):
        assert (tmp_path / "study" / name).is_file()
    written = json.loads((tmp_path / "study" / "best.json").read_text())
    assert written["trial"] == best["trial"]
    # the Pareto figure: every trial of trials.csv, the front and the choice of best.json
    table = pd.read_csv(tmp_path / "study" / "trials.csv")
    ax = plot_pareto(completed_trials(study), written["chosen"], tmp_path / "again.png", written["objective"]).axes[0]
    assert ax.get_xlabel() == "basis functions" and ax.get_ylabel().startswith("CV loss = 1 E + 0.1 F")
    scatters = {c.get_label(): c.get_offsets() for c in ax.collections}
    np.testing.assert_allclose(
        sorted(map(tuple, scatters["trials"])), sorted(zip(table.n_functions, table.loss, strict=True))
    )
    (front,) = ax.lines
    front_points = [(r["n_functions"], r["loss"]) for r in written["pareto_front"]]
    np.testing.assert_allclose(np.transpose(front.get_data()), front_points)
    chosen = written["chosen"]
    np.testing.assert_allclose(
        scatters[f"chosen (trial {chosen['number']})"], [[chosen["n_functions"], chosen["loss"]]]
    )
    # trial 0 is the config's own fit settings; the choice is on the Pareto front
    assert best["fit_settings_trial"]["number"] == 0
    assert best["fit_settings_trial"]["settings"]["nradmax_by_orders"] == LARGE["nradmax_by_orders"]
    assert best["trial"] in [r["number"] for r in best["pareto_front"]]
    assert "(chosen)" in (tmp_path / "study" / "summary.md").read_text()
    chosen = apply_hyperopt_result(dict(settings), tmp_path / "study" / "best.json")
    assert {k: chosen[k] for k in best["settings"]} == best["settings"]
    # the chosen (and a smaller) basis's rows seeded from the largest basis equal pyace's own rows for it
    hyperopt = validate_hyperopt_settings(settings["hyperopt"], settings)
    for changes in (best["settings"], dict(best["settings"], **SMALL)):
        assert seed_feature_cache(frames, settings, hyperopt, changes, tmp_path / "cache") == len(frames)
        target = validate_fit_settings(dict(settings, **changes))
        cached, info = compute_features(frames, target, cache_dir=tmp_path / "cache")
        direct, _ = compute_features(frames, target)
        assert info["n_cached"] == len(frames)
        for a, b in zip(cached, direct, strict=True):
            assert np.array_equal(a.force_rows, b.force_rows) and np.array_equal(a.virial_rows, b.virial_rows)
    # a second run of the finished study adds nothing
    assert run_study(frames, settings, None, tmp_path / "study")["n_run"] == 0


def test_size_budget_prunes_larger_trials(frames, tmp_path):
    from optuna.trial import TrialState

    settings = fit_settings(hyperopt=dict(TINY_SEARCH, cost_objective=False, max_functions=15, n_trials=3))
    run_study(frames, settings, None, tmp_path / "study")
    result = summarise_study(frames, settings, None, tmp_path / "study")
    hyperopt = validate_hyperopt_settings(settings["hyperopt"], settings)
    study = open_study(tmp_path / "study", study_name(frames, settings, hyperopt), hyperopt)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert study.trials[0].state == TrialState.PRUNED  # the config's own basis: 34 functions
    assert all(r["n_functions"] <= 15 for r in result["pareto_front"]) and result["chosen"]["n_functions"] <= 15


_WORKER = """
import sys
sys.path.insert(0, {tests!r})
from test_fit_hyperopt import emt_frames, fit_settings, TINY_SEARCH
from nestdb.fit.hyperopt import run_study
settings = fit_settings(feature_cache={cache!r}, hyperopt=dict(TINY_SEARCH, n_trials=400, cv_folds=2))
run_study(emt_frames(14), settings, None, {study!r})
"""


def test_killed_study_resumes_with_its_trials(frames, tmp_path):
    import optuna
    from optuna.trial import TrialState

    settings = fit_settings(feature_cache=str(tmp_path / "cache"), hyperopt=dict(TINY_SEARCH, n_trials=400, cv_folds=2))
    hyperopt = validate_hyperopt_settings(settings["hyperopt"], settings)
    name = study_name(frames, settings, hyperopt)
    script = _WORKER.format(
        tests=str(Path(__file__).parent), cache=str(tmp_path / "cache"), study=str(tmp_path / "study")
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        complete = []
        lock = tmp_path / "study" / "study.journal.lock"
        while time.monotonic() < deadline and len(complete) < 5:
            time.sleep(0.5)
            assert process.poll() is None, "the study finished or failed before it could be killed"
            if (tmp_path / "study" / "study.journal").exists():
                study = open_study(tmp_path / "study", name, hyperopt)
                complete = study.get_trials(states=(TrialState.COMPLETE,))
        os.killpg(process.pid, signal.SIGKILL)  # no clean-up: as a cancelled SLURM job
    finally:
        process.wait()
    # killed while appending, the process leaves its lock file: optuna releases it after a 30 s grace
    # period (what a resumed job waits); removed here to keep the test fast
    lock.unlink(missing_ok=True)
    assert len(complete) >= 5
    before = {
        t.number: t.values
        for t in open_study(tmp_path / "study", name, hyperopt).get_trials(states=(TrialState.COMPLETE,))
    }
    # a trial of worker 0 left RUNNING (asked, never told: its process died)
    study = open_study(tmp_path / "study", name, hyperopt)
    orphan = study.ask({"energy_weight": optuna.distributions.FloatDistribution(3.0, 30.0, log=True)})
    orphan.set_user_attr("worker", 0)
    target = len(before) + 3
    summary = run_study(
        frames, dict(settings, hyperopt=dict(settings["hyperopt"], n_trials=target)), None, tmp_path / "study"
    )
    assert summary["n_recovered"] >= 1 and summary["n_complete"] == target
    study = open_study(tmp_path / "study", name, hyperopt)
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[number] == values for number, values in before.items())  # finished trials kept
    assert study.trials[orphan.number].state == TrialState.FAIL
    # left RUNNING only: a trial killed between its creation and naming its worker (nothing to retry)
    assert all(not t.params and "worker" not in t.user_attrs for t in study.get_trials(states=(TrialState.RUNNING,)))
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == orphan.number]
    assert retried and retried[0].params["energy_weight"] == orphan.params["energy_weight"]


_PARALLEL_WORKER = """
import os, sys, time
sys.path.insert(0, {tests!r})
from test_fit_hyperopt import emt_frames, fit_settings, TINY_SEARCH
from nestdb.fit.hyperopt import run_study
settings = fit_settings(feature_cache={cache!r}, hyperopt=dict(TINY_SEARCH, n_trials=40, cv_folds=2))
frames = emt_frames(14)
open("ready_{worker}", "w").close()
while not os.path.exists("go"):  # both workers start their trials together
    time.sleep(0.01)
run_study(frames, settings, None, {study!r}, worker={worker})
"""


def test_two_worker_processes_share_one_study(frames, tmp_path):
    """As two SLURM jobs: separate processes append to one journal file; the study gets n_trials in all."""
    from optuna.trial import TrialState

    settings = fit_settings(feature_cache=str(tmp_path / "cache"), hyperopt=dict(TINY_SEARCH, n_trials=40, cv_folds=2))
    compute_features(
        frames,
        largest_basis_settings(settings, validate_hyperopt_settings(settings["hyperopt"], settings), 5.0),
        cache_dir=tmp_path / "cache",
    )  # the rows rule's job
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PARALLEL_WORKER.format(
                    tests=str(Path(__file__).parent),
                    cache=str(tmp_path / "cache"),
                    study=str(tmp_path / "study"),
                    worker=k,
                ),
            ],
            cwd=tmp_path,
        )
        for k in range(2)
    ]
    deadline = time.monotonic() + 240
    while not all((tmp_path / f"ready_{k}").exists() for k in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    hyperopt = validate_hyperopt_settings(settings["hyperopt"], settings)
    study = open_study(tmp_path / "study", study_name(frames, settings, hyperopt), hyperopt)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert 40 <= len(complete) <= 41  # the callback stops each worker after a trial that reached 40
    assert {t.user_attrs["worker"] for t in complete} == {0, 1}
    assert len({t.number for t in study.trials}) == len(study.trials)


def test_select_rules():
    records = [
        {"number": i, "loss": loss, "n_functions": n}
        for i, (loss, n) in enumerate([(1.00, 900), (1.01, 400), (1.05, 200), (1.50, 50), (1.02, 800), (3.0, 10)])
    ]
    assert select_trial(records, "best", 0.0)["number"] == 0
    assert select_trial(records, "within", 0.02)["number"] == 1
    assert select_trial(records, "within", 0.1)["number"] == 2
    assert select_trial(records, "knee", 0.0)["number"] in (1, 2, 3)


@pytest.mark.parametrize(
    "hyperopt, key",
    [
        ({"n_trails": 3}, "fit.hyperopt.n_trails"),
        ({"energy_weight": [10.0, 1.0]}, "fit.hyperopt.energy_weight"),
        ({"virial_weight": [0.0, 1.0]}, "fit.hyperopt.virial_weight"),
        ({"select": "fastest"}, "fit.hyperopt.select"),
        ({"objective": {"energy": 1.0, "stress": 1.0}}, "fit.hyperopt.objective"),
        ({"cv_folds": 1}, "fit.hyperopt.cv_folds"),
        ({"max_nradmax_by_orders": [6, 3]}, "fit.hyperopt.max_nradmax_by_orders"),
        ({"min_nradmax_by_orders": [8, 1, 1]}, "fit.hyperopt.min_nradmax_by_orders"),
        ({"enabled": "yes"}, "fit.hyperopt.enabled"),
    ],
)
def test_bad_hyperopt_settings_name_the_key(hyperopt, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        settings = fit_settings(hyperopt=hyperopt)  # own keys are checked with the fit settings
        validate_hyperopt_settings(settings["hyperopt"], settings)  # the rest against the fit's basis


def test_workflow_steps_and_missing_rows_cache(frames, tmp_path):
    from ase.io import write

    path = tmp_path / "labelled.extxyz"
    write(path, frames)
    settings = dict(fit_settings(feature_cache=None, hyperopt=dict(TINY_SEARCH, n_trials=3)), test_fraction=0.25)
    study = tmp_path / "hyperopt"
    rows = fit_hyperopt_rows([path], settings, study, 0, output=study / "rows_0.json")
    assert rows["n_computed"] == len(frames) and (study / "rows").is_dir()  # no fit cache: the study's own
    worker = fit_hyperopt_worker([path], settings, study, 0, output=study / "worker_0.json")
    assert worker["n_complete"] == 3 and json.loads((study / "worker_0.json").read_text())["n_run"] == 3
    best = fit_hyperopt_summary([path], settings, study)
    assert best["cv"]["n_configs"] == len(frames) - round(0.25 * len(frames))  # the fit's training part only
    with pytest.raises(ConfigError, match="cutoff number 3"):
        fit_hyperopt_rows([path], settings, study, 3)
    large = largest_basis_settings(
        validate_fit_settings(settings),
        validate_hyperopt_settings(settings["hyperopt"], validate_fit_settings(settings)),
        5.0,
    )
    assert (
        HyperoptProblem(
            frames[:6],
            validate_fit_settings(settings),
            validate_hyperopt_settings(dict(TINY_SEARCH, cv_folds=2), validate_fit_settings(settings)),
            None,
        ).rows(5.0)[2]["n_computed"]
        == 6
    )
    assert large["nradmax_by_orders"] == LARGE["nradmax_by_orders"]


def test_dry_run_hyperopt_feeds_the_fit(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["fit"]["hyperopt"] = {"enabled": True, "n_workers": 3, "cutoffs": [5.0, 5.5], "n_trials": 20}
    path = tmp_path / "hyperopt.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert result.returncode == 0, result.stderr
    jobs = result.stdout.split("\nrule ")
    fits = [job for job in jobs if job.startswith("fit:")]
    assert len(fits) == 2 and all("results/fit/cycle" in job and "/hyperopt/best.json" in job for job in fits)
    assert sum(job.startswith("fit_hyperopt_worker:") for job in jobs) == 2 * 3
    assert sum(job.startswith("fit_hyperopt_rows:") for job in jobs) == 2 * 2
    summaries = [job for job in jobs if job.startswith("fit_hyperopt:")]
    assert len(summaries) == 2 and all("worker_2.json" in job for job in summaries)
    # disabled (the default): the fit does not wait for a study
    config["fit"]["hyperopt"]["enabled"] = False
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert result.returncode == 0 and "fit_hyperopt" not in result.stdout
