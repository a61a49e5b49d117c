"""Scheduling overhead per job of the SLURM executor, on the test cluster.

Runs a chain of trivial jobs (each `sleep`s a moment and writes a file; each
waits for the previous one, like the stages of one cycle) once with the local
executor and once through SLURM per polling setting, and prints per job:

- total overhead = (SLURM wall - local wall) / jobs: what a chain pays,
- in-job time (slurmd start -> end: the job step's Snakemake start-up and the rule),
- queue + notice time: the rest (sbatch, scheduling, and the wait until the
  plugin's next status poll notices the job has finished).

The plugin polls first after `slurm-init-seconds-before-status-checks`, then
every 10 s longer while nothing finishes (up to 180 s), and back to the
initial interval when something does.

Needs root (it starts tests/slurm/cluster.py's cluster and stops it at the end):
    nice -n 10 .venv/bin/python benchmarks/slurm_overhead.py [--jobs 4] [--init 1 5 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

SNAKEFILE = """
N = {jobs}
rule all:
    input: f"chain/{{N - 1}}.txt"
rule step:
    input: lambda wc: [] if int(wc.i) == 0 else [f"chain/{{int(wc.i) - 1}}.txt"]
    output: "chain/{{i}}.txt"
    resources: runtime=5
    shell: "sleep {sleep}; echo {{wildcards.i}} > {{output}}"
"""


def load_cluster_module():
    spec = importlib.util.spec_from_file_location("slurm_cluster", REPO / "tests/slurm/cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_chain(workdir: Path, extra: list[str]) -> float:
    """Wall seconds of one snakemake run of the chain in ``workdir``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(workdir / "Snakefile"), "--directory", str(workdir), *extra],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{result.stderr[-4000:]}")
    return wall


def in_job_seconds(cluster, first_job: int) -> list[float]:
    """slurmd start -> end of every job with an id >= first_job (1 s resolution)."""
    seconds = []
    for job_id in cluster.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split():
        if int(job_id) < first_job:
            continue
        text = cluster.run("scontrol", "-o", "show", "job", job_id).stdout
        fields = dict(re.findall(r"(\w+)=(\S*)", text))
        start, end = (datetime.fromisoformat(fields[k]) for k in ("StartTime", "EndTime"))
        seconds.append((end - start).total_seconds())
    return seconds


def next_job_id(cluster) -> int:
    ids = [int(i) for i in cluster.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()]
    return max(ids, default=0) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="length of the job chain")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds each job's rule sleeps")
    parser.add_argument(
        "--init",
        type=int,
        nargs="+",
        default=[1, 5, 20],
        help="slurm-init-seconds-before-status-checks values to compare",
    )
    args = parser.parse_args()

    cluster_mod = load_cluster_module()
    cluster = cluster_mod.Cluster()
    t0 = time.perf_counter()
    cluster.start()
    print(f"cluster started in {time.perf_counter() - t0:.1f} s")
    cpus = int(re.search(r"CPUTot=(\d+)", cluster.run("scontrol", "-o", "show", "node").stdout).group(1))
    try:
        with tempfile.TemporaryDirectory(prefix="slurm_overhead_") as tmp:
            tmp = Path(tmp)
            (tmp / "Snakefile").write_text(SNAKEFILE.format(jobs=args.jobs, sleep=args.sleep))

            def fresh(name: str) -> Path:
                workdir = tmp / name
                workdir.mkdir()
                (workdir / "Snakefile").write_text((tmp / "Snakefile").read_text())
                return workdir

            local = run_chain(fresh("local"), ["--cores", "1"])
            print(
                f"local executor: {local:.1f} s for {args.jobs} chained jobs "
                f"({local / args.jobs:.1f} s per job incl. the {args.sleep:g} s sleep)"
            )
            print(f"{'init s':>7} {'wall s':>8} {'overhead/job s':>15} {'in-job s':>9} {'queue+notice s':>15}")
            for init in args.init:
                profile = cluster_mod.derived_profile(REPO / "profiles" / "slurm", tmp / f"profile{init}", cpus)
                config = yaml.safe_load((profile / "config.yaml").read_text())
                config["slurm-init-seconds-before-status-checks"] = init
                (profile / "config.yaml").write_text(yaml.safe_dump(config))
                first = next_job_id(cluster)
                wall = run_chain(fresh(f"slurm{init}"), ["--profile", str(profile)])
                in_job = sum(in_job_seconds(cluster, first)) / args.jobs
                per_job = wall / args.jobs
                print(
                    f"{init:>7} {wall:>8.1f} {(wall - local) / args.jobs:>15.1f} {in_job:>9.1f} "
                    f"{per_job - in_job:>15.1f}"
                )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
