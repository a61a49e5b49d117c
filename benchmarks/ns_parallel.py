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
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from nestdb.calculators import FastLennardJones
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.thermo import analyse, read_energies


def speed(n_procs: int, atoms: int, tmp: Path) -> None:
    values = dict(n_walkers=64, walk_length=64, pressure_gpa=1.0, max_iter=120, n_cull=n_procs,
                  kemax_max_T=5000.0, max_volume_per_atom=60.0, seed=1, snapshot_seconds=None)
    rates, cpu = {}, {}
    for procs in (1, n_procs):
        start = time.perf_counter()
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = run_nested_sampling({"Mg": atoms}, FastLennardJones(), NSSettings(**dict(values, n_procs=procs)),
                                      tmp / f"speed{procs}")
        wall = time.perf_counter() - start
        own_cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(own)
        workers_cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(children)
        rates[procs] = summary["n_calls"] / wall
        # on an idle machine the wall time is that of the busiest process
        cpu[procs] = max(own_cpu, workers_cpu / procs) if procs > 1 else own_cpu
        print(f"speed: {atoms} atoms, n_cull={n_procs}, n_procs={procs}: {summary['n_calls']} calls in "
              f"{wall:.1f} s wall = {rates[procs]:.0f} calls/s, {summary['n_iter'] / wall:.2f} iterations/s; "
              f"CPU s: main {own_cpu:.1f}, workers {workers_cpu:.1f}")
    same = output_paths(tmp / "speed1")["energies"].read_bytes() == \
        output_paths(tmp / f"speed{n_procs}")["energies"].read_bytes()
    print(f"speed-up n_procs={n_procs} vs 1: wall {rates[n_procs] / rates[1]:.2f}x (depends on the load), "
          f"CPU-time bound {cpu[1] / cpu[n_procs]:.2f}x; identical .energies: {same}")


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def thermodynamics(n_procs: int, seeds: int, atoms: int, walkers: int, tmp: Path) -> None:
    temperatures = np.arange(200.0, 3001.0, 200.0)
    # both kinds must stop by convergence (same X reached), not by the cap
    values = dict(n_walkers=walkers, walk_length=24, pressure_gpa=1.0, converge_down_to_T=150.0,
                  kemax_max_T=5000.0, max_volume_per_atom=60.0, snapshot_seconds=None, traj_interval=0)
    results: dict[str, list] = {"serial": [], "parallel": []}
    for kind, n_cull in (("serial", 1), ("parallel", n_procs)):
        start = time.perf_counter()
        for seed in range(seeds):
            prefix = tmp / f"{kind}{seed}"
            summary = run_nested_sampling({"Mg": atoms}, FastLennardJones(), NSSettings(**dict(
                values, max_iter=40000 // n_cull, n_cull=n_cull, n_procs=n_cull, seed=100 + seed)), prefix)
            print(f"  {kind} seed {100 + seed}: {summary['stop_reason']} after {summary['n_iter'] * n_cull} culls, "
                  f"{summary['n_calls']} calls")
            table = analyse(read_energies(output_paths(prefix)["energies"]), temperatures)
            fine = analyse(read_energies(output_paths(prefix)["energies"]), np.arange(100.0, 3001.0, 10.0))
            peak = float(fine["T"].iloc[int(np.argmax(fine["Cp"].to_numpy()))])
            results[kind].append((table["U"].to_numpy() / atoms, table["V"].to_numpy() / atoms, peak))
        print(f"thermo: {kind} (n_cull={n_cull}, n_procs={n_cull}), {seeds} seeds: "
              f"{time.perf_counter() - start:.0f} s")

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
        print(f"{t:6.0f} {u_s[i]:12.4f}+-{du_s[i]:.4f} {u_p[i]:12.4f}+-{du_p[i]:.4f} "
              f"{v_s[i]:10.3f}+-{dv_s[i]:.3f} {v_p[i]:10.3f}+-{dv_p[i]:.3f}")
        worst = max(worst, abs(u_s[i] - u_p[i]) / np.hypot(du_s[i], du_p[i]),
                    abs(v_s[i] - v_p[i]) / np.hypot(dv_s[i], dv_p[i]))
    p_s, dp_s = stats("serial", 2)
    p_p, dp_p = stats("parallel", 2)
    print(f"C_p peak: serial {p_s:.0f} +- {dp_s:.0f} K, parallel {p_p:.0f} +- {dp_p:.0f} K")
    print(f"largest |serial - parallel| / combined standard error over U and V: {worst:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--atoms", type=int, default=5)
    parser.add_argument("--walkers", type=int, default=32)
    parser.add_argument("--skip-thermo", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        speed(args.procs, 16, Path(folder))
        if not args.skip_thermo:
            thermodynamics(args.procs, args.seeds, args.atoms, args.walkers, Path(folder))


if __name__ == "__main__":
    main()
