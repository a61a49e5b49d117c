"""The ``nestdb`` command: each workflow stage without Snakemake.

``nestdb ns run`` (one NS run), ``nestdb analyse`` (thermodynamics of an
``.energies`` file, like pymatnest's ``ns_analyse``), ``nestdb label`` (one
DFT single point), ``nestdb fit`` (a linear-ACE committee from labelled
extended-XYZ files), ``nestdb bench reference`` / ``nestdb bench model``
(E–V, elastic and property benchmarks). ``python -m nestdb.cli ...`` is the
same program. The commands call the stage functions the Snakemake rules
call, with the settings of a workflow config file, so they write the same
files.

``nestdb label CONFIG OUT RAW_DIR --spec JSON [--policy JSON] [--mpi srun
--tasks N]`` is what the ``label`` rule runs: when the profile gives the
rule ``mpi`` and ``tasks`` resources, the workflow prefixes it with
``srun -n N`` for GPAW (which runs inside Python on all ranks; only rank 0
writes files), and passes ``--mpi srun --tasks N`` for CASTEP, VASP and
Quantum ESPRESSO, which the labeller then starts as ``srun -n N <code> ...``.

The stage modules are imported inside each command, so ``nestdb --help``
and ``nestdb analyse`` do not load pyace, GPAW or Snakemake.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from nestdb.errors import NestdbError
from nestdb.ns import cli as ns_cli
from nestdb.thermo import cli as thermo_cli

#: Benchmarks ``nestdb bench`` runs: ``ev`` (E–V curves and elastic constants) and the properties.
BENCH_KINDS = ("ev", "enthalpy", "bain", "phonons")


def _log_context(path: str | Path | None):
    """The stage's log file when one is given, else nothing (messages stay unlogged)."""
    from nestdb.stages import logging_to

    return logging_to(path) if path else contextlib.nullcontext()


# --------------------------------------------------------------------------- label
def _add_label(commands) -> None:
    label = commands.add_parser("label", help="DFT single point of one configuration (what the label rule runs)")
    label.add_argument("config", help="extended XYZ file with one configuration")
    label.add_argument("output", help="labelled extended XYZ file to write")
    label.add_argument("raw_dir", help="directory for the code's raw output")
    label.add_argument("--spec", required=True, help='labeller spec as JSON, e.g. \'{"code": "gpaw", "gpaw": {}}\'')
    label.add_argument("--log", default=None, help="log file")
    label.add_argument(
        "--policy", default=None, help="cache/timeout/retry/limits as JSON (nestdb.label.driver.LabelPolicy fields)"
    )
    label.add_argument(
        "--mpi", default=None, help="MPI launcher of an external code (srun, mpirun, ...); empty: serial"
    )
    label.add_argument("--tasks", type=int, default=None, help="MPI ranks of the external code")


def _run_label(args: argparse.Namespace) -> int:
    from nestdb.stages import label_one

    spec = json.loads(args.spec)
    options = {"policy": json.loads(args.policy) if args.policy else None, "mpi": args.mpi or None, "tasks": args.tasks}
    with _log_context(args.log):
        label_one(args.config, args.output, args.raw_dir, spec, **options)
    return 0


# --------------------------------------------------------------------------- fit
def _add_fit(commands) -> None:
    fit = commands.add_parser(
        "fit",
        help="linear-ACE committee fitted to labelled extended-XYZ files (rule fit)",
        description="Fit the workflow's linear-ACE Bayesian committee (settings: the `fit` "
        "and `elements` keys of CONFIG) to labelled configurations "
        "(dft_energy, dft_forces, dft_virial) and write the model folder.",
    )
    fit.add_argument("config", help="workflow config file (YAML), e.g. config/config.yaml")
    fit.add_argument("databases", nargs="+", help="labelled extended-XYZ files (results/label/cycle*/labelled.extxyz)")
    fit.add_argument("--out", required=True, help="model folder to write (potential.yaml, committee.npz, ...)")
    fit.add_argument("--n-jobs", type=int, default=1, help="processes for the design matrix (default 1)")
    fit.add_argument("--log", default=None, help="log file (default OUT/fit.log)")


def _run_fit(args: argparse.Namespace) -> int:
    from nestdb.stages import fit_cycle

    config = ns_cli.load_config(args.config)
    settings = dict(config["fit"], elements=config["elements"], n_jobs=args.n_jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with _log_context(args.log or out / "fit.log"):
        metrics = fit_cycle(args.databases, settings, out)
    keys = [key for key in metrics if key.startswith(("n_", "train", "test"))]
    print(json.dumps({key: metrics[key] for key in keys}, default=str))
    return 0


# --------------------------------------------------------------------------- bench
def _add_bench(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmarks of a model against a reference (rules bench_*)",
        description="`bench reference` computes the reference side with the config's "
        "reference labeller (bench.reference, else label); `bench model` "
        "computes a fitted model's side and compares.",
    )
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


def _bench_kinds(args: argparse.Namespace, bench: dict) -> list[str]:
    if args.kind:
        return list(dict.fromkeys(args.kind))
    return ["ev"] + [kind for kind in BENCH_KINDS[1:] if bench[kind]["enabled"]]


def _run_bench(args: argparse.Namespace) -> int:
    from nestdb.bench import workflow as stage
    from nestdb.config import bench_reference_spec
    from nestdb.errors import DataError

    config = ns_cli.load_config(args.config)
    bench, element = config["bench"], config["elements"][0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kinds = _bench_kinds(args, bench)
    written = []
    with _log_context(args.log or out / "bench.log"):
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


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The ``nestdb`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="nestdb",
        description="Nested-sampling training databases for MLIPs: each workflow stage on its own "
        "(the Snakemake workflow runs them all: `snakemake --cores N`).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ns_cli.add_arguments(commands.add_parser("ns", help="nested sampling without Snakemake (ns run ...)"))
    analyse = commands.add_parser("analyse", help="thermodynamics of an NS .energies file, like ns_analyse")
    thermo_cli.add_arguments(analyse)
    _add_label(commands)
    _add_fit(commands)
    _add_bench(commands)
    return parser


_RUN = {"ns": ns_cli.run, "analyse": thermo_cli.run, "label": _run_label, "fit": _run_fit, "bench": _run_bench}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one command; returns the exit code (errors propagate)."""
    args = build_parser().parse_args(argv)
    return _RUN[args.command](args)


def console(argv: list[str] | None = None) -> int:
    """Entry point of the ``nestdb`` script: nestdb's input errors as one line and exit status 2."""
    try:
        return main(argv)
    except NestdbError as exc:
        print(f"nestdb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(console())
