"""Linear ACE fitted by Bayesian ridge regression, with a posterior committee.

The ACE basis is built with pyace from pacemaker-style settings
(``nradmax_by_orders``/``lmax_by_orders``) with a *linear* embedding
(``FinnisSinclairShiftedScaled``, ``fs_parameters: [1, 1]``, ``ndensity: 1``)
and no core repulsion, so the energy of a configuration is exactly

    E = sum_e N_e E0_e + Phi . c,       Phi_k = sum_atoms B_k(atom)

where ``B`` are the per-atom basis values (pyace "projections") and ``c`` the
coefficients.  Forces are linear in ``c`` too.  The least-squares rows are
(ACEpotentials.jl convention, which the study's 9:1 weights refer to)::

    energy row of config i:  w_E * s_i * (E_i - sum E0) / sqrt(N_i)  ~  w_E * s_i * Phi_i / sqrt(N_i)
    force rows (3 N_i):      w_F * s_i * F_i,a,x                   ~  w_F * s_i * dPhi/dx

with ``w_E = fit.energy_weight``, ``w_F = fit.force_weight`` and ``s_i`` the
configuration's ``info["weight"]`` when ``fit.use_sample_weights`` (else 1).
The weights scale residuals (not squared residuals).  Equivalently the energy
row is the per-atom energy times ``w_E * sqrt(N_i)``.

The regression is sklearn's ``BayesianRidge(fit_intercept=False)`` on
RMS-normalised columns; the committee are ``committee_size`` draws from the
Gaussian posterior ``N(coef_, sigma_)`` mapped back to raw coefficients.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.fit.dataset import (ENERGY_KEY, FORCES_KEY, LogLike, emit, frame_weight, split_train_test,
                                summarise_frames)

#: Defaults of the ``fit:`` section.  The default basis (body order 4,
#: nradmax_by_orders [8, 4, 2], lmax_by_orders [0, 3, 2]) has 74 functions
#: per element: it fits ~20 eight-atom configurations in about a second.
DEFAULT_FIT_SETTINGS: dict[str, Any] = {
    "elements": ["Mg"],
    "reference_energies": {"Mg": 0.0},
    "cutoff": 6.0,
    "nradmax_by_orders": [8, 4, 2],
    "lmax_by_orders": [0, 3, 2],
    "number_of_functions_per_element": None,
    "energy_weight": 9.0,
    "force_weight": 1.0,
    "use_sample_weights": False,
    "committee_size": 10,
    "test_fraction": 0.2,
    "seed": 0,
}

# Fixed parts of the basis: the linear embedding makes E linear in c; no core
# repulsion, so projections . c is the whole energy.
_EMBEDDING = {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}
_RADIAL = {"radbase": "SBessel", "radparameters": [5.25], "dcut": 0.01}

POTENTIAL_FILE = "potential.yaml"
COMMITTEE_FILE = "committee.npz"
MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
PARITY_FILE = "parity.png"


def _int_list(settings: dict, key: str) -> list[int]:
    value = settings[key]
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"fit.{key} must be a non-empty list of integers (one per rank), got {value!r}")
    return [int(v) for v in value]


def _number(settings: dict, key: str, minimum: float, *, strict: bool = False) -> float:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        raise ConfigError(f"fit.{key} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ConfigError(f"fit.{key} must be {relation} {minimum}, got {value!r}")
    return float(value)


def validate_fit_settings(settings: dict | None) -> dict:
    """Merge ``settings`` with :data:`DEFAULT_FIT_SETTINGS` and check every value.

    Raises
    ------
    ConfigError
        Naming the offending ``fit.<key>`` and what is expected.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_FIT_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown fit settings {['fit.' + k for k in unknown]}; "
                          f"accepted keys: {sorted(DEFAULT_FIT_SETTINGS)}")
    merged = {**DEFAULT_FIT_SETTINGS, **settings}

    elements = merged["elements"]
    if isinstance(elements, str):
        elements = [elements]
    if not isinstance(elements, (list, tuple)) or not elements:
        raise ConfigError(f"fit.elements must be a non-empty list of chemical symbols, got {elements!r}")
    from ase.data import atomic_numbers
    for symbol in elements:
        if symbol not in atomic_numbers:
            raise ConfigError(f"fit.elements: {symbol!r} is not a chemical symbol")
    merged["elements"] = sorted(set(elements))

    e0 = merged["reference_energies"]
    if not isinstance(e0, dict):
        raise ConfigError(f"fit.reference_energies must map element -> E0 in eV, got {e0!r}")
    for symbol in merged["elements"]:
        if symbol not in e0:
            raise ConfigError(f"fit.reference_energies has no E0 for element {symbol!r}; add "
                              f"'{symbol}: <isolated-atom energy in eV>' (e.g. Mg: -1688.821 for the study's CASTEP)")
        value = e0[symbol]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise ConfigError(f"fit.reference_energies.{symbol} must be a number (eV), got {value!r}")
    merged["reference_energies"] = {s: float(e0[s]) for s in merged["elements"]}

    merged["cutoff"] = _number(merged, "cutoff", 0.0, strict=True)
    nradmax = _int_list(merged, "nradmax_by_orders")
    lmax = _int_list(merged, "lmax_by_orders")
    if len(nradmax) != len(lmax):
        raise ConfigError(f"fit.nradmax_by_orders ({nradmax}) and fit.lmax_by_orders ({lmax}) need one entry "
                          "per rank (body order - 1) each")
    if len(nradmax) > 5:
        raise ConfigError(f"fit.nradmax_by_orders has {len(nradmax)} ranks: body order > 6 is not supported")
    if min(nradmax) < 1 or min(lmax) < 0 or lmax[0] != 0:
        raise ConfigError("fit.nradmax_by_orders entries must be >= 1 and fit.lmax_by_orders entries >= 0 "
                          f"with 0 for rank 1; got {nradmax} and {lmax}")
    merged["nradmax_by_orders"], merged["lmax_by_orders"] = nradmax, lmax
    if merged["number_of_functions_per_element"] is not None:
        merged["number_of_functions_per_element"] = int(
            _number(merged, "number_of_functions_per_element", 1))

    merged["energy_weight"] = _number(merged, "energy_weight", 0.0)
    merged["force_weight"] = _number(merged, "force_weight", 0.0)
    if merged["energy_weight"] == 0 and merged["force_weight"] == 0:
        raise ConfigError("fit.energy_weight and fit.force_weight are both 0: nothing to fit")
    if not isinstance(merged["use_sample_weights"], bool):
        raise ConfigError(f"fit.use_sample_weights must be true or false, got {merged['use_sample_weights']!r}")
    committee_size = merged["committee_size"]
    if isinstance(committee_size, bool) or not isinstance(committee_size, (int, np.integer)) or committee_size < 2:
        raise ConfigError(f"fit.committee_size must be an integer >= 2, got {committee_size!r}")
    merged["committee_size"] = int(committee_size)
    test_fraction = _number(merged, "test_fraction", 0.0)
    if test_fraction >= 1:
        raise ConfigError(f"fit.test_fraction must be in [0, 1), got {test_fraction}")
    merged["test_fraction"] = test_fraction
    seed = merged["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"fit.seed must be a non-negative integer, got {seed!r}")
    merged["seed"] = int(seed)
    return merged


def build_basis(settings: dict):
    """pyace ``ACEBBasisSet`` (all coefficients zero) for validated fit settings."""
    from pyace import ACEBBasisSet
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    functions: dict[str, Any] = {"ALL": {"nradmax_by_orders": settings["nradmax_by_orders"],
                                         "lmax_by_orders": settings["lmax_by_orders"]}}
    if settings["number_of_functions_per_element"] is not None:
        functions["number_of_functions_per_element"] = settings["number_of_functions_per_element"]
    potential_config = {
        "deltaSplineBins": 0.001,
        "elements": list(settings["elements"]),
        "embeddings": {"ALL": dict(_EMBEDDING)},
        "bonds": {"ALL": {**_RADIAL, "rcut": settings["cutoff"]}},
        "functions": functions,
    }
    try:
        config = create_multispecies_basis_config(potential_config)
    except Exception as exc:  # pyace validates the basis and raises plain errors
        raise ConfigError(f"pyace rejected the basis from fit.nradmax_by_orders/lmax_by_orders: {exc}") from exc
    return ACEBBasisSet(config)


def function_offsets(basis) -> tuple[np.ndarray, np.ndarray]:
    """Start index and count of each element's functions in the coefficient vector.

    pyace orders coefficients element by element (element index order), rank-1
    functions first; per-atom projections follow the same order.
    """
    counts = np.array([len(r1) + len(r) for r1, r in zip(basis.basis_rank1, basis.basis)], dtype=int)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
    return offsets, counts


def _species_indices(atoms: Atoms, element_index: dict[str, int], where: str) -> np.ndarray:
    try:
        return np.array([element_index[s] for s in atoms.get_chemical_symbols()], dtype=int)
    except KeyError as exc:
        raise ConfigError(f"{where} contains element {exc.args[0]!r}, which is not in fit.elements "
                          f"{sorted(element_index)}; add it there and to fit.reference_energies") from None


def reference_energy_sum(atoms: Atoms, reference_energies: dict[str, float]) -> float:
    """Sum of the isolated-atom energies E0 over the atoms of a configuration."""
    return float(sum(reference_energies[s] for s in atoms.get_chemical_symbols()))


def basis_features(basis, frames: list[Atoms], with_forces: bool = True):
    """Per-configuration summed projections and force derivatives.

    Returns
    -------
    phi : ndarray, shape (n_configs, n_functions)
        ``sum_atoms B_k``: the total-energy design row (without E0).
    force_rows : list of ndarray, shape (3 n_atoms, n_functions)
        ``dF_{a,x}/dc_k`` in atom-major (x, y, z) order; empty if not requested.
    """
    from pyace import ACEBEvaluator, ACECalculator
    from pyace.atomicenvironment import aseatoms_to_atomicenvironment

    evaluator = ACEBEvaluator(basis)
    calculator = ACECalculator(evaluator)
    offsets, counts = function_offsets(basis)
    n_functions = int(counts.sum())
    element_index = dict(basis.elements_to_index_map)
    phi = np.zeros((len(frames), n_functions))
    force_rows: list[np.ndarray] = []
    for i, atoms in enumerate(frames):
        where = f"configuration {i} ({atoms.info.get('source_file', 'in memory')})"
        species = _species_indices(atoms, element_index, where)
        env = aseatoms_to_atomicenvironment(atoms, cutoff=basis.cutoffmax, elements_mapper_dict=element_index)
        calculator.compute(env, compute_projections=True, compute_b_grad=with_forces)
        for atom, projection in zip(species, calculator.projections):
            start = offsets[atom]
            phi[i, start:start + counts[atom]] += projection
        if with_forces:
            grads = np.asarray(calculator.forces_bfuncs)  # (n_atoms, n_functions, 3)
            force_rows.append(grads.transpose(0, 2, 1).reshape(3 * len(atoms), n_functions))
    return phi, force_rows


def _design(phi, force_rows, frames, settings):
    """Weighted design matrix and targets (see the module docstring for the rows)."""
    e0 = settings["reference_energies"]
    rows, targets = [], []
    for i, atoms in enumerate(frames):
        n_atoms = len(atoms)
        scale = frame_weight(atoms) if settings["use_sample_weights"] else 1.0
        w_energy = settings["energy_weight"] * scale / np.sqrt(n_atoms)
        w_force = settings["force_weight"] * scale
        binding = float(atoms.info[ENERGY_KEY]) - reference_energy_sum(atoms, e0)
        rows.append(w_energy * phi[i][None, :])
        targets.append([w_energy * binding])
        rows.append(w_force * force_rows[i])
        targets.append(w_force * np.asarray(atoms.arrays[FORCES_KEY], dtype=float).reshape(-1))
    return np.vstack(rows), np.concatenate(targets)


def _sample_posterior(mean: np.ndarray, covariance: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Draws from N(mean, covariance); tiny negative eigenvalues (round-off) are clipped."""
    covariance = 0.5 * (covariance + covariance.T)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    normal = np.random.default_rng(seed).standard_normal((size, mean.size))
    return mean[None, :] + normal @ root.T


def fit_bayesian_committee(design: np.ndarray, target: np.ndarray, committee_size: int,
                           seed: int) -> dict[str, Any]:
    """Bayesian ridge fit and posterior committee in raw coefficient units.

    Columns are divided by their RMS before the fit so the isotropic prior
    treats functions of very different magnitude alike; unused (all-zero)
    columns keep scale 1 and end with coefficient 0.

    Returns
    -------
    dict
        ``mean`` (n_functions,), ``committee`` (committee_size, n_functions),
        ``alpha`` (noise precision), ``lambda`` (weight precision), ``n_iter``.
    """
    from sklearn.linear_model import BayesianRidge

    column_scale = np.sqrt(np.mean(design ** 2, axis=0))
    column_scale[column_scale == 0] = 1.0
    model = BayesianRidge(fit_intercept=False, max_iter=1000, tol=1e-6)
    model.fit(design / column_scale, target)
    draws = _sample_posterior(model.coef_, model.sigma_, committee_size, seed)
    return {
        "mean": model.coef_ / column_scale,
        "committee": draws / column_scale[None, :],
        "alpha": float(model.alpha_),
        "lambda": float(model.lambda_),
        "n_iter": int(getattr(model, "n_iter_", -1)),
    }


def _check_elements(frames: list[Atoms], settings: dict) -> None:
    allowed = set(settings["elements"])
    for i, atoms in enumerate(frames):
        extra = set(atoms.get_chemical_symbols()) - allowed
        if extra:
            source = atoms.info.get("source_file", "in-memory frames")
            raise ConfigError(f"configuration {i} ({source}) contains {sorted(extra)}, not in fit.elements "
                              f"{sorted(allowed)}; add them to fit.elements and fit.reference_energies")


def fit_linear_ace(frames: list[Atoms], settings: dict, out_dir: str | Path, log: LogLike = None) -> dict:
    """Fit a linear ACE potential and its Bayesian committee; write the model.

    Parameters
    ----------
    frames
        Labelled configurations (see :func:`nestdb.fit.dataset.load_training_frames`).
    settings
        The ``fit:`` section of the workflow config; see :data:`DEFAULT_FIT_SETTINGS`.
    out_dir
        Folder that receives ``potential.yaml`` (mean model, loadable by
        ``pyace.PyACECalculator``; energies there exclude E0),
        ``committee.npz``, ``model.json``, ``metrics.json`` and ``parity.png``.
    log
        Logger or print-like callable for progress messages.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.

    Raises
    ------
    ConfigError
        Bad settings, or an element without ``fit.elements``/``fit.reference_energies`` entry.
    DataError
        Empty training set or configurations without labels.
    """
    from nestdb.fit.committee import predict_frames
    from nestdb.fit.dataset import check_frame
    from nestdb.fit.metrics import error_metrics, plot_parity

    settings = validate_fit_settings(settings)
    frames = list(frames)
    if not frames:
        raise DataError("fit_linear_ace got an empty training set; check the labelled database files")
    for i, atoms in enumerate(frames):
        check_frame(atoms, str(atoms.info.get("source_file", "in-memory frames")),
                    int(atoms.info.get("source_index", i)))
    _check_elements(frames, settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    binding = np.array([(float(a.info[ENERGY_KEY]) - reference_energy_sum(a, settings["reference_energies"]))
                        / len(a) for a in frames])
    if np.max(np.abs(binding)) > 50.0:
        emit(log, f"warning: |E - E0| reaches {np.max(np.abs(binding)):.1f} eV/atom; "
                  "fit.reference_energies is probably not the isolated-atom energy of this DFT setup")

    train_idx, test_idx = split_train_test(len(frames), settings["test_fraction"], settings["seed"])
    train = [frames[i] for i in train_idx]
    test = [frames[i] for i in test_idx]

    basis = build_basis(settings)
    offsets, counts = function_offsets(basis)
    n_functions = int(counts.sum())
    emit(log, f"linear ACE: {n_functions} functions, {len(train)} training / {len(test)} test configurations")
    phi, force_rows = basis_features(basis, train)
    design, target = _design(phi, force_rows, train, settings)
    t_design = time.perf_counter() - start
    fit = fit_bayesian_committee(design, target, settings["committee_size"], settings["seed"])
    t_fit = time.perf_counter() - start
    emit(log, f"design matrix {design.shape} in {t_design:.1f} s; Bayesian ridge done at {t_fit:.1f} s")

    basis.basis_coeffs = fit["mean"]
    basis.to_BBasisConfiguration().save(str(out_dir / POTENTIAL_FILE))
    elements = list(basis.elements_name)
    np.savez(out_dir / COMMITTEE_FILE,
             coefficients=fit["committee"], mean=fit["mean"], elements=np.array(elements),
             reference_energies=np.array([settings["reference_energies"][e] for e in elements]),
             function_offsets=offsets, functions_per_element=counts)

    train_prediction = predict_frames(out_dir, train)
    metrics: dict[str, Any] = {"train": error_metrics(train, train_prediction)}
    test_prediction = None
    if test:
        test_prediction = predict_frames(out_dir, test)
        metrics["test"] = error_metrics(test, test_prediction)
    metrics["n_functions"] = n_functions
    metrics["fit_wall_time_s"] = time.perf_counter() - start
    plot_parity(train, train_prediction, test, test_prediction, out_dir / PARITY_FILE,
                settings["reference_energies"])

    model_info = {
        "model": "linear ACE, Bayesian ridge committee",
        "settings": settings,
        "embedding": _EMBEDDING,
        "radial_basis": {**_RADIAL, "rcut": settings["cutoff"]},
        "body_order": len(settings["nradmax_by_orders"]) + 1,
        "n_functions": n_functions,
        "elements": elements,
        "reference_energies": settings["reference_energies"],
        "committee_size": settings["committee_size"],
        "bayesian_ridge": {"alpha": fit["alpha"], "lambda": fit["lambda"], "n_iter": fit["n_iter"]},
        "design_matrix_shape": list(design.shape),
        "training_set": summarise_frames(frames),
        "train_indices": train_idx.tolist(),
        "test_indices": test_idx.tolist(),
        "metrics": metrics,
    }
    (out_dir / MODEL_FILE).write_text(json.dumps(model_info, indent=2, default=_json_default))
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=_json_default))
    summary = f"train E RMSE {metrics['train']['energy_rmse_mev_per_atom']:.2f} meV/atom, " \
              f"F RMSE {metrics['train']['force_rmse_mev_per_a']:.1f} meV/A"
    if test:
        summary += f"; test E RMSE {metrics['test']['energy_rmse_mev_per_atom']:.2f} meV/atom, " \
                   f"F RMSE {metrics['test']['force_rmse_mev_per_a']:.1f} meV/A"
    emit(log, f"fit done in {metrics['fit_wall_time_s']:.1f} s: {summary}")
    return metrics


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
