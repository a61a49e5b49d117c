"""Thermodynamics validation: nestdb NS against pymatnest on 16-atom Lennard-Jones.

Runs nestdb's nested sampling with the prior and walk of pymatnest's sample
run ``lj16_fastlj`` (truncated and shifted LJ, epsilon = 0.1 eV, sigma = 2.5 A,
rc = 7.5 A; 16 atoms of mass 1 (H), P = 2.0224e-4 eV/A^3 = reduced 0.0316,
K = 64 walkers, 48 model calls per walk, 8 MD steps per TE-HMC move, move mix
2:4:2:2, minimum cell aspect ratio 0.8, V/N in [1, 312.5] A^3, KEmax from
3000 K, 12800 iterations) for several seeds, analyses every ``.energies``
file, ours and pymatnest's, with :mod:`nestdb.thermo` (energies in eV,
temperatures in K), and compares the C_p peaks (condensation of the gas and
freezing of the liquid), their kinds and <V>(T)/atom.

At equal walk length nestdb walks each iteration's clone once where pymatnest
walks it and one more random walker; ``--walk-length 96`` gives nestdb the
same model calls per iteration as pymatnest's sample.

    .venv/bin/python benchmarks/ns_lj_validation.py                         # 3 seeds, ~1.5 min each
    .venv/bin/python benchmarks/ns_lj_validation.py --seeds 3 --walk-length 96

Writes a table to stdout and JSON to benchmarks/results/ns_lj_validation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from ns_thermo_validation import print_volume_table, stats  # same folder: run as a script

from nestdb.models.calculators import make_calculator
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.thermo import analyse, detect_transitions, read_energies, resolved_temperature

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "mg" / "pymatnest" / "samples" / "lj16_fastlj" / "lj16_fastlj.energies"
EV_PER_A3_IN_GPA = 160.21766208
LJ = {"type": "lj", "epsilon": 0.1, "sigma": 2.5, "cutoff": 7.5}
SAMPLE_SETTINGS = dict(
    n_walkers=64,
    walk_length=48,
    pressure_gpa=2.0224e-4 * EV_PER_A3_IN_GPA,
    md_traj_len=8,
    move_fractions={"md": 2, "volume": 4, "shear": 2, "stretch": 2},
    min_aspect_ratio=0.8,
    converge_down_to_T=None,  # run the sample's iteration count, as pymatnest did
    max_volume_per_atom=312.5,
    min_volume_per_atom=1.0,
    kemax_max_T=3000.0,
    traj_interval=0,
    snapshot_seconds=None,
)
SAMPLE_ITERATIONS = 12800
TEMPERATURES = np.arange(100.0, 3001.0, 5.0)
VOLUME_TEMPERATURES = (300.0, 500.0, 700.0, 850.0, 950.0, 1050.0, 1200.0, 1500.0, 2000.0)
KB = 8.617333262e-5


def run_seed(seed: int, iterations: int, walk_length: int, workdir: str) -> dict:
    """One NS run; returns its .energies path and run statistics."""
    settings = NSSettings(**dict(SAMPLE_SETTINGS, max_iter=iterations, seed=seed, walk_length=walk_length))
    prefix = Path(workdir) / f"lj16_seed{seed}"
    summary = run_nested_sampling({"H": 16}, make_calculator(LJ), settings, prefix)
    return {
        "seed": seed,
        "energies": str(output_paths(prefix)["energies"]),
        "n_iter": summary["n_iter"],
        "n_calls": summary["n_calls"],
        "wall_s": summary["wall_s"],
    }


def summarise(path: str | Path) -> dict:
    """C_p peaks with their kinds, global C_p maximum and <V>(T)/atom of one .energies file."""
    energies = read_energies(path)
    table = analyse(energies, TEMPERATURES)
    n_atoms = energies.n_atoms
    cp_per_atom = table["Cp"].to_numpy() / (n_atoms * KB)
    peaks = detect_transitions(table, n_atoms)
    return {
        "peaks": [(round(p.temperature, 1), p.kind, round(p.fwhm), round(p.volume_jump, 1)) for p in peaks],
        "cp_max_T": float(table["T"].iloc[int(np.argmax(cp_per_atom))]),
        "cp_max_kB_per_atom": float(cp_per_atom.max()),
        "resolved_T": resolved_temperature(energies),
        "volume_per_atom": {
            float(t): float(np.interp(t, table["T"], table["V"]) / n_atoms) for t in VOLUME_TEMPERATURES
        },
        "n_samples": energies.n_samples,
    }


def _peak_of(row: dict, kind: str) -> float | None:
    """Temperature of the ``kind`` peak with the largest volume jump (for 'fluid':
    the condensation of the gas, not the broad expansion of the hot gas)."""
    peaks = [(dv, t) for t, k, _, dv in row["peaks"] if k == kind]
    return max(peaks)[1] if peaks else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="independent runs (seeds 1..n), one after another")
    parser.add_argument("--iterations", type=int, default=SAMPLE_ITERATIONS, help="NS iterations per run")
    parser.add_argument(
        "--walk-length",
        type=int,
        default=SAMPLE_SETTINGS["walk_length"],
        help="model calls per walk; 96 matches pymatnest's cost per iteration (it walks twice)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the runs' outputs in")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ns_lj_validation.json")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = str(args.keep or tmp)
        Path(workdir).mkdir(parents=True, exist_ok=True)
        runs = [run_seed(seed, args.iterations, args.walk_length, workdir) for seed in range(1, args.seeds + 1)]
        ours = [dict(run, **summarise(run["energies"])) for run in runs]
    reference = {"pymatnest lj16_fastlj": summarise(SAMPLE)} if SAMPLE.exists() else {}

    print(
        "| run | iterations | wall (s) | C_p peaks (K, kind, FWHM K, dV A^3/atom) | global C_p max (K) | "
        "resolved T (K) |"
    )
    print("|---|---|---|---|---|---|")
    for name, row in [(f"nestdb seed {r['seed']}", r) for r in ours] + list(reference.items()):
        peaks = ", ".join(f"{t:.0f} {k} ({w}, {dv:+.1f})" for t, k, w, dv in row["peaks"])
        wall = f"{row['wall_s']:.0f}" if "wall_s" in row else "-"
        print(
            f"| {name} | {row.get('n_iter', row['n_samples'])} | {wall} | {peaks} | {row['cp_max_T']:.0f} "
            f"| {row['resolved_T']:.0f} |"
        )
    print(
        f"\nnestdb over seeds: melting (freezing) peak {stats([_peak_of(r, 'melting') for r in ours])} K; "
        f"condensation (fluid peak with the largest volume jump) {stats([_peak_of(r, 'fluid') for r in ours])} K; "
        f"global C_p max {stats([r['cp_max_T'] for r in ours])} K"
    )
    print_volume_table(ours, reference, VOLUME_TEMPERATURES)
    wall = time.perf_counter() - start
    print(
        f"\n{args.seeds} runs x {args.iterations} iterations (L = {args.walk_length}) in {wall:.0f} s wall "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for row in ours:
        row.pop("energies")
    args.out.write_text(
        json.dumps(
            {
                "settings": dict(SAMPLE_SETTINGS, walk_length=args.walk_length),
                "iterations": args.iterations,
                "nestdb": ours,
                "pymatnest": reference,
                "wall_s": wall,
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=1,
            default=str,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
