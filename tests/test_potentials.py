"""Tests of the vectorised EAM (nestdb.potentials) against ASE's and matscipy's
EAM, finite differences, and LAMMPS's file conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import all_changes
from ase.calculators.eam import EAM as AseEAM

from nestdb.errors import ConfigError, DataError
from nestdb.models.calculators import make_calculator
from nestdb.potentials import FastEAM, FastLennardJones, neighbours, read_eam_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MG_EAM = SHARED / "data" / "mg" / "Mg1.eam.fs"
needs_mg_eam = pytest.mark.needs_shared(MG_EAM)


def random_cell_atoms(symbols: str, volume_per_atom: float, seed: int) -> Atoms:
    """Atoms on randomly chosen, randomly displaced sites of a grid in a skewed
    periodic cell (random but never overlapping)."""
    rng = np.random.default_rng(seed)
    n_atoms = len(Atoms(symbols))
    cell = (volume_per_atom * n_atoms) ** (1 / 3) * (np.eye(3) + rng.normal(0, 0.12, (3, 3)))
    per_side = int(np.ceil(n_atoms ** (1 / 3)))
    sites = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    chosen = sites[rng.choice(len(sites), n_atoms, replace=False)]
    fractional = (chosen + 0.5 + rng.uniform(-0.2, 0.2, (n_atoms, 3))) / per_side
    return Atoms(symbols, scaled_positions=fractional, cell=cell, pbc=True)


def evaluate(atoms: Atoms, calc) -> tuple[float, np.ndarray, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def assert_same(result, reference, energy_tol=1e-9, force_tol=1e-8, stress_tol=1e-10):
    assert result[0] == pytest.approx(reference[0], abs=energy_tol)
    np.testing.assert_allclose(result[1], reference[1], atol=force_tol)
    np.testing.assert_allclose(result[2], reference[2], atol=stress_tol)


# ------------------------------------------------------ Mg1.eam.fs (real file)
@needs_mg_eam
@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("n_atoms, volume_per_atom, seed", [(1, 23.0, 0), (3, 22.0, 1), (16, 23.0, 2), (16, 40.0, 3)])
def test_mg_eam_matches_ase_eam(n_atoms, volume_per_atom, seed, compiled):
    # 1-3 atoms: the 7.5 A cutoff is 1.5-2.5 times the cell, many images of each neighbour
    atoms = random_cell_atoms("Mg" * n_atoms, volume_per_atom, seed)
    ours = evaluate(atoms, FastEAM(MG_EAM, compiled=compiled))
    reference = evaluate(atoms, AseEAM(potential=str(MG_EAM), form="fs"))
    assert_same(ours, reference)


@needs_mg_eam
def test_mg_eam_matches_matscipy_eam():
    from matscipy.calculators.eam import EAM as MatscipyEAM

    atoms = random_cell_atoms("Mg" * 8, 24.0, seed=5)
    # matscipy splines the tables differently: agreement to interpolation accuracy
    assert_same(
        evaluate(atoms, FastEAM(MG_EAM)),
        evaluate(atoms, MatscipyEAM(str(MG_EAM), kind="eam/fs")),
        energy_tol=1e-8,
        force_tol=1e-6,
        stress_tol=1e-8,
    )


def finite_difference_checks(atoms: Atoms, calc, h: float = 1e-5, atoms_to_move=(0, 1)) -> None:
    atoms = atoms.copy()
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)

    def energy(positions, cell):
        probe = atoms.copy()
        probe.set_cell(cell)
        probe.positions = positions
        probe.calc = calc
        return probe.get_potential_energy()

    for atom in atoms_to_move:
        for axis in range(3):
            step = np.zeros_like(atoms.positions)
            step[atom, axis] = h
            slope = (energy(atoms.positions + step, atoms.cell) - energy(atoms.positions - step, atoms.cell)) / (2 * h)
            assert forces[atom, axis] == pytest.approx(-slope, abs=2e-6)
    for a, b in ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)):
        values = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * h / 2
            strain[b, a] += sign * h / 2
            values.append(energy(atoms.positions @ strain, atoms.cell @ strain))
        assert stress[a, b] == pytest.approx((values[0] - values[1]) / (2 * h) / atoms.get_volume(), abs=1e-7)


@needs_mg_eam
def test_mg_eam_forces_and_stress_are_energy_derivatives():
    finite_difference_checks(random_cell_atoms("Mg" * 6, 21.0, seed=7), FastEAM(MG_EAM))


@needs_mg_eam
def test_primitive_cell_equals_supercell_per_atom():
    # images handled right: the 2-atom hcp cell and a 3x3x2 supercell are the same crystal
    small = bulk("Mg", "hcp", a=3.2, c=5.2)
    small.positions[0] += [0.05, -0.03, 0.02]  # break symmetry so forces are non-zero
    large = small.repeat((3, 3, 2))
    calc = FastEAM(MG_EAM)
    e_small, f_small, s_small = evaluate(small, calc)
    e_large, f_large, s_large = evaluate(large, calc)
    assert e_large / len(large) == pytest.approx(e_small / len(small), abs=1e-10)
    np.testing.assert_allclose(f_large[:2], f_small, atol=1e-9)
    np.testing.assert_allclose(s_large, s_small, atol=1e-10)
    assert np.abs(f_small).max() > 1e-3


@needs_mg_eam
def test_hcp_lattice_energy_and_equilibrium():
    # The file's hcp Mg: cohesive energy and lattice constant stated in the header line of the element
    tables = read_eam_file(MG_EAM)
    assert tables.elements == ["Mg"] and tables.masses[0] == pytest.approx(24.305)
    lattice = np.linspace(3.15, 3.22, 15)
    energies = []
    for a in lattice:
        atoms = bulk("Mg", "hcp", a=a, c=a * 1.6235)
        energies.append(evaluate(atoms, FastEAM(tables))[0] / 2)
    best = lattice[int(np.argmin(energies))]
    assert best == pytest.approx(3.185, abs=0.01)  # file header: a0 = 3.18529 A
    assert -min(energies) == pytest.approx(1.5, abs=0.1)


@needs_mg_eam
def test_binned_fallback_gives_the_same_result(monkeypatch):
    # large systems leave the compiled kernel and the dense search for matscipy's binned list
    atoms = random_cell_atoms("Mg" * 8, 23.0, seed=11)
    dense = evaluate(atoms, FastEAM(MG_EAM))
    monkeypatch.setattr(neighbours, "MAX_DENSE_CANDIDATES", 0)
    assert_same(evaluate(atoms, FastEAM(MG_EAM)), dense, energy_tol=1e-11, force_tol=1e-11, stress_tol=1e-12)


@needs_mg_eam
@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_coinciding_atoms_give_infinite_energy(compiled):
    atoms = random_cell_atoms("Mg" * 4, 23.0, seed=1)
    atoms.positions[1] = atoms.positions[0]
    energy, forces, _ = evaluate(atoms, FastEAM(MG_EAM, compiled=compiled))
    assert energy == np.inf and np.isnan(forces).all()


# --------------------------------------------- synthetic two-element files
R_POINTS, RHO_POINTS, DR, DRHO, CUTOFF = 600, 400, 0.01, 0.05, 5.99


def _embedding(element: int, rho: np.ndarray) -> np.ndarray:
    return -(1.1, 0.9)[element] * rho / (1 + 0.3 * rho) + 0.01 * rho * rho


def _density(source: int, host: int, r: np.ndarray, kind: str) -> np.ndarray:
    """What a `source` atom contributes at a `host` atom; host-independent for eam/alloy."""
    taper = np.clip(1 - r / CUTOFF, 0, None) ** 3
    if kind == "eam/alloy":
        host = source
    decay, scale = {(0, 0): (0.9, 3.0), (0, 1): (0.7, 2.0), (1, 0): (1.1, 4.0), (1, 1): (0.8, 2.5)}[source, host]
    return scale * np.exp(-decay * r) * taper


def _rphi(a: int, b: int, r: np.ndarray) -> np.ndarray:
    taper = np.clip(1 - r / CUTOFF, 0, None) ** 3
    amplitude, decay = {(0, 0): (30, 1.5), (1, 0): (25, 1.4), (0, 1): (25, 1.4), (1, 1): (28, 1.6)}[a, b]
    return amplitude * np.exp(-decay * r) * taper


def write_setfl(path: Path, kind: str) -> Path:
    """A LAMMPS eam/fs or eam/alloy file for elements Cu (0) and Ni (1) with
    smooth analytic functions; eam/fs densities depend on the host."""
    r = DR * np.arange(R_POINTS)
    rho = DRHO * np.arange(RHO_POINTS)
    lines = [
        "synthetic test potential",
        "two elements",
        "nestdb tests",
        "2 Cu Ni",
        f"{RHO_POINTS} {DRHO} {R_POINTS} {DR} {CUTOFF}",
    ]
    for element, (z_number, mass) in enumerate(((29, 63.546), (28, 58.6934))):
        lines.append(f"{z_number} {mass} 3.6 fcc")
        lines += [f"{v:.16e}" for v in _embedding(element, rho)]
        for host in (0, 1) if kind == "eam/fs" else (element,):
            lines += [f"{v:.16e}" for v in _density(element, host, r, kind)]
    for a, b in ((0, 0), (1, 0), (1, 1)):
        lines += [f"{v:.16e}" for v in _rphi(a, b, r)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("kind, form", [("eam/fs", "fs"), ("eam/alloy", "alloy")])
def test_two_element_files_match_ase_eam(tmp_path, kind, form, compiled):
    path = write_setfl(tmp_path / f"CuNi.{form}", kind)
    atoms = random_cell_atoms("Cu3Ni5", 12.0, seed=4)
    ours = evaluate(atoms, FastEAM(path, kind=kind, compiled=compiled))
    assert_same(ours, evaluate(atoms, AseEAM(potential=str(path), form=form)))
    assert np.abs(ours[1]).max() > 1e-2  # non-trivial forces
    finite_difference_checks(atoms, FastEAM(path, kind=kind, compiled=compiled), atoms_to_move=(0, 5))
    # make_calculator takes the kind from the suffix (.fs / .alloy)
    assert evaluate(atoms, make_calculator({"type": "eam", "file": str(path)}))[0] == pytest.approx(ours[0], abs=1e-9)


def test_fs_density_direction_follows_lammps(tmp_path):
    # LAMMPS eam/fs: the density table j in element i's block is what an i atom
    # contributes at a j atom. A Cu-Ni dimer: rho at Ni comes from Cu's table 1.
    path = write_setfl(tmp_path / "CuNi.fs", "eam/fs")
    distance = 2.5
    dimer = Atoms("CuNi", positions=[[0, 0, 0], [distance, 0, 0]], cell=[20, 20, 20], pbc=True)
    dimer.calc = FastEAM(path)
    energies = dimer.get_potential_energies()
    r = np.array([distance])
    half_phi = 0.5 * _rphi(1, 0, r)[0] / distance
    assert energies[1] == pytest.approx(_embedding(1, _density(0, 1, r, "eam/fs"))[0] + half_phi, abs=1e-7)
    assert energies[0] == pytest.approx(_embedding(0, _density(1, 0, r, "eam/fs"))[0] + half_phi, abs=1e-7)
    # the other reading of the file would differ clearly
    assert abs(_embedding(1, _density(1, 0, r, "eam/fs"))[0] + half_phi - energies[1]) > 1e-2


def test_element_missing_from_the_file_is_named(tmp_path):
    path = write_setfl(tmp_path / "CuNi.fs", "eam/fs")
    atoms = random_cell_atoms("CuAl", 12.0, seed=1)
    atoms.calc = FastEAM(path)
    with pytest.raises(DataError, match="Al"):
        atoms.get_potential_energy()


def test_wrong_kind_is_reported_with_the_fitting_kind(tmp_path):
    path = write_setfl(tmp_path / "CuNi.fs", "eam/fs")
    with pytest.raises(DataError, match="eam/fs"):
        read_eam_file(path, kind="eam/alloy")
    with pytest.raises(ConfigError, match="eam/fs"):
        make_calculator({"type": "eam", "file": str(path), "kind": "eam/alloy"})
    truncated = tmp_path / "cut.fs"
    truncated.write_text("\n".join(path.read_text().splitlines()[:300]))
    with pytest.raises(DataError, match="cut.fs"):
        read_eam_file(truncated)


def test_funcfl_pair_term_uses_lammps_charge_conversion(tmp_path):
    r = DR * np.arange(R_POINTS)
    charge = 2.0 * np.exp(-r)
    lines = ["funcfl test", "29 63.546 3.615 fcc", f"{RHO_POINTS} {DRHO} {R_POINTS} {DR} {CUTOFF}"]
    lines += ["0.0"] * RHO_POINTS + [f"{v:.16e}" for v in charge] + ["0.0"] * R_POINTS
    path = tmp_path / "Cu_test.eam"
    path.write_text("\n".join(lines) + "\n")
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [2.0, 0, 0]], cell=[20, 20, 20], pbc=True)
    dimer.calc = make_calculator({"type": "eam", "file": str(path)})  # kind eam from the .eam suffix
    expected = 27.2 * 0.529 * (2.0 * np.exp(-2.0)) ** 2 / 2.0
    assert dimer.get_potential_energy() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------ make_calculator
@needs_mg_eam
def test_make_calculator_picks_the_eam_implementation():
    from matscipy.calculators.eam import EAM as MatscipyEAM

    spec = {"type": "eam", "file": str(MG_EAM)}
    assert isinstance(make_calculator(spec), FastEAM)
    assert isinstance(make_calculator(dict(spec, implementation="ase")), AseEAM)
    assert isinstance(make_calculator(dict(spec, implementation="matscipy", kind="eam/fs")), MatscipyEAM)
    with pytest.raises(ConfigError, match="implementation"):
        make_calculator(dict(spec, implementation="lammps"))
    with pytest.raises(ConfigError, match="kind"):
        make_calculator(dict(spec, kind="eam/adp"))


# ------------------------------------------------- failures inside NS runs
@needs_mg_eam
def test_ns_rejects_eam_calls_with_non_finite_forces(tmp_path):
    # Finite energy but NaN forces (what a broken table or coinciding atoms give)
    # must be rejected and counted; stored walkers stay those of good calls.
    from ase.io import read

    from nestdb.ns import NSSettings, output_paths, run_nested_sampling
    from nestdb.units import gpa_to_ev_per_a3

    class NaNForcesEAM(FastEAM):
        n_bad = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            if self.dice.random() < 0.15:
                NaNForcesEAM.n_bad += 1
                self.results["forces"] = np.full_like(self.results["forces"], np.nan)

    calc = NaNForcesEAM(MG_EAM)
    calc.dice = np.random.default_rng(5)
    settings = NSSettings(
        n_walkers=8,
        walk_length=8,
        pressure_gpa=1.0,
        max_iter=40,
        kemax_max_T=3000.0,
        md_traj_len=3,
        max_volume_per_atom=60.0,
        min_volume_per_atom=5.0,
        seed=2,
    )
    summary = run_nested_sampling({"Mg": 4}, calc, settings, tmp_path / "nan")
    assert summary["n_failed_calls"] == NaNForcesEAM.n_bad > 0
    clean = FastEAM(MG_EAM)
    for frame in read(output_paths(tmp_path / "nan")["final"], index=":"):
        frame.calc = clean
        expected = frame.get_potential_energy() + gpa_to_ev_per_a3(1.0) * frame.get_volume() + frame.info["ns_KE"]
        assert frame.info["ns_energy"] == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------ Lennard-Jones
@pytest.mark.parametrize("n_atoms, volume_per_atom", [(1, 15.0), (2, 18.0), (9, 25.0)])
def test_lj_matches_ase_in_small_and_skewed_cells(n_atoms, volume_per_atom):
    from ase.calculators.lj import LennardJones

    from nestdb.potentials import FastLennardJones

    # 1-2 atoms: the 7.3 A cutoff spans several cells, every neighbour has many images
    atoms = random_cell_atoms("Mg" * n_atoms, volume_per_atom, seed=n_atoms)
    params = dict(epsilon=0.2, sigma=2.9)
    ours = evaluate(atoms, FastLennardJones(cutoff=7.3, **params))
    reference = evaluate(atoms, LennardJones(rc=7.3, smooth=False, **params))
    assert_same(ours, reference, energy_tol=1e-10, force_tol=1e-10, stress_tol=1e-12)


# ------------------------------------------------- energy-only calls (nested sampling's cell moves)
def _fast_models():
    models = [("lj", FastLennardJones())]
    if MG_EAM.is_file():
        models += [("eam numba", FastEAM(MG_EAM, compiled=True)), ("eam numpy", FastEAM(MG_EAM, compiled=False))]
    return models


@pytest.mark.parametrize("n_atoms, volume_per_atom, seed", [(16, 23.0, 4), (3, 30.0, 5)])
def test_energy_only_calls_skip_forces_and_give_the_same_energy(n_atoms, volume_per_atom, seed):
    atoms = random_cell_atoms("Mg" * n_atoms, volume_per_atom, seed)
    for name, calc in _fast_models():
        calc.reset()
        calc.calculate(atoms, ["energy", "forces"], all_changes)
        full = dict(calc.results)
        calc.reset()
        calc.calculate(atoms, ["energy"], all_changes)
        assert "forces" not in calc.results and "stress" not in calc.results, name
        # the same arithmetic: bit for bit (nested sampling mixes both kinds of call in one chain)
        assert calc.results["energy"] == full["energy"], name
        # ASE's getters: energy first, then forces of the same configuration
        copy = atoms.copy()
        copy.calc = calc
        assert copy.get_potential_energy() == full["energy"], name
        np.testing.assert_array_equal(copy.get_forces(), full["forces"], err_msg=name)
        np.testing.assert_array_equal(copy.get_stress(), full["stress"], err_msg=name)


def test_energy_only_call_removes_forces_of_an_earlier_call():
    calc = FastLennardJones()
    atoms = random_cell_atoms("Mg" * 4, 25.0, 6)
    calc.calculate(atoms, ["energy", "forces"], all_changes)
    calc.calculate(atoms, ["energy"], all_changes)  # no reset(): stale forces must not survive
    assert "forces" not in calc.results


@needs_mg_eam
@pytest.mark.parametrize("forces", [True, False])
def test_coinciding_atoms_without_forces_give_infinite_energy(forces):
    atoms = Atoms("Mg3", positions=[[0, 0, 0], [0, 0, 0], [1.5, 1.5, 1.5]], cell=np.eye(3) * 6, pbc=True)
    calc = FastEAM(MG_EAM)
    calc.calculate(atoms, ["energy", "forces"] if forces else ["energy"], all_changes)
    assert calc.results["energy"] == np.inf
    assert ("forces" in calc.results) == forces
