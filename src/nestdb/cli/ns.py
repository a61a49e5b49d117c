"""``nestdb ns run CONFIG --pressure P --out PREFIX``: one NS run without Snakemake.

The run uses the workflow's config file (validated against its schema, with
its defaults) and the same stage function as the ``ns`` rule, so the files
are the same as the workflow's for the same cycle and pressure. ``--restart``
continues from ``<PREFIX>.restart.npz`` when a killed run left one, if the
run's settings, atoms and model (calculator and model files) are unchanged.
"""

from __future__ import annotations

import argparse
import json

from nestdb.config import load_config, n_cycles, ns_block
from nestdb.errors import ConfigError
from nestdb.ns.stage import ns_run_stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``ns run`` on the ``ns`` sub-parser."""
    actions = parser.add_subparsers(dest="ns_command", required=True)
    run = actions.add_parser("run", help="one constant-pressure nested-sampling run")
    run.add_argument("config", help="workflow config file (YAML), e.g. config/config.yaml")
    run.add_argument("--pressure", type=float, required=True, help="pressure in GPa")
    run.add_argument("--cycle", type=int, default=0, help="cycle whose ns settings to use (default 0)")
    run.add_argument("--out", required=True, help="output prefix: writes PREFIX.energies, .traj.extxyz, ...")
    run.add_argument("--model", default=None, help="fitted committee folder for an ace_committee calculator")
    run.add_argument(
        "--restart",
        action="store_true",
        help="continue from the snapshot PREFIX.restart.npz if it exists; refused when the settings, "
        "atoms, calculator or model files changed since (delete it to start afresh)",
    )
    run.add_argument("--n-procs", type=int, default=None, help="override ns.n_procs")
    run.add_argument("--log", default=None, help="progress log (default PREFIX.log)")


def run(args: argparse.Namespace) -> int:
    """Execute ``ns run``; prints the summary's main numbers as JSON."""
    config = load_config(args.config)
    if not 0 <= args.cycle < n_cycles(config):
        raise ConfigError(f"--cycle {args.cycle}: {args.config} has cycles 0..{n_cycles(config) - 1}")
    block = ns_block(config, args.cycle)
    if args.n_procs is not None:
        block["n_procs"] = args.n_procs
    log_path = args.log or f"{args.out}.log"
    summary = ns_run_stage(
        block, args.pressure, args.cycle, args.out, model_dir=args.model, progress_path=log_path, resume=args.restart
    )
    keys = ("n_iter", "stop_reason", "n_calls", "n_failed_calls", "wall_s", "calls_per_s")
    print(json.dumps({key: summary.get(key) for key in keys}))
    return 0
