"""``nestdb bench reference|model CONFIG ...``: the E–V, elastic and property benchmarks of the ``bench_*`` rules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nestdb.bench import stage
from nestdb.cli.common import log_context
from nestdb.config import bench_reference_spec, load_config
from nestdb.errors import DataError

#: Benchmarks ``nestdb bench`` runs: ``ev`` (E–V curves and elastic constants) and the properties.
BENCH_KINDS = ("ev", "enthalpy", "bain", "phonons")
#: What ``nestdb --help`` shows for ``bench``, and its description.
HELP = "benchmarks of a model against a reference (rules bench_*)"
DESCRIPTION = (
    "`bench reference` computes the reference side with the config's reference labeller "
    "(bench.reference, else label); `bench model` computes a fitted model's side and compares."
)


def add_arguments(bench: argparse.ArgumentParser) -> None:
    """Arguments of ``nestdb bench reference`` and ``nestdb bench model``."""
    actions = bench.add_subparsers(dest="bench_command", required=True)
    reference = actions.add_parser("reference", help="reference E-V, elastic constants and properties")
    model = actions.add_parser("model", help="a fitted model against the reference")
    for parser in (reference, model):
        parser.add_argument("config", help="workflow config file (YAML): the `bench` and `elements` keys")
        if parser is model:
            parser.add_argument("model", help="model folder written by `nestdb fit` or the fit rule (committee.npz)")
        parser.add_argument("--out", required=True, help="folder for the results (the workflow's results/bench/...)")
        parser.add_argument(
            "--kind",
            action="append",
            choices=BENCH_KINDS,
            default=None,
            help="benchmark to run (repeatable; default: ev and the properties enabled in CONFIG)",
        )
        parser.add_argument("--log", default=None, help="log file (default OUT/bench.log)")
    model.add_argument("--reference", required=True, help="folder written by `nestdb bench reference`")


def bench_kinds(args: argparse.Namespace, bench: dict) -> list[str]:
    if args.kind:
        return list(dict.fromkeys(args.kind))
    return ["ev"] + [kind for kind in BENCH_KINDS[1:] if bench[kind]["enabled"]]


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmarks (:mod:`nestdb.bench.stage`); prints the files written as JSON."""
    config = load_config(args.config)
    bench, element = config["bench"], config["elements"][0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = bench_kinds(args, bench)
    written = []
    with log_context(args.log or out / "bench.log"):
        if args.bench_command == "reference":
            spec = bench_reference_spec(config)
            for kind in kinds:
                if kind == "ev":
                    stage.bench_reference(spec, bench, element, out / "ev.csv", out / "elastic.json", out / "raw")
                    written += ["ev.csv", "elastic.json"]
                else:
                    stage.bench_property_reference(
                        kind, spec, bench, element, out / f"{kind}.json", out / f"raw_{kind}"
                    )
                    written.append(f"{kind}.json")
        else:
            reference = Path(args.reference)
            for kind in kinds:
                needed = [
                    reference / name for name in (("ev.csv", "elastic.json") if kind == "ev" else (f"{kind}.json",))
                ]
                missing = [str(path) for path in needed if not path.is_file()]
                if missing:
                    raise DataError(
                        f"reference file(s) {', '.join(missing)} missing; write them with "
                        f"`nestdb bench reference {args.config} --out {reference} --kind {kind}`"
                    )
                if kind == "ev":
                    stage.bench_model(
                        args.model,
                        bench,
                        element,
                        *needed,
                        out / "ev.csv",
                        out / "ev.png",
                        out / "elastic.csv",
                        out / "summary.json",
                    )
                    written += ["ev.csv", "ev.png", "elastic.csv", "summary.json"]
                else:
                    stage.bench_property_model(
                        kind,
                        args.model,
                        bench,
                        element,
                        needed[0],
                        out / f"{kind}.json",
                        out / f"{kind}.csv",
                        out / f"{kind}.png",
                        title=f"{Path(args.model).name}: model (solid) vs reference (dashed)",
                    )
                    written += [f"{kind}.json", f"{kind}.csv", f"{kind}.png"]
    print(json.dumps({"out": str(out), "written": written}))
    return 0
