"""``nestdb fit CONFIG DATABASES... --out MODEL``: the linear-ACE committee of the ``fit`` rule."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nestdb.cli.common import log_context
from nestdb.config import load_config
from nestdb.fit.stage import fit_cycle

#: What ``nestdb --help`` shows for ``fit``, and its description.
HELP = "linear-ACE committee fitted to labelled extended-XYZ files (rule fit)"
DESCRIPTION = (
    "Fit the workflow's linear-ACE Bayesian committee (settings: the `fit` and `elements` keys of "
    "CONFIG) to labelled configurations (dft_energy, dft_forces, dft_virial) and write the model folder."
)


def add_arguments(fit: argparse.ArgumentParser) -> None:
    """Arguments of ``nestdb fit``."""
    fit.add_argument("config", help="workflow config file (YAML), e.g. config/config.yaml")
    fit.add_argument("databases", nargs="+", help="labelled extended-XYZ files (results/label/cycle*/labelled.extxyz)")
    fit.add_argument("--out", required=True, help="model folder to write (potential.yaml, committee.npz, ...)")
    fit.add_argument("--n-jobs", type=int, default=1, help="processes for the design matrix (default 1)")
    fit.add_argument("--log", default=None, help="log file (default OUT/fit.log)")


def run(args: argparse.Namespace) -> int:
    """Fit the committee (:func:`nestdb.fit.stage.fit_cycle`); prints its main errors as JSON."""
    config = load_config(args.config)
    settings = dict(config["fit"], elements=config["elements"], n_jobs=args.n_jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with log_context(args.log or out / "fit.log"):
        metrics = fit_cycle(args.databases, settings, out)
    keys = [key for key in metrics if key.startswith(("n_", "train", "test"))]
    print(json.dumps({key: metrics[key] for key in keys}, default=str))
    return 0
