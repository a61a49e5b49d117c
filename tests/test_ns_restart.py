"""Exact restart of nested sampling after SIGKILL, and parallel walking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nestdb.calculators import FastLennardJones
from nestdb.errors import ConfigError, DataError
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.ns.restart import load_snapshot

SETTINGS = dict(n_walkers=8, walk_length=12, pressure_gpa=10.0, max_iter=300, max_volume_per_atom=40.0,
                kemax_max_T=3000.0, md_traj_len=3, seed=11, snapshot_seconds=0.0)

# Runs one NS run; argv: prefix, resume flag. Started as a subprocess so that it can be SIGKILLed.
RUNNER = """
import sys
from nestdb.calculators import FastLennardJones
from nestdb.ns import NSSettings, run_nested_sampling
settings = NSSettings(**{settings!r})
run_nested_sampling({{"Mg": 4}}, FastLennardJones(), settings, sys.argv[1], resume=sys.argv[2] == "1")
"""


def _start(script, prefix, resume: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(prefix), "1" if resume else "0"])


def _files(prefix) -> dict[str, bytes]:
    paths = output_paths(prefix)
    return {kind: paths[kind].read_bytes() for kind in ("energies", "traj", "final")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The script and the files of an uninterrupted run (in a fresh process, like the killed ones)."""
    folder = tmp_path_factory.mktemp("restart")
    script = folder / "runner.py"
    script.write_text(RUNNER.format(settings=SETTINGS))
    assert _start(script, folder / "ref", resume=False).wait(timeout=120) == 0
    return script, _files(folder / "ref")


def _run_until(script, prefix, iteration: int, signum: int) -> int:
    """Start a run, send ``signum`` once a snapshot at >= ``iteration`` exists; return that iteration."""
    snapshot = output_paths(prefix)["restart"]
    process = _start(script, prefix, resume=False)
    deadline = time.monotonic() + 120
    sent_at = None
    while time.monotonic() < deadline and process.poll() is None:
        if snapshot.exists() and load_snapshot(snapshot)["iteration"] >= iteration:
            os.kill(process.pid, signum)
            sent_at = load_snapshot(snapshot)["iteration"]
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert sent_at is not None, "the run ended before the signal"
    return sent_at


def test_sigkill_then_restart_is_byte_identical(tmp_path, reference):
    script, expected = reference
    prefix = tmp_path / "killed" / "lj"
    killed_at = _run_until(script, prefix, 40, signal.SIGKILL)
    assert killed_at < SETTINGS["max_iter"]
    # the kill left a partial run: fewer lines than the full one
    assert len(output_paths(prefix)["energies"].read_bytes()) < len(expected["energies"])
    assert _start(script, prefix, resume=True).wait(timeout=120) == 0
    assert _files(prefix) == expected
    summary = json.loads(output_paths(prefix)["summary"].read_text())
    assert summary["restarted_at_iteration"] >= killed_at
    assert summary["n_iter"] == SETTINGS["max_iter"]


def test_sigterm_snapshots_exits_and_resumes(tmp_path, reference):
    # SLURM's time limit: SIGTERM, then SIGKILL. With hourly snapshots the only
    # ones are the initial one and the one written on SIGTERM.
    script, expected = reference
    script = script.parent / "runner_hourly.py"
    script.write_text(RUNNER.format(settings=dict(SETTINGS, snapshot_seconds=3600.0)))
    prefix = tmp_path / "term" / "lj"
    snapshot = output_paths(prefix)["restart"]
    energies = output_paths(prefix)["energies"]
    process = _start(script, prefix, resume=False)
    # wait for some iterations after the initial snapshot (.energies is flushed every 8)
    while process.poll() is None and not (snapshot.exists() and energies.exists()
                                          and energies.read_text().count("\n") > 40):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    stopped_at = load_snapshot(snapshot)["iteration"]
    assert 0 < stopped_at < SETTINGS["max_iter"]
    assert _start(script, prefix, resume=True).wait(timeout=120) == 0
    assert _files(prefix) == expected


def test_restart_extends_a_finished_run(tmp_path):
    # 60 iterations, then a restart with max_iter 100 = one run of 100 iterations
    values = dict(SETTINGS, max_iter=100, snapshot_seconds=1e9)
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "full")
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**dict(values, max_iter=60)), tmp_path / "ext")
    summary = run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "ext",
                                  resume=True)
    assert summary["restarted_at_iteration"] == 60
    assert _files(tmp_path / "ext") == _files(tmp_path / "full")


def test_restart_refuses_changed_settings_and_damaged_files(tmp_path):
    values = dict(SETTINGS, max_iter=20, snapshot_seconds=1e9)
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a")
    with pytest.raises(ConfigError, match="walk_length: 12 -> 16"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**dict(values, walk_length=16)),
                            tmp_path / "a", resume=True)
    with pytest.raises(ConfigError, match="other atoms"):
        run_nested_sampling({"Mg": 5}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)
    energies = output_paths(tmp_path / "a")["energies"]
    energies.write_text(energies.read_text()[:50])
    with pytest.raises(DataError, match="shorter than at the snapshot"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)
    output_paths(tmp_path / "a")["restart"].write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot be read"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)


def test_parallel_walking_gives_the_serial_samples(tmp_path):
    # n_cull clones walked by 2 processes or by one: same seeds per walk, same files
    values = dict(SETTINGS, max_iter=40, n_cull=2, snapshot_seconds=None)
    serial = run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "serial")
    parallel = run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**dict(values, n_procs=2)),
                                   tmp_path / "parallel")
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")
    assert parallel["n_calls"] == serial["n_calls"]
    assert parallel["acceptance"] == serial["acceptance"]
    assert parallel["n_procs"] == 2
    # cost model: L calls per culled walker per iteration, nothing else
    assert serial["n_calls"] - serial["n_init_calls"] == pytest.approx(
        40 * 2 * SETTINGS["walk_length"], rel=0.1)
    rows = np.loadtxt(output_paths(tmp_path / "parallel")["energies"], skiprows=1)
    assert len(rows) == 80 and np.all(np.diff(rows[:, 1]) <= 0)


def test_n_procs_above_n_cull_is_refused():
    with pytest.raises(ConfigError, match="n_procs"):
        NSSettings(**dict(SETTINGS, n_procs=2)).validate()
