"""Real CASTEP outputs of the study, read by nestdb's CASTEP labeller, against the study's database.

For every ``../shared/data/mg/castep_single_points/*.castep``: replay it through
:class:`nestdb.label.castep.CastepLabeller` (CASTEP_COMMAND copies the real
output, so the labeller's own input writing, output checks and parsing run),
find the ``cycle_0.edb.extxyz`` record with the same structure (any lattice
basis, wrapping, atom order) and report the differences of ``dft_energy``,
``dft_forces``, ``dft_stress`` and ``dft_virial``, the SCF report, the k-point
grid predicted by :mod:`nestdb.kpoints` and CASTEP's cost.

    .venv/bin/python benchmarks/castep_vs_study.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import warnings
from pathlib import Path

import ase.io
import numpy as np

from nestdb.kpoints import monkhorst_pack_grid
from nestdb.label import label_configuration, make_labeller
from nestdb.label.castep_output import scf_report
from nestdb.label.compare import find_match

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the per-output rows and the summary here")
    args = parser.parse_args(argv)
    points = DATA / "castep_single_points"
    if not points.is_dir():
        print(f"study data not found at {points}; nothing to compare")
        return 0
    warnings.simplefilter("ignore")
    records = [
        f for f in ase.io.read(DATA / "cycle_0.edb.extxyz", index=":") if f.info["config_type"].startswith("mg16_0GPa")
    ]
    labeller = make_labeller({"code": "castep"})
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for output in sorted(points.glob("*.castep")):
            atoms = ase.io.read(
                output.with_suffix(".cell"), format="castep-cell", calculator_args={"keyword_tolerance": 3}
            )
            os.environ["CASTEP_COMMAND"] = "sh -c " + shlex.quote("cp " + shlex.quote(str(output)) + ' "$0.castep"')
            labelled = label_configuration(atoms, labeller, Path(scratch) / output.stem)
            report = scf_report(output.read_text())
            row = {
                "file": output.name,
                "status": labelled.info["label_status"],
                "scf_converged": report.converged,
                "scf_iterations": report.iterations,
                "kpoint_grid": report.kpoint_grid,
                "kpoint_grid_predicted": monkhorst_pack_grid(atoms, castep_spacing=0.015),
                "cpu_hours": round(labelled.info["label_cpu_s"] / 3600, 1),
                "match": None,
            }
            found = find_match(labelled, records) if row["status"] == "ok" else None
            if found is not None:
                index, perm = found
                record = records[index]
                row.update(
                    {
                        "match": index,
                        "permuted": bool(np.any(perm != np.arange(len(perm)))),
                        "dE_eV": abs(labelled.info["dft_energy"] - record.info["dft_energy"]),
                        "dF_max_eV_per_A": float(
                            np.abs(labelled.arrays["dft_forces"] - record.arrays["dft_forces"][perm]).max()
                        ),
                        "dstress_max_GPa": float(np.abs(labelled.info["dft_stress"] - record.info["dft_stress"]).max()),
                        "dvirial_max_eV": float(np.abs(labelled.info["dft_virial"] - record.info["dft_virial"]).max()),
                        "free_minus_corrected_eV": labelled.info["dft_free_energy"] - labelled.info["dft_energy"],
                    }
                )
            rows.append(row)
    matched = [r for r in rows if r["match"] is not None]
    summary = {
        "outputs": len(rows),
        "matched": len(matched),
        "scf_converged": sum(r["scf_converged"] for r in rows),
        "kpoint_grids_reproduced": sum(tuple(r["kpoint_grid"]) == tuple(r["kpoint_grid_predicted"]) for r in rows),
        "max_dE_eV": max((r["dE_eV"] for r in matched), default=None),
        "max_dF_eV_per_A": max((r["dF_max_eV_per_A"] for r in matched), default=None),
        "max_dstress_GPa": max((r["dstress_max_GPa"] for r in matched), default=None),
        "max_dvirial_eV": max((r["dvirial_max_eV"] for r in matched), default=None),
        "total_cpu_hours": round(sum(r["cpu_hours"] for r in rows), 1),
    }
    print(
        f"{'file':16s} {'rec':>4s} {'dE/eV':>9s} {'dF/eV/A':>9s} {'dS/GPa':>9s} {'dW/eV':>9s} "
        f"{'SCF its':>12s} {'k-grid':>10s} {'CPU-h':>6s}"
    )
    for r in rows:
        if r["match"] is None:
            print(f"{r['file']:16s} unmatched ({r['status']})")
            continue
        print(
            f"{r['file']:16s} {r['match']:4d} {r['dE_eV']:9.1e} {r['dF_max_eV_per_A']:9.1e} "
            f"{r['dstress_max_GPa']:9.1e} {r['dvirial_max_eV']:9.1e} {str(r['scf_iterations']):>12s} "
            f"{'x'.join(map(str, r['kpoint_grid'])):>10s} {r['cpu_hours']:6.1f}"
        )
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1, default=str))
    return 0 if summary["matched"] == summary["outputs"] else 1


if __name__ == "__main__":
    sys.exit(main())
