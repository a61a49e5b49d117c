"""Command-line entry points for steps that clusters launch under MPI.

``python -m nestdb.cli label CONFIG OUT RAW_DIR --spec JSON`` labels one
configuration; the workflow's ``label`` rule prefixes it with ``srun -n N``
when the profile gives the rule ``mpi`` and ``tasks`` resources, so an
MPI-built DFT code (GPAW, or CASTEP/VASP through their own launch commands)
runs on all ranks while only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import json
import sys

from nestdb.stages import label_one, logging_to


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
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    if args.log:
        with logging_to(args.log):
            label_one(args.config, args.output, args.raw_dir, spec)
    else:
        label_one(args.config, args.output, args.raw_dir, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
