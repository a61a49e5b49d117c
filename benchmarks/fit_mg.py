"""Accuracy, speed and committee calibration of the linear-ACE fit on the study's real Mg data.

Fits ``nestdb.fit.fit_linear_ace`` to ``../shared/data/mg/cycle_0.edb.extxyz``
+ ``cycle_1.edb.extxyz`` (1139 CASTEP configurations) with an 80/20 split
stratified by cycle and pressure and E0 = -1688.821 eV, and prints test RMSEs
(energy, forces, virial), the fit wall time (with the machine's load), and
the committee calibration (Spearman of STD vs |error|, before/after scaling).

Usage::

    nice -n 10 .venv/bin/python benchmarks/fit_mg.py                 # the study config's fit section
    .venv/bin/python benchmarks/fit_mg.py --set cutoff=6.0 --set committee_method=bootstrap
    .venv/bin/python benchmarks/fit_mg.py --cache /tmp/rows      # reuse design rows between runs

The settings start from ``config/mg-study.yaml``'s ``fit:`` section; each
``--set key=value`` (YAML value) overrides one key.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mg"
FILES = [DATA / "cycle_0.edb.extxyz", DATA / "cycle_1.edb.extxyz"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one fit setting (YAML value)")
    parser.add_argument("--cache", default=None, help="design-row cache folder (default: none, all rows computed)")
    parser.add_argument("--out", default=None, help="model folder to keep (default: a temporary one)")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    missing = [str(f) for f in FILES if not f.is_file()]
    if missing:
        print(f"skipped: shared Mg data not found ({missing})")
        return 0

    from nestdb.fit import fit_linear_ace, load_training_frames

    study = yaml.safe_load((ROOT / "config" / "mg-study.yaml").read_text())
    settings = dict(study["fit"], elements=study.get("elements", ["Mg"]), n_jobs=args.n_jobs,
                    feature_cache=args.cache, test_fraction=0.2)
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    frames = load_training_frames(FILES, log=lambda message: None)
    load_before = os.getloadavg()[0]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fit_mg_"))
    start = time.perf_counter()
    metrics = fit_linear_ace(frames, settings, out, log=lambda message: print("  " + message, flush=True))
    wall = time.perf_counter() - start
    # CPU seconds of this process and its row workers: wall time on an idle machine is ~ cpu / n_jobs
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    load_after = os.getloadavg()[0]
    test, train = metrics["test"], metrics["train"]
    calibration = metrics["calibration"]
    model = json.loads((out / "model.json").read_text())
    report = {
        "settings": {k: model["settings"][k] for k in ("cutoff", "nradmax_by_orders", "lmax_by_orders",
                                                      "energy_weight", "force_weight", "virial_weight",
                                                      "committee_method", "committee_size")},
        "n_functions": metrics["n_functions"],
        "n_train": train["n_configs"], "n_test": test["n_configs"],
        "test_energy_rmse_mev_per_atom": test["energy_rmse_mev_per_atom"],
        "test_force_rmse_mev_per_a": test["force_rmse_mev_per_a"],
        "test_virial_rmse_mev_per_atom": test.get("virial_rmse_mev_per_atom"),
        "train_energy_rmse_mev_per_atom": train["energy_rmse_mev_per_atom"],
        "train_force_rmse_mev_per_a": train["force_rmse_mev_per_a"],
        "train_virial_rmse_mev_per_atom": train.get("virial_rmse_mev_per_atom"),
        "fit_wall_time_s": wall,
        "cpu_time_s_incl_workers": cpu,
        "timings_s": model["timings_s"],
        "design_rows": model["design_rows"],
        "load_average_before_after": [load_before, load_after],
        "cpu_count": os.cpu_count(),
        "calibration_factor": calibration["factor"],
        "test_committee_raw": calibration["test_raw"],
        "test_committee_calibrated": calibration["test_calibrated"],
        "model_dir": str(out),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
