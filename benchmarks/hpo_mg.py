"""Hyperparameter optimisation of the linear-ACE fit (``fit.hyperopt``) on the study's Mg data, nested in 5 splits.

For each of the five 80/20 splits of ``benchmarks/fit_mg.py --seeds 0,1,2,3,4``
(seed s: ``stratified_split(frames, 0.2, s)``, 911 train / 228 test), three
optuna studies (``STUDIES``: the Pareto front, the best loss, the best loss
with at most 457 functions) search cutoff, basis sizes per rank, energy/virial
weights and the smoothness prior with 5-fold x 2 cross-validation of that
split's *training* configurations only; the chosen settings are then fitted on the training
part by ``fit_linear_ace`` (the real fit: jackknife committee, calibration,
pyace predictions of the test set) and scored on the split's test set, which
the study never saw.  The config's hand-tuned settings are fitted the same
way on the same splits, so the comparison is paired.

Phases (each timed with wall and CPU seconds, load average)::

    nice .venv/bin/python benchmarks/hpo_mg.py --cache /work/models/rows_study --phase rows   # rows per cutoff
    nice .venv/bin/python benchmarks/hpo_mg.py --cache /work/models/rows_study                # studies + checks

``--phase rows`` computes the design rows of the largest basis at every
cutoff of the grid into the feature cache and records their cost in
``benchmarks/results/hpo_mg_rows.json``; the full run reads that record and
counts it in the total.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_mg import FILES, data_missing, fit_split, study_fit_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROWS_RECORD = RESULTS / "hpo_mg_rows.json"
#: The search: the largest basis is the study's (914 functions), so a trial's basis is never dearer.
HYPEROPT = {
    "cutoffs": [5.5, 6.0, 6.5],
    "max_nradmax_by_orders": [14, 10, 5],
    "max_lmax_by_orders": [0, 5, 3],
    "min_nradmax_by_orders": [4, 2, 1],
    "min_lmax_by_orders": [0, 1, 0],
    "energy_weight": [3.0, 100.0],
    "virial_weight": [0.01, 3.0],
    "smoothness_prior": [0.0, 5.0],
    "smoothness_l_weight": [0.5, 4.0],
    "objective": {"energy": 1.0, "force": 0.1, "virial": 0.0},
    "cost_objective": True,
    "cv_folds": 5,
    "cv_repeats": 2,
    "n_startup_trials": 20,
}
METRICS = (
    "test_energy_rmse_mev_per_atom",
    "test_force_rmse_mev_per_a",
    "test_virial_rmse_mev_per_atom",
    "test_spearman",
)


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (row workers)."""
    return sum(
        resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )


class Timer:
    """Wall and CPU seconds and the 1-minute load average at both ends of a block."""

    def __enter__(self):
        self.wall, self.cpu, self.load = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        self.result = {
            "wall_s": time.perf_counter() - self.wall,
            "cpu_s": cpu_seconds() - self.cpu,
            "load_average_before_after": [self.load, os.getloadavg()[0]],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="feature cache folder (rows of the largest basis per cutoff)")
    parser.add_argument("--phase", choices=["rows", "all"], default="all")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--n-trials", type=int, default=300, help="complete trials per split's study")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--cutoffs", default=None, help="comma-separated cutoff grid (default: the benchmark's)")
    parser.add_argument("--out", default="/tmp/hpo_mg", help="studies and models")
    parser.add_argument("--report", default=str(RESULTS / "hpo_mg.json"))
    args = parser.parse_args()
    if data_missing():
        return 0
    from nestdb.fit import load_training_frames
    from nestdb.fit.settings import validate_fit_settings

    hyperopt = dict(HYPEROPT, n_trials=args.n_trials)
    if args.cutoffs:
        hyperopt["cutoffs"] = [float(c) for c in args.cutoffs.split(",")]
    fit_settings = validate_fit_settings(
        study_fit_settings(n_jobs=args.n_jobs, feature_cache=args.cache, refit_on_all_data=False, hyperopt=hyperopt)
    )
    frames = load_training_frames(FILES)
    if args.phase == "rows":
        ROWS_RECORD.write_text(json.dumps(compute_rows(frames, fit_settings, args), indent=2) + "\n")
        return 0
    report = run_all(frames, fit_settings, args)
    Path(args.report).write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(json.dumps(report["comparison"], indent=2))
    return 0


def compute_rows(frames, fit_settings: dict, args) -> dict:
    """Rows of the largest basis at each cutoff into the cache (all 1139 configurations), timed per cutoff."""
    from nestdb.fit.features import compute_features
    from nestdb.fit.hyperopt import largest_basis_settings
    from nestdb.fit.settings import validate_hyperopt_settings

    hyperopt = validate_hyperopt_settings(fit_settings["hyperopt"], fit_settings)
    earlier = json.loads(ROWS_RECORD.read_text())["cutoffs"] if ROWS_RECORD.exists() else {}
    record = {"n_configs": len(frames), "n_jobs": args.n_jobs, "cpu_count": os.cpu_count(), "cutoffs": {}}
    for cutoff in hyperopt["cutoffs"]:
        with Timer() as timer:
            _, info = compute_features(
                frames, largest_basis_settings(fit_settings, hyperopt, cutoff), cache_dir=args.cache, n_jobs=args.n_jobs
            )
        entry = {**info, **timer.result}
        previous = earlier.get(str(cutoff), {})
        if info["n_computed"] == 0 and previous.get("basis_key") == info["basis_key"] and previous.get("n_computed"):
            entry = previous  # cached now: keep the cost measured when they were computed
        record["cutoffs"][str(cutoff)] = entry
        print(cutoff, entry, flush=True)
        ROWS_RECORD.write_text(json.dumps(record, indent=2) + "\n")  # after each cutoff: a kill keeps the rest
    return record


#: CPU seconds of the cutoff-6 rows of the 1139 configurations (914 functions) when fit_mg.py computed them:
#: results/fit_mg_linear_refit.json, 588 CPU-s for the whole fit of which rows were 310 of 349 s wall.
FIT_MG_ROWS_CPU_S = 588.0 * 310.0 / 349.0


#: The studies of each split: the Pareto front of CV loss vs basis size (multi-objective TPE, which
#: spends most trials on small bases), the lowest loss (single objective: the "beat" attempt), and the
#: lowest loss with at most half the hand-tuned basis's functions (the "2x fewer functions" attempt).
STUDIES = {
    "pareto": {"cost_objective": True},
    "best": {"cost_objective": False},
    "half": {"cost_objective": False, "max_functions": 457},
}
#: Candidates fitted on each split's training part and scored on its test set: (study, select rule).
CANDIDATES = {
    "hpo best": ("best", "best"),
    "hpo half": ("half", "best"),
    "pareto knee": ("pareto", "knee"),
    "pareto within 2 %": ("pareto", "within"),
}


def run_all(frames, fit_settings: dict, args) -> dict:
    """Per split: the studies on its training part, their choices fitted and scored on its test set."""
    from nestdb.fit.dataset import stratified_split
    from nestdb.fit.hyperopt import TUNED_FIT_KEYS, run_study, seed_feature_cache, summarise_study

    out = Path(args.out)
    report = {
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "n_trials": args.n_trials,
        "hyperopt": fit_settings["hyperopt"],
        "studies": STUDIES,
        "rows": json.loads(ROWS_RECORD.read_text()) if ROWS_RECORD.exists() else None,
        "splits": [],
    }
    logging.getLogger("nestdb").setLevel(logging.WARNING)  # the trials' lines would drown the summary
    with Timer() as total:
        for seed in [int(s) for s in args.seeds.split(",")]:
            train, _ = stratified_split(frames, 0.2, seed)
            training = [frames[i] for i in train]
            studies, chosen = {}, {}
            for name, changes in STUDIES.items():
                hyperopt = dict(fit_settings["hyperopt"], **changes)
                if name == "best":  # mostly large bases, ~1-2 s per trial: 40 % of the trials
                    hyperopt["n_trials"] = max(1, 2 * args.n_trials // 5)
                study_dir = out / f"seed{seed}" / name
                with Timer() as timer:
                    run = run_study(
                        training, fit_settings, hyperopt, study_dir, cache_dir=args.cache, n_jobs=args.n_jobs
                    )
                    for rule in ("best", "knee", "within"):
                        chosen[name, rule] = summarise_study(
                            training, fit_settings, dict(hyperopt, select=rule), study_dir
                        )
                studies[name] = {**run, **timer.result}
                print(f"split {seed}, study {name}: {timer.result}", flush=True)
            candidates = {"hand-tuned": {}}
            candidates.update({name: chosen[key]["settings"] for name, key in CANDIDATES.items()})
            fits: dict[str, dict] = {}
            fitted: dict[str, str] = {}  # resolved settings -> the candidate fitted with them
            with Timer() as fit_timer:
                for name, changes in candidates.items():
                    resolved = json.dumps({k: dict(fit_settings, **changes)[k] for k in TUNED_FIT_KEYS})
                    if resolved in fitted:  # the same settings: the same fit
                        fits[name] = fits[fitted[resolved]]
                        continue
                    fitted[resolved] = name
                    seed_feature_cache(frames, fit_settings, fit_settings["hyperopt"], changes, args.cache)
                    fits[name] = fit_split(
                        frames,
                        dict(fit_settings, **changes, seed=seed),
                        out / f"seed{seed}" / name.replace(" ", "_").replace("%", "pc"),
                    )
                    print(
                        f"  {name}: test E {fits[name]['test_energy_rmse_mev_per_atom']:.2f} meV/atom, "
                        f"F {fits[name]['test_force_rmse_mev_per_a']:.1f} meV/Å, "
                        f"{fits[name]['n_functions']} functions",
                        flush=True,
                    )
            cv_keys = ("number", "loss", "n_functions", "energy_rmse_mev_per_atom", "force_rmse_mev_per_a")
            report["splits"].append(
                {
                    "seed": seed,
                    "n_train": len(train),
                    "studies": studies,
                    "final_fits": fit_timer.result,
                    "cv": {name: {k: chosen[key]["chosen"][k] for k in cv_keys} for name, key in CANDIDATES.items()},
                    "cv_fit_settings_trial": chosen["pareto", "best"]["fit_settings_trial"],
                    "pareto_front": chosen["pareto", "best"]["pareto_front"],
                    "test": {
                        name: {
                            "settings": candidates[name] or "config/mg-study.yaml",
                            "model_dir": fit["model_dir"],
                            "n_functions": fit["n_functions"],
                            **{k: fit[k] for k in METRICS},
                        }
                        for name, fit in fits.items()
                    },
                }
            )
    report["total"] = total.result
    report["comparison"] = compare(report["splits"])
    report["calls_per_second"] = calls_per_second(report["splits"])
    report["timing"] = timing_summary(report)
    plot(report, Path(args.report).with_name(Path(args.report).stem + "_pareto.png"))
    return report


def compare(splits: list[dict]) -> dict:
    """Mean and SD over splits of every candidate's test errors, and paired differences to the hand-tuned fit."""
    names = list(splits[0]["test"])
    table = {}
    for name in names:
        values = {k: np.array([s["test"][name][k] for s in splits], dtype=float) for k in (*METRICS, "n_functions")}
        base = {k: np.array([s["test"]["hand-tuned"][k] for s in splits], dtype=float) for k in METRICS}
        table[name] = {
            **{f"{k}_mean": float(v.mean()) for k, v in values.items()},
            **{f"{k}_sd": float(v.std(ddof=1)) if len(v) > 1 else None for k, v in values.items()},
            **{f"{k}_minus_hand_tuned_mean": float((values[k] - base[k]).mean()) for k in METRICS},
            "n_functions_per_split": values["n_functions"].astype(int).tolist(),
        }
    return table


def calls_per_second(splits: list[dict], n_calls: int = 200) -> dict:
    """Committee calls/s (energy, forces, STD) of each distinct fitted basis of split 0, 16-atom Mg, interleaved."""
    from ase.io import read

    from nestdb.models.ace_committee import CommitteeACECalculator

    atoms = read(FILES[0], index=0)
    assert len(atoms) == 16
    models = {}
    for name, test in splits[0]["test"].items():
        models.setdefault(test["n_functions"], (name, test["model_dir"]))
    calculators = {n: CommitteeACECalculator(path) for n, (_, path) in models.items()}
    seconds = {n: 0.0 for n in calculators}
    rng = np.random.default_rng(0)
    for _ in range(n_calls // 10):
        for n, calc in calculators.items():  # interleaved: the machine's load hits every model alike
            probe = atoms.copy()
            probe.calc = calc
            start = time.perf_counter()
            for _ in range(10):
                probe.positions += rng.normal(0, 0.001, probe.positions.shape)
                probe.get_potential_energy()
                probe.get_forces()
            seconds[n] += time.perf_counter() - start
    return {str(n): {"model": models[n][0], "calls_per_s": n_calls / seconds[n]} for n in calculators}


def timing_summary(report: dict) -> dict:
    """Wall and CPU time of rows, studies and final fits; CPU seconds / 2 as the quiet 2-core wall estimate."""
    rows = report["rows"]["cutoffs"] if report["rows"] else {}
    # rows cached before this benchmark (cutoff 6, by fit_mg.py) cost what fit_mg measured for them
    reused = [c for c, r in rows.items() if not r["n_computed"]]
    reused_cpu = FIT_MG_ROWS_CPU_S * sum(c == "6.0" for c in reused)
    rows_cpu = sum(r["cpu_s"] for r in rows.values())
    rows_wall = sum(r["wall_s"] for r in rows.values())
    study_cpu = sum(t["cpu_s"] for s in report["splits"] for t in s["studies"].values())
    study_wall = sum(t["wall_s"] for s in report["splits"] for t in s["studies"].values())
    fits_cpu = sum(s["final_fits"]["cpu_s"] for s in report["splits"])
    return {
        "rows_wall_s": rows_wall,
        "rows_cpu_s": rows_cpu,
        "studies_wall_s": study_wall,
        "studies_cpu_s": study_cpu,
        "final_fits_wall_s": sum(s["final_fits"]["wall_s"] for s in report["splits"]),
        "final_fits_cpu_s": fits_cpu,
        "hpo_wall_s": rows_wall + study_wall,
        "hpo_cpu_s": rows_cpu + study_cpu,
        "rows_reused_from_cache": reused,
        "rows_reused_cpu_s_estimate": reused_cpu,
        "hpo_quiet_2core_estimate_s": (rows_cpu + study_cpu) / 2,
        "hpo_from_scratch_quiet_2core_estimate_s": (rows_cpu + reused_cpu + study_cpu) / 2,
    }


def plot(report: dict, path: Path) -> None:
    """Left: each split's cross-validated Pareto front with its choices; right: test errors of the final fits."""
    from nestdb.plotting import save, subplots

    fig, (left, energy, force) = subplots(1, 3, figsize=(16, 4.8))
    markers = {"hand-tuned": "s", "hpo best": "o", "hpo half": "D", "pareto knee": "^", "pareto within 2 %": "*"}
    for k, split in enumerate(report["splits"]):
        colour = f"C{k}"
        front = split["pareto_front"]
        left.plot(
            [r["n_functions"] for r in front],
            [r["loss"] for r in front],
            "-",
            color=colour,
            lw=1,
            label=f"split {split['seed']}",
        )
        reference = split["cv_fit_settings_trial"]
        if reference:
            left.scatter(
                [reference["n_functions"]], [reference["loss"]], marker="s", facecolor="none", edgecolor=colour
            )
        for name, cv in split["cv"].items():
            left.scatter([cv["n_functions"]], [cv["loss"]], marker=markers[name], color=colour, s=40)
        for name, test in split["test"].items():
            for ax, key in ((energy, "test_energy_rmse_mev_per_atom"), (force, "test_force_rmse_mev_per_a")):
                ax.scatter(
                    [test["n_functions"]],
                    [test[key]],
                    marker=markers[name],
                    color=colour,
                    s=40,
                    label=name if k == 0 else None,
                )
    hyperopt = report["hyperopt"]
    objective = hyperopt.get("objective", {"energy": 1.0, "force": 0.1})
    left.set_ylabel(
        f"CV loss of the split's training part ({hyperopt['cv_folds']}-fold x {hyperopt['cv_repeats']}): "
        f"{objective['energy']:g} E + {objective['force']:g} F (meV)",
        fontsize=8,
    )
    left.set_title(
        "CV Pareto fronts (square: hand-tuned; o best, D best <= 457 functions, ^ knee, * within 2 %)", fontsize=8
    )
    left.legend(fontsize=8)
    energy.set_ylabel("test energy RMSE (meV/atom)")
    force.set_ylabel("test force RMSE (meV/Å)")
    for ax in (left, energy, force):
        ax.set_xscale("log")
        ax.set_xlabel("basis functions")
    for ax in (energy, force):
        ax.set_title("final fits, each split's test set (colour: split)", fontsize=9)
        ax.legend(fontsize=8)
    save(fig, path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
