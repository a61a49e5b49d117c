"""One config source (issue 15): ``--configfile my.yaml`` is exactly my.yaml's campaign, run the way
users run it (from the repository root, no ``--directory``), and the CLI and the workflow make
byte-identical NS runs from the same file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake

#: 1 eV/A^3 in GPa.
EV_PER_A3_IN_GPA = 160.21766

#: What a checkout needs to run the workflow (nestdb itself is installed).
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "scripts", "envs", "profiles")

#: A new user's aluminium campaign: only its own keys; no `pressures`, no bench or fit basis settings.
AL = {
    "elements": ["Al"],
    "ns": {
        "composition": {"Al": 4},
        "n_walkers": 16,
        "walk_length": 16,
        "max_iter": 200,
        "kemax_max_T": 3000,
        "max_volume_per_atom": 40.0,
    },
    "cycles": [
        {
            "ns": {"calculator": {"type": "emt"}},
            "select": {"kind": "temperature_window", "t_min": 200, "t_max": 2500, "count": 3},
        },
        {"select": {"kind": "final"}},
    ],
    "label": {"code": "gpaw", "gpaw": {"mode": {"name": "pw", "ecut": 300}}},
    "fit": {"reference_energies": {"Al": 0.0}},
}


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the repository's workflow files, run from its root like a user's checkout."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, symlinks=True)
        else:
            shutil.copy2(source, root / name)
    return root


def snakemake_in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` with cwd ``cwd`` and no ``-s``/``--directory``: as typed at a checkout's root."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def ns_jobs(output: str) -> list[str]:
    """The NS output folders a dry run plans (``results/ns/cycle0/P0GPa``)."""
    return sorted(set(re.findall(r"results/ns/cycle\d+/(?:[A-Za-z0-9]+/)?P[\d.]+GPa", output)))


def test_configfile_from_the_repository_root_is_the_whole_campaign(checkout):
    (checkout / "al.yaml").write_text(yaml.safe_dump(AL))
    result = snakemake_in(checkout, "-n", "--cores", "1", "--configfile", "al.yaml")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    # pressures left out are the schema's [0], not config/config.yaml's [0, 10]; nothing of Mg anywhere
    assert ns_jobs(output) == ["results/ns/cycle0/P0GPa", "results/ns/cycle1/P0GPa"]
    assert "Mg" not in output
    assert "extended by additional config" not in output  # Snakemake's deep merge onto a default file
    # the same file with --directory (how the other tests call it) plans the same runs
    elsewhere = snakemake(
        checkout.parent / "elsewhere", "-n", "--cores", "1", "--configfile", str(checkout / "al.yaml")
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert ns_jobs(elsewhere.stdout) == ns_jobs(output)


def test_default_config_only_without_configfile(checkout):
    # no --configfile: the embedded magnesium default (2 cycles x 2 pressures), --config on top
    result = snakemake_in(checkout, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr
    assert len(ns_jobs(result.stdout)) == 4
    # --config lands on the default (an override the schema refuses shows it was applied)
    result = snakemake_in(checkout, "-n", "--cores", "1", "--config", "select={'weight_rescale': 'median'}")
    assert result.returncode != 0
    assert "median" in result.stdout + result.stderr and "weight_rescale" in result.stdout + result.stderr


def test_missing_keys_are_named_not_taken_from_the_default(checkout):
    # a file without `cycles` or `elements` used to be completed silently by config/config.yaml
    config = {key: value for key, value in AL.items() if key != "cycles"}
    (checkout / "nocycles.yaml").write_text(yaml.safe_dump(config))
    result = snakemake_in(checkout, "-n", "--cores", "1", "--configfile", "nocycles.yaml")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "the config has no `cycles`" in output and "KeyError" not in output
    config = {key: value for key, value in AL.items() if key != "elements"}
    (checkout / "noelements.yaml").write_text(yaml.safe_dump(config))
    result = snakemake_in(checkout, "-n", "--cores", "1", "--configfile", "noelements.yaml")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "no `elements`" in output and "elements: [Cu]" in output


def test_cli_and_workflow_make_byte_identical_ns_runs(checkout):
    # config/fast.yaml's sizes, few iterations, and no kemax_max_T: the default must be the schema's
    # (null: 1.5 P N Vmax) in both, not config/config.yaml's 4000 K
    config = yaml.safe_load((REPO / "config" / "fast.yaml").read_text())
    config["ns"].update(max_iter=40, converge_down_to_T=None)
    del config["ns"]["kemax_max_T"]
    (checkout / "small.yaml").write_text(yaml.safe_dump(config))
    target = "results/ns/cycle0/P5GPa/ns.energies"
    result = snakemake_in(checkout, target, "--cores", "1", "--configfile", "small.yaml")
    assert result.returncode == 0, result.stderr
    cli = subprocess.run(
        [sys.executable, "-m", "nestdb.cli", "ns", "run", "small.yaml", "--pressure", "5", "--out", "cli/ns"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr
    for suffix in (".energies", ".traj.extxyz", ".final.extxyz"):
        workflow_file = checkout / f"results/ns/cycle0/P5GPa/ns{suffix}"
        assert workflow_file.read_bytes() == (checkout / f"cli/ns{suffix}").read_bytes(), suffix
    assert len(workflow_file.read_text()) > 0
    summaries = [
        json.loads((checkout / f"{prefix}.summary.json").read_text())
        for prefix in ("results/ns/cycle0/P5GPa/ns", "cli/ns")
    ]
    assert summaries[0]["n_iter"] == summaries[1]["n_iter"] == 40
    # KEmax = 1.5 P N Vmax (pymatnest's, kemax_max_T null), not 1.5 N kB 4000 K from the Mg default
    kemax = 1.5 * 5.0 / EV_PER_A3_IN_GPA * 4 * config["ns"]["max_volume_per_atom"]
    assert summaries[0]["kemax"] == summaries[1]["kemax"] == pytest.approx(kemax)
