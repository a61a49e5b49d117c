"""The workflow on a real SLURM scheduler: the fast config end to end through
``snakemake --profile`` (a copy of profiles/slurm sized for one small node)
against a single-node cluster started by tests/slurm/cluster.py, with
failure drills. Needs root (CI runs as root); skipped otherwise.

Deselect with ``pytest -m "not slurm"``.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import snakemake

REPO = Path(__file__).resolve().parents[1]
FAST = REPO / "config" / "fast.yaml"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _load_cluster_module():
    spec = importlib.util.spec_from_file_location("nestdb_test_slurm_cluster", REPO / "tests/slurm/cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cluster_mod = _load_cluster_module()


def job_records(cluster) -> dict[int, dict[str, str]]:
    """Every job slurmctld still holds (MinJobAge keeps finished ones), as scontrol's key=value fields."""
    ids = cluster.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.split()
    records = {}
    for job_id in ids:
        text = cluster.run("scontrol", "-d", "-o", "show", "job", job_id, check=False).stdout
        if text:
            records[int(job_id)] = dict(re.findall(r"(\w+)=(\S*)", text))
    return records


def is_rule(record: dict[str, str], rule: str) -> bool:
    """Whether a job ran ``rule``, from the comment the executor plugin sets:
    ``rule_<rule>_wildcards_<values>``, or ``rule_<group>_<group>`` for group jobs."""
    return re.fullmatch(rf"rule_{rule}(_wildcards_.*|_{rule})?", record["Comment"]) is not None


def submissions(output: str) -> dict[int, str]:
    """SLURM job id -> Snakemake job (or group) id, from Snakemake's output; a retry keeps the latter."""
    return {
        int(slurm): job for job, slurm in re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", output)
    }


def failure_report(workdir: Path, output: str) -> str:
    logs = "\n".join(
        f"== {p}\n{p.read_text()[-2000:]}"
        for p in sorted(workdir.rglob("*.log"))
        if "logs" in p.parts or "slurm_logs" in p.parts
    )
    return f"{output[-6000:]}\n{logs[-12000:]}"


@pytest.fixture(scope="session")
def slurm_cluster():
    """A fresh single-node SLURM cluster for the whole session, stopped (by PID) at the end."""
    reason = cluster_mod.why_unavailable()
    if reason:
        pytest.skip(reason)
    cluster = cluster_mod.Cluster()
    try:
        cluster.start()
    except cluster_mod.Unavailable as error:
        pytest.skip(str(error))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def slurm_profile(slurm_cluster, tmp_path_factory):
    cpus = int(re.search(r"CPUTot=(\d+)", slurm_cluster.run("scontrol", "-o", "show", "node").stdout).group(1))
    profile = cluster_mod.derived_profile(REPO / "profiles" / "slurm", tmp_path_factory.mktemp("profile"), cpus)
    # The drills below read the job logs of successful jobs too.
    config = yaml.safe_load((profile / "config.yaml").read_text())
    config["slurm-keep-successful-logs"] = True
    (profile / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return profile, config


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, slurm_profile, tmp_path_factory):
    """The fast config through SLURM; the first label job is killed with scancel while it runs."""
    profile, _ = slurm_profile
    workdir = tmp_path_factory.mktemp("slurm_run")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out_path = workdir.parent / f"{workdir.name}.out"
    start = time.monotonic()
    with open(out_path, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-s",
                str(REPO / "Snakefile"),
                "--directory",
                str(workdir),
                "--profile",
                str(profile),
                "--configfile",
                str(FAST),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        killed = None
        while process.poll() is None:
            if killed is None:
                running = slurm_cluster.run("squeue", "-h", "-t", "R", "-o", "%i|%k", check=False).stdout.split()
                labels = [line.split("|") for line in running if line.split("|")[1].startswith("rule_label_")]
                if labels:
                    # Let the job step start, then kill the job as a preemption or admin would.
                    time.sleep(2)
                    slurm_cluster.run("scancel", labels[0][0])
                    killed = (int(labels[0][0]), labels[0][1])
            time.sleep(0.5)
    output = out_path.read_text()
    if process.returncode != 0:
        pytest.fail(f"workflow failed under SLURM:\n{failure_report(workdir, output)}")
    return {
        "workdir": workdir,
        "output": output,
        "killed": killed,
        "wall_s": time.monotonic() - start,
        "records": job_records(slurm_cluster),
    }


@pytest.fixture(scope="module")
def local_run(fast_run):
    """The same config with the local executor: the reference the SLURM results must equal."""
    return fast_run[0]


def test_cluster_has_node_topology_and_fake_gpu(slurm_cluster):
    node = slurm_cluster.run("scontrol", "-o", "show", "node").stdout
    assert f"CPUTot={os.cpu_count()}" in node
    assert "gres/gpu=1" in node or "Gres=gpu:1" in node
    assert slurm_cluster.node_state() in ("idle", "mixed", "allocated")


def test_label_jobs_ran_as_mpi_jobs(slurm_run, slurm_profile):
    _, profile = slurm_profile
    tasks = profile["set-resources"]["label"]["tasks"]
    labels = [r for r in slurm_run["records"].values() if is_rule(r, "label")]
    assert labels, "no label job was submitted"
    completed = [r for r in labels if r["JobState"] == "COMPLETED"]
    # fast.yaml selects 3 configurations in cycle 0 and 1 in cycle 1.
    assert len(completed) == 4
    for record in labels:
        assert int(record["NumTasks"]) == tasks, record
    # Inside each job the rule launched its step over all tasks: the job log
    # (written by the job step) shows the command that ran.
    for record in completed:
        log = Path(record["StdOut"]).read_text()
        assert re.search(rf"srun -n {tasks} \S*python\S* -m nestdb\.cli label", log), log[-2000:]


def test_fit_jobs_got_the_gpu(slurm_run):
    fits = [r for r in slurm_run["records"].values() if is_rule(r, "fit")]
    assert len(fits) == 2  # one committee per cycle
    for record in fits:
        assert record["JobState"] == "COMPLETED"
        assert "gpu:1" in record["TresPerJob"], record
        # Allocated, not only requested: the job's GRES record.
        assert record["JOB_GRES"] == "gpu:1", record
    # CPU jobs never get it.
    for record in slurm_run["records"].values():
        if not is_rule(record, "fit"):
            assert "gpu" not in record.get("JOB_GRES", "(null)"), record


def test_killed_job_was_resubmitted(slurm_run):
    assert slurm_run["killed"] is not None, "no label job was seen running"
    job_id, _ = slurm_run["killed"]
    records = slurm_run["records"]
    assert records[job_id]["JobState"] == "CANCELLED"
    jobs = submissions(slurm_run["output"])
    resubmitted = [i for i, job in jobs.items() if job == jobs[job_id] and i != job_id]
    assert len(resubmitted) == 1 and resubmitted[0] > job_id
    assert records[resubmitted[0]]["JobState"] == "COMPLETED"
    assert f"JOB {job_id} ON" in slurm_run["output"] and "CANCELLED" in slurm_run["output"]
    assert f"Trying to restart job {jobs[job_id]}" in slurm_run["output"]


def _read_all(path: Path):
    from ase.io import read

    return read(path, index=":", format="extxyz")


def test_results_equal_the_local_run(slurm_run, local_run):
    slurm = slurm_run["workdir"]
    for cycle in (0, 1):
        # Cycle 0 samples with LJ: the same file. Cycle 1 samples with the
        # cycle-0 committee, equal to ~1e-11 (below): the same run to ~1e-9.
        ns = f"results/ns/cycle{cycle}/P5GPa/ns.energies"
        a, b = ((d / ns).read_text().splitlines() for d in (slurm, local_run))
        assert a[0] == b[0] and len(a) == len(b)
        np.testing.assert_allclose(np.loadtxt(a[1:], ndmin=2), np.loadtxt(b[1:], ndmin=2), rtol=1e-9, atol=1e-9)
        if cycle == 0:
            assert a == b
        candidates = f"results/select/cycle{cycle}/P5GPa/candidates.extxyz"
        a, b = _read_all(slurm / candidates), _read_all(local_run / candidates)
        assert [x.info["config_id"] for x in a] == [x.info["config_id"] for x in b]
        assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b, strict=True))
        database = f"results/label/cycle{cycle}/labelled.extxyz"
        a, b = _read_all(slurm / database), _read_all(local_run / database)
        assert [x.info["config_id"] for x in a] == [x.info["config_id"] for x in b]
        for x, y in zip(a, b, strict=True):
            assert x.info["label_status"] == y.info["label_status"] == "ok"
            assert x.info["dft_energy"] == pytest.approx(y.info["dft_energy"], abs=1e-8)
            np.testing.assert_allclose(x.arrays["dft_forces"], y.arrays["dft_forces"], atol=1e-8)
            np.testing.assert_allclose(x.info["dft_stress"], y.info["dft_stress"], atol=1e-6)
        committee = f"results/fit/cycle{cycle}/committee.npz"
        with np.load(slurm / committee) as a, np.load(local_run / committee) as b:
            assert set(a.files) == set(b.files)
            for key in a.files:
                if np.issubdtype(a[key].dtype, np.number):
                    # Same numbers up to the last digits of the DFT data the fit solves for: GPAW's
                    # energies differ in the last bits between runs (~1e-13 eV), which the regression
                    # on a few configurations amplifies to relative 1e-6 (benchmarks/compare_runs.py:
                    # up to 2.4e-6 between runs of the same code) and, on the smallest coefficients,
                    # to ~1e-9 absolute; 1e-7 of the largest coefficient bounds that.
                    scale = float(np.abs(b[key]).max()) if b[key].size else 0.0
                    np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7 * scale, err_msg=key)


def test_rerun_after_completion_submits_nothing(slurm_run, slurm_profile, slurm_cluster):
    profile, _ = slurm_profile
    before = max(job_records(slurm_cluster))
    result = snakemake(slurm_run["workdir"], "--profile", str(profile), "--configfile", str(FAST))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    assert "submitted with SLURM jobid" not in result.stdout + result.stderr
    assert max(job_records(slurm_cluster)) == before


def test_failed_dft_job_is_recorded_and_the_cycle_continues(slurm_run, slurm_profile, slurm_cluster, tmp_path):
    """Two atoms on top of each other: GPAW raises, the label job records the
    failure and succeeds, and gathering the cycle goes on without it."""
    from ase.io import read, write

    profile, _ = slurm_profile
    workdir = tmp_path / "drill"
    shutil.copytree(slurm_run["workdir"], workdir, symlinks=True)
    configs = sorted((workdir / "results/select/cycle0/P5GPa/configs").glob("*.extxyz"))
    poisoned = configs[0]
    atoms = read(poisoned, format="extxyz")
    atoms.positions[1] = atoms.positions[0]
    write(poisoned, atoms, format="extxyz")
    before = max(job_records(slurm_cluster))
    table = "results/label/cycle0/labels.csv"
    result = snakemake(workdir, table, "--profile", str(profile), "--configfile", str(FAST))
    assert result.returncode == 0, failure_report(workdir, result.stdout + result.stderr)
    new = {i: r for i, r in job_records(slurm_cluster).items() if i > before}
    # Only the changed configuration was relabelled, then the cycle gathered.
    assert len(new) == 2
    assert sum(is_rule(r, "label") for r in new.values()) == 1
    assert sum(is_rule(r, "gather_labels") for r in new.values()) == 1
    assert all(r["JobState"] == "COMPLETED" for r in new.values())
    import pandas as pd

    rows = pd.read_csv(workdir / table).set_index("config_id")
    assert rows.loc[poisoned.stem, "status"] == "failed"
    assert "too close" in rows.loc[poisoned.stem, "error"].lower()
    assert (rows.drop(poisoned.stem).status == "ok").all()
    database = _read_all(workdir / "results/label/cycle0/labelled.extxyz")
    assert sorted(a.info["config_id"] for a in database) == sorted(rows.drop(poisoned.stem).index)
