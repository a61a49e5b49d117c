"""Tests of nestdb.label: record keys and signs, failure capture, config errors, GPAW."""

import resource
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from nestdb.errors import ConfigError
from nestdb.label import KNOWN_LABELLERS, label_configuration, make_labeller
from nestdb.label.potential import PotentialLabeller
from nestdb.units import GPA

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EAM_FILE = SHARED / "data" / "mg" / "Mg1.eam.fs"
STUDY_DB = SHARED / "data" / "mg" / "cycle_0.edb.extxyz"


def rattled_cell(seed=0):
    atoms = bulk("Cu", "fcc", a=3.5).repeat((2, 2, 1))
    atoms.rattle(0.05, seed=seed)
    atoms.info.update({"iter": 123, "ns_P": 0.01, "config_type": "cu4_test", "temp": 812.5})
    return atoms


def emt_labeller():
    return PotentialLabeller({"type": "emt"}, calculator_factory=EMT)


class ExplodingCalculator(Calculator):
    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise RuntimeError("SCF exploded\non two lines")


class NaNCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        self.results = {
            "energy": -1.0,
            "free_energy": -1.0,
            "forces": np.full((n, 3), np.nan),
            "stress": np.zeros(6),
        }


def test_potential_label_keys_shapes_and_signs(tmp_path):
    atoms = rattled_cell()
    labelled = label_configuration(atoms, emt_labeller(), tmp_path / "w")
    info = labelled.info
    assert info["label_status"] == "ok"
    assert info["label_code"] == "potential"
    assert labelled.calc is None
    # Provenance kept, positions untouched.
    for key in ("iter", "ns_P", "config_type", "temp"):
        assert info[key] == atoms.info[key]
    np.testing.assert_array_equal(labelled.positions, atoms.positions)
    # Values agree with a direct EMT evaluation.
    reference = atoms.copy()
    reference.calc = EMT()
    assert info["dft_energy"] == pytest.approx(reference.get_potential_energy())
    np.testing.assert_allclose(labelled.arrays["dft_forces"], reference.get_forces(), atol=1e-12)
    stress_3x3 = reference.get_stress(voigt=False)
    np.testing.assert_allclose(info["dft_stress"], stress_3x3.reshape(9) / GPA, rtol=1e-10)
    assert np.shape(info["dft_stress"]) == (9,) and np.shape(info["dft_virial"]) == (9,)
    # The study's convention: virial (eV) = -stress (GPa) * V * GPa.
    np.testing.assert_allclose(
        info["dft_virial"], -np.asarray(info["dft_stress"]) * atoms.get_volume() * GPA, rtol=1e-10
    )


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children, measured here independently of nestdb."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def test_label_cpu_and_wall_times_are_the_calculations(tmp_path):
    # 500 Cu atoms: EMT energy, forces and stress take ~70 ms of CPU, so the times are far above their 1 ms rounding.
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (5, 5, 5)
    atoms.rattle(0.05, seed=1)
    cpu_start, wall_start = _cpu_seconds(), time.perf_counter()
    info = label_configuration(atoms, emt_labeller(), tmp_path).info
    cpu, wall = _cpu_seconds() - cpu_start, time.perf_counter() - wall_start
    assert info["label_status"] == "ok"
    # The recorded times are the calculation's: inside what the whole call took, and most of it.
    assert 0.5 * cpu - 1e-3 <= info["label_cpu_s"] <= cpu + 1e-3, (info["label_cpu_s"], cpu)
    assert 0.5 * wall - 1e-3 <= info["label_wall_s"] <= wall + 1e-3, (info["label_wall_s"], wall)
    assert info["label_cpu_s"] > 0.01


def test_compressed_cell_has_negative_stress_positive_virial(tmp_path):
    # Sign check against physics: a squeezed crystal pushes outwards.
    atoms = bulk("Cu", "fcc", a=3.3)
    labelled = label_configuration(atoms, emt_labeller(), tmp_path)
    assert np.trace(np.reshape(labelled.info["dft_stress"], (3, 3))) < 0
    assert np.trace(np.reshape(labelled.info["dft_virial"], (3, 3))) > 0


def test_sign_convention_matches_study_database():
    require_shared(STUDY_DB)
    for atoms in ase.io.read(STUDY_DB, index="::200"):
        expected = -np.asarray(atoms.info["dft_stress"]) * atoms.get_volume() * GPA
        np.testing.assert_allclose(atoms.info["dft_virial"], expected, atol=1e-9)


def test_extxyz_round_trip_keeps_keys(tmp_path):
    labelled = label_configuration(rattled_cell(), emt_labeller(), tmp_path / "w")
    failed = label_configuration(
        rattled_cell(1), PotentialLabeller({"type": "x"}, calculator_factory=ExplodingCalculator), tmp_path / "f"
    )
    path = tmp_path / "db.extxyz"
    ase.io.write(path, [labelled, failed], format="extxyz")
    back = ase.io.read(path, index=":")
    assert back[0].calc is None and back[1].calc is None
    for key in ("dft_energy", "label_status", "label_code", "label_settings_hash", "iter", "config_type"):
        assert (
            back[0].info[key] == pytest.approx(labelled.info[key])
            if isinstance(labelled.info[key], float)
            else back[0].info[key] == labelled.info[key]
        )
    np.testing.assert_allclose(back[0].info["dft_stress"], labelled.info["dft_stress"])
    np.testing.assert_allclose(back[0].info["dft_virial"], labelled.info["dft_virial"])
    # extxyz writes per-atom columns with 8 decimals.
    np.testing.assert_allclose(back[0].arrays["dft_forces"], labelled.arrays["dft_forces"], atol=1e-7)
    assert back[1].info["label_status"] == "failed"
    assert back[1].info["label_error"] == failed.info["label_error"]


def test_raising_calculator_gives_failed_record(tmp_path):
    atoms = rattled_cell()
    atoms.info["dft_energy"] = 5.0  # stale label from an earlier run must not survive
    labeller = PotentialLabeller({"type": "broken"}, calculator_factory=ExplodingCalculator)
    labelled = label_configuration(atoms, labeller, tmp_path)
    assert labelled.info["label_status"] == "failed"
    assert labelled.info["label_error"] == "RuntimeError: SCF exploded on two lines"
    assert not any(key.startswith("dft_") for key in labelled.info)
    assert "dft_forces" not in labelled.arrays
    assert labelled.info["config_type"] == "cu4_test"
    assert "SCF exploded" in (tmp_path / "label_error.txt").read_text()


def test_nan_results_count_as_failure(tmp_path):
    labeller = PotentialLabeller({"type": "nan"}, calculator_factory=NaNCalculator)
    labelled = label_configuration(rattled_cell(), labeller, tmp_path)
    assert labelled.info["label_status"] == "failed"
    assert "non-finite forces" in labelled.info["label_error"]
    assert "dft_energy" not in labelled.info


def test_unknown_code_lists_known():
    with pytest.raises(ConfigError) as excinfo:
        make_labeller({"code": "castepp"})
    for code in KNOWN_LABELLERS:
        assert code in str(excinfo.value)


def test_settings_hash_stable_and_sensitive():
    first = make_labeller({"code": "gpaw", "gpaw": {"xc": "PBE", "mode": {"name": "pw", "ecut": 400}}})
    # Same settings in another key order, and the defaults spelled out: same hash.
    second = make_labeller({"code": "gpaw", "gpaw": {"mode": {"ecut": 400, "name": "pw"}}})
    assert first.settings_hash == second.settings_hash
    changed = make_labeller({"code": "gpaw", "gpaw": {"mode": {"name": "pw", "ecut": 600}}})
    assert changed.settings_hash != first.settings_hash
    assert PotentialLabeller({"type": "emt"}).settings_hash != PotentialLabeller({"type": "lj"}).settings_hash


def test_gpaw_bogus_key_and_bad_mode_raise():
    with pytest.raises(ConfigError, match="ecutt"):
        make_labeller({"code": "gpaw", "gpaw": {"ecutt": 400}})
    with pytest.raises(ConfigError, match="mode"):
        make_labeller({"code": "gpaw", "gpaw": {"mode": {"name": "lcao"}}})
    with pytest.raises(ConfigError, match="type"):
        make_labeller({"code": "potential", "potential": {"file": "x.eam"}})


def test_gpaw_volume_guard_records_failure_without_calculating(tmp_path):
    labeller = make_labeller({"code": "gpaw", "gpaw": {"max_volume_per_atom": 50}})
    gas = bulk("Mg", "fcc", a=8.0)  # 128 A^3/atom
    labelled = label_configuration(gas, labeller, tmp_path)
    assert labelled.info["label_status"] == "failed"
    assert "max_volume_per_atom" in labelled.info["label_error"]
    assert not (tmp_path / "gpaw.txt").exists()


def test_real_eam_labels_study_configuration(tmp_path):
    require_shared(EAM_FILE, STUDY_DB)
    from matscipy.calculators.eam import EAM

    atoms = ase.io.read(STUDY_DB, index=150)  # a dense 1 GPa sample
    labeller = PotentialLabeller(
        {"type": "eam", "file": str(EAM_FILE)}, calculator_factory=lambda: EAM(str(EAM_FILE), kind="eam/fs")
    )
    labelled = label_configuration(atoms, labeller, tmp_path)
    assert labelled.info["label_status"] == "ok"
    # The EAM is not CASTEP, but its forces should correlate with the DFT forces of the study.
    model, dft = labelled.arrays["dft_forces"].ravel(), atoms.arrays["dft_forces"].ravel()
    assert np.corrcoef(model, dft)[0, 1] > 0.5
    assert labelled.info["ns_energy"] == atoms.info["ns_energy"]


@pytest.mark.gpaw
def test_gpaw_fcc_primitive_cell(tmp_path):
    pytest.importorskip("gpaw")
    from nestdb.structures.crystals import build_structure

    # One-atom fcc cell with the fast default settings: ~5 s unloaded.
    labeller = make_labeller({"code": "gpaw", "gpaw": {"setups": {"Mg": "2"}}})  # the cheap 2-electron Mg setup
    atoms = build_structure("fcc", "Mg", volume_per_atom=22.0)
    atoms.info["config_type"] = "fcc_gpaw_test"
    labelled = label_configuration(atoms, labeller, tmp_path)
    assert labelled.info["label_status"] == "ok", labelled.info.get("label_error")
    assert "Converged in" in (tmp_path / "gpaw.txt").read_text()
    assert labelled.info["config_type"] == "fcc_gpaw_test"
    # GPAW energies are relative to isolated atoms: bound Mg lies around -1.5 eV/atom.
    assert -2.5 < labelled.info["dft_energy"] < -0.5
    assert np.abs(labelled.arrays["dft_forces"]).max() < 1e-4  # zero by symmetry
    stress = np.reshape(labelled.info["dft_stress"], (3, 3))
    assert np.all(np.isfinite(stress)) and np.abs(stress).max() < 20
    # Cubic symmetry: isotropic stress; and slightly compressed (PBE V0 ~ 23 A^3).
    np.testing.assert_allclose(np.diag(stress), stress[0, 0], atol=1e-3)
    assert np.abs(stress - np.diag(np.diag(stress))).max() < 1e-3
    assert stress[0, 0] < 0


@pytest.mark.gpaw
def test_gpaw_unconverged_scf_is_a_failed_record(tmp_path):
    pytest.importorskip("gpaw")
    from nestdb.structures.crystals import build_structure

    labeller = make_labeller({"code": "gpaw", "gpaw": {"maxiter": 2, "setups": {"Mg": "2"}}})
    labelled = label_configuration(build_structure("fcc", "Mg"), labeller, tmp_path)
    assert labelled.info["label_status"] == "failed"
    assert labelled.info["label_error"].startswith("KohnShamConvergenceError: SCF not converged")
    assert "dft_energy" not in labelled.info


@pytest.mark.gpaw
def test_gpaw_labels_an_mg_cell_once_through_the_cache(tmp_path):
    pytest.importorskip("gpaw")
    from nestdb.label.driver import LabelPolicy, label_with_policy

    # Two-atom hcp cell, rattled; coarse k-points (the cache is under test, not convergence).
    labeller = make_labeller(
        {
            "code": "gpaw",
            "gpaw": {
                "mode": {"name": "pw", "ecut": 250},
                "setups": {"Mg": "2"},
                "kpts": {"density": 1.0, "gamma": True},
            },
        }
    )
    policy = LabelPolicy(cache_dir=str(tmp_path / "cache"))
    atoms = bulk("Mg", "hcp", a=3.2, c=5.2)
    atoms.rattle(0.05, seed=4)
    first = label_with_policy(atoms, labeller, tmp_path / "raw", policy)
    assert first.info["label_status"] == "ok", first.info.get("label_error")
    assert first.info["label_cached"] is False and first.info["label_cpu_s"] > 0
    assert np.abs(first.arrays["dft_forces"]).max() > 1e-3  # rattled: real forces
    np.testing.assert_allclose(first.arrays["dft_forces"].sum(axis=0), 0, atol=1e-3)
    again = label_with_policy(atoms[::-1], labeller, tmp_path / "again", policy)
    assert again.info["label_cached"] is True
    assert not (tmp_path / "again" / "gpaw.txt").exists()  # GPAW did not run
    assert again.info["dft_energy"] == pytest.approx(first.info["dft_energy"], abs=1e-10)
    np.testing.assert_allclose(again.arrays["dft_forces"], first.arrays["dft_forces"][::-1], atol=1e-7)


@pytest.mark.gpaw
def test_gpaw_isolated_mg_atom_energy(tmp_path):
    pytest.importorskip("gpaw")
    import json

    from nestdb.label.stage import isolated_atom_energy

    # 8 A box, 250 eV: ~4 CPU-s. GPAW energies are relative to its reference atoms: E0 of Mg is ~0.
    spec = {"code": "gpaw", "gpaw": {"mode": {"name": "pw", "ecut": 250}, "setups": {"Mg": "2"}}}
    result = isolated_atom_energy("Mg", spec, tmp_path / "Mg.json", tmp_path / "raw", box=8.0)
    assert json.loads((tmp_path / "Mg.json").read_text()) == result
    assert abs(result["energy"]) < 0.2
    assert result["magnetic_moment"] == 0.0  # closed-shell 3s2 atom
    assert result["settings_hash"] == make_labeller(spec).settings_hash
    text = (tmp_path / "raw" / "gpaw.txt").read_text()
    assert "Number of BZ points: 1\n" in text  # Gamma only, not the bulk k-point density
