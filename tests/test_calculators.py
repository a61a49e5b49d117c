"""Tests of nestdb.models.calculators.make_calculator and the vectorised Lennard-Jones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones
from scipy.optimize import minimize_scalar

import nestdb.models.calculators
from nestdb.errors import ConfigError
from nestdb.models.calculators import KNOWN_CALCULATORS, make_calculator
from nestdb.potentials.eam import FastEAM
from nestdb.potentials.lj import LJ_DEFAULTS, FastLennardJones

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EAM_FILE = SHARED / "data" / "mg" / "Mg1.eam.fs"


def _skewed_cell_atoms(n_atoms: int = 6, seed: int = 3) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = np.array([[5.6, 0.3, 0.1], [0.8, 5.9, -0.4], [0.2, -0.6, 6.3]])
    atoms = Atoms("Mg" * n_atoms, scaled_positions=rng.random((n_atoms, 3)), cell=cell, pbc=True)
    # push apart any very close pair so finite differences stay in the smooth part
    for _ in range(200):
        d = atoms.get_all_distances(mic=True) + 10 * np.eye(n_atoms)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] > 2.6:
            break
        atoms.positions[i] += rng.normal(0, 0.5, 3)
    return atoms


def test_lj_matches_ase_lennard_jones():
    atoms = _skewed_cell_atoms()
    ours = make_calculator({"type": "lj"})
    atoms.calc = ours
    e_ours, f_ours, s_ours = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    reference = atoms.copy()
    reference.calc = LennardJones(
        epsilon=LJ_DEFAULTS["epsilon"], sigma=LJ_DEFAULTS["sigma"], rc=LJ_DEFAULTS["cutoff"], smooth=False
    )
    assert e_ours == pytest.approx(reference.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(f_ours, reference.get_forces(), atol=1e-9)
    np.testing.assert_allclose(s_ours, reference.get_stress(), atol=1e-10)


def test_lj_forces_are_minus_energy_gradient():
    atoms = _skewed_cell_atoms()
    atoms.calc = FastLennardJones()
    forces = atoms.get_forces()
    h = 1e-5
    for atom in (0, 3):
        for axis in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[atom, axis] += h
            minus.positions[atom, axis] -= h
            plus.calc = minus.calc = FastLennardJones()
            derivative = (plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
            assert forces[atom, axis] == pytest.approx(-derivative, abs=1e-6)


def test_lj_stress_is_strain_derivative():
    atoms = _skewed_cell_atoms()
    atoms.calc = FastLennardJones()
    stress = atoms.get_stress(voigt=False)
    volume = atoms.get_volume()
    h = 1e-6
    for a, b in ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)):
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * h / 2
            strain[b, a] += sign * h / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell @ strain, scale_atoms=True)
            strained.calc = FastLennardJones()
            energies.append(strained.get_potential_energy())
        assert stress[a, b] == pytest.approx((energies[0] - energies[1]) / (2 * h) / volume, abs=1e-7)


def test_lj_defaults_are_mg_like():
    def energy_per_atom(nn: float) -> float:
        atoms = bulk("Mg", "hcp", a=nn, c=nn * np.sqrt(8 / 3))
        atoms.calc = make_calculator({"type": "lj"})
        return atoms.get_potential_energy() / len(atoms)

    best = minimize_scalar(energy_per_atom, bounds=(2.8, 3.8), method="bounded")
    assert best.x == pytest.approx(3.2, abs=0.03)
    assert -best.fun == pytest.approx(1.5, abs=0.03)


def test_lj_energy_is_zero_beyond_cutoff_and_shifted():
    dimer = Atoms("Mg2", positions=[[0, 0, 0], [0, 0, 7.0]], cell=[30, 30, 30], pbc=False)
    calc = make_calculator({"type": "lj", "cutoff": 6.0, "sigma": 2.9, "epsilon": 0.2})
    dimer.calc = calc
    assert dimer.get_potential_energy() == 0.0
    dimer.positions[1, 2] = 5.99
    assert abs(dimer.get_potential_energy()) < 1e-3  # continuous at the cutoff


def test_emt_works():
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = make_calculator({"type": "emt"})
    assert np.isfinite(atoms.get_potential_energy())


@pytest.mark.needs_shared(EAM_FILE)
def test_eam_matches_ase_eam_on_hcp_mg(tmp_path):
    from ase.calculators.eam import EAM as AseEAM

    atoms = bulk("Mg", "hcp", a=3.21, c=5.21) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    ours = atoms.copy()
    ours.calc = make_calculator({"type": "eam", "file": EAM_FILE.name}, base_dir=EAM_FILE.parent)
    reference = atoms.copy()
    reference.calc = AseEAM(potential=str(EAM_FILE), form="fs")
    n_atoms = len(atoms)
    assert ours.get_potential_energy() / n_atoms == pytest.approx(reference.get_potential_energy() / n_atoms, abs=3e-3)
    np.testing.assert_allclose(ours.get_forces(), reference.get_forces(), atol=5e-3)
    # absolute path and the explicit kind give the same potential: nestdb's EAM with Mg, the same energy
    explicit = atoms.copy()
    explicit.calc = make_calculator({"type": "eam", "file": str(EAM_FILE), "kind": "eam/fs"})
    assert isinstance(explicit.calc, FastEAM) and explicit.calc.elements == ["Mg"]
    assert explicit.get_potential_energy() == pytest.approx(ours.get_potential_energy(), abs=1e-10)


def test_unknown_type_lists_known_types():
    with pytest.raises(ConfigError) as info:
        make_calculator({"type": "mace"})
    for name in KNOWN_CALCULATORS:
        assert name in str(info.value)
    with pytest.raises(ConfigError):
        make_calculator({"epsilon": 1.0})


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match="rcut"):
        make_calculator({"type": "lj", "rcut": 5.0})
    with pytest.raises(ConfigError, match="potential"):
        make_calculator({"type": "eam", "file": "x.fs", "potential": "y"})


def test_missing_files_name_path_and_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        make_calculator({"type": "eam", "file": "nothere.eam.fs"}, base_dir=tmp_path)
    assert "nothere.eam.fs" in str(info.value) and "file" in str(info.value)
    with pytest.raises(ConfigError, match="file"):
        make_calculator({"type": "eam"})
    with pytest.raises(ConfigError) as info:
        make_calculator({"type": "ace_committee", "model": "models/cycle_9"}, base_dir=tmp_path)
    assert "models/cycle_9" in str(info.value) and "model" in str(info.value)


def test_bad_lj_parameters():
    with pytest.raises(ConfigError, match="sigma"):
        make_calculator({"type": "lj", "sigma": -1.0})
    with pytest.raises(ConfigError):
        make_calculator({"type": "lj", "epsilon": "deep"})


def test_ace_committee_builds_committee_calculator(tmp_path, monkeypatch):
    # Plumbing only (the committee itself: tests/test_fit.py, test_ns_committee.py): the
    # registry resolves the model folder relative to base_dir and hands it to the class.
    model_dir = tmp_path / "models" / "cycle_0"
    model_dir.mkdir(parents=True)
    received = []

    class FakeCommittee:
        def __init__(self, path):
            received.append(Path(path))

    monkeypatch.setattr(nestdb.models.calculators, "CommitteeACECalculator", FakeCommittee)
    calc = make_calculator({"type": "ace_committee", "model": "models/cycle_0"}, base_dir=tmp_path)
    assert isinstance(calc, FakeCommittee)
    assert received == [model_dir]
