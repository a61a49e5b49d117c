"""The linear-ACE committee calculator's evaluation paths, and nested sampling driven by it.

The calculator evaluates the committee through extra densities of pyace's
recursive evaluator (one element) or the B-basis projections (several), and
skips the committee where nested sampling does not need it; these tests hold
both paths to pyace's own B-basis calculator with projections, and check that
every NS walker carries the committee STD of its configuration.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT
from ase.io import read

pytest.importorskip("pyace")

from nestdb.fit import fit_linear_ace  # noqa: E402
from nestdb.models.ace_committee import CommitteeACECalculator, load_committee  # noqa: E402
from nestdb.ns import NSSettings, output_paths, run_nested_sampling  # noqa: E402

BASIS = {"nradmax_by_orders": [6, 3], "lmax_by_orders": [0, 2], "cutoff": 5.5}
COMMITTEE_KEYS = ("energy_committee", "energy_std", "energy_std_per_atom")


def _labelled(symbols: str, n: int, seed: int) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1)
        if symbols != "Al":
            numbers = atoms.numbers.copy()
            numbers[rng.random(len(atoms)) < 0.4] = 29
            atoms.numbers = numbers
        atoms.set_cell(
            atoms.cell @ (np.eye(3) * rng.uniform(0.96, 1.04) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True
        )
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.info["dft_energy"] = atoms.get_potential_energy()
        atoms.arrays["dft_forces"] = atoms.get_forces()
        atoms.info["dft_virial"] = (-atoms.get_stress(voigt=False) * atoms.get_volume()).reshape(9)
        atoms.calc = None
        frames.append(atoms)
    return frames


def _isolated(symbol: str) -> float:
    atom = Atoms(symbol, positions=[[0, 0, 0]], cell=[20, 20, 20], pbc=False)
    atom.calc = EMT()
    return atom.get_potential_energy()


@pytest.fixture(scope="module")
def al_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("al_model")
    fit_linear_ace(
        _labelled("Al", 16, 1),
        {
            "elements": ["Al"],
            "reference_energies": {"Al": _isolated("Al")},
            "committee_size": 6,
            "test_fraction": 0.0,
            **BASIS,
        },
        out,
    )
    return out


@pytest.fixture(scope="module")
def alcu_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("alcu_model")
    fit_linear_ace(
        _labelled("AlCu", 12, 2),
        {
            "elements": ["Al", "Cu"],
            "committee_size": 5,
            "test_fraction": 0.0,
            "reference_energies": {"Al": _isolated("Al"), "Cu": _isolated("Cu")},
            "nradmax_by_orders": [4, 2],
            "lmax_by_orders": [0, 1],
            "cutoff": 5.0,
        },
        out,
    )
    return out


def _pyace_reference(model_dir, atoms: Atoms) -> dict:
    """Energy, forces, stress and committee energies from pyace's B-basis calculator and its projections."""
    from pyace import PyACECalculator

    committee = load_committee(model_dir)
    ace = PyACECalculator(str(committee.potential_path))
    ace.calculate(atoms, ("energy", "forces"), all_changes)
    symbols = atoms.get_chemical_symbols()
    e0 = float(sum(committee.reference_energies[s] for s in symbols))
    phi = committee.summed_projections(ace.projections, symbols)
    counts = np.array([symbols.count(e) for e in committee.elements], dtype=float)
    members = committee.coefficients @ phi + e0 + committee.onebody_deviation @ counts
    return {
        "energy": ace.results["energy"] + e0,
        "forces": ace.results["forces"],
        "stress": ace.results["stress"],
        "energy_committee": members,
        "energy_std": float(np.std(members, ddof=1)),
    }


def _rattled(symbols: str, seed: int, scale: float = 1.0) -> Atoms:
    atoms = _labelled(symbols, 1, seed)[0]
    atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    return atoms


@pytest.mark.parametrize("model, symbols", [("al_model", "Al"), ("alcu_model", "AlCu")])
@pytest.mark.parametrize("scale", [0.9, 1.0, 1.3])
def test_committee_calculator_matches_pyace_projections(model, symbols, scale, request):
    model_dir = request.getfixturevalue(model)
    atoms = _rattled(symbols, 7, scale)
    reference = _pyace_reference(model_dir, atoms)
    calc = CommitteeACECalculator(model_dir)
    calc.calculate(atoms, ("energy", "forces"), all_changes)
    results = calc.results
    assert results["energy"] == pytest.approx(reference["energy"], abs=1e-9)
    np.testing.assert_allclose(results["forces"], reference["forces"], atol=1e-10)
    np.testing.assert_allclose(results["stress"], reference["stress"], atol=1e-10)
    np.testing.assert_allclose(results["energy_committee"], reference["energy_committee"], atol=1e-9)
    assert results["energy_std"] == pytest.approx(reference["energy_std"], rel=1e-8, abs=1e-12)
    assert results["energy_std_per_atom"] == pytest.approx(results["energy_std"] / len(atoms))
    assert results["energies"].sum() == pytest.approx(results["energy"], abs=1e-9)


def test_one_element_committee_uses_the_recursive_evaluator(al_model, alcu_model):
    # the one-element route needs no per-atom projections; several elements fall back to them
    assert CommitteeACECalculator(al_model)._models.multi is not None
    assert CommitteeACECalculator(alcu_model)._models.multi is None


@pytest.mark.parametrize("model, symbols", [("al_model", "Al"), ("alcu_model", "AlCu")])
def test_std_on_request_skips_the_committee_only_where_not_asked(model, symbols, request):
    model_dir = request.getfixturevalue(model)
    atoms = _rattled(symbols, 8)
    full = CommitteeACECalculator(model_dir)
    full.calculate(atoms, ("energy",), all_changes)  # default: the committee on every call
    assert all(key in full.results for key in COMMITTEE_KEYS)
    lean = CommitteeACECalculator(model_dir)
    lean.std_on_request = True
    lean.calculate(atoms, ("energy", "forces"), all_changes)
    assert not any(key in lean.results for key in COMMITTEE_KEYS)
    assert lean.results["energy"] == pytest.approx(full.results["energy"], abs=1e-9)
    np.testing.assert_allclose(lean.results["forces"], full.results["forces"], atol=1e-10)
    lean.calculate(atoms, ("energy", "energy_std_per_atom"), all_changes)
    assert lean.results["energy_std_per_atom"] == pytest.approx(full.results["energy_std_per_atom"], rel=1e-10)


@pytest.mark.parametrize("limit", [None, 1e6])
def test_ns_walkers_carry_the_committee_std_of_their_configuration(al_model, tmp_path, limit):
    calc = CommitteeACECalculator(al_model)
    asked = []
    original = calc.calculate

    def recording(atoms=None, properties=("energy",), system_changes=all_changes):
        asked.append(tuple(properties))
        assert calc.std_on_request  # the engine asks for the committee itself
        return original(atoms, properties, system_changes)

    calc.calculate = recording
    settings = NSSettings(
        n_walkers=6,
        walk_length=10,
        pressure_gpa=5.0,
        max_iter=25,
        converge_down_to_T=None,
        max_volume_per_atom=30.0,
        kemax_max_T=3000.0,
        md_traj_len=3,
        seed=2,
        traj_interval=1,
        committee_std_max=limit,
    )
    summary = run_nested_sampling({"Al": 4}, calc, settings, tmp_path / "ns")
    assert not calc.std_on_request  # and leaves the calculator as it was
    assert len(asked) == summary["n_calls"]
    with_std = sum("energy_std_per_atom" in a for a in asked)
    # the committee is skipped at least on the MD steps that do not end a trajectory
    assert 0 < with_std < len(asked)
    reference = CommitteeACECalculator(al_model)
    frames = read(output_paths(tmp_path / "ns")["traj"], ":") + read(output_paths(tmp_path / "ns")["final"], ":")
    for frame in frames:
        atoms = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=True)
        reference.calculate(atoms, ("energy",), all_changes)
        # (positions in the extxyz files carry 8 decimals)
        assert frame.info["committee_std"] == pytest.approx(reference.results["energy_std_per_atom"], rel=1e-6)
