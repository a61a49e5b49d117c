"""Command-line entry points for steps that clusters launch under MPI.

``python -m nestdb.cli label CONFIG OUT RAW_DIR --spec JSON [--policy JSON]
[--mpi srun --tasks N]`` labels one configuration. When the profile gives the
``label`` rule ``mpi`` and ``tasks`` resources, the workflow prefixes it with
``srun -n N`` for GPAW (which runs inside Python on all ranks; only rank 0
writes files), and passes ``--mpi srun --tasks N`` for CASTEP, VASP and
Quantum ESPRESSO, which the labeller then starts as ``srun -n N <code> ...``.
"""

from __future__ import annotations

import argparse
import json
import sys

from nestdb.ns import cli as ns_cli
from nestdb.stages import label_one, logging_to
from nestdb.thermo import cli as thermo_cli


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one step; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m nestdb.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    label = commands.add_parser("label", help="DFT single point of one configuration")
    label.add_argument("config", help="extended XYZ file with one configuration")
    label.add_argument("output", help="labelled extended XYZ file to write")
    label.add_argument("raw_dir", help="directory for the code's raw output")
    label.add_argument("--spec", required=True, help="labeller spec as JSON, e.g. '{\"code\": \"gpaw\", \"gpaw\": {}}'")
    label.add_argument("--log", default=None, help="log file")
    label.add_argument("--policy", default=None,
                       help="cache/timeout/retry/limits as JSON (nestdb.label.driver.LabelPolicy fields)")
    label.add_argument("--mpi", default=None,
                       help="MPI launcher of an external code (srun, mpirun, ...); empty: serial")
    label.add_argument("--tasks", type=int, default=None, help="MPI ranks of the external code")
    analyse = commands.add_parser("analyse", help="thermodynamics of an NS .energies file, like ns_analyse")
    thermo_cli.add_arguments(analyse)
    ns_cli.add_arguments(commands.add_parser("ns", help="nested sampling without Snakemake (ns run ...)"))
    args = parser.parse_args(argv)
    if args.command == "ns":
        return ns_cli.run(args)
    if args.command == "analyse":
        return thermo_cli.run(args)
    spec = json.loads(args.spec)
    options = {"policy": json.loads(args.policy) if args.policy else None, "mpi": args.mpi or None,
               "tasks": args.tasks}
    if args.log:
        with logging_to(args.log):
            label_one(args.config, args.output, args.raw_dir, spec, **options)
    else:
        label_one(args.config, args.output, args.raw_dir, spec, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
