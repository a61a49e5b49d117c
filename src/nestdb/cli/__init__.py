"""The ``nestdb`` command: each workflow stage without Snakemake.

``nestdb ns run`` (one NS run, :mod:`nestdb.cli.ns`), ``nestdb analyse``
(thermodynamics of an ``.energies`` file, like pymatnest's ``ns_analyse``:
:mod:`nestdb.cli.analyse`), ``nestdb label`` (one DFT single point:
:mod:`nestdb.cli.label`), ``nestdb fit`` (a linear-ACE committee from
labelled extended-XYZ files: :mod:`nestdb.cli.fit`), ``nestdb bench
reference`` / ``nestdb bench model`` (E–V, elastic and property benchmarks:
:mod:`nestdb.cli.bench`). ``python -m nestdb.cli ...`` is the same program.
The commands call the stage functions the Snakemake rules call, with the
settings of a workflow config file, so they write the same files.
"""

from __future__ import annotations

import argparse
import sys

from nestdb.cli import analyse, bench, fit, label, ns
from nestdb.errors import NestdbError

#: Subcommand modules: each has ``add_arguments(parser)`` and ``run(args) -> exit status``.
COMMANDS = {"ns": ns, "analyse": analyse, "label": label, "fit": fit, "bench": bench}
_HELP = {
    "ns": "nested sampling without Snakemake (ns run ...)",
    "analyse": "thermodynamics of an NS .energies file, like ns_analyse",
    "label": "DFT single point of one configuration (what the label rule runs)",
    "fit": fit.HELP,
    "bench": bench.HELP,
}
_DESCRIPTION = {"fit": fit.DESCRIPTION, "bench": bench.DESCRIPTION}


def build_parser() -> argparse.ArgumentParser:
    """The ``nestdb`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="nestdb",
        description="Nested-sampling training databases for MLIPs: each workflow stage on its own "
        "(the Snakemake workflow runs them all: `snakemake --cores N`).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=_HELP[name], description=_DESCRIPTION.get(name)))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one command; returns the exit code (errors propagate)."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


def console(argv: list[str] | None = None) -> int:
    """Entry point of the ``nestdb`` script: nestdb's input errors as one line and exit status 2."""
    try:
        return main(argv)
    except NestdbError as exc:
        print(f"nestdb: error: {exc}", file=sys.stderr)
        return 2
