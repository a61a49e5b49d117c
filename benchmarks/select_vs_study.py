"""Cycle-0 selection of ours vs the study's cycle-0 database, per pressure.

Runs small constant-pressure NS runs with the study's EAM (Mg1.eam.fs) at
several pressures, applies the study's cycle-0 rule (configurations equally
spaced in iteration within 200-3000 K) and prints, side by side with the
study's database (../shared/data/mg/cycle_0.edb.extxyz, 100 configurations
per pressure from K = L = 1248 runs of 16 atoms), the temperature and
volume-per-atom ranges of the selected configurations.

    nice -n 10 .venv/bin/python benchmarks/select_vs_study.py [--pressures 0 15 30 45] [--atoms 8] [--walkers 32]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.io import read

from nestdb.logs import progress_to
from nestdb.models.calculators import make_calculator
from nestdb.ns import NSSettings, run_nested_sampling
from nestdb.select import frame_temperatures, select_configurations
from nestdb.thermo import read_energies, sample_temperatures

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mg"
RULE = {"kind": "temperature_window", "t_min": 200, "t_max": 3000, "count": 100}


def study_ranges(path: Path) -> dict[float, dict]:
    """Per pressure (GPa, from config_type) the study's temp and V/atom of cycle 0."""
    by_p: dict[float, list] = {}
    for atoms in read(path, index=":"):
        match = re.match(r"mg\d+_([\d.]+)GPa", atoms.info["config_type"])
        by_p.setdefault(float(match.group(1)), []).append((atoms.info["temp"], atoms.info["volume"] / len(atoms)))
    return {p: _summary(np.array(rows)) for p, rows in by_p.items()}


def _summary(rows: np.ndarray) -> dict:
    t, v = rows[:, 0], rows[:, 1]
    return {"n": len(rows), "t": (t.min(), np.median(t), t.max()), "v": (v.min(), np.median(v), v.max())}


def our_selection(pressure: float, n_atoms: int, n_walkers: int, workdir: Path, seed: int) -> tuple[dict, float]:
    calc = make_calculator({"type": "eam", "file": str(SHARED / "Mg1.eam.fs"), "kind": "eam/fs"})
    settings = NSSettings(
        n_walkers=n_walkers,
        walk_length=n_walkers,
        pressure_gpa=pressure,
        max_iter=200 * n_walkers,
        converge_down_to_T=200.0,
        max_volume_per_atom=100.0,
        min_aspect_ratio=0.65,
        kemax_max_T=14487.0,
        seed=seed,
        traj_interval=1,
        snapshot_seconds=None,
    )
    prefix = workdir / f"mg{n_atoms}_P{pressure:g}"
    start = time.perf_counter()
    with progress_to(workdir / "ns_progress.log"):
        run_nested_sampling({"Mg": n_atoms}, calc, settings, prefix)
    wall = time.perf_counter() - start
    energies = read_energies(f"{prefix}.energies")
    frames = read(f"{prefix}.traj.extxyz", index=":")
    temps = frame_temperatures(frames, energies.iters, energies.enthalpy, sample_temperatures(energies))
    chosen = select_configurations(
        frames, temps, RULE, stopped_early=False, cycle=0, pressure_gpa=pressure, min_policy="min", source=prefix.name
    )
    rows = np.array([(a.info["temp"], a.info["volume"] / len(a)) for a in chosen])
    return _summary(rows), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pressures", type=float, nargs="+", default=[0.0, 15.0, 30.0, 45.0])
    parser.add_argument("--atoms", type=int, default=8)
    parser.add_argument("--walkers", type=int, default=32, help="K = L")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    database = SHARED / "cycle_0.edb.extxyz"
    if not database.is_file():
        print(f"study database not found at {database}", file=sys.stderr)
        return 1
    study = study_ranges(database)
    print(f"ours: {args.atoms} Mg atoms, K = L = {args.walkers}, rule {RULE}; study: 16 atoms, K = L = 1248")
    header = (
        f"{'P GPa':>5} | {'n':>4} {'T min/med/max (K)':>22} {'V/atom min/med/max (A^3)':>26} | "
        f"{'n':>4} {'T min/med/max (K)':>22} {'V/atom min/med/max (A^3)':>26} | NS wall s"
    )
    print(f"{'':>5} | {'ours':^54} | {'study':^54} |")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"NS progress: {tmp}/ns_progress.log", file=sys.stderr)
        for pressure in args.pressures:
            ours, wall = our_selection(pressure, args.atoms, args.walkers, Path(tmp), args.seed)
            ref = study.get(pressure)
            cells = []
            for s in (ours, ref):
                if s is None:
                    cells.append(f"{'-':>54}")
                    continue
                t = "/".join(f"{x:.0f}" for x in s["t"])
                v = "/".join(f"{x:.1f}" for x in s["v"])
                cells.append(f"{s['n']:>4} {t:>22} {v:>26}")
            print(f"{pressure:>5g} | {cells[0]} | {cells[1]} | {wall:8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
