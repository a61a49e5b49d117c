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

from nestdb.errors import ConfigError, DataError
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.ns.restart import load_snapshot
from nestdb.potentials.lj import FastLennardJones

from conftest import SMALL_NS_VALUES

SETTINGS = dict(SMALL_NS_VALUES, max_iter=300, seed=11, snapshot_seconds=0.0)

# Runs one NS run; argv: prefix, resume flag. Started as a subprocess so that it can be SIGKILLed.
RUNNER = """
import sys
from nestdb.potentials.lj import FastLennardJones
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
    while process.poll() is None and not (
        snapshot.exists() and energies.exists() and energies.read_text().count("\n") > 40
    ):
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
    summary = run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "ext", resume=True)
    assert summary["restarted_at_iteration"] == 60
    assert _files(tmp_path / "ext") == _files(tmp_path / "full")


def test_restart_refuses_changed_settings_and_damaged_files(tmp_path):
    values = dict(SETTINGS, max_iter=20, snapshot_seconds=1e9)
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a")
    with pytest.raises(ConfigError, match="walk_length: 12 -> 16"):
        run_nested_sampling(
            {"Mg": 4}, FastLennardJones(), NSSettings(**dict(values, walk_length=16)), tmp_path / "a", resume=True
        )
    with pytest.raises(ConfigError, match="other atoms"):
        run_nested_sampling({"Mg": 5}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)
    energies = output_paths(tmp_path / "a")["energies"]
    energies.write_text(energies.read_text()[:50])
    with pytest.raises(DataError, match="shorter than at the snapshot"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)
    output_paths(tmp_path / "a")["restart"].write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a nestdb snapshot"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)


def test_parallel_walking_gives_the_serial_samples(tmp_path):
    # n_cull clones walked by 2 processes or by one: same seeds per walk, same files
    values = dict(SETTINGS, max_iter=40, n_cull=2, snapshot_seconds=None)
    serial = run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "serial")
    parallel = run_nested_sampling(
        {"Mg": 4}, FastLennardJones(), NSSettings(**dict(values, n_procs=2)), tmp_path / "parallel"
    )
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")
    assert parallel["n_calls"] == serial["n_calls"]
    assert parallel["acceptance"] == serial["acceptance"]
    assert parallel["n_procs"] == 2
    # cost model: L calls per culled walker per iteration, nothing else
    assert serial["n_calls"] - serial["n_init_calls"] == pytest.approx(40 * 2 * SETTINGS["walk_length"], rel=0.1)
    rows = np.loadtxt(output_paths(tmp_path / "parallel")["energies"], skiprows=1)
    assert len(rows) == 80 and np.all(np.diff(rows[:, 1]) <= 0)


def test_n_procs_above_n_cull_is_refused():
    with pytest.raises(ConfigError, match="n_procs"):
        NSSettings(**dict(SETTINGS, n_procs=2)).validate()


# ----------------------------------------------------------------------------- chain fingerprint
def _explore_block(**overrides) -> dict:
    """An ``ns`` block as the workflow merges it (what stages.explore gets)."""
    block = dict(SETTINGS, composition={"Mg": 4}, calculator={"type": "lj"}, max_iter=12, snapshot_seconds=1e9)
    del block["pressure_gpa"]
    block.update(overrides)
    return block


def _killed_explore(tmp_path, block: dict):
    """What a killed `ns` job leaves: a snapshot and partial files in its restart/ folder."""
    from nestdb.ns.stage import ns_run_stage

    out, work = tmp_path / "results" / "ns", tmp_path / "results" / "restart"
    ns_run_stage(block, 10.0, 0, work / "ns")
    assert output_paths(work / "ns")["restart"].exists()
    return out, work


def test_resume_refuses_another_calculator(tmp_path, shared_mg):
    # issue 13.1: kill an LJ run, switch the cycle to EAM, rerun: it must not continue the LJ chain
    from nestdb.ns.stage import ns_run_stage

    out, work = _killed_explore(tmp_path, _explore_block())
    energies = output_paths(work / "ns")["energies"].read_bytes()
    eam = _explore_block(calculator={"type": "eam", "file": str(shared_mg / "Mg1.eam.fs")}, max_iter=20)
    with pytest.raises(ConfigError, match=r"the calculator changed \(type: 'lj' -> 'eam'\)") as info:
        ns_run_stage(eam, 10.0, 0, out, resume=True, work_dir=work)
    assert info.match(f"delete the folder {work}")
    # nothing was appended to the LJ run's files
    assert output_paths(work / "ns")["energies"].read_bytes() == energies
    # other LJ parameters are another chain too
    with pytest.raises(ConfigError, match=r"epsilon: 0\.2007 -> 0\.3"):
        ns_run_stage(
            _explore_block(calculator={"type": "lj", "epsilon": 0.3}), 10.0, 0, out, resume=True, work_dir=work
        )
    # the same calculator (defaults written out) resumes
    same = _explore_block(calculator={"type": "lj", "epsilon": 0.2007}, max_iter=20)
    assert ns_run_stage(same, 10.0, 0, out, resume=True, work_dir=work)["restarted_at_iteration"] == 12


def test_resume_refuses_a_changed_potential_file(tmp_path, shared_mg):
    # the same path, other content (a refitted or replaced potential)
    from nestdb.ns.stage import ns_run_stage

    potential = tmp_path / "Mg.eam.fs"
    potential.write_bytes((shared_mg / "Mg1.eam.fs").read_bytes())
    block = _explore_block(calculator={"type": "eam", "file": str(potential)}, max_iter=4)
    out, work = _killed_explore(tmp_path, block)
    lines = potential.read_text().splitlines(keepends=True)
    lines[0] = "# edited after the run was killed\n"  # a comment line: still a valid potential
    potential.write_text("".join(lines))
    with pytest.raises(ConfigError, match=r"Mg\.eam\.fs: sha256 [0-9a-f]{12}\.\.\. -> [0-9a-f]{12}"):
        ns_run_stage(dict(block, max_iter=8), 10.0, 0, out, resume=True, work_dir=work)


def _emt_al_labels(n: int, seed: int) -> list:
    """Rattled fcc Al cells labelled by EMT (stand-in for DFT labels of a fit)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.units import GPa

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True)
        atoms.set_cell(atoms.cell * rng.uniform(0.95, 1.08), scale_atoms=True)
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.info["dft_energy"] = atoms.get_potential_energy()
        atoms.arrays["dft_forces"] = atoms.get_forces()
        stress = atoms.get_stress(voigt=False)
        atoms.info["dft_stress"] = (stress / GPa).reshape(9)
        atoms.info["dft_virial"] = (-stress * atoms.get_volume()).reshape(9)
        atoms.info["config_type"] = f"emt_{i}"
        atoms.calc = None
        frames.append(atoms)
    return frames


def test_resume_refuses_a_refitted_committee(tmp_path):
    # issue 13.1, cycle n: the previous cycle's committee was refitted after the kill
    pytest.importorskip("pyace")
    from nestdb.fit import fit_linear_ace
    from nestdb.ns.stage import ns_run_stage

    model = tmp_path / "fit" / "cycle0"
    fit = {
        "elements": ["Al"],
        "reference_energies": {"Al": 0.0},
        "committee_size": 4,
        "test_fraction": 0.0,
        "nradmax_by_orders": [6, 3],
        "lmax_by_orders": [0, 2],
        "cutoff": 5.5,
    }
    fit_linear_ace(_emt_al_labels(8, seed=0), dict(fit, seed=1), model)
    block = _explore_block(
        composition={"Al": 4}, calculator={"type": "ace_committee"}, max_iter=3, max_volume_per_atom=30.0, walk_length=4
    )
    out, work = tmp_path / "results" / "ns", tmp_path / "results" / "restart"
    ns_run_stage(block, 10.0, 1, work / "ns", model_dir=model)
    fit_linear_ace(_emt_al_labels(10, seed=5), dict(fit, seed=2), model)  # the refit
    with pytest.raises(ConfigError, match=r"fit/cycle0/committee\.npz: sha256 [0-9a-f]{12}") as info:
        ns_run_stage(dict(block, max_iter=6), 10.0, 1, out, model_dir=model, resume=True, work_dir=work)
    assert info.match(f"delete the folder {work}")


def test_fingerprint_lists_the_files_each_calculator_reads(tmp_path):
    from nestdb.ns.restart import model_fingerprint

    (tmp_path / "m").mkdir()
    for name in ("potential.yaml", "committee.npz", "plot.png"):
        (tmp_path / "m" / name).write_text(name)
    files = model_fingerprint({"type": "ace_committee", "model": "m"}, tmp_path)["files"]
    assert sorted(files) == ["model/committee.npz", "model/potential.yaml"]
    (tmp_path / "p").mkdir()
    for name in ("member_0.yaml", "member_1.yaml", "member_0.asi", "other.yaml"):
        (tmp_path / "p" / name).write_text(name)
    (tmp_path / "p" / "committee.json").write_text(
        json.dumps(
            {
                "members": ["member_0.yaml", "member_1.yaml"],
                "active_set": "member_0.asi",
                "reference_energies": {"Mg": 0.0},
            }
        )
    )
    files = model_fingerprint({"type": "pacemaker_committee", "model": str(tmp_path / "p")}, tmp_path)["files"]
    assert sorted(files) == ["model/committee.json", "model/member_0.asi", "model/member_0.yaml", "model/member_1.yaml"]
    lj = model_fingerprint({"type": "lj"}, tmp_path)
    assert lj == model_fingerprint({"type": "lj", "sigma": 2.918}, tmp_path) and lj["files"] == {}


# ----------------------------------------------------------------------------- snapshot format
class _Payload:
    """Unpickling this creates ``marker``: what a crafted snapshot could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_crafted_snapshots_never_run_code(tmp_path):
    import pickle

    values = dict(SETTINGS, max_iter=6, snapshot_seconds=1e9)
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a")
    marker = tmp_path / "pwned"
    legacy = tmp_path / "a.restart.pkl"
    legacy.write_bytes(pickle.dumps({"version": 1, "payload": _Payload(marker)}))
    with pytest.raises(DataError, match=r"a\.restart\.pkl.*old pickle format.*not read") as info:
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)
    assert info.match("(?i)delete")
    assert not marker.exists()
    legacy.unlink()
    # a pickle, or an .npz holding a pickled object array, in the snapshot's place
    snapshot = output_paths(tmp_path / "a")["restart"]
    snapshot.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(DataError, match="pickle"):
        load_snapshot(snapshot)
    np.savez(snapshot.with_suffix(".tmp.npz"), state=np.array([_Payload(marker)], dtype=object))
    os.replace(snapshot.with_suffix(".tmp.npz"), snapshot)
    with pytest.raises(DataError, match="not a nestdb"):
        load_snapshot(snapshot)
    assert not marker.exists()


def test_snapshot_checksum_and_version_are_verified(tmp_path):
    import io
    import zipfile

    values = dict(SETTINGS, max_iter=6, snapshot_seconds=1e9)
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a")
    snapshot = output_paths(tmp_path / "a")["restart"]
    assert snapshot.name == "a.restart.npz"
    state = load_snapshot(snapshot)
    assert state["iteration"] == 6 and state["walkers"]["positions"].shape == (8, 4, 3)
    assert isinstance(state["rng_state"]["state"]["state"], int)
    with zipfile.ZipFile(snapshot) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}

    def rewrite(**replaced: bytes) -> None:
        with zipfile.ZipFile(snapshot, "w") as archive:
            for key, data in {**members, **replaced}.items():
                archive.writestr(key, data)

    # one changed bit in the last walker's positions: refused before use
    damaged = bytearray(members["walkers.positions.npy"])
    damaged[-1] ^= 1
    rewrite(**{"walkers.positions.npy": bytes(damaged)})
    with pytest.raises(DataError, match=r"a\.restart\.npz is damaged.*sha256 checksum"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), tmp_path / "a", resume=True)
    # a future format version is named
    header = json.loads(np.load(io.BytesIO(members["header.npy"])).tobytes())
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(dict(header, version=99)).encode(), dtype=np.uint8))
    rewrite(**{"header.npy": buffer.getvalue()})
    with pytest.raises(DataError, match="format version 99; this nestdb reads version 2"):
        load_snapshot(snapshot)
    # the intact file resumes
    rewrite()
    summary = run_nested_sampling(
        {"Mg": 4}, FastLennardJones(), NSSettings(**dict(values, max_iter=8)), tmp_path / "a", resume=True
    )
    assert summary["restarted_at_iteration"] == 6
