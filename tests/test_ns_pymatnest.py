"""pymatnest: reading its real output files, writing its input, running ns_run."""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from nestdb.errors import ConfigError
from nestdb.ns import NSSettings, output_paths
from nestdb.ns.pymatnest import input_keywords, read_ns_frames, run_pymatnest, write_calc_module, write_input
from nestdb.thermo import read_energies

#: (directory, file stem, culls in .energies, traj file, traj_interval, frame thinning)
SAMPLES = [
    ("lj16_aselj_partial", "lj16", 1294, "lj16.traj.0.extxyz", 10, 1),
    ("mg16_1GPa_aseeam_partial", "mg16_1GPa_aseeam", 267, "mg16_1GPa_aseeam.traj.0.extxyz", 1, 1),
    ("lj16_fastlj", "lj16_fastlj", 12800, "lj16_fastlj.traj.0.every2ndframe.extxyz", 10, 2),
    ("mg16_1GPa_fasteam", "mg16_1GPa_fasteam", 20000, "mg16_1GPa_fasteam.traj.0.every3rdframe.extxyz", 10, 3),
]
WALKERS = {"lj16_aselj_partial": 64, "mg16_1GPa_aseeam_partial": 100, "lj16_fastlj": 64, "mg16_1GPa_fasteam": 100}
PYMATNEST_INFO_ORDER = ["ns_energy", "volume", "KEmax", "ns_P", "iter", "config_type", "config_n_global", "ns_KE"]


def parse_input(path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.mark.parametrize("directory, stem, n_culls, traj, interval, thinning", SAMPLES)
def test_real_pymatnest_energies_and_traj(shared_mg, directory, stem, n_culls, traj, interval, thinning):
    folder = shared_mg / "pymatnest" / "samples" / directory
    energies = read_energies(folder / f"{stem}.energies")
    assert (energies.n_walkers, energies.n_cull, energies.n_extra_dof, energies.flat_v_prior, energies.n_atoms) == (
        WALKERS[directory],
        1,
        0,
        False,
        16,
    )
    assert energies.n_samples == n_culls
    np.testing.assert_array_equal(energies.iters, np.arange(n_culls))  # restarts continue seamlessly
    assert np.all(np.diff(energies.enthalpy) <= 1e-9)

    frames = read_ns_frames(folder / traj)
    n_global = np.array([f.info["config_n_global"] for f in frames])
    assert np.all(n_global % interval == interval - 1)
    assert np.all(np.diff(n_global) == interval * thinning)
    for frame in frames[:: max(1, len(frames) // 20)]:
        assert [k for k in PYMATNEST_INFO_ORDER if k in frame.info] == PYMATNEST_INFO_ORDER
        assert len(frame) == 16 and frame.calc is None
        # a culled configuration is the walker of its .energies line
        line = frame.info["config_n_global"]
        assert frame.info["ns_energy"] == pytest.approx(energies.enthalpy[line], rel=1e-12)
        assert frame.info["volume"] == pytest.approx(energies.volume[line], rel=1e-12)
        assert frame.info["volume"] == pytest.approx(frame.get_volume(), rel=1e-9)
        assert frame.info["ns_KE"] == pytest.approx(
            0.5 * np.sum(frame.get_momenta() ** 2 / frame.get_masses()[:, None]), rel=1e-6
        )


def test_real_pymatnest_snapshot_drops_stale_results(shared_mg):
    path = shared_mg / "pymatnest" / "samples" / "mg16_1GPa_fasteam" / "mg16_1GPa_fasteam.snapshot.19999.0.extxyz"
    raw = read(path, index=":")
    # ASE attaches the stale shared-calculator energy: the same in every frame
    assert len({frame.get_potential_energy() for frame in raw}) == 1
    frames = read_ns_frames(path)
    assert len(frames) == 100
    assert all(frame.calc is None and frame.info["iter"] == 19999 for frame in frames)
    assert len({frame.info["ns_energy"] for frame in frames}) == 100


def mg_sample_settings(**overrides) -> NSSettings:
    # the set-up of samples/mg16_1GPa_fasteam in our terms
    values = dict(
        n_walkers=100,
        walk_length=32,
        pressure_gpa=1.0,
        max_iter=12000,
        converge_down_to_T=None,  # the samples run to their iteration count
        max_volume_per_atom=60.0,
        min_volume_per_atom=5.0,
        min_aspect_ratio=0.8,
        kemax_max_T=5000.0,
        md_traj_len=8,
        traj_interval=10,
        seed=4320,
        move_fractions={"md": 1, "volume": 4, "shear": 2, "stretch": 2},
    )
    values.update(overrides)
    return NSSettings(**values)


def test_input_matches_a_real_pymatnest_input(shared_mg):
    real = parse_input(shared_mg / "pymatnest" / "samples" / "mg16_1GPa_fasteam" / "mg16_1GPa_fasteam.inp")
    ours = input_keywords(mg_sample_settings(), {"Mg": 16}, "mg16_1GPa_fasteam", "mg_eam_fast_calc")
    for key in (
        "n_walkers",
        "n_cull",
        "n_iter_times_fraction_killed",
        "out_file_prefix",
        "energy_calculator",
        "ASE_calc_module",
        "atom_algorithm",
        "atom_traj_len",
        "traj_interval",
        "full_auto_step_sizes",
        "monitor_step_interval_times_fraction_killed",
        "delta_random_seed",
    ):
        assert ours[key] == real[key] or float(ours[key]) == float(real[key]), key
    for key in ("max_volume_per_atom", "min_volume_per_atom", "MC_cell_min_aspect_ratio", "KEmax_max_T"):
        assert float(ours[key]) == float(real[key]), key
    assert float(ours["MC_cell_P"]) == pytest.approx(float(real["MC_cell_P"]), rel=1e-4)
    # move weights in the same proportions; real masses instead of pymatnest's 1 amu
    weights = [
        int(ours[k]) for k in ("n_atom_steps", "n_cell_volume_steps", "n_cell_shear_steps", "n_cell_stretch_steps")
    ]
    real_weights = [
        int(real[k]) for k in ("n_atom_steps", "n_cell_volume_steps", "n_cell_shear_steps", "n_cell_stretch_steps")
    ]
    assert np.allclose(np.array(weights) / sum(weights), np.array(real_weights) / sum(real_weights), atol=0.01)
    assert ours["start_species"] == "12 16 24.3050"
    # our cost model: a fixed walk per culled walker, no extra walk
    assert ours["n_model_calls"] == "32" and ours["no_extra_walks_at_all"] == "T"
    # every keyword we write is one pymatnest knows (unknown keys are fatal in ns_run)
    reference = (shared_mg.parents[1] / "reference" / "pymatnest-format.md").read_text()
    for key in ours:
        assert re.search(rf"`{re.escape(key)}[`=]", reference), key


def test_input_refuses_what_pymatnest_cannot_do():
    with pytest.raises(ConfigError, match="committee"):
        input_keywords(mg_sample_settings(committee_std_max=60.0), {"Mg": 16}, "x")
    if int(np.__version__.split(".")[0]) >= 2:
        with pytest.raises(ConfigError, match="converge_down_to_T.*NumPy"):
            input_keywords(mg_sample_settings(converge_down_to_T=200.0), {"Mg": 16}, "x")
    binary = input_keywords(
        mg_sample_settings(move_fractions={"md": 0.5, "volume": 0.3, "swap": 0.2}), {"Cu": 8, "Au": 8}, "x"
    )
    assert binary["n_swap_steps"] == "20" and binary["atom_velo_rej_free_fully_randomize"] == "T"
    assert binary["start_species"] == "29 8 63.5460, 79 8 196.9666"
    mc = input_keywords(mg_sample_settings(move_fractions={"atom": 0.5, "volume": 0.5}), {"Mg": 16}, "x")
    assert (mc["atom_algorithm"], mc["n_atom_steps"], mc["atom_traj_len_cost_multiplier"]) == ("MC", "50", "16")
    with pytest.raises(ConfigError, match="MD or MC"):
        input_keywords(mg_sample_settings(move_fractions={"atom": 0.5, "md": 0.5}), {"Mg": 16}, "x")
    # pymatnest's own min_nn_dis, written only when set (its default is 0)
    assert input_keywords(mg_sample_settings(min_nn_distance=2.0), {"Mg": 16}, "x")["min_nn_dis"] == "2.0"
    assert "min_nn_dis" not in mc


def test_missing_ns_run_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="'ns_run' was not found"):
        run_pymatnest(
            {"composition": {"Mg": 4}, "calculator": {"type": "lj"}}, mg_sample_settings(), tmp_path / "run" / "ns"
        )


# A stand-in for ns_run (plumbing only): checks its stdin input and that the
# generated calculator module gives a working `calc`, then "produces" the
# files of the real pymatnest sample run.
FAKE_NS_RUN = """#!{python}
import importlib, shutil, sys
keys = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if line and line[0] != "#")
assert sys.argv[1:] == ["-no_mpi"], sys.argv
calc = importlib.import_module(keys["ASE_calc_module"]).calc
from ase.build import bulk
atoms = bulk("Mg"); atoms.calc = calc; assert atoms.get_potential_energy() < 0
src = "{sample}/mg16_1GPa_aseeam"
prefix = keys["out_file_prefix"]
for suffix in (".energies", ".traj.0.extxyz", ".snapshot.200.0.extxyz"):
    shutil.copy(src + suffix, prefix + suffix)
print("fake ns_run done")
"""


def test_run_pymatnest_converts_its_outputs(tmp_path, shared_mg, monkeypatch):
    sample = shared_mg / "pymatnest" / "samples" / "mg16_1GPa_aseeam_partial"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ns_run"
    fake.write_text(FAKE_NS_RUN.format(python=sys.executable, sample=sample))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    block = {"composition": {"Mg": 16}, "calculator": {"type": "lj"}}
    settings = mg_sample_settings(config_type="mg16_P1GPa_c0")
    prefix = tmp_path / "run" / "ns"
    summary = run_pymatnest(block, settings, prefix, log_path=tmp_path / "ns.log")
    assert "fake ns_run done" in (tmp_path / "ns.log").read_text()
    assert parse_input(tmp_path / "run" / "ns.inp")["out_file_prefix"] == "ns"
    paths = output_paths(prefix)
    assert paths["energies"].read_bytes() == (sample / "mg16_1GPa_aseeam.energies").read_bytes()
    traj = read(paths["traj"], index=":")
    assert len(traj) == 267 and {f.info["config_type"] for f in traj} == {"mg16_P1GPa_c0"}
    final = read(paths["final"], index=":")
    assert len(final) == 100 and all(f.info["iter"] == 267 for f in final)
    assert summary["n_iter"] == 267 and summary["engine"] == "pymatnest"


def test_calc_module_and_input_files(tmp_path):
    write_calc_module(tmp_path, {"type": "lj"})
    namespace: dict = {}
    exec((tmp_path / "nestdb_pymatnest_calc.py").read_text(), namespace)
    assert type(namespace["calc"]).__name__ == "FastLennardJones"
    write_input(tmp_path / "x.inp", {"n_walkers": "8", "MC_cell_P": "0.1"})
    assert parse_input(tmp_path / "x.inp") == {"n_walkers": "8", "MC_cell_P": "0.1"}


#: Keywords we write that pymatnest's ns_run reads with int() (a "600.0" aborts it).
INTEGER_KEYWORDS = (
    "n_walkers",
    "n_cull",
    "n_model_calls",
    "atom_traj_len",
    "atom_traj_len_cost_multiplier",
    "traj_interval",
    "delta_random_seed",
    "snapshot_time",
    "n_atom_steps",
    "n_cell_volume_steps",
    "n_cell_shear_steps",
    "n_cell_stretch_steps",
    "n_swap_steps",
)


@pytest.mark.parametrize("snapshot_seconds", [600.0, 0.0, 2.5, 1e9])
def test_integer_keywords_are_written_as_integers(snapshot_seconds):
    # issue 13.6: snapshot_time=600.0 made upstream ns_run abort on int("600.0")
    keywords = input_keywords(mg_sample_settings(snapshot_seconds=snapshot_seconds), {"Mg": 16}, "x")
    for key in INTEGER_KEYWORDS:
        assert re.fullmatch(r"-?\d+", keywords[key]), (key, keywords[key])
    assert int(keywords["snapshot_time"]) >= max(1, snapshot_seconds)
    assert "snapshot_time" not in input_keywords(mg_sample_settings(snapshot_seconds=None), {"Mg": 16}, "x")
    # a user's override gets the same treatment: 600.0 is written as 600, 600.5 is refused
    assert (
        input_keywords(mg_sample_settings(), {"Mg": 16}, "x", extra={"snapshot_time": 600.0})["snapshot_time"] == "600"
    )
    with pytest.raises(ConfigError, match=r"snapshot_time.*600\.5.*integer"):
        input_keywords(mg_sample_settings(), {"Mg": 16}, "x", extra={"snapshot_time": 600.5})


def _real_ns_run() -> Path:
    """pymatnest's ns_run: on PATH, else the upstream copy in ../shared/tools (see conftest.require_shared)."""
    from conftest import SHARED, require_shared

    found = shutil.which("ns_run")
    return Path(found) if found else require_shared(SHARED / "tools" / "pymatnest" / "ns_run")


def test_real_ns_run_through_engine_pymatnest(tmp_path, monkeypatch):
    # issue 13.6: the real upstream ns_run, started by our `engine: pymatnest` path with the generated
    # input (default snapshot_seconds: 600), on 3 LJ atoms; then our conversion of its files
    from nestdb.ns.stage import ns_run_stage
    from nestdb.potentials.lj import FastLennardJones

    ns_run = _real_ns_run()
    # ns_run starts `python3`: the venv's, which imports ase and nestdb
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    block = dict(
        n_walkers=8,
        walk_length=8,
        max_iter=40,
        converge_down_to_T=None,  # ns_run's convergence stop needs NumPy < 2
        max_volume_per_atom=35.0,
        kemax_max_T=4000.0,
        md_traj_len=3,
        seed=3,
        composition={"Mg": 3},
        calculator={"type": "lj"},
        engine="pymatnest",
        pymatnest={"command": str(ns_run)},
    )
    assert (
        NSSettings(
            pressure_gpa=5.0,
            **{k: v for k, v in block.items() if k not in ("composition", "calculator", "engine", "pymatnest")},
        ).snapshot_seconds
        == 600.0
    )
    prefix = tmp_path / "ns" / "mg3"
    log = tmp_path / "ns.log"
    summary = ns_run_stage(block, 5.0, 0, prefix, progress_path=log, work_dir=tmp_path / "ns" / "restart")
    assert "snapshot_time=600\n" in (tmp_path / "ns" / "restart" / "mg3.inp").read_text()
    assert summary["engine"] == "pymatnest" and summary["n_iter"] == 40, log.read_text()[-3000:]

    paths = output_paths(prefix)
    energies = read_energies(paths["energies"])
    assert (energies.n_walkers, energies.n_cull, energies.n_atoms, energies.n_samples) == (8, 1, 3, 40)
    np.testing.assert_array_equal(energies.iters, np.arange(40))
    assert np.all(np.diff(energies.enthalpy) <= 1e-9)
    traj = read(paths["traj"], index=":")
    assert len(traj) == 40  # traj_interval 1: every culled walker, merged in cull order
    pressure = float(parse_input(tmp_path / "ns" / "restart" / "mg3.inp")["MC_cell_P"])
    lj = FastLennardJones()
    for frame in traj:
        line = frame.info["config_n_global"]
        assert frame.info["config_type"] == "mg3_P5GPa_c0"
        assert frame.info["ns_energy"] == pytest.approx(energies.enthalpy[line], rel=1e-12)
        assert frame.info["volume"] == pytest.approx(frame.get_volume(), rel=1e-9)
        # pymatnest's H = E_LJ + P V + KE, recomputed here from the converted frame (extxyz keeps
        # 8 decimals of the positions: ~1e-7 relative in the r^-12 wall of the first culls)
        frame.calc = lj
        enthalpy = frame.get_potential_energy() + pressure * frame.get_volume() + frame.info["ns_KE"]
        assert frame.info["ns_energy"] == pytest.approx(enthalpy, rel=1e-6, abs=1e-6)
    final = read(paths["final"], index=":")
    assert len(final) == 8 and all(f.info["iter"] == 40 for f in final)
    assert max(f.info["ns_energy"] for f in final) <= energies.enthalpy[-1] + 1e-9


# A stand-in for a killed ns_run (plumbing only): leaves a snapshot and fails.
KILLED_NS_RUN = """#!{python}
import sys
keys = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if line and line[0] != "#")
open(keys["out_file_prefix"] + ".snapshot.5.0.extxyz", "w").close()
sys.exit(9)
"""


def test_pymatnest_resume_refuses_another_chain(tmp_path, monkeypatch):
    # issue 13.1 for engine: pymatnest: its own snapshots must not continue with another model
    from nestdb.errors import DataError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ns_run").write_text(KILLED_NS_RUN.format(python=sys.executable))
    (bin_dir / "ns_run").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    prefix = tmp_path / "restart" / "ns"
    block = {"composition": {"Mg": 4}, "calculator": {"type": "lj"}}
    with pytest.raises(DataError, match="status 9"):
        run_pymatnest(block, mg_sample_settings(), prefix, log_path=tmp_path / "ns.log")
    assert (tmp_path / "restart" / "ns.snapshot.5.0.extxyz").exists()
    with pytest.raises(ConfigError, match=r"epsilon: 0\.2007 -> 0\.25.*delete the folder .*restart"):
        run_pymatnest(
            dict(block, calculator={"type": "lj", "epsilon": 0.25}), mg_sample_settings(), prefix, resume=True
        )
    with pytest.raises(ConfigError, match=r"walk_length: 32 -> 16"):
        run_pymatnest(block, mg_sample_settings(walk_length=16), prefix, resume=True)
    # the same chain (a longer run) goes on to ns_run
    with pytest.raises(DataError, match="status 9"):
        run_pymatnest(block, mg_sample_settings(max_iter=20000), prefix, log_path=tmp_path / "ns.log", resume=True)
    (tmp_path / "restart" / "ns.chain.json").unlink()
    with pytest.raises(ConfigError, match="record of the chain"):
        run_pymatnest(block, mg_sample_settings(), prefix, resume=True)


def test_load_balance_maps_to_pymatnest_fixed_move_list():
    # pymatnest's do_good_load_balance builds its own list from the same weights and n_model_calls
    assert input_keywords(mg_sample_settings(load_balance=True), {"Mg": 16}, "x")["do_good_load_balance"] == "T"
    assert "do_good_load_balance" not in input_keywords(mg_sample_settings(), {"Mg": 16}, "x")
