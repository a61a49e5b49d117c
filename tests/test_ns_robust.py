"""Bad input, failing calculators and swap moves of the nested-sampling engine."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.io import read

from nestdb.errors import ConfigError
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.ns.sampler import Sampler
from nestdb.potentials.lj import FastLennardJones
from nestdb.units import gpa_to_ev_per_a3

from conftest import small_ns_settings


def settings(**overrides) -> NSSettings:
    return small_ns_settings(**{"snapshot_seconds": None, **overrides})


@pytest.mark.parametrize(
    "overrides, key, hint",
    [
        (dict(n_cull=8), "n_cull", "raise n_walkers"),
        (dict(n_walkers=4, n_cull=5), "n_cull", "smaller than n_walkers"),
        (dict(min_volume_per_atom=-1.0), "min_volume_per_atom", "> 0"),
        (dict(max_volume_per_atom=0.0), "max_volume_per_atom", "> 0"),
        (dict(min_aspect_ratio=1.2), "min_aspect_ratio", r"\(0, 1\]"),
        (dict(min_aspect_ratio=0.0), "min_aspect_ratio", r"\(0, 1\]"),
        (dict(pressure_gpa=1.0e9), "pressure_gpa", "not Pa"),
        (dict(pressure_gpa="1 GPa"), "pressure_gpa", "number in GPa"),
        (dict(walk_length=-3), "walk_length", "positive integer"),
        (dict(move_fractions={"md": 1.0, "hop": 0.5}), "move_fractions", "unknown move"),
        (dict(move_fractions={"md": -1.0, "volume": 2.0}), "move_fractions", ">= 0"),
        (dict(move_fractions={"md": 0.0, "swap": 1.0, "volume": 1.0}), "move_fractions", "never move"),
        (dict(snapshot_seconds=-1.0), "snapshot_seconds", ">= 0"),
    ],
)
def test_bad_settings_name_the_key(overrides, key, hint):
    with pytest.raises(ConfigError, match=key) as info:
        settings(**overrides).validate()
    assert info.match(hint)


def test_min_aspect_ratio_one_is_allowed():
    settings(min_aspect_ratio=1.0).validate()


class FlakyLJ(FastLennardJones):
    """LJ that raises on 10% of calls and returns NaN/inf on another 10%."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dice = np.random.default_rng(123)
        self.n_raised = self.n_nan = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        roll = self.dice.random()
        if roll < 0.1:
            self.n_raised += 1
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes or ["positions", "cell", "numbers"])
        if roll < 0.2:
            self.n_nan += 1
            self.results["energy"] = np.nan if roll < 0.15 else np.inf


def test_failing_calculator_rejects_moves_and_never_corrupts_walkers(tmp_path):
    calc = FlakyLJ()
    summary = run_nested_sampling({"Mg": 4}, calc, settings(max_iter=60), tmp_path / "flaky")
    assert summary["n_failed_calls"] >= calc.n_raised + calc.n_nan > 0
    assert summary["last_model_error"] in ("RuntimeError: SCF did not converge", "non-finite energy or forces")
    rows = np.loadtxt(output_paths(tmp_path / "flaky")["energies"], skiprows=1)
    assert np.all(np.isfinite(rows)) and np.all(np.diff(rows[:, 1]) <= 0)
    pressure = gpa_to_ev_per_a3(10.0)
    clean = FastLennardJones()
    for path in ("final", "traj"):
        for frame in read(output_paths(tmp_path / "flaky")[path], index=":"):
            # the stored enthalpy is that of the stored configuration: nothing of a failed call leaked in
            frame.calc = clean
            expected = frame.get_potential_energy() + pressure * frame.get_volume() + frame.info["ns_KE"]
            assert frame.info["ns_energy"] == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_calculator_failing_always_stops_with_its_error(tmp_path):
    class Broken(FastLennardJones):
        def calculate(self, *args, **kwargs):
            raise RuntimeError("license server unreachable")

    with pytest.raises(ConfigError, match="first 100 calls.*license server unreachable"):
        run_nested_sampling({"Mg": 3}, Broken(), settings(), tmp_path / "broken")


# ------------------------------------------------------------------- swaps
def _three_site_sampler(h_lim_states: int | None = None):
    """Cu2Au in a fixed cell, 3 fixed sites; the state is the site of the Au atom."""
    numbers = np.array([29, 29, 79])
    sampler = Sampler(numbers, EMT(), settings(n_walkers=2, move_fractions={"md": 1.0, "swap": 1.0}))
    cell = np.diag([6.0, 6.5, 7.0])
    sites = np.array([[0.0, 0.0, 0.0], [2.4, 0.3, 0.1], [1.0, 2.3, 0.4]])
    w = sampler.walkers
    energies = []
    for au_site in range(3):
        order = [s for s in range(3) if s != au_site] + [au_site]
        energies.append(sampler.evaluate(sites[order], cell).energy)
    w.cells[0], w.positions[0], w.volume[0] = cell, sites, np.linalg.det(cell)
    w.potential[0] = energies[2]
    w.kinetic[0] = 0.0
    w.enthalpy[0] = energies[2] + sampler.pressure * w.volume[0]
    return sampler, sites, np.array(energies)


def test_swap_moves_sample_allowed_states_uniformly():
    sampler, sites, energies = _three_site_sampler()
    assert len(set(np.round(energies, 6))) == 3  # three distinct states
    pv = sampler.pressure * sampler.walkers.volume[0]
    order = np.argsort(energies)
    for n_allowed in (3, 2):
        # H_lim between the n_allowed lowest states and the rest (or infinite)
        h_lim = np.inf if n_allowed == 3 else 0.5 * (energies[order[1]] + energies[order[2]]) + pv
        start = order[0]  # start in the lowest state, Au on site `start`
        sampler.walkers.positions[0] = sites[[s for s in range(3) if s != start] + [start]]
        sampler.walkers.potential[0] = energies[start]
        sampler.walkers.enthalpy[0] = energies[start] + pv
        counts = np.zeros(3)
        n_moves = 600
        for _ in range(n_moves):
            sampler.swap_move(0, h_lim)
            au_site = int(np.argmin(np.linalg.norm(sites - sampler.walkers.positions[0][2], axis=1)))
            counts[au_site] += 1
            assert sampler.walkers.enthalpy[0] < h_lim
            assert sampler.walkers.potential[0] == pytest.approx(energies[au_site])
        allowed = order[:n_allowed]
        assert counts[order[n_allowed:]].sum() == 0
        # detailed balance with a symmetric proposal: uniform over allowed states
        # (binomial std of a fraction ~ 0.02 for 600 draws; 0.08 is 4 sigma)
        np.testing.assert_allclose(counts[allowed] / n_moves, 1.0 / n_allowed, atol=0.08)


def test_swap_needs_two_species():
    with pytest.raises(ConfigError, match="two species"):
        Sampler(np.array([12, 12]), FastLennardJones(), settings(move_fractions={"md": 1.0, "swap": 0.5}))


def test_binary_alloy_run_with_swaps(tmp_path):
    summary = run_nested_sampling(
        {"Cu": 2, "Au": 2},
        EMT(),
        settings(
            max_iter=25,
            pressure_gpa=1.0,
            move_fractions={"md": 0.2, "volume": 0.3, "shear": 0.1, "stretch": 0.1, "swap": 0.3},
        ),
        tmp_path / "cuau",
    )
    assert summary["attempts"]["swap"] > 50
    assert 0 < summary["acceptance"]["swap"] <= 1
    frames = read(output_paths(tmp_path / "cuau")["final"], index=":")
    assert all(sorted(f.get_chemical_symbols()) == ["Au", "Au", "Cu", "Cu"] for f in frames)
    pressure = gpa_to_ev_per_a3(1.0)
    for frame in frames:
        atoms = Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=True)
        atoms.calc = EMT()
        expected = atoms.get_potential_energy() + pressure * atoms.get_volume() + frame.info["ns_KE"]
        assert frame.info["ns_energy"] == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_single_atom_mc_run(tmp_path):
    # atom MC instead of TE-HMC: no kinetic energy in H, nExtraDOF = 3N in the header
    summary = run_nested_sampling(
        {"Mg": 4},
        FastLennardJones(),
        settings(max_iter=120, move_fractions={"atom": 0.6, "volume": 0.2, "shear": 0.1, "stretch": 0.1}),
        tmp_path / "mc",
    )
    lines = output_paths(tmp_path / "mc")["energies"].read_text().splitlines()
    assert lines[0] == "8 1 12 False 4"
    assert 0 < summary["acceptance"]["atom"] < 1 and "md" not in summary["acceptance"]
    pressure = gpa_to_ev_per_a3(10.0)
    for frame in read(output_paths(tmp_path / "mc")["final"], index=":"):
        assert frame.info["ns_KE"] == 0.0
        frame.calc = FastLennardJones()
        assert frame.info["ns_energy"] == pytest.approx(
            frame.get_potential_energy() + pressure * frame.get_volume(), rel=1e-6, abs=1e-6
        )
    rows = np.loadtxt(output_paths(tmp_path / "mc")["energies"], skiprows=1)
    assert rows[-1, 1] < rows[0, 1] and np.all(np.diff(rows[:, 1]) <= 0)
