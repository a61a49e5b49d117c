"""Tests of the linear-ACE fit options: smoothness prior, jackknife committee, refit on all data."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyace")

from test_fit import SMALL_BASIS, _emt_isolated_energy, emt_al_frames  # noqa: E402

from nestdb.fit.bayesian import NormalEquations, bayesian_ridge  # noqa: E402
from nestdb.fit.features import build_basis, compute_features, function_degrees  # noqa: E402
from nestdb.fit.linear_ace import _equations, jackknife_influences, prior_weights  # noqa: E402
from nestdb.fit.settings import validate_fit_settings  # noqa: E402


def _settings(**overrides) -> dict:
    return validate_fit_settings(
        {"elements": ["Al"], "reference_energies": {"Al": _emt_isolated_energy("Al")}, **SMALL_BASIS, **overrides}
    )


def test_function_degrees_follow_the_basis_indices():
    settings = _settings()
    basis = build_basis(settings)
    functions = list(basis.basis_rank1[0]) + list(basis.basis[0])
    degrees = function_degrees(basis, l_weight=1.5)
    assert degrees.shape == (len(functions),)
    for function, degree in zip(functions, degrees, strict=True):
        assert degree == pytest.approx(sum(function.ns) + 1.5 * sum(function.ls))
    # rank-1 functions are the radial indices 1..nradmax
    assert list(degrees[: len(basis.basis_rank1[0])]) == list(range(1, SMALL_BASIS["nradmax_by_orders"][0] + 1))
    assert degrees.max() > SMALL_BASIS["nradmax_by_orders"][0]  # higher ranks reach larger degrees
    weights = prior_weights(basis, _settings(smoothness_prior=2.0, fit_reference_energies=True))
    assert weights.size == degrees.size + 1 and weights[-1] == 1.0  # the fitted-E0 column is not damped


def test_prior_weights_set_the_prior_precision_per_column():
    rng = np.random.default_rng(3)
    design = rng.normal(size=(40, 5)) * np.array([1.0, 10.0, 0.1, 1.0, 3.0])
    targets = design @ np.array([1.0, -0.2, 4.0, 0.5, 0.0]) + rng.normal(0, 0.1, 40)
    equations = NormalEquations(design.T @ design, design.T @ targets, float(targets @ targets), 40)
    weights = np.array([1.0, 1.0, 5.0, 20.0, 1.0])
    alpha, lam = 4.0, 0.7
    fit = bayesian_ridge(equations, alpha=alpha, lam=lam, prior_weights=weights)
    # closed form: precision of column k is lam * (rms_k * w_k)^2 in raw units
    rms = np.sqrt(np.diag(equations.gram) / 40)
    precision = alpha * equations.gram + lam * np.diag((rms * weights) ** 2)
    expected = np.linalg.solve(precision, alpha * equations.rhs)
    assert np.allclose(fit.mean, expected, rtol=1e-10, atol=1e-12)
    assert np.allclose(fit.covariance, np.linalg.inv(precision), rtol=1e-8, atol=1e-14)
    assert np.allclose(fit.prior_precision, lam * (rms * weights) ** 2)
    isotropic = bayesian_ridge(equations, alpha=alpha, lam=lam)
    # a stiffer prior pulls that coefficient towards 0
    assert abs(fit.mean[3]) < abs(isotropic.mean[3])


def test_jackknife_influences_are_exact_leave_one_out_refits():
    frames = emt_al_frames(14, seed=5, scale_range=(0.92, 1.08))
    settings = _settings(smoothness_prior=2.0, fit_reference_energies=True)
    features, _ = compute_features(frames, settings)
    weights = prior_weights(build_basis(settings), settings)
    everything = np.arange(len(frames))
    fit = bayesian_ridge(_equations(features, frames, everything, settings), prior_weights=weights)
    influences = jackknife_influences(fit, features, frames, everything, settings)
    assert influences.shape == (len(frames), fit.mean.size)
    for left_out in (0, 6, 13):
        # refit without one configuration under the same prior and noise precision
        rest = _equations(features, frames, np.delete(everything, left_out), settings)
        refit = np.linalg.solve(fit.alpha * rest.gram + np.diag(fit.prior_precision), fit.alpha * rest.rhs)
        change = fit.mean - refit
        # equal up to the round-off of two ill-conditioned solves (a wrong prior gives ~10 %)
        assert np.linalg.norm(influences[left_out] - change) <= 1e-4 * np.linalg.norm(change)


def test_refit_on_all_data_reports_the_split_fit_test_errors(tmp_path):
    from nestdb.fit import fit_linear_ace
    from nestdb.models.ace_committee import load_committee

    frames = emt_al_frames(24, seed=11, scale_range=(0.92, 1.08))
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": _emt_isolated_energy("Al")},
        "test_fraction": 0.25,
        "committee_size": 4,
        "calibration_fraction": 0.2,
        "seed": 1,
        **SMALL_BASIS,
    }
    plain = fit_linear_ace(frames, {**settings, "refit_on_all_data": False}, tmp_path / "plain")
    refit = fit_linear_ace(frames, {**settings, "refit_on_all_data": True}, tmp_path / "refit")
    # the split fit is the plain fit; its test errors are reported for the refitted model
    split = json.loads((tmp_path / "refit" / "split" / "metrics.json").read_text())
    assert split["test"] == pytest.approx(plain["test"])
    assert refit["test"] == pytest.approx(plain["test"]) and "split/" in refit["test_model"]
    assert refit["calibration"]["test_factor"] == pytest.approx(plain["calibration"]["factor"])
    # the exported model is trained on every configuration
    model = json.loads((tmp_path / "refit" / "model.json").read_text())
    assert sorted(model["train_indices"]) == list(range(len(frames))) and model["test_indices"] == []
    assert refit["train"]["n_configs"] == len(frames)
    held_out = model["refit_on_all_data"]["test_indices_of_split"]
    assert len(held_out) == plain["test"]["n_configs"]
    assert not np.allclose(
        load_committee(tmp_path / "refit").mean_coefficients, load_committee(tmp_path / "plain").mean_coefficients
    )
    assert "refitted on all configurations" in (tmp_path / "refit" / "model_card.md").read_text()
    # no test set: nothing to refit, one model
    alone = fit_linear_ace(frames, {**settings, "test_fraction": 0.0, "refit_on_all_data": True}, tmp_path / "alone")
    assert "test" not in alone and not (tmp_path / "alone" / "split").exists()
