"""Cost of the benchmark set of one cycle: reference (GPAW) and model side, per property.

Runs what the benchmark rules of one cycle run (E-V + elastic, enthalpy,
Bain path, phonons as enabled in the config's ``bench`` block), in one
process, and prints wall seconds and calculator calls per property and side.
The reference is the config's reference labeller (``bench.reference`` or
``label``), optionally with other GPAW settings; the model side uses the
study's EAM as a stand-in for the committee (``--model-dir`` takes a fitted
cycle instead). The sum approximates the rules' job-seconds; with two cores
Snakemake runs two of these jobs at a time.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_cost.py --config config/config.yaml \
        --gpaw '{"mode": {"name": "pw", "ecut": 300}, "kpts": {"density": 4, "gamma": true}}'
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EAM = REPO.parent / "shared" / "data" / "mg" / "Mg1.eam.fs"


def load_config(path: Path) -> dict:
    """The config with the schema's defaults filled in (as Snakemake does)."""
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def counting(factory):
    """Wrap a calculator factory; count the calls of the calculators it hands out.

    Counts ``Calculator.calculate``; GPAW's own ASE interface bypasses it,
    so the reference side of a GPAW run shows no count.
    """
    calls = {"n": 0}
    wrapped_ids: set[int] = set()

    def wrapped(name, atoms):
        calculator = factory(name, atoms)
        if id(calculator) in wrapped_ids:  # the model side hands out one calculator again and again
            return calculator
        wrapped_ids.add(id(calculator))
        original = calculator.calculate

        def calculate(*args, **kwargs):
            calls["n"] += 1
            return original(*args, **kwargs)

        calculator.calculate = calculate
        return calculator

    return wrapped, calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--gpaw", type=json.loads, default=None, help="GPAW settings replacing the reference's")
    parser.add_argument("--model-dir", type=Path, default=None, help="a fitted cycle (default: EAM stand-in)")
    parser.add_argument("--only", nargs="*", default=None, help="subset of ev_elastic enthalpy bain phonons")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    args = parser.parse_args(argv)

    from nestdb.bench.properties import compute_property, run_benchmarks
    from nestdb.bench.stage import reference_calculators
    from nestdb.config import bench_reference_spec
    from nestdb.models.calculators import make_calculator

    config = load_config(args.config)
    bench, element = config["bench"], config["elements"][0]
    spec = bench_reference_spec(config)
    if args.gpaw is not None:
        spec = {"code": "gpaw", "gpaw": args.gpaw}
    if args.model_dir:
        from nestdb.models.ace_committee import CommitteeACECalculator

        model = CommitteeACECalculator(args.model_dir)
    else:
        model = make_calculator({"type": "eam", "file": str(EAM), "kind": "eam/fs"})
    kinds = ["ev_elastic"] + [k for k in ("enthalpy", "bain", "phonons") if bench[k]["enabled"]]
    if args.only:
        kinds = [k for k in args.only if k in kinds]  # in the order given
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_cost_") as raw:
        for kind in kinds:
            for side in ("reference", "model"):
                if side == "reference":
                    factory = reference_calculators(spec, Path(raw) / kind, bench)
                else:
                    factory = lambda name, atoms: model  # noqa: E731
                factory, calls = counting(factory)
                start, cpu_start = time.perf_counter(), time.process_time()
                if kind == "ev_elastic":
                    run_benchmarks(factory, bench, element)
                else:
                    compute_property(kind, factory, bench, element)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                rows.append(
                    {
                        "property": kind,
                        "side": side,
                        "wall_s": round(seconds, 1),
                        "cpu_s": round(cpu, 1),
                        "calls": calls["n"],
                    }
                )
                counted = f"{calls['n']:5d} calls" if calls["n"] else "    - calls"
                print(f"{kind:12s} {side:9s} wall {seconds:8.1f} s  cpu {cpu:8.1f} s {counted}", flush=True)
    wall, cpu = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
    # On a shared machine wall time includes waiting for a core; CPU time is what a free core needs.
    print(f"{'total':22s} wall {wall:8.1f} s  cpu {cpu:8.1f} s (one thread; Snakemake runs 2 jobs on 2 cores)")
    if args.out:
        args.out.write_text(
            json.dumps(
                {"config": str(args.config), "spec": spec, "rows": rows, "total_wall_s": wall, "total_cpu_s": cpu},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
