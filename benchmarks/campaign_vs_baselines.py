"""The loop against a known ground truth: nestdb's oracle campaign beside three baselines at equal label budget.

Runs, each through the normal workflow (Snakemake) unless said otherwise:

1. **nestdb**: ``config/oracle-mg.yaml`` (the study's EAM labels, cycle 0
   explores with LJ, 16 atoms, 0-45 GPa, four cycles), which also makes the
   oracle's independent test set and the learning curve (``bench.learning_curve``);
2. **random crystals (ASSYST-style)**: the same cycles, pressures, fit and
   per-cycle label counts, every cycle exploring with ``explore: {kind:
   random_crystals}`` (random space-group crystals at the model's density,
   relaxed a few steps with the cycle's model, perturbed copies) and
   ``select: {kind: random}``;
3. **MD + trust window (DP-GEN-style)**: ``explore: {kind: md}`` (NPT MD from
   fcc/hcp/bcc on a temperature ladder) with LJ in cycle 0 (``select: random``)
   and the previous committee later (``select: {kind: trust_window}``);
4. **hand-built** (library calls, one shot): strained and rattled hcp/fcc/bcc
   plus oracle-MD snapshots from 300 K to twice the melting temperature at
   each pressure, as many as nestdb's final label count, fitted with the same
   fit settings.

Every model is scored on the same oracle test set (by phase, pressure and
temperature), E–V and elastic constants against the oracle; the seed scatter
of nestdb's test RMSE comes from refits with other split seeds; the melting
temperature at one pressure from NS with nestdb's models and with the oracle
at the same N, K, L and seeds.

    nice .venv/bin/python benchmarks/campaign_vs_baselines.py            # the whole comparison
    .venv/bin/python benchmarks/campaign_vs_baselines.py --smoke         # 2 cycles, tiny (the test suite's)

Writes ``benchmarks/results/campaign_vs_baselines.json``, ``..._learning_curve.csv``,
``..._learning_curve.png``, ``..._melting.csv`` (``--out`` changes the folder)
and prints Markdown tables; the runs stay in ``--workdir``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from time_workflow import run_snakemake

REPO = Path(__file__).resolve().parents[1]
EAM_FILE = REPO.parent / "shared" / "data" / "mg" / "Mg1.eam.fs"
CONFIGS = {"full": REPO / "config" / "oracle-mg.yaml", "smoke": REPO / "config" / "oracle-mg-smoke.yaml"}
#: Per-mode settings of the parts outside the workflow configs.
MODES = {
    "full": {
        "md": {
            "structures": ["fcc", "hcp", "bcc"],
            "temperatures": [300, 800, 1500, 2500],
            "steps": 300,
            "interval": 15,
            "timestep": 2.0,
        },
        "trust_window": {"sigma_lo": 2.0, "sigma_hi": 100.0},
        "hand_md_steps": 600,
        "melt": {
            "pressure": 15.0,
            "seeds": [101, 102, 103, 104, 105, 106],
            "n_walkers": 32,
            "walk_length": 12,
            "max_volume_per_atom": 25.0,
            "converge_down_to_T": 600.0,
            "max_iter": 40000,
        },
        "scatter_seeds": [1],
    },
    "smoke": {
        "md": {"structures": ["fcc", "bcc"], "temperatures": [500, 2000], "steps": 40, "interval": 10, "timestep": 2.0},
        "trust_window": {"sigma_lo": 0.5, "sigma_hi": 500.0},
        "hand_md_steps": 60,
        "melt": {
            "pressure": 15.0,
            "seeds": [101],
            "n_walkers": 12,
            "walk_length": 6,
            "max_volume_per_atom": 25.0,
            "converge_down_to_T": 800.0,
            "max_iter": 1500,
        },
        "scatter_seeds": [1],
    },
}
COLUMNS = [
    "campaign",
    "cycle",
    "labels",
    "crystal_energy_rmse_mev",
    "liquid_energy_rmse_mev",
    "dilute_energy_rmse_mev",
    "liquid_or_hot_energy_rmse_mev",
    "crystal_force_rmse_mev_per_a",
    "liquid_force_rmse_mev_per_a",
    "spearman",
    "within_1_std",
    "within_2_std",
    "ev_shape_rmse_mev",
    "v0_error_percent",
    "elastic_mae_gpa",
]


def load_config(mode: str) -> dict:
    """The mode's config with the oracle's absolute path and the schema's defaults filled in."""
    from snakemake.utils import validate

    config = yaml.safe_load(CONFIGS[mode].read_text())
    config["label"]["potential"]["file"] = str(EAM_FILE)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def run_workflow(config: dict, workdir: Path, cores: int) -> float:
    """Run the workflow on ``config`` in ``workdir``; returns its wall seconds (raises with the log's tail)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    result = run_snakemake(workdir, path, cores, "--rerun-triggers", "mtime", "--rerun-incomplete")
    (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
    if result.returncode:
        raise RuntimeError(f"workflow in {workdir} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return time.perf_counter() - start


def labels_per_cycle(workdir: Path, n_cycles: int) -> list[int]:
    from nestdb.campaign.learning_curve import count_labels

    return [count_labels([workdir / "results" / "label" / f"cycle{c}" / "labelled.extxyz"]) for c in range(n_cycles)]


def baseline_config(base: dict, kind: str, per_cycle: list[int], test_set: Path, settings: dict) -> dict:
    """A baseline campaign with the same pressures, models, fit and per-cycle label budget as ``base``."""
    config = copy.deepcopy(base)
    n_pressures = len(config["pressures"])
    cycles = []
    for cycle, n_labels in enumerate(per_cycle):
        count = max(1, math.ceil(n_labels / n_pressures))
        entry = {"ns": {"calculator": base["cycles"][0]["ns"]["calculator"]} if cycle == 0 else {}}
        if kind == "random_crystals":
            entry["explore"] = {
                "kind": "random_crystals",
                "count": max(2, math.ceil(count / 2) + 1),
                "perturbations": 2,
                "relax_steps": 5,
            }
            entry["select"] = {"kind": "random", "count": count, "seed": cycle}
        else:
            entry["explore"] = {"kind": "md", **settings["md"]}
            entry["select"] = (
                {"kind": "random", "count": count, "seed": cycle}
                if cycle == 0
                else {"kind": "trust_window", "count": count, **settings["trust_window"]}
            )
        cycles.append(entry)
    config["cycles"] = cycles
    for key in ("committee_std_max", "committee_stop_std"):
        config["ns"].pop(key, None)
    bench = config["bench"]
    bench["enthalpy"] = {"enabled": False}
    bench["learning_curve"] = {"enabled": True, "name": kind, "test_set_file": str(test_set)}
    return config


def hand_built(base: dict, budget: int, test_frames, reference_dir: Path, workdir: Path, md_steps: int) -> dict:
    """Fit the hand-built database (library calls) and score it like the workflow's models."""
    from nestdb.bench.properties import compare_ev_elastic
    from nestdb.campaign.baselines import hand_built_database
    from nestdb.campaign.learning_curve import curve_row, evaluate_model
    from nestdb.campaign.testset import oracle_label
    from nestdb.fit import fit_linear_ace
    from nestdb.models.ace_committee import CommitteeACECalculator
    from nestdb.models.calculators import make_calculator

    cached = workdir / "result.json"
    if cached.is_file():  # delete it to recompute
        return json.loads(cached.read_text())
    start = time.perf_counter()
    oracle = make_calculator(base["label"]["potential"])
    composition = base["ns"]["composition"]
    frames = hand_built_database(
        oracle,
        next(iter(composition)),
        int(sum(composition.values())),
        [float(p) for p in base["pressures"]],
        budget,
        seed=7,
        md_steps=md_steps,
        volume_bounds=(
            float(base["ns"].get("min_volume_per_atom", 5.0)),
            float(base["ns"].get("max_volume_per_atom", 60.0)),
        ),
    )
    frames = oracle_label(frames, oracle)
    model = workdir / "fit"
    settings = dict(base["fit"], elements=base["elements"], feature_cache=str(workdir / "feature_cache"))
    fit_linear_ace(frames, settings, model)
    evaluation = evaluate_model(model, test_frames)
    bench_dir = workdir / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    bench = compare_ev_elastic(
        CommitteeACECalculator(model),
        base["bench"] | {"enthalpy": {"enabled": False}},
        base["elements"][0],
        reference_dir / "ev.csv",
        reference_dir / "elastic.json",
        bench_dir / "ev.csv",
        bench_dir / "ev.png",
        bench_dir / "elastic.csv",
        bench_dir / "summary.json",
    )
    row = curve_row("hand-built", 0, len(frames), evaluation, bench)
    result = {"row": row, "evaluation": evaluation, "wall_s": time.perf_counter() - start}
    cached.write_text(json.dumps(result, indent=2, default=float))
    return result


def seed_scatter(
    workdir: Path, fit_settings: dict, elements: list[str], n_cycles: int, seeds: list[int], test_frames
) -> dict[int, list[dict]]:
    """Test energy RMSE (all and per phase) of every cycle's fit without its test split, over split seeds.

    The workflow's own ``split/`` model (fit seed ``fit.seed``) is one value;
    each seed of ``seeds`` refits the same labels with another 80/20 split,
    calibration split and committee draw (no refit on all data).
    """
    from nestdb.campaign.learning_curve import evaluate_model
    from nestdb.fit import fit_linear_ace, load_training_frames

    def summary(seed, model):
        evaluation = evaluate_model(model, test_frames)
        return {
            "seed": seed,
            "all": evaluation["all"]["energy_rmse_mev"],
            **{p: m["energy_rmse_mev"] for p, m in evaluation["phase"].items()},
        }

    out: dict[int, list[dict]] = {}
    for cycle in range(n_cycles):
        fitted = workdir / "results" / "fit" / f"cycle{cycle}"
        if not (fitted / "committee.npz").is_file():
            continue
        own = fitted / "split" if (fitted / "split").is_dir() else fitted
        out[cycle] = [summary(int(fit_settings.get("seed", 0)), own)]
        frames = load_training_frames(
            [workdir / "results" / "label" / f"cycle{c}" / "labelled.extxyz" for c in range(cycle + 1)]
        )
        for seed in seeds:
            model = workdir / "scatter" / f"cycle{cycle}_seed{seed}"
            if not (model / "committee.npz").is_file():  # refits are kept: delete the folder to redo one
                settings = dict(
                    fit_settings,
                    elements=elements,
                    seed=seed,
                    refit_on_all_data=False,
                    feature_cache=str(workdir / "results" / "fit" / "feature_cache"),
                )
                fit_linear_ace(frames, settings, model)
            out[cycle].append(summary(seed, model))
    return out


def melting(base: dict, settings: dict, models: dict[str, dict], workdir: Path) -> list[dict]:
    """NS melting runs with every model and the oracle at the same N, K, L and seeds."""
    from nestdb.campaign.melting import melting_run

    ns = {k: v for k, v in base["ns"].items() if k not in ("calculator", "composition")}
    ns.update({k: v for k, v in settings.items() if k not in ("pressure", "seeds")})
    rows = []
    for name, spec in models.items():
        for seed in settings["seeds"]:
            prefix = workdir / "melting" / f"{name.replace(' ', '_')}_seed{seed}"
            cached = Path(f"{prefix}.melting.json")
            if cached.is_file():  # a finished run is kept: delete its files to redo it
                rows.append(json.loads(cached.read_text()))
                continue
            run = melting_run(spec, base["ns"]["composition"], settings["pressure"], ns, seed, prefix)
            rows.append(
                {
                    "model": name,
                    "pressure_gpa": settings["pressure"],
                    **run,
                    "most_prominent_peak_T": most_prominent_peak(prefix),
                }
            )
            cached.write_text(json.dumps(rows[-1], default=float))
    return rows


def most_prominent_peak(prefix: Path) -> float:
    """Temperature of the most prominent C_p peak between 300 and 3500 K (NaN if none)."""
    from nestdb.campaign.melting import GRID
    from nestdb.thermo import analyse, detect_transitions, read_energies

    energies = read_energies(f"{prefix}.energies")
    peaks = [t for t in detect_transitions(analyse(energies, GRID), energies.n_atoms) if 300 < t.temperature < 3500]
    return max(peaks, key=lambda t: t.prominence).temperature if peaks else float("nan")


def melting_table(rows: list[dict]) -> pd.DataFrame:
    from nestdb.campaign.melting import melting_statistics

    table = []
    for name, group in pd.DataFrame(rows).groupby("model", sort=False):
        runs = group.to_dict("records")
        stats = melting_statistics(runs)
        peak = melting_statistics([{"melting_T": r["most_prominent_peak_T"]} for r in runs])
        table.append(
            {
                "model": name,
                "pressure_gpa": runs[0]["pressure_gpa"],
                "seeds": stats["n_seeds"],
                "found": stats["n_found"],
                "melting_T_mean": stats["mean"],
                "melting_T_std": stats["std"],
                "peak_T_mean": peak["mean"],
                "peak_T_std": peak["std"],
                "values": ", ".join(f"{v:.0f}" for v in group.melting_T),
                "peaks": ", ".join(f"{v:.0f}" for v in group.most_prominent_peak_T),
                "wall_s": float(group.wall_s.sum()),
            }
        )
    return pd.DataFrame(table)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="2 cycles, tiny settings (config/oracle-mg-smoke.yaml)")
    parser.add_argument("--workdir", type=Path, default=Path("campaign_runs"), help="where the campaigns run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="result folder")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--melt-cycles",
        default="final",
        help="nestdb models melted: 'all', 'final', 'none' or cycle numbers (e.g. 2,3)",
    )
    parser.add_argument("--skip", default="", help="comma list of baselines to leave out (random_crystals,md,hand)")
    parser.add_argument(
        "--only",
        default="",
        help="run only these parts now and stop (comma list of nestdb, "
        "random_crystals, md, hand, scatter, melting); finished parts are kept, so a later call "
        "without --only collects everything",
    )
    parser.add_argument(
        "--no-run", action="store_true", help="run no workflow: collect the campaigns' finished cycles as they are"
    )
    parser.add_argument(
        "--baseline-cycles",
        default="",
        help="per-cycle label budgets of the workflow baselines, e.g. 120,160 (default: nestdb's "
        "per-cycle label counts, which needs nestdb's run first)",
    )
    args = parser.parse_args(argv)
    n_config_cycles = len(yaml.safe_load(CONFIGS["smoke" if args.smoke else "full"].read_text())["cycles"])
    melt_cycles = (
        {"all": list(range(n_config_cycles)), "final": [n_config_cycles - 1], "none": []}.get(args.melt_cycles)
        if args.melt_cycles in ("all", "final", "none")
        else [int(c) for c in args.melt_cycles.split(",")]
    )
    if not EAM_FILE.exists():
        print(f"the oracle {EAM_FILE} is missing: this benchmark needs ../shared")
        return 1
    mode = "smoke" if args.smoke else "full"
    settings = MODES[mode]
    prefix = "campaign_vs_baselines" + ("_smoke" if args.smoke else "")
    args.workdir = args.workdir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    timings: dict[str, float] = {}
    skip = set(filter(None, args.skip.split(",")))

    base = load_config(mode)
    n_cycles = len(base["cycles"])
    nestdb_dir = args.workdir / "nestdb"
    only = set(filter(None, args.only.split(",")))
    if not args.no_run and (not only or "nestdb" in only):
        timings["nestdb"] = run_workflow(base, nestdb_dir, args.cores)
    test_set = nestdb_dir / "results" / "bench" / "learning_curve" / "test_set.extxyz"
    budget = (
        [int(n) for n in args.baseline_cycles.split(",")]
        if args.baseline_cycles
        else labels_per_cycle(nestdb_dir, n_cycles)
    )
    for kind in ("random_crystals", "md"):
        if kind in skip or (only and kind not in only) or args.no_run:
            continue
        timings[kind] = run_workflow(
            baseline_config(base, kind, budget, test_set, settings), args.workdir / kind, args.cores
        )
    if only & {"hand", "melting", "scatter"}:
        from ase.io import read

        test_frames = read(test_set, index=":")
        if "hand" in only:
            hand_built(
                base,
                int(np.sum(budget)),
                test_frames,
                nestdb_dir / "results" / "bench" / "reference",
                args.workdir / "hand_built",
                settings["hand_md_steps"],
            )
        if "scatter" in only:
            seed_scatter(nestdb_dir, base["fit"], base["elements"], n_cycles, settings["scatter_seeds"], test_frames)
        if "melting" in only:
            fits = nestdb_dir / "results" / "fit"
            models = {"oracle": base["label"]["potential"]}
            models |= {
                f"nestdb cycle {c}": {"type": "ace_committee", "model": str(fits / f"cycle{c}")}
                for c in melt_cycles
                if (fits / f"cycle{c}" / "committee.npz").is_file()
            }
            melting(base, settings["melt"], models, args.workdir)
    if only:
        print(f"ran {sorted(only)}: {timings}")
        return 0
    from ase.io import read

    from nestdb.campaign.learning_curve import campaign_curve

    test_frames = read(test_set, index=":")
    # every finished cycle of every campaign on the same test set (a stopped campaign gives its finished cycles)
    fitted = [c for c in range(n_cycles) if (nestdb_dir / "results" / "fit" / f"cycle{c}" / "committee.npz").is_file()]
    n_cycles = len(fitted)
    per_cycle = labels_per_cycle(nestdb_dir, n_cycles)
    curves = [pd.DataFrame(campaign_curve("nestdb", nestdb_dir / "results", test_frames, n_cycles)[0])]
    for kind in ("random_crystals", "md"):
        if kind not in skip:
            curves.append(
                pd.DataFrame(campaign_curve(kind, args.workdir / kind / "results", test_frames, len(budget))[0])
            )
    hand = None
    if "hand" not in skip:
        hand = hand_built(
            base,
            int(np.sum(budget)),
            test_frames,
            nestdb_dir / "results" / "bench" / "reference",
            args.workdir / "hand_built",
            settings["hand_md_steps"],
        )
        timings["hand_built"] = hand["wall_s"]
        curves.append(pd.DataFrame([hand["row"]]))
    table = pd.concat(curves, ignore_index=True)

    t0 = time.perf_counter()
    scatter = seed_scatter(nestdb_dir, base["fit"], base["elements"], n_cycles, settings["scatter_seeds"], test_frames)
    timings["seed_scatter"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    melt_rows = []
    if melt_cycles:
        cycles = melt_cycles
        models = {"oracle": base["label"]["potential"]}
        fits = nestdb_dir / "results" / "fit"
        models |= {f"nestdb cycle {c}": {"type": "ace_committee", "model": str(fits / f"cycle{c}")} for c in cycles}
        melt_rows = melting(base, settings["melt"], models, args.workdir)
    melt = melting_table(melt_rows) if melt_rows else pd.DataFrame()
    timings["melting"] = time.perf_counter() - t0

    from nestdb.campaign.learning_curve import markdown_table, plot_learning_curve

    table.to_csv(args.out / f"{prefix}_learning_curve.csv", index=False)
    plot_learning_curve(
        table, args.out / f"{prefix}_learning_curve.png", title="oracle (EAM) test set: nestdb vs baselines"
    )
    if not melt.empty:
        melt.to_csv(args.out / f"{prefix}_melting.csv", index=False)
    final = table.sort_values("cycle").groupby("campaign", sort=False).tail(1)
    ours = final[final.campaign == "nestdb"].iloc[0]
    ratios = {
        row.campaign: {
            key: row[key] / ours[key]
            for key in ("liquid_energy_rmse_mev", "liquid_or_hot_energy_rmse_mev", "crystal_energy_rmse_mev")
        }
        for _, row in final.iterrows()
        if row.campaign != "nestdb"
    }
    wall = time.perf_counter() - start
    result = {
        "mode": mode,
        "per_cycle_labels_nestdb": per_cycle,
        "baseline_budget_per_cycle": budget,
        "learning_curve": table.to_dict("records"),
        "final_ratios_baseline_over_nestdb": ratios,
        "seed_scatter": scatter,
        "melting": melt.to_dict("records"),
        "melting_runs": melt_rows,
        "timings_wall_s": timings,
        "wall_s": wall,
        "cpu_s": cpu_seconds() - cpu_start,
        "load_average_end": os.getloadavg(),
        "cores": os.cpu_count(),
    }
    (args.out / f"{prefix}.json").write_text(json.dumps(result, indent=2, default=float))
    print(markdown_table(table, COLUMNS))
    print("\nfinal models, baseline / nestdb energy RMSE:", json.dumps(ratios, indent=1, default=float))
    print("\nseed scatter of nestdb's test energy RMSE (meV/atom):", json.dumps(scatter, default=float))
    if not melt.empty:
        print(markdown_table(melt, list(melt.columns)))
    print(
        f"\n{mode}: wall {wall:.0f} s, CPU {result['cpu_s']:.0f} s, timings {timings}, load average {os.getloadavg()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
