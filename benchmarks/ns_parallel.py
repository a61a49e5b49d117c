"""Parallel walking: speed-up and thermodynamics against serial NS.

1. Speed: the same run (same n_cull) with n_procs = 1 and n_procs = N; the
   files are identical by construction, so only calls/s differ. Prints the
   ratio (on a shared 2-core machine it is bounded by 2 and by other load).
2. Thermodynamics: serial runs (n_cull = 1) against parallel runs
   (n_cull = n_procs = N) over several seeds; prints U(T), <V>(T) and the C_p
   peak temperature, mean +- standard error across seeds, and the largest
   |difference| / combined error.

    .venv/bin/python benchmarks/ns_parallel.py [--procs 2] [--seeds 4] [--atoms 6]

3. ``--scaling``: wall-clock speed-up at n_procs = 1 ... 16 (a machine with
   >= 16 free cores).
4. ``--imbalance``: the cost imbalance of the walks of one iteration, measured
   serially on any machine (see :func:`run_imbalance`).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/ns_parallel.py --imbalance \
        --json benchmarks/results/ns_walk_imbalance.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
from ase.build import bulk

from nestdb.models.calculators import make_calculator
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.ns.loop import T_ESTIMATE_WINDOW, temperature_estimate
from nestdb.ns.parallel import CloneWalker, WalkTask
from nestdb.potentials.lj import FastLennardJones
from nestdb.thermo import analyse, read_energies

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ace_models  # noqa: E402
from ns_speed import ModelTimer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def speed(n_procs: int, atoms: int, tmp: Path) -> None:
    values = dict(
        n_walkers=64,
        walk_length=64,
        pressure_gpa=1.0,
        max_iter=120,
        n_cull=n_procs,
        kemax_max_T=5000.0,
        max_volume_per_atom=60.0,
        seed=1,
        converge_down_to_T=None,  # run to max_iter whatever the schema's default
        snapshot_seconds=None,
    )
    rates, cpu = {}, {}
    for procs in (1, n_procs):
        start = time.perf_counter()
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = run_nested_sampling(
            {"Mg": atoms}, FastLennardJones(), NSSettings(**dict(values, n_procs=procs)), tmp / f"speed{procs}"
        )
        wall = time.perf_counter() - start
        own_cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(own)
        workers_cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(children)
        rates[procs] = summary["n_calls"] / wall
        # on an idle machine the wall time is that of the busiest process
        cpu[procs] = max(own_cpu, workers_cpu / procs) if procs > 1 else own_cpu
        print(
            f"speed: {atoms} atoms, n_cull={n_procs}, n_procs={procs}: {summary['n_calls']} calls in "
            f"{wall:.1f} s wall = {rates[procs]:.0f} calls/s, {summary['n_iter'] / wall:.2f} iterations/s; "
            f"CPU s: main {own_cpu:.1f}, workers {workers_cpu:.1f}"
        )
    same = (
        output_paths(tmp / "speed1")["energies"].read_bytes()
        == output_paths(tmp / f"speed{n_procs}")["energies"].read_bytes()
    )
    print(
        f"speed-up n_procs={n_procs} vs 1: wall {rates[n_procs] / rates[1]:.2f}x (depends on the load), "
        f"CPU-time bound {cpu[1] / cpu[n_procs]:.2f}x; identical .energies: {same}"
    )


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def thermodynamics(n_procs: int, seeds: int, atoms: int, walkers: int, tmp: Path) -> None:
    temperatures = np.arange(200.0, 3001.0, 200.0)
    # both kinds must stop by convergence (same X reached), not by the cap
    values = dict(
        n_walkers=walkers,
        walk_length=24,
        pressure_gpa=1.0,
        converge_down_to_T=150.0,
        kemax_max_T=5000.0,
        max_volume_per_atom=60.0,
        snapshot_seconds=None,
        traj_interval=0,
    )
    results: dict[str, list] = {"serial": [], "parallel": []}
    for kind, n_cull in (("serial", 1), ("parallel", n_procs)):
        start = time.perf_counter()
        for seed in range(seeds):
            prefix = tmp / f"{kind}{seed}"
            summary = run_nested_sampling(
                {"Mg": atoms},
                FastLennardJones(),
                NSSettings(**dict(values, max_iter=40000 // n_cull, n_cull=n_cull, n_procs=n_cull, seed=100 + seed)),
                prefix,
            )
            print(
                f"  {kind} seed {100 + seed}: {summary['stop_reason']} after {summary['n_iter'] * n_cull} culls, "
                f"{summary['n_calls']} calls"
            )
            table = analyse(read_energies(output_paths(prefix)["energies"]), temperatures)
            fine = analyse(read_energies(output_paths(prefix)["energies"]), np.arange(100.0, 3001.0, 10.0))
            peak = float(fine["T"].iloc[int(np.argmax(fine["Cp"].to_numpy()))])
            results[kind].append((table["U"].to_numpy() / atoms, table["V"].to_numpy() / atoms, peak))
        print(f"thermo: {kind} (n_cull={n_cull}, n_procs={n_cull}), {seeds} seeds: {time.perf_counter() - start:.0f} s")

    def stats(kind: str, index: int):
        data = np.array([r[index] for r in results[kind]])
        return data.mean(axis=0), data.std(axis=0, ddof=1) / np.sqrt(len(data))

    worst = 0.0
    print(f"{'T (K)':>6} {'U serial (eV/at)':>20} {'U parallel':>20} {'V serial (A3/at)':>18} {'V parallel':>18}")
    u_s, du_s = stats("serial", 0)
    u_p, du_p = stats("parallel", 0)
    v_s, dv_s = stats("serial", 1)
    v_p, dv_p = stats("parallel", 1)
    for i, t in enumerate(temperatures):
        print(
            f"{t:6.0f} {u_s[i]:12.4f}+-{du_s[i]:.4f} {u_p[i]:12.4f}+-{du_p[i]:.4f} "
            f"{v_s[i]:10.3f}+-{dv_s[i]:.3f} {v_p[i]:10.3f}+-{dv_p[i]:.3f}"
        )
        worst = max(
            worst, abs(u_s[i] - u_p[i]) / np.hypot(du_s[i], du_p[i]), abs(v_s[i] - v_p[i]) / np.hypot(dv_s[i], dv_p[i])
        )
    p_s, dp_s = stats("serial", 2)
    p_p, dp_p = stats("parallel", 2)
    print(f"C_p peak: serial {p_s:.0f} +- {dp_s:.0f} K, parallel {p_p:.0f} +- {dp_p:.0f} K")
    print(f"largest |serial - parallel| / combined standard error over U and V: {worst:.2f}")


def scaling_run(
    calculator,
    atoms: int,
    procs: int,
    walks: int,
    tmp: Path,
    walk_length: int,
    n_walkers: int,
    load_balance: bool = False,
) -> dict:
    """Loop throughput of one (model, size, n_procs) at equal samples (n_cull = n_procs).

    The run of one iteration (initial walkers, forking, every worker's first
    model call) is subtracted from the run of ``walks`` walks, so the figures
    are those of the sampling loop alone.
    """
    iterations = max(2, -(-walks // procs))
    values = dict(
        n_walkers=n_walkers,
        walk_length=walk_length,
        pressure_gpa=1.0,
        n_cull=procs,
        n_procs=procs,
        kemax_max_T=5000.0,
        max_volume_per_atom=60.0,
        seed=7,
        converge_down_to_T=None,  # run to max_iter whatever the schema's default
        snapshot_seconds=None,
        traj_interval=0,
        load_balance=load_balance,
    )
    measured = []
    for max_iter in (1, iterations):
        start = time.perf_counter()
        summary = run_nested_sampling(
            {"Mg": atoms},
            calculator,
            NSSettings(**dict(values, max_iter=max_iter)),
            tmp / f"scale_{atoms}_{procs}_{max_iter}",
        )
        measured.append((time.perf_counter() - start, summary["n_calls"], summary["n_iter"]))
    (wall0, calls0, iter0), (wall1, calls1, iter1) = measured
    loop_wall = wall1 - wall0
    return {
        "n_procs": procs,
        "n_cull": procs,
        "iterations": iter1 - iter0,
        "walks": (iter1 - iter0) * procs,
        "calls": calls1 - calls0,
        "loop_wall_s": loop_wall,
        "calls_per_s": (calls1 - calls0) / loop_wall,
        "startup_wall_s": wall0,
    }


def scaling(
    models: dict,
    atoms_list: list[int],
    procs_list: list[int],
    seconds: float,
    tmp: Path,
    walk_length: int,
    load_balance_values: tuple[bool, ...] = (False,),
) -> list[dict]:
    """Wall-clock speed-up of parallel walking at equal samples for each model and size.

    For each (model, size) the number of walks is set so that the serial loop
    takes about ``seconds`` (serial runs of growing length); every
    n_procs then walks the same number of clones (n_cull = n_procs).
    """
    rows = []
    for (name, calculator), atoms, balance in itertools.product(models.items(), atoms_list, load_balance_values):
        # compile/initialise the model in this process first: the workers fork
        # from it and inherit that, so no run pays it inside its loop
        warm = bulk("Mg", "hcp", a=3.2, c=5.2, orthorhombic=True).repeat((1, 1, max(1, atoms // 4)))
        warm.calc = calculator
        warm.get_potential_energy()
        n_walkers = max(128, 8 * max(procs_list))
        # grow the number of walks until the serial loop takes ``seconds``
        # (the cost per call rises as the run goes from gas to condensed)
        walks, serial = 4 * max(procs_list), None
        while True:
            serial = scaling_run(calculator, atoms, 1, walks, tmp, walk_length, n_walkers, balance)
            if serial["loop_wall_s"] >= 0.7 * seconds or walks >= 10**6:
                break
            factor = min(8.0, max(1.5, seconds / max(serial["loop_wall_s"], 1e-3)))
            walks = int(walks * factor) // max(procs_list) * max(procs_list)
        for procs in procs_list:
            row = (
                serial
                if procs == 1
                else scaling_run(calculator, atoms, procs, walks, tmp, walk_length, n_walkers, balance)
            )
            row.update(model=name, atoms=atoms, walk_length=walk_length, n_walkers=n_walkers, load_balance=balance)
            row["speedup"] = row["calls_per_s"] / serial["calls_per_s"]
            row["efficiency"] = row["speedup"] / procs
            rows.append(row)
            print(
                f"scaling: {name:4s} {atoms:3d} atoms load_balance={int(balance)} n_procs={procs:2d}: "
                f"{row['walks']} walks, "
                f"{row['calls']} calls in {row['loop_wall_s']:.2f} s = {row['calls_per_s']:.0f} calls/s, "
                f"speed-up {row['speedup']:.2f}x, efficiency {row['efficiency']:.2f}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--atoms", type=int, default=5)
    parser.add_argument("--walkers", type=int, default=32)
    parser.add_argument("--skip-thermo", action="store_true")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="only the wall-clock scaling table (run it on a machine with >= 16 free cores)",
    )
    parser.add_argument("--scaling-procs", default="1,2,4,8,16")
    parser.add_argument("--scaling-atoms", default="16,64")
    parser.add_argument(
        "--scaling-seconds",
        type=float,
        default=30.0,
        help="wall seconds of each serial loop; every n_procs walks as many clones",
    )
    parser.add_argument("--walk-length", type=int, default=32)
    parser.add_argument("--eam", default=str(Path(__file__).resolve().parents[2] / "shared/data/mg/Mg1.eam.fs"))
    parser.add_argument("--ace-model", default=None, help="linear-ACE committee model folder (ace_committee)")
    parser.add_argument("--load-balance", default="0,1", help="load_balance values to measure (0, 1 or 0,1)")
    parser.add_argument("--models", default="eam,ace", help="which of eam, ace (ace needs --ace-model)")
    parser.add_argument("--json", default=None, help="write the scaling rows (and the machine) here")
    parser.add_argument("--imbalance", action="store_true", help="walk-cost imbalance at n_cull = 16, serially")
    parser.add_argument("--imbalance-repeats", type=int, default=3, help="timings per EAM walk (the least is kept)")
    parser.add_argument("--ace-repeats", type=int, default=2, help="timings per ACE walk (the least is kept)")
    parser.add_argument("--max-iter", type=int, default=4000, help="cap of the EAM runs of --imbalance")
    parser.add_argument("--converge-t", type=float, default=500.0, help="converge_down_to_T of those runs (K)")
    parser.add_argument("--thermo-seeds", type=int, default=2, help="more EAM runs per load_balance for U(T), V(T)")
    parser.add_argument("--ace-iterations", type=int, default=64, help="iterations of the ACE runs' start")
    parser.add_argument("--replay-iterations", type=int, default=12, help="EAM iterations per stage replayed by ACE")
    parser.add_argument("--small-ace", action="store_true", help="also the 74-function committee (ace_models.py)")
    parser.add_argument(
        "--thermo-only", action="store_true", help="with --imbalance: only the U(T), V(T) comparison (seeds 100, ...)"
    )
    args = parser.parse_args()
    if args.imbalance and args.thermo_only:
        run_imbalance_thermo(args)
        return
    if args.imbalance:
        run_imbalance(args)
        return
    if args.scaling:
        run_scaling(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        speed(args.procs, 16, Path(folder))
        if not args.skip_thermo:
            thermodynamics(args.procs, args.seeds, args.atoms, args.walkers, Path(folder))


def run_scaling(args) -> None:
    """The scaling table for EAM (and the ACE committee when a model is given), as JSON too."""
    wanted = args.models.split(",")
    models = {}
    if "eam" in wanted:
        models["eam"] = make_calculator({"type": "eam", "file": args.eam, "implementation": "nestdb"})
    if "ace" in wanted and args.ace_model:
        models["ace"] = make_calculator({"type": "ace_committee", "model": args.ace_model})
    machine = {
        "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as folder:
        rows = scaling(
            models,
            [int(a) for a in args.scaling_atoms.split(",")],
            [int(p) for p in args.scaling_procs.split(",")],
            args.scaling_seconds,
            Path(folder),
            args.walk_length,
            tuple(bool(int(v)) for v in args.load_balance.split(",")),
        )
    machine["load_average_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


# ------------------------------------------------------------------ walk imbalance
#: CPU time of the same walks with 16 busy cores over 1 core busy (the ``cpu_time_check``
#: of results/ns_parallel_scaling_16cores.json: all-core clock, shared caches)
ALL_CORE_CPU_FACTOR = 1.34
#: Processes (= n_cull) of the projection.
IMBALANCE_PROCS = 16
#: Speed-ups measured at 16 processes on the 16-core device, 16 and 64 atoms
#: (random move picks, forces on every call: the driver before the energy-only calls)
MEASURED_SPEEDUP_16 = {"eam": [6.94, 7.86], "ace": [8.92, 8.53]}
#: Stage thresholds on the NS temperature estimate (K), as ns_speed.py's for Mg.
GAS_ABOVE_K, CRYSTAL_BELOW_K = 3000.0, 900.0
#: Iterations of the device's 16-process EAM run (16 atoms): the "start" window.
START_ITERATIONS = 256


class WalkCosts:
    """Times every clone walk (``CloneWalker.__call__``, patched while in use) in thread CPU seconds.

    A walk is deterministic given its task, so each is walked ``repeats``
    times and the least time kept: other processes on a shared machine
    (preemption, cache pollution) only add time. Calls and force calls of a
    walk come from a :class:`ModelTimer` on its calculator. ``rows`` holds per
    walk: iteration, clone, least CPU s, first CPU s, calls, force calls,
    MD moves, driver CPU s since the previous walk ended (NaN for the first).
    With ``keep_every`` > 0 the tasks of every ``keep_every``-th iteration are
    kept in ``tasks`` (iteration -> list), for replays with other models.
    """

    def __init__(self, timer: ModelTimer, repeats: int = 1, keep_every: int = 0) -> None:
        self.timer, self.repeats, self.keep_every = timer, repeats, keep_every
        self.rows: list[tuple] = []
        self.tasks: dict[int, list[WalkTask]] = {}
        self.last_end: float | None = None

    def __enter__(self) -> WalkCosts:
        self.original = original = CloneWalker.__call__
        timer = self.timer

        def call(walker, task):
            start = time.thread_time()
            gap = start - self.last_end if self.last_end is not None else float("nan")
            calls, force_calls = timer.calls, timer.force_calls
            times = []
            for _ in range(self.repeats):
                begin = time.thread_time()
                result = original(walker, task)
                times.append(time.thread_time() - begin)
            iteration, clone = int(task.seed[1]), int(task.seed[2])
            self.rows.append(
                (
                    iteration,
                    clone,
                    min(times),
                    times[0],
                    (timer.calls - calls) / self.repeats,
                    (timer.force_calls - force_calls) / self.repeats,
                    result.attempts["md"],
                    gap,
                )
            )
            if self.keep_every and iteration % self.keep_every == 0:
                self.tasks.setdefault(iteration, []).append(task)
            self.last_end = time.thread_time()
            return result

        CloneWalker.__call__ = call
        return self

    def __exit__(self, *exc) -> None:
        CloneWalker.__call__ = self.original

    def table(self) -> dict[str, np.ndarray]:
        """Per-walk columns as (iterations, clones) arrays, iterations in order."""
        rows = np.array(self.rows, dtype=float)
        iterations = np.unique(rows[:, 0]).astype(int)
        clones = int(rows[:, 1].max()) + 1
        shape = (len(iterations), clones)
        order = np.lexsort((rows[:, 1], rows[:, 0]))
        rows = rows[order]
        names = ("cpu", "cpu_first", "calls", "force_calls", "md_moves", "gap")
        table = {name: rows[:, 2 + i].reshape(shape) for i, name in enumerate(names)}
        table["iteration"] = iterations
        return table


def always_forces(calculator) -> None:
    """Make every call of ``calculator`` compute forces (the driver of the device runs, before energy-only calls)."""
    original = calculator.calculate

    def calculate(atoms=None, properties=("energy",), system_changes=None):
        return original(atoms, tuple(properties) + (() if "forces" in properties else ("forces",)), system_changes)

    calculator.calculate = calculate


def imbalance_stats(table: dict[str, np.ndarray], selected: np.ndarray) -> dict:
    """Cost imbalance of the walks of the ``selected`` iterations (row indices of ``table``).

    ``max_over_mean`` is the mean over iterations of the slowest walk's CPU
    time over the mean walk's; ``efficiency_bound`` = sum of means / sum of
    maxima, the parallel efficiency at n_procs = n_cull when every process
    walks one clone and the iteration waits for the slowest;
    ``projected_speedup_16`` = 16 x efficiency_bound / ALL_CORE_CPU_FACTOR;
    ``..._with_driver`` adds the driver's serial CPU time per iteration
    (measured here, without the parallel run's messages) to both sides.
    """
    if len(selected) == 0:
        return {"iterations": 0}
    cpu, first, calls = table["cpu"][selected], table["cpu_first"][selected], table["calls"][selected]
    mean, peak = cpu.mean(axis=1), cpu.max(axis=1)
    efficiency = mean.sum() / peak.sum()
    procs = cpu.shape[1]
    gap = np.nan_to_num(table["gap"][selected]).sum(axis=1)
    return {
        "iterations": int(len(selected)),
        "iteration_range": [int(table["iteration"][selected[0]]), int(table["iteration"][selected[-1]])],
        "walk_cpu_ms_mean": float(1e3 * mean.mean()),
        "max_over_mean": float((peak / mean).mean()),
        "walk_cpu_cv": float((cpu.std(axis=1) / mean).mean()),
        "efficiency_bound": float(efficiency),
        "projected_speedup_16": float(procs * efficiency / ALL_CORE_CPU_FACTOR),
        "projected_speedup_16_with_driver": float(
            (procs * mean + gap).sum() / (ALL_CORE_CPU_FACTOR * peak + gap).sum()
        ),
        "driver_cpu_ms_per_iteration": float(1e3 * gap.mean()),
        "max_over_mean_first_timing": float((first.max(axis=1) / first.mean(axis=1)).mean()),
        "calls_per_walk": float(calls.mean()),
        "calls_max_over_mean": float((calls.max(axis=1) / calls.mean(axis=1)).mean()),
        "force_calls_per_walk": float(table["force_calls"][selected].mean()),
        "force_calls_max_over_mean": float(
            (
                table["force_calls"][selected].max(axis=1)
                / np.maximum(table["force_calls"][selected].mean(axis=1), 1e-9)
            ).mean()
        ),
        "md_moves_per_walk_range": [float(table["md_moves"][selected].min()), float(table["md_moves"][selected].max())],
    }


def iteration_temperatures(prefix: Path, iterations: np.ndarray) -> np.ndarray:
    """NS temperature estimate (K) after each iteration, from the run's culled lines (NaN early)."""
    energies = read_energies(output_paths(prefix)["energies"])
    window: deque = deque(maxlen=T_ESTIMATE_WINDOW)
    by_iteration: dict[int, float] = {}
    for iteration, enthalpy in zip(energies.iters, energies.enthalpy, strict=True):
        window.append(float(enthalpy))
        by_iteration[int(iteration)] = temperature_estimate(window, energies.n_walkers, energies.n_cull)
    return np.array([by_iteration.get(int(i), np.nan) for i in iterations])


def stage_windows(temperatures: np.ndarray, iterations: np.ndarray) -> dict[str, np.ndarray]:
    """Row indices of the start window and of the gas, liquid and crystal stages (not iteration 0)."""
    rows = np.flatnonzero(iterations > 0)
    t = temperatures[rows]
    return {
        "start": rows[iterations[rows] <= START_ITERATIONS],
        "gas": rows[~(t < GAS_ABOVE_K)],  # NaN (first iterations) counts as gas
        "liquid": rows[(t < GAS_ABOVE_K) & (t >= CRYSTAL_BELOW_K)],
        "crystal": rows[t < CRYSTAL_BELOW_K],
    }


def imbalance_values(seed: int, balance: bool, **extra) -> dict:
    """The settings of the scaling runs at n_cull = 16, serial (every walk setting explicit,
    so that a change of NSSettings' defaults does not change this benchmark)."""
    values = dict(
        n_walkers=max(128, 8 * IMBALANCE_PROCS),
        walk_length=32,
        pressure_gpa=1.0,
        n_cull=IMBALANCE_PROCS,
        n_procs=1,
        kemax_max_T=5000.0,
        max_volume_per_atom=60.0,
        seed=seed,
        snapshot_seconds=None,
        traj_interval=0,
        load_balance=balance,
        max_iter=100000,
        converge_down_to_T=None,
        min_volume_per_atom=1.0,
        min_aspect_ratio=0.65,
        move_fractions={"md": 0.21, "volume": 0.31, "shear": 0.24, "stretch": 0.24},
        md_traj_len=5,
        start_energy_ceiling_per_atom=1e9,
    )
    return dict(values, **extra)


def imbalance_chain(calculator, timer, values: dict, prefix: Path, repeats: int, keep_every: int = 0):
    """One timed serial run (16 Mg atoms); returns its summary, the WalkCosts table, stage windows, kept tasks."""
    with WalkCosts(timer, repeats, keep_every) as costs:
        summary = run_nested_sampling({"Mg": 16}, calculator, NSSettings(**values), prefix)
    table = costs.table()
    table["temperature"] = iteration_temperatures(prefix, table["iteration"])
    return summary, table, stage_windows(table["temperature"], table["iteration"]), costs.tasks


def translate_task(task: WalkTask, evaluate, pressure: float) -> WalkTask | None:
    """The task for another model: the clone's energy, forces and STD from ``evaluate``, and
    H_lim = its new enthalpy + the old margin H_lim - H (None where the model fails)."""
    state = {name: np.array(value) for name, value in task.state.items()}
    result = evaluate(state["positions"], state["cells"], forces=True)
    if not result.ok:
        return None
    enthalpy = result.energy + pressure * float(state["volume"]) + float(state["kinetic"])
    state.update(
        potential=np.array(result.energy),
        forces=np.array(result.forces),
        committee_std=np.array(result.std_per_atom),
        enthalpy=np.array(enthalpy),
    )
    margin = task.h_lim - float(task.state["enthalpy"])
    return WalkTask(state, enthalpy + margin, dict(task.steps), task.seed)


def replay(calculator, timer, values: dict, tasks_by_stage: dict, repeats: int) -> dict:
    """Walk recorded iterations' clones with ``calculator`` (load_balance off and on, the same tasks);
    returns {load_balance: {stage: stats}}."""
    numbers = np.full(16, 12)
    translator = CloneWalker(numbers, calculator, NSSettings(**values))
    pressure = translator.sampler.pressure
    translated = {}
    for stage, iterations in tasks_by_stage.items():
        groups = [[translate_task(t, translator.sampler.evaluate, pressure) for t in tasks] for tasks in iterations]
        translated[stage] = [g for g in groups if all(t is not None for t in g)]
    out = {}
    for balance in (False, True):
        walker = CloneWalker(numbers, calculator, NSSettings(**dict(values, load_balance=balance)))
        out[balance] = {}
        for stage, groups in translated.items():
            with WalkCosts(timer, repeats) as costs:
                for tasks in groups:
                    costs.last_end = None  # no driver between replayed iterations
                    for task in tasks:
                        walker(task)
            if costs.rows:
                table = costs.table()
                out[balance][stage] = imbalance_stats(table, np.arange(len(table["iteration"])))
    return out


def pick_tasks(tasks: dict[int, list], table: dict, windows: dict, per_stage: int) -> dict[str, list]:
    """``per_stage`` kept iterations spread evenly over each of gas, liquid and crystal."""
    picked = {}
    for stage in ("gas", "liquid", "crystal"):
        kept = [int(i) for i in table["iteration"][windows[stage]] if int(i) in tasks and len(tasks[int(i)]) == 16]
        if kept:
            chosen = sorted({kept[int(k)] for k in np.linspace(0, len(kept) - 1, per_stage)})
            picked[stage] = [tasks[i] for i in chosen]
    return picked


def thermo_compare(prefixes: dict[bool, list[Path]], atoms: int = 16) -> dict:
    """U(T) and <V>(T) per atom with load_balance off and on over seeds: means, standard errors,
    the largest |difference| / combined error; H range and C_p peak per run."""
    temperatures = np.arange(600.0, 3001.0, 300.0)
    out: dict = {"T_K": temperatures.tolist()}
    stats = {}
    for balance, paths in prefixes.items():
        u, v, peaks, h_min = [], [], [], []
        for prefix in paths:
            energies = read_energies(output_paths(prefix)["energies"])
            table = analyse(energies, temperatures)
            u.append(table["U"].to_numpy() / atoms)
            v.append(table["V"].to_numpy() / atoms)
            fine = analyse(energies, np.arange(600.0, 3001.0, 10.0))
            peaks.append(float(fine["T"].iloc[int(np.argmax(fine["Cp"].to_numpy()))]))
            h_min.append(float(energies.enthalpy.min()) / atoms)
        u, v = np.array(u), np.array(v)
        n = len(paths)
        stats[balance] = (u.mean(0), u.std(0, ddof=1) / np.sqrt(n), v.mean(0), v.std(0, ddof=1) / np.sqrt(n))
        out[f"load_balance_{int(balance)}"] = {
            "runs": n,
            "U_ev_per_atom": u.mean(0).round(5).tolist(),
            "U_se": stats[balance][1].round(5).tolist(),
            "V_a3_per_atom": v.mean(0).round(4).tolist(),
            "V_se": stats[balance][3].round(4).tolist(),
            "Cp_peak_K": peaks,
            "lowest_H_ev_per_atom": h_min,
        }
    (u0, du0, v0, dv0), (u1, du1, v1, dv1) = stats[False], stats[True]
    out["largest_difference_in_combined_se"] = {
        "U": float(np.max(np.abs(u0 - u1) / np.hypot(du0, du1))),
        "V": float(np.max(np.abs(v0 - v1) / np.hypot(dv0, dv1))),
    }
    return out


def run_imbalance_thermo(args) -> None:
    """Only the U(T), <V>(T) comparison of load_balance off and on: ``--thermo-seeds`` untimed EAM runs
    per setting (seeds 100, 101, ...), written as ``thermo_eam`` into the ``--json`` file (kept otherwise)."""
    extra = dict(max_iter=args.max_iter, converge_down_to_T=args.converge_t)
    eam = make_calculator({"type": "eam", "file": args.eam})
    prefixes: dict[bool, list[Path]] = {False: [], True: []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.thermo_seeds):
            for balance in (False, True):
                prefix = Path(folder) / f"eam_thermo{seed}_lb{int(balance)}"
                values = imbalance_values(100 + seed, balance, **extra)
                run_nested_sampling({"Mg": 16}, eam, NSSettings(**values), prefix)
                prefixes[balance].append(prefix)
        thermo = thermo_compare(prefixes)
    thermo["seeds"] = [100, 100 + args.thermo_seeds - 1]
    thermo["wall_s"] = time.perf_counter() - start
    thermo["load_average_after"] = os.getloadavg()
    print("thermo (EAM, lb off vs on):", json.dumps(thermo))
    if args.json:
        path = Path(args.json)
        out = json.loads(path.read_text()) if path.is_file() else {}
        out["thermo_eam"] = thermo
        path.write_text(json.dumps(out, indent=1) + "\n")


def run_imbalance(args) -> None:
    """Walk-cost imbalance of the 16 walks of one iteration, measured serially (n_procs = 1, n_cull = 16).

    16 Mg atoms, 1 GPa, the scaling runs' settings (K = 128, L = 32, the
    default move mix). Every walk's thread CPU time (least of ``repeats``
    walks of the same task), calls and force calls are recorded; per window
    (the first 256 iterations, as the device measured, and the gas, liquid and
    crystal stages by the NS temperature estimate) :func:`imbalance_stats`
    gives max/mean, the efficiency bound mean/max and the projected 16-process
    speed-up. Runs:

    - EAM (``Mg1.eam.fs``): whole runs to ``--converge-t`` with load_balance
      off and on, and a start window with forces on every call (the driver of
      the device runs); ``--thermo-seeds`` more untimed runs per setting for
      the U(T), <V>(T) comparison;
    - ACE committee (``--ace-model``, the study basis): the start of real runs
      (``--ace-iterations``), off and on; then ``--replay-iterations``
      iterations per stage of the EAM run replayed with it (each clone's
      energy, forces and STD recomputed, H_lim = its enthalpy + the EAM
      margin), off and on with the same tasks; the same for the 74-function
      committee of ace_models.py (``--small-ace``).
    """
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    machine = {
        "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "commit": commit,
    }
    results: list[dict] = []
    out: dict = {"machine": machine, "results": results, "all_core_cpu_factor": ALL_CORE_CPU_FACTOR}
    out["measured_speedup_16_device"] = MEASURED_SPEEDUP_16
    out["settings"] = {
        "eam_runs": dataclasses.asdict(
            NSSettings(**imbalance_values(7, False, max_iter=args.max_iter, converge_down_to_T=args.converge_t))
        ),
        "atoms": 16,
        "eam_file": args.eam,
        "ace_model": args.ace_model,
        "repeats_eam_ace": [args.imbalance_repeats, args.ace_repeats],
        "thermo_seeds_per_setting": 1 + args.thermo_seeds,
        "stage_thresholds_k": {"gas_above": GAS_ABOVE_K, "crystal_below": CRYSTAL_BELOW_K},
        "start_window_iterations": START_ITERATIONS,
    }
    clock = time.perf_counter()

    def report(model: str, kind: str, balance: bool, driver: str, windows: dict) -> None:
        for window, row in windows.items():
            results.append(dict(model=model, kind=kind, load_balance=balance, driver=driver, window=window, **row))
            if row.get("iterations"):
                print(
                    f"imbalance: {model:5s} {kind:6s} lb={int(balance)} {driver:11s} {window:7s} "
                    f"{row['iterations']:5d} it, walk {row['walk_cpu_ms_mean']:8.2f} ms, max/mean "
                    f"{row['max_over_mean']:.3f} (first timing {row['max_over_mean_first_timing']:.3f}, calls "
                    f"{row['calls_max_over_mean']:.3f}), efficiency {row['efficiency_bound']:.3f}, projected 16x: "
                    f"{row['projected_speedup_16']:.2f} ({row['projected_speedup_16_with_driver']:.2f} with driver)"
                    f"  [{time.perf_counter() - clock:.0f} s]",
                    flush=True,
                )

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        eam = make_calculator({"type": "eam", "file": args.eam})
        eam_timer = ModelTimer(eam)
        run_nested_sampling({"Mg": 16}, eam, NSSettings(**imbalance_values(1, False, max_iter=2)), tmp / "warm")
        extra = dict(max_iter=args.max_iter, converge_down_to_T=args.converge_t)
        prefixes: dict[bool, list[Path]] = {False: [], True: []}
        kept_tasks = None
        for balance in (False, True):
            prefix = tmp / f"eam_lb{int(balance)}"
            summary, table, windows, tasks = imbalance_chain(
                eam, eam_timer, imbalance_values(7, balance, **extra), prefix, args.imbalance_repeats, 5
            )
            prefixes[balance].append(prefix)
            if not balance:
                kept_tasks, eam_table, eam_windows = tasks, table, windows
            out[f"eam_run_lb{int(balance)}"] = {
                k: summary[k] for k in ("n_iter", "stop_reason", "n_calls", "acceptance", "wall_s")
            }
            report("eam", "chain", balance, "energy-only", {w: imbalance_stats(table, r) for w, r in windows.items()})
        # the driver of the device runs: forces on every call, random picks
        old = make_calculator({"type": "eam", "file": args.eam})
        old_timer = ModelTimer(old)
        always_forces(old)
        _, table, windows, _ = imbalance_chain(
            old,
            old_timer,
            imbalance_values(7, False, max_iter=START_ITERATIONS + 1),
            tmp / "eam_forces",
            args.imbalance_repeats,
        )
        report("eam", "chain", False, "all-forces", {"start": imbalance_stats(table, windows["start"])})
        for seed in range(args.thermo_seeds):
            for balance in (False, True):
                prefix = tmp / f"eam_thermo{seed}_lb{int(balance)}"
                run_nested_sampling(
                    {"Mg": 16}, eam, NSSettings(**imbalance_values(100 + seed, balance, **extra)), prefix
                )
                prefixes[balance].append(prefix)
        out["thermo_eam"] = thermo_compare(prefixes)
        print("thermo (EAM, lb off vs on):", json.dumps(out["thermo_eam"]), f"[{time.perf_counter() - clock:.0f} s]")
        picked = pick_tasks(kept_tasks, eam_table, eam_windows, args.replay_iterations)
        out["replayed_eam_iterations"] = {s: [int(g[0].seed[1]) for g in groups] for s, groups in picked.items()}

        aces = {}
        if args.ace_model:
            aces["ace"] = (args.ace_model, args.ace_iterations, args.replay_iterations)
        if args.small_ace:
            folder74, _ = ace_models.committee_model("b74")
            aces["ace74"] = (str(folder74), args.ace_iterations, args.replay_iterations)
        for name, (model, iterations, per_stage) in aces.items():
            ace = make_calculator({"type": "ace_committee", "model": model})
            timer = ModelTimer(ace)
            run_nested_sampling({"Mg": 16}, ace, NSSettings(**imbalance_values(1, False, max_iter=1)), tmp / "warm")
            for balance in (False, True):
                _, table, windows, _ = imbalance_chain(
                    ace,
                    timer,
                    imbalance_values(7, balance, max_iter=iterations + 1),
                    tmp / f"{name}_lb{int(balance)}",
                    args.ace_repeats,
                )
                report(name, "chain", balance, "energy-only", {"start": imbalance_stats(table, windows["start"])})
            stage_tasks = pick_tasks(kept_tasks, eam_table, eam_windows, per_stage)
            for balance, windows in replay(
                ace, timer, imbalance_values(7, False), stage_tasks, args.ace_repeats
            ).items():
                report(name, "replay", balance, "energy-only", windows)
    machine["load_average_after"] = os.getloadavg()
    machine["wall_s"] = time.perf_counter() - clock
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
