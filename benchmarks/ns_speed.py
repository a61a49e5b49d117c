"""NS speed per stage of one run: model calls/s, iterations/s and driver overhead per call, gas / liquid / crystal.

One nested-sampling run per model, 16 Mg atoms at 1 GPa with pymatnest's
sample settings (K = 100 walkers, L = 32 model calls per walk, 8 MD steps
per TE-HMC move, move mix MD:volume:shear:stretch = 1:4:2:2, aspect ratio
0.8, V/N in [5, 60] A^3, KEmax from 5000 K), serial, no snapshots:

- ``lj``: :class:`~nestdb.potentials.lj.FastLennardJones` (Mg-like defaults, numpy);
- ``eam``: :class:`~nestdb.potentials.eam.FastEAM` with the study's ``Mg1.eam.fs`` (numba kernel);
- ``ace``: the linear-ACE committee calculator on a committee fitted by
  ``benchmarks/ace_models.py`` (basis ``--ace-basis``, default ``b74``: the
  driver overhead is what this script measures; ``ace_ns_cost.py`` times the
  study basis), with the study's cycle-1 committee restriction (every
  proposal's committee STD <= 62.5 meV/atom) and ``--ace-walkers`` walkers
  (default 50, so that its run reaches the crystal in a few minutes).

Measured as the side-by-side harness does (``../shared/tools/ns_side_by_side``):
the model's ``calculate()`` is wrapped (calls, wall and CPU time inside it,
and whether forces were asked for) and every walk's start is time-stamped
with its H_lim. Per stage: iterations/s and calls/s (wall, and per CPU
second), calls per iteration, ms per call inside the model, and the driver
overhead per call = (time - time inside the model) / calls, in wall and CPU
time. The first iteration (JIT loading, first calls) and the last are left out.

Stages are ranges of iterations classified by the NS temperature estimate
at each iteration (the slope of log X against H_lim over the last 1001 culls,
as the run's progress lines print it): gas T_est >= ``gas_above``, crystal
T_est < ``crystal_below``, liquid in between; thresholds per model in
:data:`MODELS` (Mg EAM: the melting signature of 901 +- 25 K measured by
ns_thermo_validation.py, and ~3000 K where <V>/atom passes ~40 A^3).

    nice .venv/bin/python benchmarks/ns_speed.py                      # lj, eam, ace: ~8 min on 2 cores
    .venv/bin/python benchmarks/ns_speed.py --models eam --iterations 20000

Writes a table to stdout and JSON to benchmarks/results/ns_speed.json (with
the machine's core count and load average).
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
from collections import deque
from pathlib import Path

import numpy as np

from nestdb.models.calculators import make_calculator
from nestdb.ns import NSSettings, run_nested_sampling
from nestdb.ns.loop import T_ESTIMATE_WINDOW, temperature_estimate
from nestdb.ns.sampler import Sampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ace_models  # noqa: E402
from ns_thermo_validation import SAMPLE_SETTINGS as PYMATNEST_SAMPLE_SETTINGS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EAM_FILE = REPO.parent / "shared" / "data" / "mg" / "Mg1.eam.fs"

#: pymatnest's sample settings (ns_thermo_validation.py), with a trajectory frame every 10 iterations.
SAMPLE_SETTINGS = dict(PYMATNEST_SAMPLE_SETTINGS, traj_interval=10)
#: The study's cycle-1 committee restriction (method.md section 1).
COMMITTEE_SETTINGS = dict(committee_std_max=62.5, committee_stop_std=60.625, committee_stop_fraction=0.9)

#: Per model: iterations (whole run, gas to crystal at the default K), stage thresholds (K).
MODELS = {
    "lj": {"iterations": 20000, "gas_above": 4000.0, "crystal_below": 1600.0},
    "eam": {"iterations": 20000, "gas_above": 3000.0, "crystal_below": 900.0},
    "ace": {"iterations": 9000, "gas_above": 3000.0, "crystal_below": 900.0},
}
STAGES = ("gas", "liquid", "crystal")


def _settings(**values) -> NSSettings:
    names = {f.name for f in dataclasses.fields(NSSettings)}
    if "snapshot_seconds" in names:
        values.setdefault("snapshot_seconds", None)  # no snapshot writing inside the timing
    return NSSettings(**{k: v for k, v in values.items() if k in names})


class ModelTimer:
    """Wraps one calculator's ``calculate`` (instance attribute): calls, wall and CPU inside, force calls."""

    def __init__(self, calc) -> None:
        self.calls = self.force_calls = 0
        self.wall = self.cpu = 0.0
        original = calc.calculate
        perf, cpu = time.perf_counter, time.process_time

        def calculate(atoms=None, properties=("energy",), system_changes=None):
            t0, c0 = perf(), cpu()
            try:
                return original(atoms, properties, system_changes)
            finally:
                self.wall += perf() - t0
                self.cpu += cpu() - c0
                self.calls += 1
                self.force_calls += "forces" in properties

        calc.calculate = calculate

    def counters(self) -> tuple[int, int, float, float]:
        return self.calls, self.force_calls, self.wall, self.cpu


def run_timed(calc, settings: NSSettings, prefix: Path) -> tuple[dict, np.ndarray]:
    """One NS run; returns its summary and one row per iteration
    (H_lim, wall, CPU, calls, force calls, model wall, model CPU) at the walk's start."""
    timer = ModelTimer(calc)
    rows = []
    original_walk = Sampler.walk

    def walk(self, index, h_lim):
        calls, force_calls, model_wall, model_cpu = timer.counters()
        rows.append((h_lim, time.perf_counter(), time.process_time(), calls, force_calls, model_wall, model_cpu))
        return original_walk(self, index, h_lim)

    Sampler.walk = walk
    try:
        summary = run_nested_sampling({"Mg": 16}, calc, settings, prefix)
    finally:
        Sampler.walk = original_walk
    calls, force_calls, model_wall, model_cpu = timer.counters()
    rows.append((np.nan, time.perf_counter(), time.process_time(), calls, force_calls, model_wall, model_cpu))
    return summary, np.array(rows)


def stage_of_iterations(h_lims: np.ndarray, n_walkers: int, gas_above: float, crystal_below: float) -> list[str]:
    """Stage of every iteration from the NS temperature estimate at that iteration."""
    window: deque = deque(maxlen=T_ESTIMATE_WINDOW)
    stages = []
    for h_lim in h_lims:
        window.append(float(h_lim))
        temperature = temperature_estimate(window, n_walkers, 1)
        if not temperature < gas_above:  # NaN (first iterations) counts as gas
            stages.append("gas")
        elif temperature < crystal_below:
            stages.append("crystal")
        else:
            stages.append("liquid")
    return stages


def rates(rows: np.ndarray, selected: np.ndarray) -> dict:
    """Rates over the iterations ``selected`` (indices i: from the start of walk i to that of walk i+1)."""
    delta = rows[selected + 1] - rows[selected]
    wall, cpu, calls, force_calls, model_wall, model_cpu = delta[:, 1:].sum(axis=0)
    iterations = len(selected)
    if iterations == 0 or calls == 0:
        return {"iterations": iterations}
    return {
        "iterations": iterations,
        "calls": int(calls),
        "calls_per_iter": calls / iterations,
        "force_call_fraction": force_calls / calls,
        "wall_s": wall,
        "cpu_s": cpu,
        "iters_per_s": iterations / wall,
        "calls_per_s": calls / wall,
        "iters_per_cpu_s": iterations / cpu,
        "calls_per_cpu_s": calls / cpu,
        "model_ms_per_call": 1e3 * model_wall / calls,
        "model_cpu_ms_per_call": 1e3 * model_cpu / calls,
        "overhead_ms_per_call": 1e3 * (wall - model_wall) / calls,
        "overhead_cpu_ms_per_call": 1e3 * (cpu - model_cpu) / calls,
        "h_lim_per_atom_range_ev": [float(rows[selected[0], 0]) / 16, float(rows[selected[-1], 0]) / 16],
    }


def measure(model: str, args, workdir: Path) -> dict:
    spec = MODELS[model]
    settings_values = dict(SAMPLE_SETTINGS, max_iter=args.iterations or spec["iterations"], seed=args.seed)
    extra = {}
    if model == "lj":
        calc = make_calculator({"type": "lj"})
    elif model == "eam":
        calc = make_calculator({"type": "eam", "file": str(EAM_FILE)})
    else:
        folder, fit = ace_models.committee_model(args.ace_basis, args.models)
        calc = make_calculator({"type": "ace_committee", "model": str(folder)})
        settings_values.update(COMMITTEE_SETTINGS, n_walkers=args.ace_walkers)
        extra = {"basis": args.ace_basis, "fit": fit}
    # warm-up (numba cache loading, first pyace calls) outside the measured run
    run_nested_sampling({"Mg": 16}, calc, _settings(**dict(settings_values, max_iter=2)), workdir / f"{model}_warm")
    settings = _settings(**settings_values)
    load_before = os.getloadavg()
    summary, rows = run_timed(calc, settings, workdir / model)
    n_iter = len(rows) - 1
    stages = stage_of_iterations(rows[:n_iter, 0], settings.n_walkers, spec["gas_above"], spec["crystal_below"])
    inner = np.arange(1, n_iter - 1)  # not the first iteration (first calls) nor the last
    labels = np.array(stages)[inner]
    result = {
        "model": model,
        "settings": dataclasses.asdict(settings),
        "stop_reason": summary["stop_reason"],
        "stage_thresholds_k": {"gas_above": spec["gas_above"], "crystal_below": spec["crystal_below"]},
        "whole_run": rates(rows, inner),
        "stages": {stage: rates(rows, inner[labels == stage]) for stage in STAGES},
        "load_average_before_after": [load_before, os.getloadavg()],
        **extra,
    }
    return result


def print_table(results: list[dict]) -> None:
    print(
        "\n| model | stage | iterations | it/s | calls/s | it/CPU-s | calls/CPU-s | calls/it | force calls "
        "| model ms/call (CPU) | overhead ms/call | overhead CPU ms/call |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        for stage, row in [("whole run", result["whole_run"])] + list(result["stages"].items()):
            if "calls" not in row:
                print(f"| {result['model']} | {stage} | {row['iterations']} | – | – | – | – | – | – | – | – | – |")
                continue
            print(
                f"| {result['model']} | {stage} | {row['iterations']} | {row['iters_per_s']:.1f} | "
                f"{row['calls_per_s']:.0f} | {row['iters_per_cpu_s']:.1f} | {row['calls_per_cpu_s']:.0f} | "
                f"{row['calls_per_iter']:.1f} | {100 * row['force_call_fraction']:.0f} % | "
                f"{row['model_cpu_ms_per_call']:.4f} | {row['overhead_ms_per_call']:.4f} | "
                f"{row['overhead_cpu_ms_per_call']:.4f} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", dest="model_names", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--iterations", type=int, default=None, help="override every model's iteration count")
    parser.add_argument("--ace-basis", default="b74", choices=list(ace_models.BASES))
    parser.add_argument("--ace-walkers", type=int, default=50)
    parser.add_argument(
        "--models-dir",
        dest="models",
        type=Path,
        default=ace_models.DEFAULT_CACHE,
        help="cache of fitted committees (benchmarks/ace_models.py)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ns_speed.json")
    args = parser.parse_args(argv)
    if not EAM_FILE.exists() or ("ace" in args.model_names and ace_models.data_missing()):
        print(f"skipped: the shared Mg data ({EAM_FILE.parent}) is missing")
        return 0
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model_names:
            results.append(measure(model, args, Path(tmp)))
            whole = results[-1]["whole_run"]
            print(
                f"{model}: {whole['iterations']} it, {whole['iters_per_s']:.1f} it/s, {whole['calls_per_s']:.0f} "
                f"calls/s, overhead {whole['overhead_ms_per_call']:.4f} ms/call",
                flush=True,
            )
    print_table(results)
    load_after = os.getloadavg()
    print(f"\nload average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "results": results,
                "cpus": os.cpu_count(),
                "load_average_before_after": [load_before, load_after],
                "python": platform.python_version(),
                "numpy": np.__version__,
                "machine": platform.machine(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
