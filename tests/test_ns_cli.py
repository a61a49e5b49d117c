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
        main(
            ["ns", "run", str(write_config(tmp_path)), "--pressure", "5", "--cycle", "7", "--out", str(tmp_path / "x")]
        )
    with pytest.raises(ConfigError, match="does not exist"):
        main(["ns", "run", str(tmp_path / "none.yaml"), "--pressure", "5", "--out", str(tmp_path / "x")])


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "nestdb.cli", "ns", "run", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    assert "--restart" in result.stdout and "--pressure" in result.stdout


def test_explore_work_dir_resumes_and_publishes(tmp_path):
    # what the `ns` rule does: run in an undeclared restart/ folder, publish at the end
    from nestdb.config import load_config, ns_block
    from nestdb.ns.stage import ns_run_stage

    block = ns_block(load_config(write_config(tmp_path)), 0)
    out, work = tmp_path / "results" / "ns", tmp_path / "results" / "restart"
    # a "killed" job: the work folder holds a snapshot at iteration 10 and partial files
    ns_run_stage(dict(block, max_iter=10), 5.0, 0, work / "ns")
    assert output_paths(work / "ns")["restart"].exists()
    summary = ns_run_stage(block, 5.0, 0, out, resume=True, work_dir=work)
    assert summary["restarted_at_iteration"] == 10 and summary["n_iter"] == 30
    assert all(output_paths(out)[kind].exists() for kind in ("energies", "traj", "final", "summary"))
    assert not work.exists()
    # the same run without the interruption gives the same samples
    ns_run_stage(block, 5.0, 0, tmp_path / "direct" / "ns")
    assert output_paths(out)["energies"].read_text() == output_paths(tmp_path / "direct" / "ns")["energies"].read_text()


class _WarningLJ:
    """Stand-in model factory: LJ that emits one Python warning and one logger
    warning part-way through the run (what a real model or library may do)."""

    def __init__(self, after_calls: int):
        self.after_calls = after_calls

    def __call__(self, spec, base_dir="."):
        import logging
        import warnings

        from nestdb.potentials.lj import FastLennardJones

        after = self.after_calls

        class Noisy(FastLennardJones):
            n_calls = 0

            def calculate(self, *args, **kwargs):
                Noisy.n_calls += 1
                if Noisy.n_calls == after:
                    warnings.warn("model extrapolates (test warning)", RuntimeWarning, stacklevel=2)
                    logging.getLogger("nestdb").warning("a logger warning during the run")
                super().calculate(*args, **kwargs)

        return Noisy()


def test_warning_during_a_run_keeps_every_log_line(tmp_path, monkeypatch):
    # issue 13.5: the rule's log gets the progress lines (appended) and the logger's records;
    # a warning in the middle of the run must not overwrite the header or progress lines
    import nestdb.ns.stage
    from nestdb.config import load_config, ns_block
    from nestdb.logs import main_guard
    from nestdb.ns.stage import ns_run_stage

    block = ns_block(load_config(write_config(tmp_path, max_iter=64)), 0)
    quiet = tmp_path / "quiet.log"
    ns_run_stage(block, 5.0, 0, tmp_path / "quiet" / "ns", progress_path=quiet)
    expected = quiet.read_text().splitlines()
    assert expected[0].startswith("NS: 4 atoms") and expected[-1].startswith("NS stopped")
    assert len(expected) == 6  # header, 4 progress lines (every 16 iterations), the end

    monkeypatch.setattr(nestdb.ns.stage, "make_calculator", _WarningLJ(after_calls=200))
    log = tmp_path / "logs" / "ns.log"
    log.parent.mkdir()
    log.write_text("a line of an earlier job\n")  # the rule's log is started afresh
    main_guard(ns_run_stage, block, 5.0, 0, tmp_path / "noisy" / "ns", progress_path=log, log_path=log)
    lines = log.read_text().splitlines()
    assert "a line of an earlier job" not in lines
    warned = [i for i, line in enumerate(lines) if "RuntimeWarning: model extrapolates (test warning)" in line]
    assert len(warned) == 1 and any("a logger warning during the run" in line for line in lines)
    progress = [line for line in lines if line.startswith(("NS", "iter "))]
    # every progress line (wall-clock figures aside) is there, in order, the header first
    assert [_no_clock(line) for line in progress] == [_no_clock(line) for line in expected]
    assert lines[0] == progress[0] and 0 < warned[0] < len(lines) - 1


def _no_clock(line: str) -> str:
    import re

    return re.sub(r"\(\d+/s\)|wall [\d.]+ s, \d+ calls/s, [\d.]+ iterations/s", "", line)
