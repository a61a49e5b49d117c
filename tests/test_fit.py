"""Tests of nestdb.fit: linear-ACE Bayesian fits, the committee calculator, input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write
from ase.units import GPa

pytest.importorskip("pyace")

from nestdb.errors import ConfigError, DataError  # noqa: E402
from nestdb.fit import fit_linear_ace, load_training_frames, read_training_set, split_train_test, validate_fit_settings  # noqa: E402
from nestdb.models.ace_committee import CommitteeACECalculator, load_committee, predict_frames  # noqa: E402

from conftest import require_shared  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MG_CYCLE0 = SHARED / "data" / "mg" / "cycle_0.edb.extxyz"
MG_E0 = -1688.821

# Small basis (body order 3, 24 functions) so every fit here takes well under a second.
SMALL_BASIS = {"nradmax_by_orders": [6, 3], "lmax_by_orders": [0, 2], "cutoff": 5.5}


def _emt_isolated_energy(symbol: str) -> float:
    atom = Atoms(symbol, positions=[[0, 0, 0]], cell=[20, 20, 20], pbc=False)
    atom.calc = EMT()
    return atom.get_potential_energy()


def _label(atoms: Atoms, calc) -> Atoms:
    """Attach dft_* labels computed with ``calc`` (stand-in for DFT)."""
    atoms.calc = calc
    atoms.info["dft_energy"] = atoms.get_potential_energy()
    atoms.arrays["dft_forces"] = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    atoms.info["dft_stress"] = (stress / GPa).reshape(9)
    atoms.info["dft_virial"] = (-stress * atoms.get_volume()).reshape(9)
    atoms.calc = None
    return atoms


def emt_al_frames(n: int, seed: int = 0, scale_range=(0.96, 1.04), symbols: str = "Al") -> list[Atoms]:
    """Rattled, strained 8-atom fcc cells labelled with EMT."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1)
        if symbols != "Al":  # alloy: random Cu substitutions
            numbers = atoms.numbers.copy()
            numbers[rng.random(len(atoms)) < 0.4] = 29
            atoms.numbers = numbers
        strain = np.eye(3) * rng.uniform(*scale_range) + rng.normal(0, 0.01, (3, 3))
        atoms.set_cell(atoms.cell @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.info["config_type"] = f"emt_{i}"
        frames.append(_label(atoms, EMT()))
    return frames


@pytest.fixture(scope="module")
def emt_model(tmp_path_factory):
    frames = emt_al_frames(20)
    out = tmp_path_factory.mktemp("emt_model")
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": _emt_isolated_energy("Al")},
        "committee_size": 8,
        "test_fraction": 0.2,
        "refit_on_all_data": False,  # the split model: its train/test indices are checked
        "seed": 3,
        **SMALL_BASIS,
    }
    metrics = fit_linear_ace(frames, settings, out)
    return out, frames, metrics


def test_fit_writes_model_and_reproduces_training_energies(emt_model):
    out, frames, metrics = emt_model
    for name in ("potential.yaml", "committee.npz", "model.json", "metrics.json", "parity.png"):
        assert (out / name).is_file(), name
    model = json.loads((out / "model.json").read_text())
    assert model["n_functions"] == metrics["n_functions"] > 0
    assert len(model["train_indices"]) == 16 and len(model["test_indices"]) == 4
    assert json.loads((out / "metrics.json").read_text())["train"]["n_configs"] == 16
    # EMT is smooth: an 18-function ACE should get within a few meV/atom, ~0.1 eV/A.
    assert metrics["train"]["energy_rmse_mev_per_atom"] < 5.0
    assert metrics["train"]["force_rmse_mev_per_a"] < 150.0
    assert metrics["test"]["energy_rmse_mev_per_atom"] < 15.0

    # independent check of the stored model: predictions vs the EMT labels
    train = [frames[i] for i in model["train_indices"]]
    prediction = predict_frames(out, train)
    reference = np.array([a.info["dft_energy"] / len(a) for a in train])
    assert np.max(np.abs(prediction["energy_per_atom"] - reference)) < 0.015


def test_potential_yaml_loads_in_pyace_without_e0(emt_model):
    from pyace import PyACECalculator

    out, frames, _ = emt_model
    atoms = frames[0].copy()
    atoms.calc = PyACECalculator(str(out / "potential.yaml"))
    bare = atoms.get_potential_energy()
    atoms.calc = CommitteeACECalculator(out)
    full = atoms.get_potential_energy()
    e0 = load_committee(out).reference_energies["Al"]
    assert full == pytest.approx(bare + len(atoms) * e0, abs=1e-9)


def test_projections_reproduce_energy_and_committee_is_consistent(emt_model):
    from pyace import PyACECalculator

    out, frames, _ = emt_model
    committee = load_committee(out)
    ace = PyACECalculator(str(committee.potential_path))
    for atoms in frames[:3]:
        atoms = atoms.copy()
        atoms.calc = ace
        energy = atoms.get_potential_energy()
        projected = float(np.sum(ace.projections @ committee.mean_coefficients))
        assert projected == pytest.approx(energy, rel=1e-12, abs=1e-10)

        atoms.calc = CommitteeACECalculator(out)
        atoms.get_potential_energy()
        results = atoms.calc.results
        assert results["energy_committee"].shape == (committee.size,)
        # committee members are posterior draws around the mean model
        spread = np.abs(results["energy_committee"] - results["energy"]).max()
        assert spread < 10 * results["energy_std"] + 1e-12
        assert results["energy_std_per_atom"] == pytest.approx(results["energy_std"] / len(atoms))


def test_committee_std_positive_and_larger_far_from_training(emt_model):
    out, frames, _ = emt_model
    calc = CommitteeACECalculator(out)
    train_std = []
    for atoms in frames[:5]:
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        train_std.append(calc.results["energy_std_per_atom"])
    assert min(train_std) > 0
    compressed = frames[0].copy()
    compressed.set_cell(compressed.cell * 0.8, scale_atoms=True)  # volume x0.5
    compressed.calc = calc
    compressed.get_potential_energy()
    assert calc.results["energy_std_per_atom"] > 5 * max(train_std)


def test_forces_are_minus_energy_gradient_and_stress_is_finite(emt_model):
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    out, frames, _ = emt_model
    atoms = frames[1].copy()
    atoms.calc = CommitteeACECalculator(out)
    forces = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.max(np.abs(forces - numeric)) < 1e-5
    stress = atoms.get_stress()
    assert stress.shape == (6,) and np.all(np.isfinite(stress))
    numeric_stress = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.max(np.abs(stress - numeric_stress)) < 1e-5
    energies = atoms.get_potential_energies()
    assert energies.sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-8)


@pytest.mark.parametrize("n_configs", [2, 3, 5])
def test_tiny_training_sets_fit_without_crashing(tmp_path, n_configs):
    frames = emt_al_frames(n_configs, seed=n_configs)
    metrics = fit_linear_ace(
        frames,
        {"elements": ["Al"], "reference_energies": {"Al": 0.0}, "test_fraction": 0.2, "refit_on_all_data": False}
        | SMALL_BASIS,
        tmp_path,
    )
    assert metrics["train"]["n_configs"] >= 1
    assert metrics["train"]["n_configs"] + metrics["test"]["n_configs"] == n_configs
    assert np.isfinite(metrics["test"]["energy_rmse_mev_per_atom"])


def test_zero_test_fraction_reports_train_only(tmp_path):
    frames = emt_al_frames(4, seed=11)
    metrics = fit_linear_ace(
        frames, {"elements": ["Al"], "reference_energies": {"Al": 0.0}, "test_fraction": 0.0, **SMALL_BASIS}, tmp_path
    )
    assert "test" not in metrics and metrics["train"]["n_configs"] == 4


def test_sample_weights_remove_a_corrupted_configuration(tmp_path):
    frames = emt_al_frames(10, seed=5)
    bad = frames[4]
    bad.info["dft_energy"] += 0.5 * len(bad)  # +0.5 eV/atom: inconsistent with the rest
    for atoms in frames:
        atoms.info["weight"] = 1.0
    bad.info["weight"] = 0.0
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": _emt_isolated_energy("Al")},
        "test_fraction": 0.0,
        **SMALL_BASIS,
    }
    fit_linear_ace(frames, {**settings, "use_sample_weights": True}, tmp_path / "weighted")
    fit_linear_ace(frames, {**settings, "use_sample_weights": False}, tmp_path / "plain")
    clean = [a for a in frames if a is not bad]
    reference = np.array([a.info["dft_energy"] / len(a) for a in clean])
    weighted = predict_frames(tmp_path / "weighted", clean)["energy_per_atom"]
    plain = predict_frames(tmp_path / "plain", clean)["energy_per_atom"]
    assert np.sqrt(np.mean((weighted - reference) ** 2)) < 0.5 * np.sqrt(np.mean((plain - reference) ** 2))


def test_two_element_fit_projections_map_to_coefficients(tmp_path):
    frames = emt_al_frames(8, seed=2, symbols="AlCu")
    e0 = {"Al": _emt_isolated_energy("Al"), "Cu": _emt_isolated_energy("Cu")}
    fit_linear_ace(
        frames,
        {
            "elements": ["Al", "Cu"],
            "reference_energies": e0,
            "test_fraction": 0.0,
            "nradmax_by_orders": [4, 2],
            "lmax_by_orders": [0, 1],
            "cutoff": 5.0,
        },
        tmp_path,
    )
    committee = load_committee(tmp_path)
    calc = CommitteeACECalculator(tmp_path)
    atoms = frames[0].copy()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    phi = committee.summed_projections(calc._ace.projections, atoms.get_chemical_symbols())
    e0_sum = sum(e0[s] for s in atoms.get_chemical_symbols())
    assert phi @ committee.mean_coefficients + e0_sum == pytest.approx(energy, abs=1e-9)


def test_split_always_leaves_training_configs():
    for n in range(1, 12):
        for fraction in (0.0, 0.2, 0.5, 0.9):
            train, test = split_train_test(n, fraction, seed=1)
            assert len(train) >= 1
            assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))
    train, test = split_train_test(100, 0.2, seed=4)
    assert len(test) == 20
    assert np.array_equal(test, split_train_test(100, 0.2, seed=4)[1])
    assert not np.array_equal(test, split_train_test(100, 0.2, seed=5)[1])


# ---------------------------------------------------------------- input errors


def test_reader_skips_failed_and_reports_bad_labels(tmp_path):
    frames = emt_al_frames(3, seed=7)
    frames[1].info["label_status"] = "failed"
    del frames[1].info["dft_energy"]  # failed labels need not carry energies
    path = tmp_path / "db.extxyz"
    write(path, frames, format="extxyz")
    used, summary = read_training_set([path])
    assert len(used) == 2 and summary["n_skipped_status"] == 1 and summary["n_read"] == 3
    assert len(load_training_frames(path)) == 2

    del frames[2].info["dft_energy"]
    write(path, frames, format="extxyz")
    with pytest.raises(DataError, match=r"db\.extxyz, configuration 2.*dft_energy"):
        load_training_frames([path])

    frames = emt_al_frames(2, seed=8)
    frames[1].arrays["dft_forces"][0, 1] = np.nan
    write(path, frames, format="extxyz")
    with pytest.raises(DataError, match=r"configuration 1.*dft_forces.*NaN"):
        load_training_frames([path])

    frames = emt_al_frames(2, seed=8)
    frames[0].info["dft_energy"] = float("nan")
    write(path, frames, format="extxyz")
    with pytest.raises(DataError, match=r"configuration 0.*dft_energy"):
        load_training_frames([path])

    frames = emt_al_frames(1, seed=9)
    del frames[0].arrays["dft_forces"]
    write(path, frames, format="extxyz")
    with pytest.raises(DataError, match="dft_forces"):
        load_training_frames([path])


def test_empty_and_missing_training_sets(tmp_path):
    frames = emt_al_frames(2, seed=10)
    for atoms in frames:
        atoms.info["label_status"] = "failed"
    path = tmp_path / "all_failed.extxyz"
    write(path, frames, format="extxyz")
    with pytest.raises(DataError, match="no usable"):
        load_training_frames([path])
    with pytest.raises(DataError, match="does not exist"):
        load_training_frames([tmp_path / "nope.extxyz"])
    with pytest.raises(DataError, match="empty"):
        fit_linear_ace([], {"elements": ["Al"], "reference_energies": {"Al": 0.0}}, tmp_path / "model")


def test_settings_errors_name_the_key(tmp_path):
    frames = emt_al_frames(3, seed=12)
    with pytest.raises(ConfigError, match="fit.reference_energies.*'Al'"):
        fit_linear_ace(frames, {"elements": ["Al"], "reference_energies": {"Mg": 0.0}}, tmp_path)
    with pytest.raises(ConfigError, match="fit.elements"):
        fit_linear_ace(frames, {"elements": ["Mg"], "reference_energies": {"Mg": 0.0}}, tmp_path)
    al = {"elements": ["Al"], "reference_energies": {"Al": 0.0}}
    with pytest.raises(ConfigError, match="fit.comittee_size"):
        validate_fit_settings({**al, "comittee_size": 3})
    with pytest.raises(ConfigError, match="fit.test_fraction"):
        validate_fit_settings({**al, "test_fraction": 1.0})
    with pytest.raises(ConfigError, match="fit.committee_size"):
        validate_fit_settings({**al, "committee_size": 1})
    with pytest.raises(ConfigError, match="fit.lmax_by_orders"):
        validate_fit_settings({**al, "nradmax_by_orders": [4, 2], "lmax_by_orders": [0]})
    with pytest.raises(ConfigError, match="fit.cutoff"):
        validate_fit_settings({**al, "cutoff": -1})
    defaults = validate_fit_settings(al)
    assert defaults["energy_weight"] == 9 and defaults["force_weight"] == 1
    assert defaults["committee_size"] == 10 and defaults["test_fraction"] == 0.2


def test_the_material_has_no_library_default(tmp_path):
    # issue 15: no material is assumed; the error names the key and shows an example
    with pytest.raises(ConfigError, match=r"fit\.elements is missing .*'elements': \['Mg'\]"):
        validate_fit_settings({})
    with pytest.raises(ConfigError, match=r"fit\.elements is missing"):
        fit_linear_ace(emt_al_frames(3, seed=12), {"reference_energies": {"Al": 0.0}}, tmp_path)
    with pytest.raises(ConfigError, match=r"fit\.reference_energies is missing .*'Au': 0\.0, 'Cu': 0\.0"):
        validate_fit_settings({"elements": ["Cu", "Au"]})


def test_load_committee_missing_files(tmp_path):
    with pytest.raises(DataError, match="potential.yaml"):
        load_committee(tmp_path)


def test_calculator_rejects_unfitted_element(emt_model):
    out, _, _ = emt_model
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = CommitteeACECalculator(out)
    with pytest.raises(DataError, match="Cu"):
        atoms.get_potential_energy()


# ---------------------------------------------------------------- real Mg data


def test_fit_real_magnesium_subset(tmp_path):
    require_shared(MG_CYCLE0)
    frames = load_training_frames([MG_CYCLE0])
    rng = np.random.default_rng(0)
    subset = [frames[i] for i in rng.choice(len(frames), 40, replace=False)]
    settings = {
        "elements": ["Mg"],
        "reference_energies": {"Mg": MG_E0},
        "seed": 1,
        "refit_on_all_data": False,
        **SMALL_BASIS,
    }
    metrics = fit_linear_ace(subset, settings, tmp_path)
    assert metrics["train"]["n_configs"] == 32 and metrics["test"]["n_configs"] == 8
    # CASTEP Mg over 0-45 GPa and 200-3000 K: a small linear ACE lands at ~10 meV/atom
    assert metrics["train"]["energy_rmse_mev_per_atom"] < 30.0
    assert metrics["train"]["force_rmse_mev_per_a"] < 150.0
    assert metrics["train"]["virial_rmse_mev_per_atom"] < 100.0
    assert "spearman_std_vs_abs_error" in metrics["test"]
    assert metrics["test"]["committee_std_mean_mev_per_atom"] > 0

    calc = CommitteeACECalculator(tmp_path)
    atoms = subset[0].copy()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    # absolute scale: E0 is added back, so energies are on CASTEP's scale
    assert energy / len(atoms) == pytest.approx(subset[0].info["dft_energy"] / len(atoms), abs=0.1)


# ---------------------------------------------------------------- design rows, solver, calibration, export


def test_virial_rows_match_calculator_stress(emt_model):
    """Finite-difference virial rows . c reproduce -stress * V of the written potential."""
    from nestdb.fit import compute_features

    out, frames, _ = emt_model
    settings = validate_fit_settings({**SMALL_BASIS, "elements": ["Al"], "reference_energies": {"Al": 0.0}})
    committee = load_committee(out)
    features, info = compute_features(frames[:3], settings)
    prediction = predict_frames(out, frames[:3])
    for k, rows in enumerate(features):
        assert rows.force_rows.shape == (3 * len(frames[k]), committee.mean_coefficients.size)
        virial = rows.virial_rows @ committee.mean_coefficients
        assert np.allclose(virial, prediction["virial"][k], atol=1e-6 * max(1.0, np.abs(virial).max()))
        forces = rows.force_rows @ committee.mean_coefficients
        assert np.allclose(forces.reshape(-1, 3), prediction["forces"][k], atol=1e-8)
    assert info["n_computed"] == 3 and info["n_cached"] == 0


def test_feature_cache_reuses_rows_and_parallel_rows_agree(tmp_path):
    from nestdb.fit import compute_features

    frames = emt_al_frames(5, seed=21)
    settings = validate_fit_settings({**SMALL_BASIS, "elements": ["Al"], "reference_energies": {"Al": 0.0}})
    first, info = compute_features(frames, settings, cache_dir=tmp_path)
    assert info["n_computed"] == 5
    again, info = compute_features(frames, settings, cache_dir=tmp_path, n_jobs=2)
    assert info["n_cached"] == 5 and info["n_computed"] == 0
    assert all(
        np.array_equal(a.force_rows, b.force_rows) and np.array_equal(a.virial_rows, b.virial_rows)
        for a, b in zip(first, again, strict=True)
    )
    # a truncated cache file is recomputed; another basis gets its own rows
    victim = next((tmp_path / info["basis_key"]).glob("*.npz"))
    victim.write_bytes(b"garbage")
    _, info = compute_features(frames, settings, cache_dir=tmp_path)
    assert info["n_computed"] == 1
    other = validate_fit_settings({**settings, "cutoff": 5.0})
    parallel, info = compute_features(frames, other, cache_dir=tmp_path, n_jobs=2)
    serial, _ = compute_features(frames, other)
    assert info["n_computed"] == 5
    assert all(
        np.allclose(a.phi, b.phi) and np.allclose(a.force_rows, b.force_rows)
        for a, b in zip(parallel, serial, strict=True)
    )


def test_bayesian_ridge_on_normal_equations_matches_sklearn():
    from sklearn.linear_model import BayesianRidge

    from nestdb.fit.bayesian import NormalEquations, bayesian_ridge

    rng = np.random.default_rng(0)
    design = rng.normal(size=(400, 12)) * rng.uniform(0.01, 100, 12)
    target = design @ rng.normal(size=12) + rng.normal(0, 0.3, 400)
    blocks = [(design[i : i + 7], target[i : i + 7]) for i in range(0, 400, 7)]
    fit = bayesian_ridge(NormalEquations.from_blocks(blocks, 12))
    scale = np.sqrt(np.mean(design**2, axis=0))
    reference = BayesianRidge(fit_intercept=False, max_iter=1000, tol=1e-10).fit(design / scale, target)
    assert np.allclose(fit.mean, reference.coef_ / scale, rtol=1e-5)
    assert fit.alpha == pytest.approx(reference.alpha_, rel=1e-4)
    assert np.allclose(fit.covariance, reference.sigma_ / np.outer(scale, scale), rtol=1e-4)
    draws = fit.sample(4000, seed=1)
    assert np.allclose(np.cov(draws.T), fit.covariance, atol=0.1 * np.abs(fit.covariance).max())


def test_calibration_factor_and_summary():
    from nestdb.fit.calibration import calibration_factor, calibration_summary, rescale_committee

    std = np.array([1.0, 2.0, 3.0, 4.0])
    error = 10 * std
    factor = calibration_factor(std, error)
    assert factor == pytest.approx(10.0)
    summary = calibration_summary(factor * std, error)
    assert summary["ratio"] == pytest.approx(1.0) and summary["spearman"] == pytest.approx(1.0)
    # maximum likelihood: errors / (factor * STD) have unit RMS; a large STD with a small error
    # does not shrink the others (an RMS match would give 0.6 here); STD 0 is ignored
    std, error = np.array([1.0, 1.0, 1.0, 10.0, 0.0]), np.array([2.0, 2.0, 2.0, 0.0, 5.0])
    assert calibration_factor(std, error) == pytest.approx(np.sqrt(3.0))
    assert calibration_factor(np.zeros(3), error[:3]) == 1.0
    mean = np.array([1.0, -1.0])
    members = np.array([[2.0, 0.0], [0.0, -2.0]])
    assert np.allclose(rescale_committee(mean, members, 3.0), [[4.0, 2.0], [-2.0, -4.0]])


@pytest.mark.parametrize("method", ["posterior", "bootstrap", "jackknife"])
def test_calibrated_committee_outputs(tmp_path, method):
    frames = emt_al_frames(30, seed=31, scale_range=(0.9, 1.1))
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": _emt_isolated_energy("Al")},
        "committee_size": 4,
        "committee_method": method,
        "calibration_fraction": 0.2,
        "test_fraction": 0.2,
        "refit_on_all_data": False,  # the split model's calibration is checked
        "seed": 2,
        **SMALL_BASIS,
    }
    metrics = fit_linear_ace(frames, settings, tmp_path)
    calibration = metrics["calibration"]
    factor = calibration["factor"]
    assert factor > 0 and calibration["held_out_configs"] == 5
    raw, calibrated = calibration["test_raw"], calibration["test_calibrated"]
    assert calibrated["std_rms"] == pytest.approx(factor * raw["std_rms"], rel=1e-6)
    assert float(np.load(tmp_path / "committee.npz")["calibration_factor"]) == pytest.approx(factor)
    for name in ("potential.yace", "calibration.png", "model_card.md", "committee/member_03.yace"):
        assert (tmp_path / name).is_file(), name
    card = (tmp_path / "model_card.md").read_text()
    assert f"{factor:.2f}" in card and "Spearman" in card


def test_yace_export_gives_the_yaml_energy(emt_model):
    from pyace import PyACECalculator

    out, frames, _ = emt_model
    atoms = frames[2].copy()
    atoms.calc = PyACECalculator(str(out / "potential.yaml"))
    from_yaml = atoms.get_potential_energy()
    atoms.calc = PyACECalculator(str(out / "potential.yace"))
    assert atoms.get_potential_energy() == pytest.approx(from_yaml, abs=1e-8)
    committee = load_committee(out)
    atoms.calc = PyACECalculator(str(out / "committee" / "member_01.yace"))
    member = atoms.get_potential_energy() + len(atoms) * committee.reference_energies["Al"]
    calc = CommitteeACECalculator(out)
    atoms.calc = calc
    atoms.get_potential_energy()
    assert member == pytest.approx(calc.results["energy_committee"][1], abs=1e-8)


def test_element_without_reference_energy_names_file_and_configuration(tmp_path):
    frames = emt_al_frames(3, seed=14)
    frames[2].numbers[0] = 29  # one Cu atom
    path = tmp_path / "mixed.extxyz"
    write(path, frames, format="extxyz")
    loaded = load_training_frames([path])
    with pytest.raises(ConfigError, match=r"mixed\.extxyz, configuration 2.*'Cu'"):
        fit_linear_ace(
            loaded, {"elements": ["Al"], "reference_energies": {"Al": 0.0}, **SMALL_BASIS}, tmp_path / "model"
        )


def test_stratified_split_on_real_magnesium_files():
    from nestdb.fit import stratified_split
    from nestdb.fit.dataset import frame_groups

    files = [MG_CYCLE0, MG_CYCLE0.with_name("cycle_1.edb.extxyz")]
    require_shared(*files)
    frames = load_training_frames(files)
    train, test = stratified_split(frames, 0.2, seed=0)
    assert len(frames) == 1139 and len(test) == round(0.2 * 1139)
    groups = [frame_groups(frames[i]) for i in test]
    cycle0 = [g["pressure"] for g in groups if g["cycle"] == "0"]
    # cycle 0: 11 pressures with 100 configurations each -> exactly 20 each in the test set
    assert sorted(set(cycle0), key=float) == sorted(
        {"0", "1", "5", "10", "15", "20", "25", "30", "35", "40", "45"}, key=float
    )
    assert all(cycle0.count(p) == 20 for p in set(cycle0))
    assert sum(g["cycle"] == "1" for g in groups) in (7, 8)
    assert not set(train) & set(test)


def test_fitted_reference_energy_recovers_a_shift(tmp_path):
    """A wrong E0 (+0.2 eV) is corrected by fit.fit_reference_energies; the committee stays consistent."""
    frames = emt_al_frames(16, seed=41)
    true_e0 = _emt_isolated_energy("Al")
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": true_e0 + 0.2},
        "test_fraction": 0.0,
        "calibration_fraction": 0.0,
        "committee_size": 4,
        **SMALL_BASIS,
    }
    fit_linear_ace(frames, {**settings, "fit_reference_energies": True}, tmp_path / "fitted")
    model = json.loads((tmp_path / "fitted" / "model.json").read_text())
    assert model["reference_energies_given"]["Al"] == pytest.approx(true_e0 + 0.2)
    # the ACE functions cannot make a constant, so the fitted E0 takes the shift
    assert model["reference_energies"]["Al"] != pytest.approx(true_e0 + 0.2, abs=1e-3)
    committee = load_committee(tmp_path / "fitted")
    assert committee.reference_energies["Al"] == pytest.approx(model["reference_energies"]["Al"])
    calc = CommitteeACECalculator(tmp_path / "fitted")
    atoms = frames[0].copy()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert energy / len(atoms) == pytest.approx(frames[0].info["dft_energy"] / len(atoms), abs=0.01)
    members = calc.results["energy_committee"]
    phi = committee.summed_projections(calc._ace.projections, atoms.get_chemical_symbols())
    expected = committee.coefficients @ phi + len(atoms) * (
        committee.reference_energies["Al"] + committee.onebody_deviation[:, 0]
    )
    assert np.allclose(members, expected, atol=1e-9)
