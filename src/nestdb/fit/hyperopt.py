"""Bayesian hyperparameter optimisation of the linear-ACE fit (``fit.hyperopt``), with optuna.

Searched: the cutoff (a grid, ``fit.hyperopt.cutoffs``), the radial and
angular sizes per rank (``nradmax_by_orders``/``lmax_by_orders`` between the
``min_``/``max_`` lists), the energy and virial weights (relative to
``fit.force_weight``: the evidence-maximising regression is unchanged when all
weights are scaled together) and the smoothness prior (``smoothness_prior``,
``smoothness_l_weight``).  A key given as one number is fixed, a
``[low, high]`` pair is searched (weights on a log scale).

Objective (XPOT's weighted validation error, in the units of the fit's
metrics): ``loss = a_E RMSE_E + a_F RMSE_F + a_V RMSE_V`` with RMSE_E and
RMSE_V in meV/atom and RMSE_F in meV/Å, pooled over the held-out folds of a
stratified k-fold cross-validation (``cv_folds``, repeated ``cv_repeats``
times with fresh folds) of the configurations given, and ``a`` =
``fit.hyperopt.objective`` (default 1, 0.1, 0: 10 meV/Å of force error
weigh as much as 1 meV/atom of energy error).  With ``cost_objective`` the
number of basis functions (the cost of every NS energy call) is a second
objective and the study keeps the Pareto front (optuna multi-objective TPE;
it spends most trials on the cheap end of the front).  ``max_functions``
caps the basis size instead: larger trials are pruned unevaluated, so a
single-objective study finds the best settings within a cost budget.

Trials are cheap: :mod:`nestdb.fit.hyperopt_cv` fits from the normal
equations of the largest basis's design rows, computed once per cutoff
through the fit's feature cache.

Storage: an optuna ``JournalStorage`` file (``study.journal`` in the study
folder), written under a lock file (``O_EXCL`` open, for NFS v3+), so several
workers — separate SLURM jobs — can share one study, and a killed study
resumes with every finished trial.  A worker that restarts marks its own
trials left RUNNING by the killed run as FAIL and enqueues their parameters
again.  Results: :func:`summarise_study` picks the trial (``select``: ``best``
loss, the ``knee`` of the Pareto front, or the smallest basis ``within``
``tolerance`` of the best loss) and writes ``best.json`` (read by the fit
through :func:`apply_hyperopt_result`), ``trials.csv``, ``summary.md`` and
``pareto.png``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.errors import DataError
from nestdb.fit.dataset import ENERGY_KEY, FORCES_KEY
from nestdb.fit.features import basis_key, build_basis, compute_features, frame_key, load_cached_rows, store_cached_rows
from nestdb.fit.hyperopt_cv import CrossValidation, FunctionTable, stratified_folds
from nestdb.fit.hyperopt_report import (
    completed_trials,
    pareto_front,
    plot_pareto,
    select_trial,
    write_summary,
    write_trials_csv,
)
from nestdb.fit.settings import (
    FLOAT_KEYS,
    LOG_SCALE,
    validate_fit_settings,
    validate_hyperopt_settings,
)
from nestdb.io import write_json

_logger = logging.getLogger(__name__)

#: The fit settings a trial sets (written to best.json).
TUNED_FIT_KEYS = ("cutoff", "nradmax_by_orders", "lmax_by_orders", "number_of_functions_per_element", *FLOAT_KEYS)
#: Cross-validation results kept with each trial.
RESULT_KEYS = (
    "energy_rmse_mev_per_atom",
    "force_rmse_mev_per_a",
    "virial_rmse_mev_per_atom",
    "loss",
    "n_functions",
    "seconds",
)
#: A RUNNING trial without a worker (its process died between creating it and naming its worker) is
#: failed once it is this old: live workers name themselves within milliseconds.
ORPHAN_AGE_S = 600.0
JOURNAL_FILE = "study.journal"
BEST_FILE = "best.json"
TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "summary.md"
PARETO_FILE = "pareto.png"


def largest_basis_settings(fit_settings: dict, hyperopt: dict, cutoff: float) -> dict:
    """Fit settings of the largest basis at ``cutoff``: the rows every trial there takes its columns from."""
    return dict(
        fit_settings,
        cutoff=float(cutoff),
        nradmax_by_orders=list(hyperopt["max_nradmax_by_orders"]),
        lmax_by_orders=list(hyperopt["max_lmax_by_orders"]),
        number_of_functions_per_element=None,
    )


# --------------------------------------------------------------------------- search space
def suggest(trial, hyperopt: dict) -> dict:
    """The fit settings of one trial (``TUNED_FIT_KEYS``), drawn from the search space."""
    cutoffs = hyperopt["cutoffs"]
    changes: dict[str, Any] = {
        "cutoff": cutoffs[0] if len(cutoffs) == 1 else trial.suggest_categorical("cutoff", cutoffs)
    }
    sizes: dict[str, list[int]] = {}
    for kind in ("nradmax", "lmax"):
        ranges = zip(hyperopt[f"min_{kind}_by_orders"], hyperopt[f"max_{kind}_by_orders"], strict=True)
        sizes[kind] = [
            low if low == high else trial.suggest_int(f"{kind}_{rank + 1}", low, high)
            for rank, (low, high) in enumerate(ranges)
        ]
    # no rank with more radial functions than rank 1 (hyperopt_cv.check_radial_order); a clip keeps the
    # search space fixed for TPE
    sizes["nradmax"] = [sizes["nradmax"][0]] + [min(n, sizes["nradmax"][0]) for n in sizes["nradmax"][1:]]
    changes.update(
        nradmax_by_orders=sizes["nradmax"], lmax_by_orders=sizes["lmax"], number_of_functions_per_element=None
    )
    for key in FLOAT_KEYS:
        low, high = hyperopt[key]
        changes[key] = low if low == high else trial.suggest_float(key, low, high, log=key in LOG_SCALE)
    return changes


def trial_params(changes: dict, hyperopt: dict) -> dict | None:
    """optuna parameters that reproduce ``changes`` (for enqueueing), or None when outside the search space."""
    params: dict[str, Any] = {}
    if changes["cutoff"] not in hyperopt["cutoffs"]:
        return None
    if len(hyperopt["cutoffs"]) > 1:
        params["cutoff"] = changes["cutoff"]
    if len(changes["nradmax_by_orders"]) != len(hyperopt["max_nradmax_by_orders"]):
        return None
    if max(changes["nradmax_by_orders"]) > changes["nradmax_by_orders"][0]:
        return None
    for kind in ("nradmax", "lmax"):
        values = changes[f"{kind}_by_orders"]
        for rank, (value, low, high) in enumerate(
            zip(values, hyperopt[f"min_{kind}_by_orders"], hyperopt[f"max_{kind}_by_orders"], strict=True)
        ):
            if not low <= value <= high:
                return None
            if low != high:
                params[f"{kind}_{rank + 1}"] = int(value)
    for key in FLOAT_KEYS:
        low, high = hyperopt[key]
        if not low <= changes[key] <= high:
            return None
        if low != high:
            params[key] = float(changes[key])
    return params


def objective_value(errors: dict, weights: dict) -> float:
    """``a_E RMSE_E + a_F RMSE_F + a_V RMSE_V`` (meV units; a missing virial RMSE counts 0)."""
    return (
        weights["energy"] * errors["energy_rmse_mev_per_atom"]
        + weights["force"] * errors["force_rmse_mev_per_a"]
        + weights["virial"] * (errors["virial_rmse_mev_per_atom"] or 0.0)
    )


# --------------------------------------------------------------------------- the problem
class HyperoptProblem:
    """Cross-validations of one set of configurations, one per cutoff, built on first use.

    The design rows of the largest basis come from the fit's feature cache
    (:func:`nestdb.fit.features.compute_features`), computed there when missing.
    """

    def __init__(
        self, frames: list[Atoms], fit_settings: dict, hyperopt: dict, cache_dir: str | Path | None, n_jobs: int = 1
    ):
        self.frames, self.fit_settings, self.hyperopt = list(frames), fit_settings, hyperopt
        self.cache_dir, self.n_jobs = cache_dir, n_jobs
        self.folds = [
            stratified_folds(self.frames, hyperopt["cv_folds"], hyperopt["seed"] + 1000 * r)
            for r in range(hyperopt["cv_repeats"])
        ]
        self._cv: dict[float, CrossValidation] = {}

    def rows(self, cutoff: float):
        """Design rows of the largest basis at ``cutoff`` and its function table."""

        settings = largest_basis_settings(self.fit_settings, self.hyperopt, cutoff)
        rows, info = compute_features(
            self.frames, settings, with_virials=True, cache_dir=self.cache_dir, n_jobs=self.n_jobs
        )
        return rows, FunctionTable.from_basis(build_basis(settings)), info

    def cross_validation(self, cutoff: float) -> CrossValidation:
        if cutoff not in self._cv:
            start = time.perf_counter()
            rows, functions, info = self.rows(cutoff)
            self._cv[cutoff] = CrossValidation(self.frames, rows, functions, self.fit_settings, self.folds)
            _logger.info(
                f"hyperopt: cutoff {cutoff} Å, largest basis {functions.n_functions} functions: rows "
                f"{info['n_cached']} cached / {info['n_computed']} computed, normal equations of "
                f"{len(self.folds)} x {self.hyperopt['cv_folds']} folds in "
                f"{time.perf_counter() - start:.1f} s"
            )
        return self._cv[cutoff]

    def n_functions(self, changes: dict) -> int:
        """Number of basis functions of the fit settings ``changes``."""
        table = self.cross_validation(float(changes["cutoff"])).functions
        return int(table.mask(changes["nradmax_by_orders"], changes["lmax_by_orders"]).size)

    def evaluate(self, changes: dict) -> dict:
        """Cross-validated errors and loss of the fit settings ``changes`` (see :func:`suggest`)."""
        params = dict(self.fit_settings, **changes)
        errors = self.cross_validation(float(changes["cutoff"])).evaluate(params)
        errors["loss"] = objective_value(errors, self.hyperopt["objective"]) if errors["finite"] else float("nan")
        return errors


def study_name(frames: list[Atoms], fit_settings: dict, hyperopt: dict) -> str:
    """Name of the study of these configurations and settings: another data set or search is another study.

    Keys that only steer the run (trial count, workers, time-out, random start) or the
    final choice (``select``, ``tolerance``) are left out, so a study can be
    extended or re-summarised.
    """
    digest = hashlib.sha256()
    steering = {"enabled", "n_trials", "n_workers", "timeout_minutes", "select", "tolerance", "n_startup_trials"}
    fixed_fit = {
        k: fit_settings[k]
        for k in ("elements", "reference_energies", "fit_reference_energies", "force_weight", "use_sample_weights")
    }
    digest.update(
        json.dumps(
            [{k: v for k, v in hyperopt.items() if k not in steering}, fixed_fit], sort_keys=True, default=str
        ).encode()
    )
    for atoms in frames:
        for array in (
            atoms.numbers,
            atoms.positions,
            atoms.cell[:],
            [float(atoms.info[ENERGY_KEY])],
            atoms.arrays[FORCES_KEY],
        ):
            digest.update(np.ascontiguousarray(array, dtype=float).tobytes())
    return f"nestdb-hyperopt-{digest.hexdigest()[:16]}"


# --------------------------------------------------------------------------- the study
def open_study(study_dir: str | Path, name: str, hyperopt: dict, worker: int = 0):
    """Create or load the study ``name`` in ``study_dir``'s journal file (shared by every worker)."""
    # optional: optuna is installed for fit.hyperopt only
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(study_dir) / JOURNAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    # constant liar: parallel workers do not all sample next to the same running trial
    sampler = optuna.samplers.TPESampler(
        seed=hyperopt["seed"] + 7919 * worker,
        multivariate=True,
        constant_liar=True,
        n_startup_trials=hyperopt["n_startup_trials"],
    )
    directions = ["minimize", "minimize"] if hyperopt["cost_objective"] else ["minimize"]
    return optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, directions=directions, load_if_exists=True
    )


def _recover_stale_trials(study, worker: int) -> int:
    """Mark this worker's trials left RUNNING by a killed run as FAIL and enqueue their parameters again.

    Each worker index runs as one job at a time, so a RUNNING trial of this
    worker found at its start belongs to a run that died.
    """
    from optuna.trial import TrialState  # optional: optuna is installed for fit.hyperopt only

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    stale = [t for t in running if t.user_attrs.get("worker") == worker]
    for trial in running:  # no worker, no parameters yet: nothing to retry
        age = (datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
        if "worker" not in trial.user_attrs and age > ORPHAN_AGE_S:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    for trial in stale:
        # optuna's public API has no "fail this trial" outside the trial's own process
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        attrs = {"retry_of": trial.number, "fit_settings": bool(trial.user_attrs.get("fit_settings", False))}
        study.enqueue_trial(trial.params, user_attrs=attrs)
    if stale:
        _logger.info(
            f"hyperopt: worker {worker} resumed; trials {[t.number for t in stale]} of its killed run "
            "marked failed and enqueued again"
        )
    return len(stale)


def run_study(
    frames: list[Atoms],
    fit_settings: dict,
    hyperopt: dict | None,
    study_dir: str | Path,
    *,
    worker: int = 0,
    cache_dir: str | Path | None = None,
    n_jobs: int = 1,
) -> dict:
    """Run trials of the study of ``frames`` until it has ``n_trials`` complete ones (all workers together).

    Parameters
    ----------
    frames
        The configurations to cross-validate (for a cycle's fit: its training
        part only, so its test metrics stay unbiased).
    fit_settings
        The ``fit:`` settings (validated here); the fixed parts of every trial.
    hyperopt
        The ``fit.hyperopt`` settings.
    study_dir
        Folder of the study's journal file (created; shared by all workers).
    worker
        Index of this worker (one process per index at a time).
    cache_dir
        Feature cache for the rows of the largest basis (default: ``fit.feature_cache``).
    n_jobs
        Processes for rows missing from the cache.

    Returns
    -------
    dict
        ``study_name``, ``worker``, ``n_complete`` (whole study), ``n_run`` (trials this call finished),
        ``n_recovered`` and ``seconds``.
    """
    # optional: optuna is installed for fit.hyperopt only
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    start = time.perf_counter()
    fit_settings = validate_fit_settings(fit_settings)
    hyperopt = validate_hyperopt_settings(hyperopt if hyperopt is not None else fit_settings["hyperopt"], fit_settings)
    if not frames:
        raise DataError("fit.hyperopt got no configurations to cross-validate")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(frames, fit_settings, hyperopt)
    study = open_study(study_dir, name, hyperopt, worker)
    recovered = _recover_stale_trials(study, worker)
    if worker == 0 and hyperopt["enqueue_fit_settings"] and not study.trials:
        params = trial_params(dict(fit_settings, number_of_functions_per_element=None), hyperopt)
        if params is not None:  # the hand-tuned settings as trial 0: the study can only improve on them
            study.enqueue_trial(params, user_attrs={"fit_settings": True})
    problem = HyperoptProblem(frames, fit_settings, hyperopt, cache_dir or fit_settings["feature_cache"], n_jobs)
    finished = []

    def objective(trial):
        trial.set_user_attr("worker", worker)
        changes = suggest(trial, hyperopt)
        if hyperopt["max_functions"] is not None and problem.n_functions(changes) > hyperopt["max_functions"]:
            # over the size budget: pruned unevaluated (TPE ranks pruned trials below complete ones)
            raise optuna.TrialPruned(f"{problem.n_functions(changes)} functions > fit.hyperopt.max_functions")
        result = problem.evaluate(changes)
        # one journal record per trial for the results (every record is a locked append)
        trial.set_user_attr("result", {"settings": changes, **{key: result[key] for key in RESULT_KEYS}})
        finished.append(trial.number)
        _logger.info(
            f"trial {trial.number}: loss {result['loss']:.4g} (E {result['energy_rmse_mev_per_atom']:.3f} "
            f"meV/atom, F {result['force_rmse_mev_per_a']:.2f} meV/Å) with {result['n_functions']} functions, "
            f"cutoff {changes['cutoff']}, {result['seconds']:.1f} s"
        )
        return (result["loss"], result["n_functions"]) if hyperopt["cost_objective"] else result["loss"]

    def too_many_failures(study, trial):
        if (
            len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) > hyperopt["n_trials"]
            or len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))) > 20 * hyperopt["n_trials"]
        ):
            study.stop()

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < hyperopt["n_trials"]:
        timeout = None if hyperopt["timeout_minutes"] is None else 60.0 * hyperopt["timeout_minutes"]
        study.optimize(
            objective,
            timeout=timeout,
            gc_after_trial=False,
            callbacks=[MaxTrialsCallback(hyperopt["n_trials"], states=(TrialState.COMPLETE,)), too_many_failures],
        )
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    _logger.info(f"hyperopt: study {name} has {complete} complete trials ({len(finished)} run by worker {worker})")
    return {
        "study_name": name,
        "worker": worker,
        "n_complete": complete,
        "n_run": len(finished),
        "n_recovered": recovered,
        "seconds": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------- results
def summarise_study(frames: list[Atoms], fit_settings: dict, hyperopt: dict | None, study_dir: str | Path) -> dict:
    """Choose the trial and write ``best.json``, ``trials.csv``, ``summary.md`` and ``pareto.png``.

    Returns
    -------
    dict
        The content of ``best.json``: ``settings`` (the fit keys to apply),
        ``trial``, ``select``, the chosen trial's cross-validated errors, the
        best-loss trial, the trial of the config's own fit settings (if run)
        and the study's size.
    """

    fit_settings = validate_fit_settings(fit_settings)
    hyperopt = validate_hyperopt_settings(hyperopt if hyperopt is not None else fit_settings["hyperopt"], fit_settings)
    study_dir = Path(study_dir)
    name = study_name(frames, fit_settings, hyperopt)
    study = open_study(study_dir, name, hyperopt)
    records = completed_trials(study)
    chosen = select_trial(records, hyperopt["select"], hyperopt["tolerance"])
    best = min(records, key=lambda r: r["loss"])
    reference = next((r for r in records if r["fit_settings"]), None)
    result = {
        "settings": chosen["settings"],
        "trial": chosen["number"],
        "select": hyperopt["select"],
        "tolerance": hyperopt["tolerance"],
        "objective": hyperopt["objective"],
        "chosen": chosen,
        "best_loss": best,
        "fit_settings_trial": reference,
        "pareto_front": pareto_front(records),
        "n_complete": len(records),
        "n_trials": len(study.trials),
        "study_name": name,
        "cv": {"folds": hyperopt["cv_folds"], "repeats": hyperopt["cv_repeats"], "n_configs": len(frames)},
    }
    write_json(study_dir / BEST_FILE, result)
    write_trials_csv(records, study_dir / TRIALS_FILE)
    write_summary(result, records, study_dir / SUMMARY_FILE)
    plot_pareto(records, chosen, study_dir / PARETO_FILE, objective=hyperopt["objective"])
    _logger.info(
        f"hyperopt: trial {chosen['number']} chosen ({hyperopt['select']}): loss {chosen['loss']:.4g}, "
        f"{chosen['n_functions']} functions; best loss {best['loss']:.4g} with {best['n_functions']}"
    )
    return result


# --------------------------------------------------------------------------- feeding the fit
def apply_hyperopt_result(settings: dict, path: str | Path) -> dict:
    """``settings`` with the fit keys chosen by the study (``best.json`` of :func:`summarise_study`).

    Raises
    ------
    DataError
        When the file is missing, unreadable or lacks the settings.
    """
    path = Path(path)
    try:
        chosen = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: not a hyperparameter result with 'settings' ({exc}); rerun the fit_hyperopt rule"
        ) from None
    unknown = sorted(set(chosen) - set(TUNED_FIT_KEYS))
    if unknown:
        raise DataError(f"{path}: unexpected keys {unknown} in 'settings'")
    return dict(settings, **chosen)


def seed_feature_cache(
    frames: list[Atoms], fit_settings: dict, hyperopt: dict, chosen: dict, cache_dir: str | Path
) -> int:
    """Store the chosen basis's design rows in the feature cache, as columns of the largest basis's rows.

    The fit then reads them instead of computing them (the columns are the
    same numbers pyace computes for that basis; see :mod:`nestdb.fit.hyperopt_cv`).
    Only configurations whose largest-basis rows are cached are stored.

    Returns
    -------
    int
        The number of configurations whose rows of the chosen basis are now in the cache.
    """

    target = validate_fit_settings(dict(fit_settings, **chosen))
    source = largest_basis_settings(target, hyperopt, target["cutoff"])
    columns = FunctionTable.from_basis(build_basis(source)).columns_of(build_basis(target))
    source_key, target_key = basis_key(source), basis_key(target)
    source_dir, target_dir = Path(cache_dir) / source_key, Path(cache_dir) / target_key
    _check_columns(frames, target, source_dir / f"{frame_key(frames[0], source_key)}.npz", columns)
    target_dir.mkdir(parents=True, exist_ok=True)
    stored = present = 0
    for atoms in frames:
        destination = target_dir / f"{frame_key(atoms, target_key)}.npz"
        if destination.exists():  # e.g. the chosen basis is the largest one
            present += 1
            continue
        rows = load_cached_rows(source_dir / f"{frame_key(atoms, source_key)}.npz")
        if rows is None:
            continue
        rows.phi, rows.force_rows = rows.phi[columns], rows.force_rows[:, columns]
        if rows.virial_rows is not None:
            rows.virial_rows = rows.virial_rows[:, columns]
        store_cached_rows(destination, rows)
        stored += 1
    _logger.info(
        f"hyperopt: rows of the chosen basis ({columns.size} functions) stored for {stored} configurations "
        f"from the largest basis's rows ({present} were cached already)"
    )
    return stored + present


def _check_columns(frames: list[Atoms], target: dict, source_file: Path, columns: np.ndarray) -> None:
    """pyace's own rows of the first configuration for the chosen basis equal the columns taken (a guard)."""

    cached = load_cached_rows(source_file)
    if cached is None:
        return
    direct = compute_features(frames[:1], target, with_virials=False)[0][0]
    if not np.allclose(cached.force_rows[:, columns], direct.force_rows, rtol=1e-10, atol=1e-12):
        raise DataError(
            f"the rows of basis {target['nradmax_by_orders']}/{target['lmax_by_orders']} are not columns "
            "of the largest basis's rows; not seeding the feature cache"
        )
