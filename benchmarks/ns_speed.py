"""NS speed: nestdb's nested sampling against pymatnest's recorded sample runs.

Runs nestdb's constant-pressure NS (``nestdb.ns.run_nested_sampling``) on Mg
with ``Mg1.eam.fs`` at 1 GPa with pymatnest's sample settings (K = 100
walkers, L = 32 model calls per walk, 8 MD steps per TE-HMC move, move mix
1:4:2:2 MD:volume:shear:stretch, aspect ratio 0.8, V/N in [5, 60] A^3), for
8, 16 and 64 atoms, with (a) ASE's own EAM calculator and (b) nestdb's
vectorised EAM (``FastEAM``). Per case it reports

- NS iterations/s and model calls/s (steady state: the initial walkers excluded),
- the bare calculator time per call (the same call the engine makes, timed on
  the run's final walkers) and the driver overhead per call (NS time per call
  minus the bare call),
- wall and CPU time (on a shared machine the CPU-time rates are the ones
  comparable with pymatnest's runs, which had a core each),

and the ratios to pymatnest's 16-atom sample runs read from
``../shared/data/mg/pymatnest/samples`` (their call counts, wall times and
iteration counts; the documented values when that folder is absent):

- A: nestdb NS + nestdb EAM  vs  pymatnest + ASE EAM       (target >= 100x)
- B: nestdb NS + ASE EAM     vs  pymatnest + ASE EAM       (same calculator)
- C: nestdb NS + nestdb EAM  vs  pymatnest + vectorised EAM (target >= 10x)

pymatnest walks twice per iteration (clone + an extra walk, ~2 L calls per
iteration); nestdb walks once (L calls), so iterations/s ratios are about
twice the calls/s ratios at equal N, K, L. Both are printed.

    .venv/bin/python benchmarks/ns_speed.py              # ~5 min on 2 cores
    .venv/bin/python benchmarks/ns_speed.py --atoms 16 --scale 4   # longer runs

Writes a table to stdout and JSON to benchmarks/results/ns_speed.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.calculators.calculator import all_changes
from ase.io import read

from nestdb.calculators import make_calculator
from nestdb.ns import NSSettings, output_paths, run_nested_sampling

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EAM_FILE = SHARED / "data" / "mg" / "Mg1.eam.fs"
SAMPLES = SHARED / "data" / "mg" / "pymatnest" / "samples"

#: pymatnest's sample settings (mg16_1GPa_*.inp), in nestdb's keys.
SAMPLE_SETTINGS = dict(n_walkers=100, walk_length=32, pressure_gpa=1.0, md_traj_len=8,
                       move_fractions={"md": 1, "volume": 4, "shear": 2, "stretch": 2},
                       min_aspect_ratio=0.8, max_volume_per_atom=60.0, min_volume_per_atom=5.0,
                       kemax_max_T=5000.0, traj_interval=10)
#: Iterations per case at --scale 1: (nestdb EAM, ASE EAM), chosen for ~5 min in all.
DEFAULT_ITERATIONS = {8: (1500, 30), 16: (1500, 20), 64: (300, 4)}

#: pymatnest-format.md section 6 (used when the sample folder is absent):
#: iterations, calculator calls, wall s, seconds inside the calculator.
DOCUMENTED_PYMATNEST = {
    "ase_eam": [(267, 12695, 902.2, 820.2)],
    "fast_eam": [(12000, 748917, 1342.9, 845.9), (8000, 524028, 736.7, 525.6)],
}


def pymatnest_reference() -> dict:
    """pymatnest's 16-atom Mg runs: it/s, calls/s, ms/call in and outside the calculator."""
    runs = {key: list(value) for key, value in DOCUMENTED_PYMATNEST.items()}
    source = "pymatnest-format.md section 6"
    ase_dir, fast_dir = SAMPLES / "mg16_1GPa_aseeam_partial", SAMPLES / "mg16_1GPa_fasteam"
    if ase_dir.is_dir() and fast_dir.is_dir():
        def counts(prefix: Path) -> tuple[int, float, float]:
            calls = json.loads(Path(f"{prefix}.calc_counts.json").read_text())
            wall = json.loads(Path(f"{prefix}.wall.json").read_text())
            return calls["n_calculate"], wall["wall_s"], calls["t_calculate_s"]

        n_ase = len((ase_dir / "mg16_1GPa_aseeam.energies").read_text().splitlines()) - 1  # minus header
        # segment 1: iterations 0..11999 (n_iter_times_fraction_killed=120 x 100 walkers); restart 12000..19999
        n_fast = len((fast_dir / "mg16_1GPa_fasteam.energies").read_text().splitlines()) - 1
        runs = {"ase_eam": [(n_ase, *counts(ase_dir / "mg16_1GPa_aseeam"))],
                "fast_eam": [(12000, *counts(fast_dir / "mg16_1GPa_fasteam.seg1")),
                             (n_fast - 12000, *counts(fast_dir / "mg16_1GPa_fasteam.seg2_restart"))]}
        source = str(SAMPLES)
    reference = {"source": source}
    for key, segments in runs.items():
        rows = [{"iters_per_s": it / wall, "calls_per_s": calls / wall, "ms_per_call_in_calculator": 1e3 * inside / calls,
                 "ms_per_call_outside": 1e3 * (wall - inside) / calls, "iterations": it, "calls": calls, "wall_s": wall}
                for it, calls, wall, inside in segments]
        reference[key] = rows
    return reference


class _TimedLog:
    """A log stream that remembers when the first line (written after the initial walkers) came."""

    def __init__(self) -> None:
        self.first_line_time: float | None = None
        self.first_line_cpu: float | None = None

    def write(self, text: str) -> None:
        if self.first_line_time is None:
            self.first_line_time, self.first_line_cpu = time.perf_counter(), time.process_time()

    def flush(self) -> None:
        pass


def _settings(**values) -> NSSettings:
    names = {f.name for f in dataclasses.fields(NSSettings)}
    if "snapshot_seconds" in names:
        values.setdefault("snapshot_seconds", None)  # no snapshot writing inside the timing
    return NSSettings(**{k: v for k, v in values.items() if k in names})


def bare_call_ms(calc, frames, repeats: int) -> tuple[float, float]:
    """Mean wall and CPU time (ms) of the engine's call, reset + calculate(energy,
    forces) on one reused Atoms object, over the given configurations."""
    atoms = frames[0].copy()
    atoms.calc = calc
    cpu0, start = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for frame in frames:
            atoms.set_cell(frame.cell, scale_atoms=False)
            atoms.set_positions(frame.positions)
            calc.reset()
            calc.calculate(atoms, ["energy", "forces"], all_changes)
    n_calls = repeats * len(frames)
    return 1e3 * (time.perf_counter() - start) / n_calls, 1e3 * (time.process_time() - cpu0) / n_calls


def measure(n_atoms: int, implementation: str, iterations: int, seed: int, workdir: Path) -> dict:
    """One NS run; steady-state rates from the time after the initial walkers."""
    calc = make_calculator({"type": "eam", "file": str(EAM_FILE), "implementation": implementation})
    settings = _settings(**SAMPLE_SETTINGS, max_iter=iterations, seed=seed)
    prefix = workdir / f"mg{n_atoms}_{implementation}"
    log = _TimedLog()
    cpu0, start = time.process_time(), time.perf_counter()
    summary = run_nested_sampling({"Mg": n_atoms}, calc, settings, prefix, log=log)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    init_wall = (log.first_line_time or start) - start
    calls = summary["n_calls"] - summary["n_init_calls"]
    steady_wall = wall - init_wall
    steady_cpu = cpu - ((log.first_line_cpu or cpu0) - cpu0)
    frames = read(output_paths(prefix)["final"], ":")[:20]
    bare_ms, bare_cpu_ms = bare_call_ms(calc, frames, repeats=1 if implementation == "ase" else 20)
    ms_per_call, cpu_ms_per_call = 1e3 * steady_wall / calls, 1e3 * steady_cpu / calls
    return {
        "atoms": n_atoms, "calculator": implementation, "iterations": summary["n_iter"], "calls": calls,
        "init_calls": summary["n_init_calls"], "init_wall_s": init_wall, "wall_s": wall, "cpu_s": cpu,
        "iters_per_s": summary["n_iter"] / steady_wall, "calls_per_s": calls / steady_wall,
        "iters_per_cpu_s": summary["n_iter"] / steady_cpu, "calls_per_cpu_s": calls / steady_cpu,
        "calls_per_iter": calls / max(summary["n_iter"], 1), "ms_per_call": ms_per_call,
        "bare_calculator_ms": bare_ms, "driver_overhead_ms": ms_per_call - bare_ms,
        "cpu_ms_per_call": cpu_ms_per_call, "bare_calculator_cpu_ms": bare_cpu_ms,
        "driver_overhead_cpu_ms": cpu_ms_per_call - bare_cpu_ms,
        "cpu_share": cpu / wall,
    }


def ratios(results: list[dict], reference: dict) -> list[dict]:
    """Ratios A, B, C (see the module docstring) for the 16-atom cases, wall and CPU based."""
    by_calc = {r["calculator"]: r for r in results if r["atoms"] == 16}
    ase_ref = reference["ase_eam"][0]
    fast_refs = reference["fast_eam"]
    comparisons = [("A", "nestdb NS + nestdb EAM vs pymatnest + ASE EAM (target >= 100x)", "nestdb", [ase_ref]),
                   ("B", "nestdb NS + ASE EAM vs pymatnest + ASE EAM", "ase", [ase_ref]),
                   ("C", "nestdb NS + nestdb EAM vs pymatnest + vectorised EAM (target >= 10x)", "nestdb", fast_refs)]
    rows = []
    for label, text, calc_name, refs in comparisons:
        if calc_name not in by_calc:
            continue
        ours = by_calc[calc_name]
        row = {"comparison": label, "what": text}
        for rate in ("iters_per_s", "calls_per_s"):
            values = [ref[rate] for ref in refs]
            # ranges over pymatnest's segments: ours / fastest .. ours / slowest
            row[f"{rate}_ratio_wall"] = (ours[rate] / max(values), ours[rate] / min(values))
            cpu_rate = rate.replace("_per_s", "_per_cpu_s")
            row[f"{rate}_ratio_cpu"] = (ours[cpu_rate] / max(values), ours[cpu_rate] / min(values))
        rows.append(row)
    return rows


def _range(pair: tuple[float, float]) -> str:
    low, high = pair
    return f"{low:.1f}x" if abs(high - low) < 0.05 * low else f"{low:.1f}-{high:.1f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atoms", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--calculators", nargs="+", default=["nestdb", "ase"], choices=["nestdb", "ase", "matscipy"])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the default iteration counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ns_speed.json")
    args = parser.parse_args(argv)
    if not EAM_FILE.exists():
        print(f"Mg1.eam.fs not found at {EAM_FILE}: this benchmark needs the shared study data")
        return 1
    reference = pymatnest_reference()
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_atoms in args.atoms:
            fast_iter, slow_iter = DEFAULT_ITERATIONS.get(n_atoms, (1000, 10))
            for implementation in args.calculators:
                iterations = max(2, int(round((slow_iter if implementation == "ase" else fast_iter) * args.scale)))
                result = measure(n_atoms, implementation, iterations, args.seed, Path(tmp))
                results.append(result)
                print(f"{n_atoms:3d} atoms {implementation:8s}: {result['iterations']:5d} it, "
                      f"{result['iters_per_s']:7.2f} it/s, {result['calls_per_s']:7.0f} calls/s "
                      f"({result['calls_per_cpu_s']:7.0f} per CPU s), bare call {result['bare_calculator_cpu_ms']:.3f} "
                      f"CPU ms, driver {result['driver_overhead_cpu_ms']:.3f} CPU ms/call", flush=True)
    comparison = ratios(results, reference)
    load_after = os.getloadavg()

    print("\n| atoms | calculator | iterations | it/s (wall) | calls/s (wall) | it/CPU-s | calls/CPU-s | calls/it "
          "| CPU ms/call | bare calculator CPU ms/call | driver CPU ms/call |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['atoms']} | {r['calculator']} | {r['iterations']} | {r['iters_per_s']:.2f} | "
              f"{r['calls_per_s']:.0f} | {r['iters_per_cpu_s']:.2f} | {r['calls_per_cpu_s']:.0f} | "
              f"{r['calls_per_iter']:.1f} | {r['cpu_ms_per_call']:.3f} | {r['bare_calculator_cpu_ms']:.3f} | "
              f"{r['driver_overhead_cpu_ms']:.3f} |")
    print("\npymatnest (16 atoms, from", reference["source"] + "):")
    for key, rows in (("ASE EAM", reference["ase_eam"]), ("vectorised EAM", reference["fast_eam"])):
        for row in rows:
            print(f"  {key}: {row['iters_per_s']:.2f} it/s, {row['calls_per_s']:.0f} calls/s, "
                  f"{row['ms_per_call_in_calculator']:.2f} ms/call in the calculator, "
                  f"{row['ms_per_call_outside']:.2f} ms/call outside")
    print("\n| comparison (16 atoms) | it/s ratio (wall) | calls/s ratio (wall) | it/s ratio (CPU) | calls/s ratio (CPU) |")
    print("|---|---|---|---|---|")
    for row in comparison:
        print(f"| {row['comparison']}: {row['what']} | {_range(row['iters_per_s_ratio_wall'])} | "
              f"{_range(row['calls_per_s_ratio_wall'])} | {_range(row['iters_per_s_ratio_cpu'])} | "
              f"{_range(row['calls_per_s_ratio_cpu'])} |")
    print(f"\nload average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "settings": {k: v for k, v in SAMPLE_SETTINGS.items()}, "results": results, "pymatnest": reference,
        "ratios": comparison, "load_average": [load_before, load_after], "cpus": os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
