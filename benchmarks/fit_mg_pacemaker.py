"""Nonlinear ACE (pacemaker) on the study's real Mg data: test errors, fit time, uncertainty.

Runs nestdb's pacemaker route (``nestdb.fit.pacemaker``: prepare the members,
run ``pacemaker`` and ``pace_activeset`` per member, collect the committee) on
``../shared/data/mg/cycle_0.edb.extxyz`` + ``cycle_1.edb.extxyz`` (1139 CASTEP
configurations) with the same 80/20 split (stratified by cycle and pressure)
and E0 as ``benchmarks/fit_mg.py``, and prints test RMSEs, the wall time per
member, and the Spearman correlation of the committee STD and of the
extrapolation grade gamma with the actual energy error.

pacemaker needs its own environment (README, "nonlinear route")::

    nice -n 10 .venv/bin/python benchmarks/fit_mg_pacemaker.py --pacemaker .venv-pacemaker/bin/pacemaker
    .venv/bin/python benchmarks/fit_mg_pacemaker.py --set maxiter=20 --members 1   # a timing probe

Settings start from ``config/mg-study.yaml``'s ``fit:`` section (E0,
weights) with the basis shape of the measured run (``BASIS``) and the
pacemaker keys below; each ``--set key=value`` (YAML value) overrides one
``fit.pacemaker`` key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fit_mg import FILES, apply_overrides, data_missing, study_fit_settings  # noqa: E402

#: Basis shape of the measured run (benchmarks/README.md); the study config's linear basis is larger since.
BASIS = {"cutoff": 6.0, "nradmax_by_orders": [12, 8, 4], "lmax_by_orders": [0, 4, 3]}
#: Basis size and iterations sized for a 2-core CPU run of about an hour per member.
PACEMAKER_DEFAULTS = {
    "enabled": True,
    "ndensity": 2,
    "number_of_functions_per_element": 300,
    "maxiter": 400,
    "batch_size": 200,
    "kappa": 0.1,
}


def main() -> int:
    # nestdb's fit and pacemaker steps report through logging: print their messages as they come
    logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stdout)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one fit.pacemaker setting (YAML value)",
    )
    parser.add_argument("--members", type=int, default=2, help="committee members (one pacemaker run each)")
    parser.add_argument(
        "--pacemaker",
        default=str(ROOT / ".venv-pacemaker" / "bin" / "pacemaker"),
        help="pacemaker command (pace_activeset is taken from the same folder)",
    )
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--report", default=None, help="also write the report (JSON) here")
    args = parser.parse_args()
    if data_missing():
        return 0
    if not Path(args.pacemaker).is_file():
        print(f"skipped: pacemaker not found at {args.pacemaker} (README: nonlinear route)")
        return 0

    from nestdb.fit import load_training_frames
    from nestdb.fit.pacemaker import collect_committee, prepare_committee, run_member

    pacemaker = apply_overrides(
        dict(
            PACEMAKER_DEFAULTS,
            committee_size=args.members,
            command=args.pacemaker,
            activeset_command=str(Path(args.pacemaker).with_name("pace_activeset")),
        ),
        args.set,
    )
    settings = study_fit_settings(pacemaker=pacemaker, **BASIS)
    frames = load_training_frames(FILES)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fit_mg_pacemaker_"))
    load_before = os.getloadavg()[0]
    folders = prepare_committee(frames, settings, out)
    member_times = []
    for folder in folders:
        start = time.perf_counter()
        run_member(
            folder,
            settings["pacemaker"]
            | {"command": pacemaker["command"], "activeset_command": pacemaker["activeset_command"]},
        )
        member_times.append(time.perf_counter() - start)
        print(f"  member {folder.name}: {member_times[-1]:.0f} s", flush=True)
    metrics = collect_committee(frames, settings, folders, out)
    test, train = metrics["test"], metrics["train"]
    report = {
        "pacemaker": {
            k: pacemaker[k] for k in ("ndensity", "number_of_functions_per_element", "maxiter", "batch_size", "kappa")
        },
        "cutoff": settings["cutoff"],
        "nradmax_by_orders": settings["nradmax_by_orders"],
        "lmax_by_orders": settings["lmax_by_orders"],
        "members": len(folders),
        "test_energy_rmse_mev_per_atom": test["energy_rmse_mev_per_atom"],
        "test_force_rmse_mev_per_a": test["force_rmse_mev_per_a"],
        "train_energy_rmse_mev_per_atom": train["energy_rmse_mev_per_atom"],
        "train_force_rmse_mev_per_a": train["force_rmse_mev_per_a"],
        "member_wall_time_s": member_times,
        "load_average_before": load_before,
        "cpu_count": os.cpu_count(),
        "work_dir": str(out),
        "test_committee": test["committee"],
        "test_spearman_gamma_vs_abs_error": test.get("spearman_gamma_vs_abs_error"),
    }
    print(json.dumps(report, indent=2))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
