"""`snakemake --profile slurm` as typed from the repository root, and the resources every rule gets from it.

Snakemake 9 looks for a bare profile name in the working directory, then in
~/.config/snakemake and /etc/xdg/snakemake; the repository root's ``slurm``
is a link to profiles/slurm, so the README's command works in a fresh
checkout. Dry runs only: the SLURM executor plugin (installed, pinned in
requirements.txt) is loaded, but nothing is submitted and no scheduler is
needed. tests/test_slurm.py runs the same profile against a real cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import require_shared

REPO = Path(__file__).resolve().parents[1]
EAM = REPO.parent / "shared" / "data" / "mg" / "Mg1.eam.fs"  # config/mg-study.yaml's cycle-0 potential


def run(argv: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    """A command as a user types it, with the venv's bin first on PATH (as after `source .venv/bin/activate`)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("SNAKEMAKE_PROFILE", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def job_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """``[(rule, {resource: value})]`` of every job a dry run lists."""
    jobs = []
    # group jobs (label) list their rules indented
    for rule, block in re.findall(
        r"^ *(?:localrule|localcheckpoint|rule|checkpoint) (\w+):\n(.*?)(?:\n *\n|\Z)", output, flags=re.M | re.S
    ):
        found = re.search(r"^ +resources: (.*)$", block, flags=re.M)
        values = dict(item.split("=", 1) for item in found.group(1).split(", ")) if found else {}
        jobs.append((rule, values))
    return jobs


def readme_dry_run() -> list[str]:
    """The dry-run command of the README's cluster section."""
    section = (REPO / "README.md").read_text().split("## Running on a SLURM cluster", 1)[1].split("\n## ", 1)[0]
    commands = [
        line
        for line in section.splitlines()
        if line.startswith("snakemake --profile") and line.rstrip().endswith(" -n")
    ]
    assert len(commands) == 1, f"expected one `snakemake --profile ... -n` line in the cluster section: {commands}"
    return shlex.split(commands[0])


def test_slurm_at_the_root_is_the_project_profile():
    assert (REPO / "slurm").is_symlink() and (REPO / "slurm").resolve() == (REPO / "profiles" / "slurm").resolve()


def test_readme_dry_run_works_as_typed_from_the_repository_root():
    require_shared(EAM)
    argv = readme_dry_run()
    assert argv[:3] == ["snakemake", "--profile", "slurm"]
    result = run(argv)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Using profile slurm for setting default command line arguments." in output
    jobs = job_resources(output)
    rules = {rule for rule, _ in jobs}
    assert {"ns", "analyse", "select", "gather_labels", "fit", "bench", "bench_reference"} <= rules
    for rule, resources in jobs:
        if rule == "all":
            continue
        # every job carries the profile's account, partition, wall time and memory request
        assert resources.get("slurm_account") == "<account>", (rule, resources)
        assert resources.get("runtime") and resources.get("mem_mb_per_cpu"), (rule, resources)
        partition = "<gpu-partition>" if rule == "fit" else "<cpu-partition>"
        assert resources.get("slurm_partition") == partition, (rule, resources)
    fit = next(resources for rule, resources in jobs if rule == "fit")
    assert fit["gpu"] == "1" and fit["cpus_per_gpu"] == "4"


def test_every_rule_states_its_own_runtime(tmp_path):
    """With the profile's default runtime removed, every job still has one (from its rule or the
    profile's set-resources): no rule silently gets a generic wall time. The label jobs sit behind the
    selection checkpoint, so one selected configuration is laid out for a targeted dry run."""
    require_shared(EAM)
    config = yaml.safe_load((REPO / "config" / "mg-study.yaml").read_text())
    config["fit"].setdefault("pacemaker", {})["enabled"] = True
    config["bench"]["phase_diagram"]["enabled"] = True
    config_path = tmp_path / "config.yaml"
    # its paths are relative to the repository root; this run's working directory is elsewhere
    config_path.write_text(yaml.safe_dump(config).replace("../shared/", f"{REPO.parent}/shared/"))
    workdir = tmp_path / "work"
    selected = workdir / "results" / "select" / "cycle0" / "P0GPa" / "configs" / "c0_P0_i000001.extxyz"
    selected.parent.mkdir(parents=True)
    selected.write_text('1\nLattice="9 0 0 0 9 0 0 0 9" Properties=species:S:1:pos:R:3 pbc="T T T"\nMg 0 0 0\n')
    targets = ["all", "results/label/e0/Mg.json", "results/label/cycle0/P0GPa/c0_P0_i000001.extxyz"]
    result = run(
        [
            "snakemake",
            *targets,
            "--profile",
            "slurm",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config_path),
            "-n",
            "--default-resources",
            "slurm_account=a",
            "slurm_partition=p",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_resources(result.stdout + result.stderr)
    rules = {rule for rule, _ in jobs}
    expected = {
        "ns",
        "analyse",
        "select",
        "fit",
        "fit_pacemaker_prepare",
        "bench",
        "bench_property",
        "bench_xrd",
        "bench_reference",
        "bench_property_reference",
        "bench_phase_diagram_ns",
        "label",
        "label_isolated_atom",
    }
    assert expected <= rules, f"not in the dry run: {expected - rules}"
    missing = sorted({rule for rule, resources in jobs if rule != "all" and "runtime" not in resources})
    assert not missing, f"rules without their own runtime: {missing}"
    label = next(resources for rule, resources in jobs if rule == "label")
    assert label["mpi"] == "srun" and int(label["tasks"]) > 1 and label["nodes"] == "1"
