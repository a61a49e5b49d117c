"""``nestdb label CONFIG OUT RAW_DIR --spec JSON``: one DFT single point, what the ``label`` rule runs.

When the profile gives the rule ``mpi`` and ``tasks`` resources, the
workflow prefixes the command with ``srun -n N`` for GPAW (which runs inside
Python on all ranks; only rank 0 writes files), and passes ``--mpi srun
--tasks N`` for CASTEP, VASP and Quantum ESPRESSO, which the labeller then
starts as ``srun -n N <code> ...``.
"""

from __future__ import annotations

import argparse
import json

from nestdb.cli.common import log_context
from nestdb.label.stage import label_one


def add_arguments(label: argparse.ArgumentParser) -> None:
    """Arguments of ``nestdb label``."""
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


def run(args: argparse.Namespace) -> int:
    """Label one configuration (:func:`nestdb.label.stage.label_one`)."""
    spec = json.loads(args.spec)
    options = {"policy": json.loads(args.policy) if args.policy else None, "mpi": args.mpi or None, "tasks": args.tasks}
    with log_context(args.log):
        label_one(args.config, args.output, args.raw_dir, spec, **options)
    return 0
