"""Tests of the nested-sampling engine (nestdb.ns)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from nestdb.errors import ConfigError
from nestdb.logs import progress_to
from nestdb.ns import NSSettings, min_aspect_ratio, moves, output_paths, run_nested_sampling
from nestdb.ns.sampler import Sampler
from nestdb.potentials.lj import FastLennardJones
from nestdb.units import gpa_to_ev_per_a3

from conftest import small_ns_settings as small_settings

INFO_ORDER = ["ns_energy", "volume", "KEmax", "ns_P", "iter", "config_type", "config_n_global", "ns_KE"]


def read_energies(path):
    lines = open(path).read().splitlines()
    rows = np.array([[float(x) for x in line.split()] for line in lines[1:]])
    return lines[0], rows


class VolumeCommittee(FastLennardJones):
    """LJ plus a fake committee STD that grows as the volume per atom shrinks:
    std = 1 meV/atom * (10 A^3 / (V/N))."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or ["positions", "cell", "numbers"])
        volume_per_atom = self.atoms.get_volume() / len(self.atoms)
        self.results["energy_std_per_atom"] = 1e-3 * 10.0 / volume_per_atom


def dense_lj() -> FastLennardJones:
    # smaller sigma: dense packing near 7.5 A^3/atom, so 10 GPa compresses below 10 A^3/atom
    return FastLennardJones(epsilon=0.2, sigma=2.0, cutoff=5.0)


# ------------------------------------------------------------------ moves
def test_aspect_ratio_values():
    assert min_aspect_ratio(np.eye(3) * 4.2) == pytest.approx(1.0)
    assert min_aspect_ratio(np.diag([1.0, 1.0, 4.0])) == pytest.approx(1.0 / 4.0 ** (1 / 3))
    sheared = np.array([[1.0, 0, 0], [3.0, 1.0, 0], [0, 0, 1.0]])
    # the height between the (a1, a3) faces is 1/|a2 x a3 ...|: shear thins the cell
    assert min_aspect_ratio(sheared) < 0.5


def test_cell_moves_preserve_volume_and_volume_move_scales():
    rng = np.random.default_rng(5)
    cell = np.array([[4.0, 0.2, 0.1], [0.5, 4.4, -0.3], [0.1, 0.3, 5.0]])
    volume = moves.cell_volume(cell)
    for _ in range(50):
        assert moves.cell_volume(moves.propose_shear(cell, 0.3, rng)) == pytest.approx(volume, rel=1e-12)
        assert moves.cell_volume(moves.propose_stretch(cell, 0.3, rng)) == pytest.approx(volume, rel=1e-12)
        new_cell, ratio = moves.propose_volume(cell, 2.0, 8, rng)
        if ratio > 0:
            assert moves.cell_volume(new_cell) == pytest.approx(volume * ratio, rel=1e-12)
            # isotropic: the shape (aspect ratio) is unchanged
            assert min_aspect_ratio(new_cell) == pytest.approx(min_aspect_ratio(cell), rel=1e-12)


def test_wrap_positions_inside_cell():
    rng = np.random.default_rng(2)
    cell = np.array([[4.0, 0.0, 0.0], [2.0, 3.5, 0.0], [1.0, 1.0, 5.0]])
    positions = rng.normal(0, 30, size=(20, 3))
    wrapped = moves.wrap_positions(positions, cell)
    fractional = np.linalg.solve(cell.T, wrapped.T).T
    assert np.all(fractional >= 0) and np.all(fractional < 1)
    # same points modulo lattice vectors
    shift = np.linalg.solve(cell.T, (positions - wrapped).T).T
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-9)


def test_kinetic_energy_draws():
    rng = np.random.default_rng(0)
    masses = np.array([24.3, 24.3, 1.0])
    velocities = moves.random_velocities(0.7, masses, rng)
    assert moves.kinetic_energy(velocities, masses) == pytest.approx(0.7)
    draws = [moves.redraw_kinetic_energy(2.0, 4, rng) for _ in range(2000)]
    assert max(draws) < 2.0
    # KE = limit U^(2/(3N)): mean = limit * (3N/2)/(3N/2+1) = 2 * 6/7
    assert np.mean(draws) == pytest.approx(2.0 * 6 / 7, rel=0.02)


# ----------------------------------------------------- committee rejection
def test_committee_restriction_rejects_moves():
    settings = small_settings(committee_std_max=1.0)  # meV/atom: needs V/N >= 10
    sampler = Sampler(np.array([12] * 4), VolumeCommittee(), settings)
    sampler.initialise()
    w = sampler.walkers
    # put walker 0 just above the limit volume, then try to compress it
    w.cells[0] *= (10.2 * 4 / w.volume[0]) ** (1 / 3)
    w.positions[0] = moves.wrap_positions(w.positions[0], w.cells[0])
    w.volume[0] = moves.cell_volume(w.cells[0])
    sampler.step["volume"] = 2.0
    for _ in range(300):
        sampler.cell_move(0, np.inf, "volume")
        assert w.volume[0] / 4 >= 10.0
        assert w.committee_std[0] * 1000 <= 1.0 + 1e-12
    # compressions were proposed and refused, expansions accepted
    assert 0 < sampler.total_accepts["volume"] < sampler.total_attempts["volume"]


def test_calculator_without_std_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="energy_std_per_atom"):
        run_nested_sampling({"Mg": 4}, FastLennardJones(), small_settings(committee_std_max=60.0), tmp_path / "x")


# --------------------------------------------------------------- full runs
@pytest.fixture(scope="module")
def lj_run(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("ns") / "lj4"
    log = io.StringIO()
    with progress_to(log):
        summary = run_nested_sampling({"Mg": 4}, FastLennardJones(), small_settings(max_iter=80), prefix)
    return prefix, summary, log.getvalue()


def test_energies_header_and_monotonic(lj_run):
    prefix, summary, _ = lj_run
    header, rows = read_energies(output_paths(prefix)["energies"])
    assert header == "8 1 0 False 4"
    assert len(rows) == summary["n_iter"] == 80
    np.testing.assert_array_equal(rows[:, 0], np.arange(80))
    assert np.all(np.diff(rows[:, 1]) <= 0)
    line = open(output_paths(prefix)["energies"]).read().splitlines()[1]
    assert re.fullmatch(r"0 -?\d+\.\d{60} \d+\.\d{60}", line)


def test_traj_frames_consistent(lj_run):
    prefix, summary, _ = lj_run
    paths = output_paths(prefix)
    _, rows = read_energies(paths["energies"])
    frames = read(paths["traj"], index=":")
    assert len(frames) == 80
    pressure = gpa_to_ev_per_a3(10.0)
    comment = open(paths["traj"]).read().splitlines()[1]
    keys = [k for k in re.findall(r"(\w+)=", comment) if k not in ("Lattice", "Properties", "pbc")]
    assert keys == INFO_ORDER
    assert not re.search(r"(^| )(energy|free_energy)=", comment) and "forces" not in comment
    for frame in frames[::7]:
        row = rows[frame.info["iter"]]
        assert frame.info["volume"] == row[2] and frame.info["ns_energy"] == row[1]
        assert frame.get_volume() == pytest.approx(row[2], rel=1e-9)
        assert frame.calc is None
        np.testing.assert_allclose(frame.get_masses(), 24.305)
        fractional = frame.get_scaled_positions(wrap=False)
        assert np.all(fractional > -1e-7) and np.all(fractional < 1 + 1e-7)
        kinetic = frame.get_kinetic_energy()
        assert frame.info["ns_KE"] == pytest.approx(kinetic, rel=1e-6)
        assert kinetic < frame.info["KEmax"]
        frame.calc = FastLennardJones()
        enthalpy = frame.get_potential_energy() + pressure * frame.get_volume() + kinetic
        # positions are written with 8 decimals: tight where forces are moderate
        assert frame.info["ns_energy"] == pytest.approx(enthalpy, rel=1e-6, abs=1e-5)
        assert min_aspect_ratio(frame.cell.array) >= 0.65


def test_final_walkers_below_last_limit(lj_run):
    prefix, summary, _ = lj_run
    _, rows = read_energies(output_paths(prefix)["energies"])
    final = read(output_paths(prefix)["final"], index=":")
    assert len(final) == 8
    assert max(f.info["ns_energy"] for f in final) < rows[-1, 1]
    assert summary["stop_reason"] == "max_iter"
    assert set(summary["acceptance"]) == {"md", "volume", "shear", "stretch"}
    assert summary["n_calls"] > 80 * 8


def test_log_has_progress(lj_run):
    _, _, log = lj_run
    assert re.search(r"iter 8 H_lim .* T_estimate .* accept md=", log)


def test_same_seed_same_files_other_seed_differs(tmp_path):
    calc = FastLennardJones()
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run_nested_sampling(["Mg"] * 3, calc, small_settings(max_iter=20, seed=seed), tmp_path / name)
    for kind in ("energies", "traj", "final"):
        a, b, c = (output_paths(tmp_path / n)[kind].read_text() for n in "abc")
        assert a == b
        assert a != c


def test_n_cull_two(tmp_path):
    run_nested_sampling(
        {"Mg": 3}, FastLennardJones(), small_settings(max_iter=15, n_cull=2, traj_interval=3), tmp_path / "c2"
    )
    header, rows = read_energies(output_paths(tmp_path / "c2")["energies"])
    assert header == "8 2 0 False 3"
    assert len(rows) == 30
    np.testing.assert_array_equal(rows[:, 0], np.repeat(np.arange(15), 2))
    assert np.all(np.diff(rows[:, 1]) <= 0)
    frames = read(output_paths(tmp_path / "c2")["traj"], index=":")
    assert [f.info["config_n_global"] for f in frames] == list(range(2, 30, 3))


def test_lj_run_gets_denser(tmp_path):
    settings = small_settings(max_iter=450, traj_interval=0)
    run_nested_sampling({"Mg": 4}, FastLennardJones(), settings, tmp_path / "dense")
    _, rows = read_energies(output_paths(tmp_path / "dense")["energies"])
    early, late = rows[50:100], rows[-50:]
    assert late[:, 1].mean() < early[:, 1].mean()
    # from gas (~35 A^3/atom) towards the Mg-like LJ liquid/solid (~21-23 A^3/atom)
    assert late[:, 2].mean() < 0.8 * early[:, 2].mean()
    assert late[:, 2].mean() / 4 < 26.0
    assert output_paths(tmp_path / "dense")["traj"].read_text() == ""


def test_committee_restriction_and_stop_in_runs(tmp_path):
    common = dict(n_walkers=10, walk_length=12, max_iter=300, seed=1, traj_interval=1)
    # without the restriction this system goes well below 10 A^3/atom
    free = run_nested_sampling(
        {"Mg": 4}, VolumeCommittee(epsilon=0.2, sigma=2.0, cutoff=5.0), small_settings(**common), tmp_path / "free"
    )
    _, free_rows = read_energies(output_paths(tmp_path / "free")["energies"])
    assert free_rows[:, 2].min() / 4 < 9.0
    assert free["stop_reason"] == "max_iter"

    run_nested_sampling(
        {"Mg": 4},
        VolumeCommittee(epsilon=0.2, sigma=2.0, cutoff=5.0),
        small_settings(committee_std_max=1.0, **common),
        tmp_path / "restricted",
    )
    frames = read(output_paths(tmp_path / "restricted")["traj"], index=":")
    stds = np.array([f.info["committee_std"] for f in frames])
    volumes = np.array([f.info["volume"] for f in frames]) / 4
    assert stds * 1000 == pytest.approx(10.0 / volumes)  # recorded std belongs to the walker
    assert np.all(volumes >= 10.0) and np.all(stds * 1000 <= 1.0)

    stopped = run_nested_sampling(
        {"Mg": 4},
        VolumeCommittee(epsilon=0.2, sigma=2.0, cutoff=5.0),
        small_settings(committee_stop_std=0.9, committee_stop_fraction=0.8, **common),
        tmp_path / "stopped",
    )
    assert stopped["stop_reason"] == "committee"
    assert stopped["n_iter"] < 300
    final = read(output_paths(tmp_path / "stopped")["final"], index=":")
    above = sum(f.info["committee_std"] * 1000 > 0.9 for f in final)
    assert above >= 0.8 * len(final)


def test_converge_down_to_T_stops(tmp_path):
    summary = run_nested_sampling(
        {"Mg": 3}, FastLennardJones(), small_settings(max_iter=3000, converge_down_to_T=20000.0), tmp_path / "conv"
    )
    assert summary["stop_reason"] == "converged"
    assert summary["n_iter"] < 3000


def test_settings_validation(tmp_path):
    with pytest.raises(ConfigError, match="n_cull"):
        small_settings(n_cull=8).validate()
    with pytest.raises(ConfigError, match="move_fractions"):
        small_settings(move_fractions={"md": 0.5, "jump": 0.5}).validate()
    with pytest.raises(ConfigError, match="kemax_max_T"):
        small_settings(pressure_gpa=0.0, kemax_max_T=None).validate()
    with pytest.raises(ConfigError, match="walk_lenght"):
        NSSettings.from_dict({"n_walkers": 8, "walk_lenght": 8, "pressure_gpa": 1.0})
    with pytest.raises(ConfigError, match="symbols"):
        run_nested_sampling({"Xx": 2}, FastLennardJones(), small_settings(), tmp_path / "bad")


def test_initial_walkers_respect_the_committee_limit():
    # std = 10/(V/N) meV/atom: a 0.4 meV/atom limit needs V/N >= 25 A^3, which
    # the V^N prior below 40 A^3/atom gives often but not always.
    sampler = Sampler(np.array([12] * 4), VolumeCommittee(), small_settings(n_walkers=20, committee_std_max=0.4))
    sampler.initialise()
    assert sampler.n_init_above_committee_limit == 0
    assert np.all(sampler.walkers.committee_std * 1000 <= 0.4)
    assert np.all(sampler.walkers.volume / 4 >= 25.0)
    # An impossible limit keeps walkers (the stop criterion must see them) and counts them.
    impossible = Sampler(np.array([12] * 4), VolumeCommittee(), small_settings(n_walkers=2, committee_std_max=1e-6))
    impossible.initialise()
    assert impossible.n_init_above_committee_limit == impossible.settings.n_walkers


def test_initial_walkers_keep_min_nn_distance(monkeypatch):
    from ase.neighborlist import neighbor_list

    from nestdb.ns import sampler as sampler_module

    def closest_pairs(sampler, cutoff):
        count = 0
        for positions, cell in zip(sampler.walkers.positions, sampler.walkers.cells, strict=True):
            atoms = Atoms("Mg4", positions=positions, cell=cell, pbc=True)
            count += len(neighbor_list("d", atoms, cutoff))
        return count

    # 4 atoms below 40 A^3/atom: most uniform draws have a pair closer than 2.2 A
    free = Sampler(np.array([12] * 4), FastLennardJones(), small_settings(n_walkers=20))
    free.initialise()
    assert closest_pairs(free, 2.2) > 0
    kept = Sampler(np.array([12] * 4), FastLennardJones(), small_settings(n_walkers=20, min_nn_distance=2.2))
    kept.initialise()
    assert closest_pairs(kept, 2.2) == 0
    # the same prior otherwise: volumes drawn below Vmax, and no model call spent on a rejected geometry
    assert np.all(kept.walkers.volume <= 4 * 40.0)
    assert kept.evaluate.n_calls == free.evaluate.n_calls == 20
    # an impossible distance is named with the keys that fix it
    monkeypatch.setattr(sampler_module, "MAX_INIT_GEOMETRY_TRIES", 50)
    impossible = Sampler(np.array([12] * 4), FastLennardJones(), small_settings(n_walkers=2, min_nn_distance=9.0))
    with pytest.raises(ConfigError, match="min_nn_distance=9.0.*max_volume_per_atom=40.0"):
        impossible.initialise()
    with pytest.raises(ConfigError, match="min_nn_distance"):
        small_settings(min_nn_distance=-1.0).validate()


# ------------------------------------------- what each call asks of the model (energy-only moves)
class RecordingLJ(FastLennardJones):
    """Lennard-Jones that records the properties of every call."""

    def __init__(self, always_forces: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.always_forces = always_forces
        self.asked: list[tuple[str, ...]] = []

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        self.asked.append(tuple(properties))
        if self.always_forces:
            properties = list(properties) + ["forces"]
        super().calculate(atoms, properties, system_changes or ["positions", "cell"])


def test_cell_moves_ask_for_the_energy_alone_and_md_for_forces(tmp_path):
    calc = RecordingLJ()
    summary = run_nested_sampling({"Mg": 4}, calc, small_settings(max_iter=60), tmp_path / "rec")
    assert len(calc.asked) == summary["n_calls"]
    with_forces = sum("forces" in asked for asked in calc.asked)
    # MD steps (and the start of an MD move after energy-only moves) need forces; cell moves do not
    assert 0 < with_forces < len(calc.asked)
    n_md_steps = summary["attempts"]["md"] * 3  # md_traj_len=3 (rejected trajectories may stop early)
    assert with_forces <= n_md_steps + summary["attempts"]["md"]
    n_cell_calls = sum(summary["attempts"].get(m, 0) for m in ("volume", "shear", "stretch"))
    assert len(calc.asked) - with_forces >= 0.5 * n_cell_calls  # most cell proposals reach the model


def test_the_chain_does_not_depend_on_which_calls_computed_forces(tmp_path):
    # the same run with a model that always returns forces (as pyace does) makes
    # no extra calls at the start of MD moves, but draws and accepts the same
    lazy = run_nested_sampling(
        {"Mg": 4}, RecordingLJ(), small_settings(max_iter=80, traj_interval=2), tmp_path / "lazy"
    )
    eager = run_nested_sampling(
        {"Mg": 4}, RecordingLJ(always_forces=True), small_settings(max_iter=80, traj_interval=2), tmp_path / "eager"
    )
    for kind in ("energies", "traj", "final"):
        assert output_paths(tmp_path / "lazy")[kind].read_bytes() == output_paths(tmp_path / "eager")[kind].read_bytes()
    assert eager["n_calls"] < lazy["n_calls"]
    assert eager["attempts"] == lazy["attempts"]


def test_walker_forces_are_those_of_its_configuration_or_marked_unknown():
    calc = FastLennardJones()
    sampler = Sampler(np.array([12] * 4), calc, small_settings(n_walkers=6))
    sampler.initialise()
    for _ in range(30):
        sampler.walk(int(sampler.rng.integers(6)), float(sampler.walkers.enthalpy.max()))
    w = sampler.walkers
    known = 0
    for index in range(6):
        atoms = Atoms("Mg4", positions=w.positions[index], cell=w.cells[index], pbc=True)
        atoms.calc = FastLennardJones()
        assert atoms.get_potential_energy() == pytest.approx(w.potential[index], abs=1e-12)
        if np.isnan(w.forces[index]).all():
            continue
        known += 1
        np.testing.assert_allclose(w.forces[index], atoms.get_forces(), atol=1e-12)
    assert known > 0  # walks end with an MD move often enough


# ------------------------------------------------------------------ load balance
MG_MIX = {"md": 0.21, "volume": 0.31, "shear": 0.24, "stretch": 0.24}


@pytest.mark.parametrize("walk_length", [8, 32, 300])
def test_balanced_move_list_keeps_the_fractions_within_one_move(walk_length):
    from collections import Counter

    from nestdb.ns.sampler import balanced_move_list

    moves_list = balanced_move_list(MG_MIX, walk_length, md_traj_len=5)
    counts = Counter(moves_list)
    cost = sum(5 if m == "md" else 1 for m in moves_list)
    # a random walk may overshoot by one MD move; the list is within one MD move of the budget
    assert abs(cost - walk_length) <= 5
    picks = len(moves_list)
    for move, fraction in MG_MIX.items():
        assert abs(counts[move] - fraction * picks) <= 1, (move, counts, picks)


def test_balanced_move_list_always_moves_the_atoms():
    from nestdb.ns.sampler import balanced_move_list

    # 2 calls cannot hold an MD move of 5 calls on average, but a walk must still move the atoms
    assert "md" in balanced_move_list(MG_MIX, 2, md_traj_len=5)
    assert "atom" in balanced_move_list({"atom": 0.05, "volume": 0.95}, 4, md_traj_len=5)


def test_load_balance_walks_make_the_same_moves_in_different_orders():
    settings = small_settings(walk_length=32, md_traj_len=5, move_fractions=MG_MIX, load_balance=True)
    sampler = Sampler(np.array([12] * 4), FastLennardJones(), settings)
    sampler.initialise()
    per_walk, orders = [], []
    original = sampler._move
    for _ in range(6):
        done: list[str] = []
        sampler._move = lambda move, index, h_lim, done=done: (done.append(move), original(move, index, h_lim))
        before = dict(sampler.attempts)
        sampler.walk(0, h_lim=1e9)
        per_walk.append({m: sampler.attempts[m] - before[m] for m in sampler.attempts})
        orders.append(tuple(done))
    assert all(counts == per_walk[0] for counts in per_walk)
    assert per_walk[0]["md"] >= 1 and per_walk[0]["volume"] >= 1
    assert len(set(orders)) > 1  # shuffled per walk, not one fixed sequence


def test_load_balance_changes_the_chain_but_not_the_n_procs_invariance(tmp_path):
    base = dict(walk_length=16, md_traj_len=3, move_fractions=MG_MIX, n_cull=2, max_iter=12)
    paths = {}
    for name, extra in (
        ("random", {}),
        ("serial", {"load_balance": True}),
        ("parallel", {"load_balance": True, "n_procs": 2}),
    ):
        run_nested_sampling({"Mg": 3}, FastLennardJones(), small_settings(**base, **extra), tmp_path / name)
        paths[name] = output_paths(tmp_path / name)["energies"].read_text()
    assert paths["serial"] == paths["parallel"]
    assert paths["serial"] != paths["random"]


def test_load_balance_must_be_a_flag():
    with pytest.raises(ConfigError, match="load_balance"):
        small_settings(load_balance="yes").validate()
