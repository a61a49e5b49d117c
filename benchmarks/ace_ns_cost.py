"""ACE-driven NS cost: committee calls/s per basis size at 8/16/64 atoms, and the CPU-hours of a study-sized run.

A study-sized cycle-1 run (``config/mg-study.yaml``: 16 Mg atoms, K = L = 336,
V/N <= 500 A^3, aspect ratio >= 0.65, move mix MD:volume:shear:stretch =
0.21:0.31:0.24:0.24, 5 MD steps per TE-HMC move, converged to 200 K, every
proposal held to a committee STD <= 62.5 meV/atom) is projected from

1. **model calls**: our own converged runs with these settings at smaller K
   (``--count-walkers``, default 12, 24, 48; L = 336) at ``--pressure``
   (default 1 GPa) with the study's EAM (Mg1.eam.fs) standing in for the
   committee: the iterations to converge grow linearly with K (the fit is
   printed), so the K = 336 run needs ``a * 336 + b`` iterations; calls per
   iteration and their split by stage (gas / liquid / crystal, from the NS
   temperature estimate as in ns_speed.py) come from the K = 48 run. The EAM
   is asked for forces on every call there, as pyace gives them (so the call
   count has no extra force calls, as with the committee). The share of calls
   that are MD steps not ending a trajectory (no committee STD needed) comes
   from the runs' move statistics.
2. **cost per call**: CPU time of one call on configurations of that run's
   stages (8 atoms: an 8-atom run with the same settings; 64 atoms: the
   16-atom configurations repeated 2x2x1, the same local environments), for
   each committee of ``benchmarks/ace_models.py`` (study fit settings, basis
   ladder 914 -> 74 functions, 32 members), by three routes:
   ``pyace``: pyace's own ``PyACECalculator`` with projections (the B-basis
   evaluator; the previous committee calculator's cost), ``committee``: the
   committee calculator with the committee STD, ``mean``: the same without
   the STD (pyace's recursive evaluator), and ``compute``: the recursive
   evaluator's ``compute`` alone on a prebuilt neighbour list (what batching
   several clones into one pyace call could at best save is the rest). Routes
   alternate in rounds on the same configurations; medians over rounds.
3. **projection**: CPU-hours = sum over stages of calls x (share without STD
   x ``mean`` + share with STD x ``committee`` + the driver's overhead per
   call measured in the count runs); and with every call by the ``pyace``
   route, for comparison.

The study reports 252-11648 CPU-hours per ACE NS run with its tools (target
here: <= 25 for the 16-atom cycle-1 run).

    nice .venv/bin/python benchmarks/ace_ns_cost.py          # ~15 min on 2 cores (+ ~6 min of fits the first time)
    .venv/bin/python benchmarks/ace_ns_cost.py --bases b914 --sizes 16 --count-walkers 12 24
    .venv/bin/python benchmarks/ace_ns_cost.py --keep /tmp/counts_1gpa ...; ... --reuse /tmp/counts_1gpa  # timings only

Writes a table to stdout and JSON to benchmarks/results/ace_ns_cost.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.io import read, write

from nestdb.models.ace_committee import CommitteeACECalculator
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.potentials.eam import FastEAM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ace_models  # noqa: E402
from ns_speed import ModelTimer, stage_of_iterations  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EAM_FILE = REPO.parent / "shared" / "data" / "mg" / "Mg1.eam.fs"
STUDY_WALKERS = 336
STAGES = ("gas", "liquid", "crystal")
#: NS temperature estimate thresholds (K) of the stages, as ns_speed.py's Mg models.
GAS_ABOVE, CRYSTAL_BELOW = 3000.0, 900.0
ROUTES = ("pyace", "committee", "mean", "compute")


class ForcesAlwaysEAM(FastEAM):
    """FastEAM that computes forces on every call, as pyace does (no energy-only calls)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, list(properties) + ["forces"], system_changes)


def study_settings(pressure: float, **changes) -> NSSettings:
    """The study config's NS settings (mg-study.yaml ``ns:`` and cycle 1) at one pressure."""
    config = yaml.safe_load((REPO / "config" / "mg-study.yaml").read_text())
    values = {k: v for k, v in config["ns"].items() if k != "composition"}
    values.update(config["cycles"][1]["ns"], pressure_gpa=pressure, snapshot_seconds=None, **changes)
    names = {f.name for f in dataclasses.fields(NSSettings)}
    return NSSettings(**{k: v for k, v in values.items() if k in names})


def count_run(n_atoms: int, walkers: int, walk_length: int, pressure: float, seed: int, workdir: Path) -> dict:
    """One converged run with the EAM; iterations, calls, move statistics, stage of each iteration, frames."""
    settings = study_settings(
        pressure,
        n_walkers=walkers,
        walk_length=walk_length,
        seed=seed,
        traj_interval=max(1, walkers // 4),
        committee_std_max=None,
        committee_stop_std=None,
    )
    calc = ForcesAlwaysEAM(EAM_FILE)
    timer = ModelTimer(calc)
    prefix = workdir / f"count_{n_atoms}_{walkers}"
    cpu0, start = time.process_time(), time.perf_counter()
    summary = run_nested_sampling({"Mg": n_atoms}, calc, settings, prefix)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - start
    h_lims = np.array(
        [float(line.split()[1]) for line in output_paths(prefix)["energies"].read_text().splitlines()[1:]]
    )
    stages = stage_of_iterations(h_lims, walkers, GAS_ABOVE, CRYSTAL_BELOW)
    calls = summary["n_calls"] - summary["n_init_calls"]
    md_steps = summary["attempts"].get("md", 0) * settings.md_traj_len
    return {
        "atoms": n_atoms,
        "walkers": walkers,
        "walk_length": walk_length,
        "stop_reason": summary["stop_reason"],
        "iterations": summary["n_iter"],
        "calls": calls,
        "calls_per_iter": calls / summary["n_iter"],
        # MD steps that do not end a trajectory need no committee STD (upper bound: trajectories end early
        # only on a failed call)
        "share_without_std": md_steps * (settings.md_traj_len - 1) / settings.md_traj_len / calls,
        "stage_fractions": {s: stages.count(s) / len(stages) for s in STAGES},
        "driver_overhead_cpu_ms_per_call": 1e3 * (cpu - timer.cpu) / timer.calls,
        "wall_s": wall,
        "cpu_s": cpu,
        "settings": dataclasses.asdict(settings),
        "_frames": _stage_frames(prefix, stages),
    }


def _stage_frames(prefix: Path, stages: list[str]) -> dict[str, list[Atoms]]:
    frames = read(output_paths(prefix)["traj"], ":")
    by_stage: dict[str, list[Atoms]] = {s: [] for s in STAGES}
    for frame in frames:
        by_stage[stages[min(int(frame.info["iter"]), len(stages) - 1)]].append(
            Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
        )
    return by_stage


def make_counts(args) -> tuple[list[dict], dict]:
    """The count runs (16 atoms at each K; 8 atoms once) and the configurations of their stages."""
    with tempfile.TemporaryDirectory() as tmp:
        counts = []
        for walkers in sorted(args.count_walkers):
            counts.append(count_run(16, walkers, args.count_walk_length, args.pressure, args.seed, Path(tmp)))
            c = counts[-1]
            print(
                f"count run K={walkers}: {c['iterations']} iterations ({c['stop_reason']}), "
                f"{c['calls_per_iter']:.1f} calls/it, stages {c['stage_fractions']}, "
                f"{c['share_without_std']:.2f} of calls without STD, {c['wall_s']:.0f} s",
                flush=True,
            )
        frames = {16: counts[-1].pop("_frames")}
        for c in counts:
            c.pop("_frames", None)
        if 8 in args.sizes:
            frames[8] = count_run(8, 24, 64, args.pressure, args.seed, Path(tmp)).pop("_frames")
    return counts, frames


def save_counts(folder: Path, counts: list[dict], frames: dict) -> None:
    """Keep the count runs' numbers and stage configurations (``--keep``) for timing-only reruns."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "counts.json").write_text(json.dumps(counts, indent=1, default=str))
    for size, by_stage in frames.items():
        for stage, stage_frames in by_stage.items():
            write(folder / f"frames_{size}_{stage}.extxyz", stage_frames)


def load_counts(folder: Path) -> tuple[list[dict], dict]:
    """What :func:`save_counts` kept (``--reuse``)."""
    counts = json.loads((folder / "counts.json").read_text())
    frames: dict = {}
    for path in folder.glob("frames_*.extxyz"):
        _, size, stage = path.stem.split("_")
        frames.setdefault(int(size), {})[stage] = read(path, ":")
    for by_stage in frames.values():
        for stage in STAGES:
            by_stage.setdefault(stage, [])
    return counts, frames


def pick(frames: list[Atoms], count: int) -> list[Atoms]:
    """``count`` frames evenly spread over the list."""
    if len(frames) <= count:
        return frames
    return [frames[int(i)] for i in np.linspace(0, len(frames) - 1, count)]


def time_routes(model_dir: Path, configurations: list[Atoms], rounds: int) -> dict[str, float]:
    """CPU ms per call of each route (median over rounds, routes alternating within a round)."""
    from pyace import PyACECalculator

    committee = CommitteeACECalculator(model_dir)
    mean = CommitteeACECalculator(model_dir)
    mean.std_on_request = True
    pyace = PyACECalculator(str(model_dir / "potential.yaml"))
    environments = [mean._models.environment(atoms) for atoms in configurations]
    fast = mean._models.fast
    calls = {
        "pyace": lambda i: pyace.calculate(configurations[i], ("energy", "forces"), all_changes),
        "committee": lambda i: committee.calculate(configurations[i], ("energy", "forces"), all_changes),
        "mean": lambda i: mean.calculate(configurations[i], ("energy", "forces"), all_changes),
        "compute": lambda i: fast.compute(environments[i], compute_projections=False),
    }
    samples: dict[str, list[float]] = {route: [] for route in ROUTES}
    for route in ROUTES:  # warm-up: first-call allocations
        calls[route](0)
    for _ in range(rounds):
        for route in ROUTES:
            start = time.process_time()
            for i in range(len(configurations)):
                calls[route](i)
            samples[route].append(1e3 * (time.process_time() - start) / len(configurations))
    return {route: float(np.median(values)) for route, values in samples.items()}


def projection(count: dict, iterations_336: float, timings: dict) -> dict:
    """CPU-hours of the study-sized run from the call count and the per-stage cost per call."""
    calls_336 = iterations_336 * count["calls_per_iter"]
    share = count["share_without_std"]
    overhead = count["driver_overhead_cpu_ms_per_call"]
    ours = old = 0.0
    per_stage = {}
    for stage in STAGES:
        calls = calls_336 * count["stage_fractions"][stage]
        cost = timings[stage]
        ms_ours = share * cost["mean"] + (1 - share) * cost["committee"] + overhead
        ms_old = cost["pyace"] + overhead
        per_stage[stage] = {"calls": calls, "ms_per_call": ms_ours, "cpu_hours": calls * ms_ours / 3.6e6}
        ours += calls * ms_ours / 3.6e6
        old += calls * ms_old / 3.6e6
    return {"calls": calls_336, "cpu_hours": ours, "cpu_hours_pyace_route": old, "per_stage": per_stage}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bases", nargs="+", default=list(ace_models.BASES), choices=list(ace_models.BASES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 64], choices=[8, 16, 64])
    parser.add_argument("--count-walkers", type=int, nargs="+", default=[12, 24, 48])
    parser.add_argument("--count-walk-length", type=int, default=STUDY_WALKERS)
    parser.add_argument("--pressure", type=float, default=1.0, help="GPa")
    parser.add_argument("--configs", type=int, default=8, help="configurations per stage and size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models-dir", type=Path, default=ace_models.DEFAULT_CACHE)
    parser.add_argument("--keep", type=Path, default=None, help="keep the count runs and configurations here")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="take the count runs and configurations from a --keep folder (timings only)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ace_ns_cost.json")
    args = parser.parse_args(argv)
    if ace_models.data_missing() or not EAM_FILE.is_file():
        return 0
    load_before = os.getloadavg()
    models = {name: ace_models.committee_model(name, args.models_dir) for name in args.bases}

    if args.reuse is not None:
        counts, frames = load_counts(args.reuse)
        args.pressure = counts[0]["settings"]["pressure_gpa"]
        print(f"count runs and configurations from {args.reuse} ({args.pressure} GPa)")
    else:
        counts, frames = make_counts(args)
        if args.keep is not None:
            save_counts(args.keep, counts, frames)
    frames[64] = {stage: [atoms.repeat((2, 2, 1)) for atoms in frames[16][stage]] for stage in STAGES}

    walkers = np.array([c["walkers"] for c in counts], dtype=float)
    iterations = np.array([c["iterations"] for c in counts], dtype=float)
    slope, intercept = np.polyfit(walkers, iterations, 1) if len(counts) > 1 else (iterations[0] / walkers[0], 0.0)
    iterations_336 = slope * STUDY_WALKERS + intercept
    print(f"iterations to converge = {slope:.1f} K + {intercept:.0f} -> {iterations_336:.0f} at K = {STUDY_WALKERS}")

    timings: dict = {}
    for name, (folder, fit) in models.items():
        timings[name] = {"n_functions": fit["n_functions"], "fit": fit, "sizes": {}}
        for size in args.sizes:
            per_stage = {}
            for stage in STAGES:
                chosen = pick(frames[size][stage], args.configs)
                if not chosen:
                    continue
                per_stage[stage] = time_routes(folder, chosen, args.rounds)
                per_stage[stage]["n_configurations"] = len(chosen)
                per_stage[stage]["volume_per_atom"] = float(np.mean([a.get_volume() / len(a) for a in chosen]))
            timings[name]["sizes"][size] = per_stage
            print(
                f"{name} ({fit['n_functions']} functions) {size} atoms: "
                + "; ".join(
                    f"{stage} " + " ".join(f"{route} {per_stage[stage][route]:.2f}" for route in ROUTES)
                    for stage in per_stage
                )
                + " ms/call (CPU)",
                flush=True,
            )
        if 16 in args.sizes:
            timings[name]["projection"] = projection(counts[-1], iterations_336, timings[name]["sizes"][16])

    print(
        "\n| basis | functions | atoms | stage | V/atom (A^3) | pyace calls/s | committee calls/s "
        "| mean-only calls/s | compute-only calls/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, entry in timings.items():
        for size, per_stage in entry["sizes"].items():
            for stage, row in per_stage.items():
                print(
                    f"| {name} | {entry['n_functions']} | {size} | {stage} | {row['volume_per_atom']:.1f} | "
                    + " | ".join(f"{1e3 / row[route]:.0f}" for route in ROUTES)
                    + " |"
                )
    print(
        f"\nStudy-sized 16-atom cycle-1 run at {args.pressure} GPa: {iterations_336:.0f} iterations x "
        f"{counts[-1]['calls_per_iter']:.1f} calls = {iterations_336 * counts[-1]['calls_per_iter']:.3g} calls"
    )
    print("| basis | functions | CPU-hours (this calculator) | CPU-hours (pyace's calculator, every call) |")
    print("|---|---|---|---|")
    for name, entry in timings.items():
        if "projection" in entry:
            p = entry["projection"]
            print(f"| {name} | {entry['n_functions']} | {p['cpu_hours']:.1f} | {p['cpu_hours_pyace_route']:.1f} |")
    load_after = os.getloadavg()
    print(f"\nload average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "count_runs": counts,
                "iterations_fit": {
                    "slope_per_walker": slope,
                    "intercept": intercept,
                    "iterations_at_336": iterations_336,
                },
                "pressure_gpa": args.pressure,
                "timings": timings,
                "cpus": os.cpu_count(),
                "load_average_before_after": [load_before, load_after],
                "python": platform.python_version(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=1,
            default=str,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
