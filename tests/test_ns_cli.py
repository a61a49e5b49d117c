"""``python -m nestdb.cli ns run``: an NS run from a workflow config without Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from nestdb.cli import main
from nestdb.errors import ConfigError
from nestdb.ns import output_paths

REPO = Path(__file__).resolve().parents[1]


def write_config(tmp_path, **ns) -> Path:
    config = yaml.safe_load((REPO / "config" / "fast.yaml").read_text())
    config["ns"].update({"max_iter": 30, "converge_down_to_T": None, **ns})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_ns_run_command_writes_the_rule_outputs(tmp_path, capsys):
    config = write_config(tmp_path)
    prefix = tmp_path / "out" / "ns"
    assert main(["ns", "run", str(config), "--pressure", "5", "--cycle", "0", "--out", str(prefix)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n_iter"] == 30 and printed["stop_reason"] == "max_iter"
    paths = output_paths(prefix)
    assert paths["energies"].read_text().splitlines()[0] == "16 1 0 False 4"
    assert len(np.loadtxt(paths["energies"], skiprows=1)) == 30
    assert paths["final"].exists() and paths["summary"].exists()
    assert "NS stopped (max_iter) after 30 iterations" in Path(f"{prefix}.log").read_text()


def test_ns_run_restart_continues(tmp_path):
    config = write_config(tmp_path)
    prefix = tmp_path / "r" / "ns"
    main(["ns", "run", str(config), "--pressure", "5", "--out", str(prefix)])
    first = output_paths(prefix)["energies"].read_text()
    # same config with more iterations and --restart: the first 30 lines stay
    longer = write_config(tmp_path, max_iter=50)
    main(["ns", "run", str(longer), "--pressure", "5", "--out", str(prefix), "--restart"])
    summary = json.loads(output_paths(prefix)["summary"].read_text())
    assert summary["restarted_at_iteration"] == 30 and summary["n_iter"] == 50
    assert output_paths(prefix)["energies"].read_text().startswith(first)


def test_ns_run_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="n_cull"):
        main(["ns", "run", str(write_config(tmp_path, n_cull=16)), "--pressure", "5", "--out", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="cycle"):
        main(["ns", "run", str(write_config(tmp_path)), "--pressure", "5", "--cycle", "7",
              "--out", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="does not exist"):
        main(["ns", "run", str(tmp_path / "none.yaml"), "--pressure", "5", "--out", str(tmp_path / "x")])


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "nestdb.cli", "ns", "run", "--help"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0
    assert "--restart" in result.stdout and "--pressure" in result.stdout


def test_explore_work_dir_resumes_and_publishes(tmp_path):
    # what the `ns` rule does: run in an undeclared restart/ folder, publish at the end
    from nestdb.config import ns_block
    from nestdb.ns.cli import load_config
    from nestdb.stages import explore

    block = ns_block(load_config(write_config(tmp_path)), 0)
    out, work = tmp_path / "results" / "ns", tmp_path / "results" / "restart"
    # a "killed" job: the work folder holds a snapshot at iteration 10 and partial files
    explore(dict(block, max_iter=10), 5.0, 0, work / "ns")
    assert output_paths(work / "ns")["restart"].exists()
    summary = explore(block, 5.0, 0, out, resume=True, work_dir=work)
    assert summary["restarted_at_iteration"] == 10 and summary["n_iter"] == 30
    assert all(output_paths(out)[kind].exists() for kind in ("energies", "traj", "final", "summary"))
    assert not work.exists()
    # the same run without the interruption gives the same samples
    explore(block, 5.0, 0, tmp_path / "direct" / "ns")
    assert output_paths(out)["energies"].read_text() == output_paths(tmp_path / "direct" / "ns")["energies"].read_text()
