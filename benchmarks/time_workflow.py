"""Measure the wall time of a whole workflow run and its cost per rule.

Runs ``snakemake --cores N`` on a config in a fresh directory, then sums the
per-job benchmark files Snakemake wrote (``results/benchmarks/``; seconds,
max RSS) by rule. This is how the README's default-run time is measured:

    .venv/bin/python benchmarks/time_workflow.py --config config/config.yaml --cores 2
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, configfile: Path, cores: int, *extra: str) -> subprocess.CompletedProcess:
    """``snakemake --cores N --configfile F`` of this checkout in ``workdir`` (this venv's tools on PATH)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    command += ["--cores", str(cores), "--configfile", str(configfile), *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True)


def summarise(workdir: Path) -> dict[str, dict[str, float]]:
    """Jobs, summed seconds and the largest max RSS (MB) per rule."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
    root = workdir / "results" / "benchmarks"
    for path in root.rglob("*.tsv"):
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")
        with open(path) as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                totals[rule]["jobs"] += 1
                totals[rule]["seconds"] += float(row["s"])
                rss = row.get("max_rss", "NA")
                if rss not in ("NA", "-", ""):
                    totals[rule]["max_rss_mb"] = max(totals[rule]["max_rss_mb"], float(rss))
    return dict(totals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="run here instead of a temporary directory")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nestdb-bench-"))
    start = time.perf_counter()
    result = run_snakemake(workdir, Path(args.config).resolve(), args.cores)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        return result.returncode
    print(f"config {args.config}: wall {wall:.0f} s ({wall / 60:.1f} min) on {args.cores} cores, in {workdir}")
    print(f"{'rule':<18}{'jobs':>6}{'job-seconds':>14}{'max RSS MB':>12}")
    for rule, row in sorted(summarise(workdir).items(), key=lambda item: -item[1]["seconds"]):
        print(f"{rule:<18}{row['jobs']:>6.0f}{row['seconds']:>14.1f}{row['max_rss_mb']:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
