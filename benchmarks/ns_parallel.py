"""Parallel walking: speed-up and thermodynamics against serial NS.

1. Speed: the same run (same n_cull) with n_procs = 1 and n_procs = N; the
   files are identical by construction, so only calls/s differ. Prints the
   ratio (on a shared 2-core machine it is bounded by 2 and by other load).
2. Thermodynamics: serial runs (n_cull = 1) against parallel runs
   (n_cull = n_procs = N) over several seeds; prints U(T), <V>(T) and the C_p
   peak temperature, mean +- standard error across seeds, and the largest
   |difference| / combined error.

    .venv/bin/python benchmarks/ns_parallel.py [--procs 2] [--seeds 4] [--atoms 6]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.potentials.lj import FastLennardJones
from nestdb.thermo import analyse, read_energies


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
    args = parser.parse_args()
    if args.scaling:
        run_scaling(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        speed(args.procs, 16, Path(folder))
        if not args.skip_thermo:
            thermodynamics(args.procs, args.seeds, args.atoms, args.walkers, Path(folder))


def run_scaling(args) -> None:
    """The scaling table for EAM (and the ACE committee when a model is given), as JSON too."""
    import json
    import os
    import platform

    from nestdb.models.calculators import make_calculator

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


if __name__ == "__main__":
    main()
