"""Linear ACE fitted by Bayesian ridge regression, with a calibrated committee.

The ACE basis is built with pyace from pacemaker-style settings
(``nradmax_by_orders``/``lmax_by_orders``) with a *linear* embedding and no
core repulsion, so energy, forces and virials are linear in the
coefficients ``c`` (see :mod:`nestdb.fit.features`).  The least-squares rows
of a configuration i with N_i atoms are (ACEpotentials.jl convention, which
the study's 9 : 1 : 1 weights refer to)::

    energy (1 row):   w_E s_i / sqrt(N_i) * (E_i - sum E0)   ~   ... * Phi_i . c
    forces (3 N_i):   w_F s_i * F_i,a,x                       ~   ... * dPhi/dx . c
    virial (9 rows):  w_V s_i / sqrt(N_i) * W_i,ab            ~   ... * dPhi/deps . c

with ``w_E, w_F, w_V = fit.energy_weight, force_weight, virial_weight`` and
``s_i`` the configuration's ``info["weight"]`` when ``fit.use_sample_weights``
(else 1).  The weights scale residuals (not squared residuals).

The regression is Bayesian ridge (evidence maximisation, :mod:`nestdb.fit.bayesian`)
with a smoothness prior: the prior precision of a function of degree
``d = sum(n) + fit.smoothness_l_weight * sum(l)`` grows as ``d**(2 p)``,
``p = fit.smoothness_prior`` (0: isotropic), so rough high-degree functions
are damped (the algebraic prior of ACEpotentials.jl).

The committee is ``fit.committee_size`` coefficient vectors around the mean
model, spread by the calibration factor of :mod:`nestdb.fit.calibration`:

* ``jackknife``: Gaussian draws from the jackknife covariance of the
  coefficients, built from the exact leave-one-configuration-out refits
  (closed form for a linear model, one small solve per configuration).  It
  follows the actual residuals, so configurations like the badly fitted ones
  get a large STD; on the study's Mg data its STD ranks the test errors
  better than the posterior (Spearman ~0.59 vs ~0.53, benchmarks/README.md).
* ``posterior``: draws from the Bayesian posterior (noise assumed equal for
  every row).
* ``bootstrap``: ridge fits to bootstrap resamples of the training configurations.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.fit.bayesian import BayesianFit, NormalEquations, bayesian_ridge
from nestdb.fit.calibration import calibration_factor, calibration_summary, rescale_committee
from nestdb.fit.dataset import (
    ENERGY_KEY,
    FORCES_KEY,
    VIRIAL_KEY,
    check_frame,
    frame_weight,
    stratified_split,
    summarise_frames,
)
from nestdb.fit.features import (
    EMBEDDING,
    RADIAL,
    ConfigFeatures,
    build_basis,
    compute_features,
    function_degrees,
    function_offsets,
)
from nestdb.fit.files import SPLIT_DIR, staged_outputs, write_model_outputs
from nestdb.fit.settings import validate_fit_settings
from nestdb.models.ace_committee import COMMITTEE_FILE, POTENTIAL_FILE

__all__ = ["fit_linear_ace", "reference_energy_sum"]

log = logging.getLogger(__name__)


def reference_energy_sum(atoms: Atoms, reference_energies: dict[str, float]) -> float:
    """Sum of the isolated-atom energies E0 over the atoms of a configuration."""
    return float(sum(reference_energies[s] for s in atoms.get_chemical_symbols()))


def _energy_row(features: ConfigFeatures, atoms: Atoms, onebody: list[str] | None) -> np.ndarray:
    """``Phi`` of a configuration, followed by its atom counts per element with ``fit_reference_energies``."""
    if onebody is None:
        return features.phi
    symbols = atoms.get_chemical_symbols()
    return np.concatenate([features.phi, [float(symbols.count(e)) for e in onebody]])


def _config_rows(
    features: ConfigFeatures, atoms: Atoms, settings: dict, extra_weight: float = 1.0, onebody: list[str] | None = None
):
    """Weighted rows and targets of one configuration (module docstring).

    With ``onebody`` (element order) one extra column per element fits a
    correction to E0: the atom count in the energy row, 0 in force and virial rows.
    """
    n_atoms = len(atoms)
    scale = frame_weight(atoms) if settings["use_sample_weights"] else 1.0
    scale *= np.sqrt(extra_weight)  # bootstrap multiplicity k: k copies of the squared residuals
    w_energy = settings["energy_weight"] * scale / np.sqrt(n_atoms)
    w_force = settings["force_weight"] * scale
    binding = float(atoms.info[ENERGY_KEY]) - reference_energy_sum(atoms, settings["reference_energies"])
    extra = 0 if onebody is None else len(onebody)
    rows = [w_energy * _energy_row(features, atoms, onebody)[None, :], w_force * _pad(features.force_rows, extra)]
    targets = [np.array([w_energy * binding]), w_force * np.asarray(atoms.arrays[FORCES_KEY], dtype=float).reshape(-1)]
    if settings["virial_weight"] > 0 and features.virial_rows is not None and VIRIAL_KEY in atoms.info:
        w_virial = settings["virial_weight"] * scale / np.sqrt(n_atoms)
        rows.append(w_virial * _pad(features.virial_rows, extra))
        targets.append(w_virial * np.asarray(atoms.info[VIRIAL_KEY], dtype=float).reshape(9))
    return np.vstack(rows), np.concatenate(targets)


def _pad(rows: np.ndarray, extra: int) -> np.ndarray:
    return rows if extra == 0 else np.hstack([rows, np.zeros((rows.shape[0], extra))])


def _onebody(settings: dict) -> list[str] | None:
    return list(settings["elements"]) if settings["fit_reference_energies"] else None


def _equations(
    features: list[ConfigFeatures | None],
    frames: list[Atoms],
    indices,
    settings: dict,
    multiplicity: np.ndarray | None = None,
) -> NormalEquations:
    """Normal equations of the configurations ``indices`` (``features`` may be None for others)."""
    onebody = _onebody(settings)
    n_columns = features[indices[0]].phi.size + (0 if onebody is None else len(onebody))
    blocks = (
        _config_rows(features[i], frames[i], settings, 1.0 if multiplicity is None else float(multiplicity[k]), onebody)
        for k, i in enumerate(indices)
        if multiplicity is None or multiplicity[k] > 0
    )
    return NormalEquations.from_blocks(blocks, n_columns)


def prior_weights(basis, settings: dict) -> np.ndarray:
    """Relative prior stiffness of every column: ``degree**p`` for the functions, 1 for fitted E0 columns."""
    degrees = function_degrees(basis, settings["smoothness_l_weight"])
    # degree 0 cannot occur (every function has n >= 1); the clip keeps 0**p finite anyway
    weights = np.clip(degrees, 1.0, None) ** settings["smoothness_prior"]
    extra = 0 if _onebody(settings) is None else len(settings["elements"])
    return np.concatenate([weights, np.ones(extra)])


def jackknife_influences(fit: BayesianFit, features, frames, indices, settings: dict) -> np.ndarray:
    """Coefficient change of leaving out each configuration, ``c - c_(-i)`` (n_configs, n_columns).

    For a linear model with Gaussian prior the refit without configuration i
    is exact in closed form: with ``K = alpha * covariance``, the rows
    ``X_i`` and residuals ``r_i`` of configuration i and its hat block
    ``H_i = X_i K X_i^T``, ``c - c_(-i) = K X_i^T (1 - H_i)^-1 r_i``.
    """
    onebody = _onebody(settings)
    gain = fit.alpha * fit.covariance
    influences = np.empty((len(indices), fit.mean.size))
    for k, i in enumerate(indices):
        rows, targets = _config_rows(features[i], frames[i], settings, 1.0, onebody)
        residuals = targets - rows @ fit.mean
        projected = rows @ gain
        leverage = projected @ rows.T
        influences[k] = projected.T @ np.linalg.solve(np.eye(len(residuals)) - leverage, residuals)
    return influences


def _committee(
    fit: BayesianFit, features, frames, indices, settings: dict, seed: int, weights: np.ndarray
) -> np.ndarray:
    """Uncalibrated committee coefficients (committee_size, n_functions)."""
    size = settings["committee_size"]
    if settings["committee_method"] == "posterior":
        return fit.sample(size, seed)
    rng = np.random.default_rng(seed)
    if settings["committee_method"] == "jackknife":
        influences = jackknife_influences(fit, features, frames, indices, settings)
        n = len(indices)
        # jackknife covariance (n-1)/n sum_i (d_i - mean d)(d_i - mean d)^T, sampled with Gaussian multipliers
        centred = np.sqrt((n - 1) / n) * (influences - influences.mean(axis=0))
        return fit.mean[None, :] + rng.standard_normal((size, n)) @ centred
    members = []
    for _ in range(size):  # hyper-parameters of the full fit: only the data are resampled
        multiplicity = np.bincount(rng.integers(0, len(indices), len(indices)), minlength=len(indices))
        member = bayesian_ridge(
            _equations(features, frames, indices, settings, multiplicity),
            alpha=fit.alpha,
            lam=fit.lam,
            prior_weights=weights,
        )
        members.append(member.mean)
    return np.array(members)


def _energy_errors(coefficients: np.ndarray, committee: np.ndarray, features, frames, indices, settings):
    """Per-atom energy error of the mean model and committee STD, from the design rows."""
    errors, stds = [], []
    for i in indices:
        n_atoms = len(frames[i])
        binding = float(frames[i].info[ENERGY_KEY]) - reference_energy_sum(frames[i], settings["reference_energies"])
        row = _energy_row(features[i], frames[i], _onebody(settings))
        errors.append((row @ coefficients - binding) / n_atoms)
        stds.append(np.std(committee @ row, ddof=1) / n_atoms)
    return np.abs(np.array(errors)), np.array(stds)


def _calibrate(features, frames, train_idx, settings, weights) -> dict[str, Any]:
    """Calibration factor from a fit without ``calibration_fraction`` of the training set."""
    subset = [frames[i] for i in train_idx]
    fit_part, held_out = stratified_split(subset, settings["calibration_fraction"], settings["seed"] + 1)
    if len(held_out) < 3 or len(fit_part) < 2:
        log.info("committee calibration skipped: fewer than 3 held-out configurations")
        return {"factor": 1.0, "n_configs": int(len(held_out)), "skipped": True}
    fit_idx, cal_idx = train_idx[fit_part], train_idx[held_out]
    fit = bayesian_ridge(_equations(features, frames, fit_idx, settings), prior_weights=weights)
    committee = _committee(fit, features, frames, fit_idx, settings, settings["seed"] + 1, weights)
    errors, stds = _energy_errors(fit.mean, committee, features, frames, cal_idx, settings)
    factor = calibration_factor(stds, errors)
    summary = calibration_summary(1000 * stds, 1000 * errors)
    log.info(
        f"committee calibration on {len(cal_idx)} held-out configurations: RMS error "
        f"{summary['error_rms']:.2f} meV/atom vs raw committee STD {summary['std_rms']:.3f}: factor {factor:.2f}"
    )
    return {"factor": factor, "n_configs": int(len(cal_idx)), "skipped": False, "held_out_raw": summary}


def _check_inputs(frames: list[Atoms], settings: dict) -> None:
    if not frames:
        raise DataError("fit_linear_ace got an empty training set; check the labelled database files")
    allowed = set(settings["elements"])
    for i, atoms in enumerate(frames):
        source = str(atoms.info.get("source_file", "in-memory frames"))
        index = int(atoms.info.get("source_index", i))
        check_frame(atoms, source, index)
        extra = set(atoms.get_chemical_symbols()) - allowed
        if extra:
            raise ConfigError(
                f"{source}, configuration {index} contains {sorted(extra)}, not in fit.elements "
                f"{sorted(allowed)}; add them to fit.elements and fit.reference_energies"
            )


def fit_linear_ace(frames: list[Atoms], settings: dict, out_dir: str | Path) -> dict:
    """Fit a linear ACE potential and its calibrated committee; write the model.

    Parameters
    ----------
    frames
        Labelled configurations (see :func:`nestdb.fit.dataset.load_training_frames`).
    settings
        The ``fit:`` section of the workflow config; see :data:`DEFAULT_FIT_SETTINGS`.
    out_dir
        Folder that receives ``potential.yaml`` (mean model, loadable by
        ``pyace.PyACECalculator``; energies there exclude E0), ``potential.yace``
        (LAMMPS ``pair_style pace``), ``committee.npz``, ``model.json``,
        ``metrics.json``, ``parity.png``, ``calibration.png`` and ``model_card.md``.
        With ``fit.refit_on_all_data`` and a test set, ``split/`` holds the same
        files of the fit without the test configurations, whose test metrics
        ``metrics.json`` reports, and the files above are the refit on all data.
        Everything is written into a temporary folder next to ``out_dir`` and
        moved into it at the end, so a failed fit leaves no partial model.
        Progress messages go to this module's logger.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.

    Raises
    ------
    ConfigError
        Bad settings, or an element without ``fit.elements``/``fit.reference_energies`` entry.
    DataError
        Empty training set or configurations without labels (naming file and configuration).
    """
    settings = validate_fit_settings(settings)
    frames = list(frames)
    _check_inputs(frames, settings)
    # written into a folder next to out_dir and moved into it at the end: a failed fit leaves no partial model
    with staged_outputs(out_dir) as staging:
        return _fit_linear_ace(frames, settings, staging, Path(out_dir))


def _fit_linear_ace(frames: list[Atoms], settings: dict, out_dir: Path, final_dir: Path) -> dict:
    """:func:`fit_linear_ace` writing into ``out_dir`` (the staging folder of ``final_dir``)."""
    start = time.perf_counter()
    binding = np.array(
        [(float(a.info[ENERGY_KEY]) - reference_energy_sum(a, settings["reference_energies"])) / len(a) for a in frames]
    )
    if np.max(np.abs(binding)) > 50.0:
        log.warning(
            f"|E - E0| reaches {np.max(np.abs(binding)):.1f} eV/atom; "
            "fit.reference_energies is probably not the isolated-atom energy of this DFT setup"
        )

    train_idx, test_idx = stratified_split(frames, settings["test_fraction"], settings["seed"])
    basis = build_basis(settings)
    log.info(
        f"linear ACE: {int(function_offsets(basis)[1].sum())} functions, {len(train_idx)} training / "
        f"{len(test_idx)} test configurations (stratified by cycle and pressure)"
    )
    refit = settings["refit_on_all_data"] and len(test_idx) > 0
    # the refit needs the rows of every configuration; otherwise the test set is predicted by pyace
    needed = np.arange(len(frames)) if refit else train_idx
    rows, cache_info = compute_features(
        [frames[i] for i in needed],
        settings,
        with_virials=settings["virial_weight"] > 0,
        cache_dir=settings["feature_cache"],
        n_jobs=settings["n_jobs"],
    )
    features: list[ConfigFeatures | None] = [None] * len(frames)
    for i, row in zip(needed, rows, strict=True):
        features[i] = row
    t_features = time.perf_counter() - start
    log.info(
        f"design rows: {cache_info['n_computed']} computed, {cache_info['n_cached']} from the cache, {t_features:.1f} s"
    )
    timings = {"design_rows": t_features}
    if not refit:
        return _fit_and_write(
            frames, features, train_idx, test_idx, settings, basis, out_dir, cache_info, timings, start
        )
    log.info(f"fit without the {len(test_idx)} test configurations -> {final_dir / SPLIT_DIR}")
    split_metrics = _fit_and_write(
        frames, features, train_idx, test_idx, settings, basis, out_dir / SPLIT_DIR, cache_info, timings, start
    )
    log.info(f"refit on all {len(frames)} configurations -> {final_dir}")
    everything = np.arange(len(frames))
    return _fit_and_write(
        frames,
        features,
        everything,
        np.array([], dtype=int),
        settings,
        basis,
        out_dir,
        cache_info,
        timings,
        start,
        split=(test_idx, split_metrics),
    )


def _fit_and_write(
    frames: list[Atoms],
    features: list,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    settings: dict,
    basis,
    out_dir: Path,
    cache_info: dict,
    timings: dict,
    start: float,
    split: tuple[np.ndarray, dict] | None = None,
) -> dict:
    """Fit on ``train_idx`` (rows in ``features``), calibrate, write the model and its metrics.

    ``split``: the test indices and metrics of the fit without them, reported
    as this (refitted) model's test metrics.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    offsets, counts = function_offsets(basis)
    n_functions = int(counts.sum())
    t_begin = time.perf_counter()
    weights = prior_weights(basis, settings)
    calibration = {"factor": 1.0, "n_configs": 0, "skipped": True}
    if settings["calibration_fraction"] > 0:
        calibration = _calibrate(features, frames, train_idx, settings, weights)
    fit = bayesian_ridge(_equations(features, frames, train_idx, settings), prior_weights=weights)
    raw_committee = _committee(fit, features, frames, train_idx, settings, settings["seed"], weights)
    committee = rescale_committee(fit.mean, raw_committee, calibration["factor"])
    if not (np.all(np.isfinite(fit.mean)) and np.all(np.isfinite(committee))):
        raise DataError(
            f"the regression gave non-finite coefficients (alpha {fit.alpha:g}, lambda {fit.lam:g}); "
            "no model was written. Check the training labels for extreme values and the fit weights"
        )
    t_fit = time.perf_counter() - t_begin
    log.info(
        f"Bayesian ridge: {fit.n_iter} iterations, {fit.effective_parameters:.0f} effective parameters; "
        f"committee ({settings['committee_method']}) in {t_fit:.1f} s"
    )

    # split off the fitted E0 corrections (one column per element after the ACE functions)
    elements = list(basis.elements_name)
    fitted_e0 = dict(settings["reference_energies"])
    onebody_deviation = np.zeros((committee.shape[0], len(elements)))
    if settings["fit_reference_energies"]:
        column = {e: n_functions + k for k, e in enumerate(settings["elements"])}
        for j, element in enumerate(elements):
            fitted_e0[element] += float(fit.mean[column[element]])
            onebody_deviation[:, j] = committee[:, column[element]] - fit.mean[column[element]]
        log.info(
            "fitted reference energies (eV): "
            + ", ".join(f"{e} {fitted_e0[e]:.4f} (given {settings['reference_energies'][e]:.4f})" for e in elements)
        )
    basis.basis_coeffs = fit.mean[:n_functions]
    basis.to_BBasisConfiguration().save(str(out_dir / POTENTIAL_FILE))
    np.savez(
        out_dir / COMMITTEE_FILE,
        coefficients=committee[:, :n_functions],
        mean=fit.mean[:n_functions],
        elements=np.array(elements),
        reference_energies=np.array([fitted_e0[e] for e in elements]),
        onebody_deviation=onebody_deviation,
        function_offsets=offsets,
        functions_per_element=counts,
        calibration_factor=np.array(calibration["factor"]),
    )

    model_info = {
        "model": "linear ACE, Bayesian ridge, calibrated committee",
        "settings": settings,
        "embedding": EMBEDDING,
        "radial_basis": {**RADIAL, "rcut": settings["cutoff"]},
        "body_order": len(settings["nradmax_by_orders"]) + 1,
        "n_functions": n_functions,
        "elements": elements,
        "reference_energies": fitted_e0,
        "reference_energies_given": settings["reference_energies"],
        "committee_size": settings["committee_size"],
        "committee_method": settings["committee_method"],
        "calibration": calibration,
        "bayesian_ridge": {
            "alpha": fit.alpha,
            "lambda": fit.lam,
            "n_iter": fit.n_iter,
            "effective_parameters": fit.effective_parameters,
        },
        "design_rows": cache_info,
        "timings_s": {**timings, "regression_and_committee": t_fit},
        "training_set": summarise_frames(frames),
        "train_indices": train_idx.tolist(),
        "test_indices": test_idx.tolist(),
    }
    if split is not None:
        model_info["refit_on_all_data"] = {"test_indices_of_split": split[0].tolist(), "split_model": SPLIT_DIR}
    return write_model_outputs(
        out_dir, frames, train_idx, test_idx, model_info, start, split_metrics=None if split is None else split[1]
    )
