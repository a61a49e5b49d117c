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
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.fit.dataset import ENERGY_KEY, FORCES_KEY, LogLike, emit
from nestdb.fit.hyperopt_cv import CrossValidation, FunctionTable, check_radial_order, stratified_folds
from nestdb.fit.hyperopt_report import (
    FLOAT_KEYS,
    completed_trials,
    pareto_front,
    plot_pareto,
    select_trial,
    write_summary,
    write_trials_csv,
)
from nestdb.fit.settings import check_flags, merged_with_defaults

#: Defaults of ``fit.hyperopt`` (config/README.md describes every key).
DEFAULT_HYPEROPT_SETTINGS: dict[str, Any] = {
    "enabled": False,
    "n_trials": 100,
    "n_workers": 1,
    "timeout_minutes": None,
    "cutoffs": None,                 # None: [fit.cutoff]
    "max_nradmax_by_orders": None,   # None: fit.nradmax_by_orders (the largest basis; rows once per cutoff)
    "max_lmax_by_orders": None,      # None: fit.lmax_by_orders
    "min_nradmax_by_orders": None,   # None: 1 per rank
    "min_lmax_by_orders": None,      # None: 0 per rank
    "energy_weight": [1.0, 100.0],
    "virial_weight": [0.01, 3.0],
    "smoothness_prior": [0.0, 5.0],
    "smoothness_l_weight": [0.5, 4.0],
    "objective": {"energy": 1.0, "force": 0.1, "virial": 0.0},
    "cost_objective": True,
    "max_functions": None,
    "select": "within",
    "tolerance": 0.02,
    "cv_folds": 5,
    "cv_repeats": 1,
    "n_startup_trials": 10,
    "enqueue_fit_settings": True,
    "seed": 0,
}
SELECT_RULES = ("best", "knee", "within")
LOG_SCALE = ("energy_weight", "virial_weight")
#: The fit settings a trial sets (written to best.json).
TUNED_FIT_KEYS = ("cutoff", "nradmax_by_orders", "lmax_by_orders", "number_of_functions_per_element",
                  *FLOAT_KEYS)
#: Cross-validation results kept with each trial.
RESULT_KEYS = ("energy_rmse_mev_per_atom", "force_rmse_mev_per_a", "virial_rmse_mev_per_atom", "loss",
               "n_functions", "seconds")
#: A RUNNING trial without a worker (its process died between creating it and naming its worker) is
#: failed once it is this old: live workers name themselves within milliseconds.
ORPHAN_AGE_S = 600.0
JOURNAL_FILE = "study.journal"
BEST_FILE = "best.json"
TRIALS_FILE = "trials.csv"
SUMMARY_FILE = "summary.md"
PARETO_FILE = "pareto.png"


# --------------------------------------------------------------------------- settings
def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"fit.hyperopt.{key} {message}")


def _integer(settings: dict, key: str, minimum: int) -> int:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _fail(key, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive_number(value: Any, key: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) \
            or value < minimum:
        raise _fail(key, f"must be a number >= {minimum}, got {value!r}")
    return float(value)


def _int_list(value: Any, key: str, ranks: int, minimum: int) -> list[int]:
    if (not isinstance(value, (list, tuple)) or len(value) != ranks
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in value)):
        raise _fail(key, f"must be a list of {ranks} integers >= {minimum} (one per rank, as "
                         f"fit.nradmax_by_orders), got {value!r}")
    return [int(v) for v in value]


def validate_hyperopt_settings(settings: dict | None, fit_settings: dict | None = None) -> dict:
    """Merge ``fit.hyperopt`` with :data:`DEFAULT_HYPEROPT_SETTINGS` and check every value.

    Parameters
    ----------
    settings
        The ``fit.hyperopt`` section.
    fit_settings
        The validated ``fit:`` settings; when given, the defaults that follow
        the fit (cutoff grid, largest basis) are filled in and the basis
        sizes are checked against each other.

    Raises
    ------
    ConfigError
        Naming the offending ``fit.hyperopt.<key>``.
    """
    merged = merged_with_defaults(settings, DEFAULT_HYPEROPT_SETTINGS, "fit.hyperopt")
    check_flags(merged, ("enabled", "cost_objective", "enqueue_fit_settings"), "fit.hyperopt")
    for key, minimum in (("n_trials", 1), ("n_workers", 1), ("cv_folds", 2), ("cv_repeats", 1),
                         ("n_startup_trials", 0), ("seed", 0)):
        merged[key] = _integer(merged, key, minimum)
    if merged["timeout_minutes"] is not None:
        merged["timeout_minutes"] = _positive_number(merged["timeout_minutes"], "timeout_minutes")
    if merged["max_functions"] is not None:
        merged["max_functions"] = _integer(merged, "max_functions", 1)
    for key in FLOAT_KEYS:
        value = merged[key]
        pair = list(value) if isinstance(value, (list, tuple)) else [value, value]
        if len(pair) != 2:
            raise _fail(key, f"must be a number (fixed) or a [low, high] range, got {value!r}")
        low, high = (_positive_number(v, key) for v in pair)
        if low > high or (key in LOG_SCALE and low == 0 < high):
            raise _fail(key, f"range {value!r} needs low <= high" + (" and low > 0 (log scale)"
                                                                     if key in LOG_SCALE else ""))
        merged[key] = [low, high]
    objective = merged["objective"]
    if not isinstance(objective, dict) or set(objective) - {"energy", "force", "virial"}:
        raise _fail("objective", f"must map energy/force/virial to weights, got {objective!r}")
    objective = {k: _positive_number(objective.get(k, 0.0), f"objective.{k}") for k in ("energy", "force", "virial")}
    if sum(objective.values()) == 0:
        raise _fail("objective", "has all weights 0: nothing to minimise")
    merged["objective"] = objective
    if merged["select"] not in SELECT_RULES:
        raise _fail("select", f"must be one of {list(SELECT_RULES)}, got {merged['select']!r}")
    merged["tolerance"] = _positive_number(merged["tolerance"], "tolerance")
    if fit_settings is not None:
        _fill_from_fit(merged, fit_settings)
    return merged


def _fill_from_fit(merged: dict, fit: dict) -> None:
    """Defaults that follow the fit settings, and the basis-size lists checked against each other."""
    cutoffs = merged["cutoffs"] if merged["cutoffs"] is not None else [fit["cutoff"]]
    if isinstance(cutoffs, (int, float)) and not isinstance(cutoffs, bool):
        cutoffs = [cutoffs]
    if not isinstance(cutoffs, (list, tuple)) or not cutoffs:
        raise _fail("cutoffs", f"must be a non-empty list of cutoffs (Å), got {cutoffs!r}")
    merged["cutoffs"] = sorted({_positive_number(c, "cutoffs", 1e-9) for c in cutoffs})
    ranks = len(fit["nradmax_by_orders"])
    max_n = _int_list(merged["max_nradmax_by_orders"] or fit["nradmax_by_orders"], "max_nradmax_by_orders", ranks, 1)
    max_l = _int_list(merged["max_lmax_by_orders"] or fit["lmax_by_orders"], "max_lmax_by_orders", ranks, 0)
    min_n = _int_list(merged["min_nradmax_by_orders"] or [1] * ranks, "min_nradmax_by_orders", ranks, 1)
    min_l = _int_list(merged["min_lmax_by_orders"] or [0] * ranks, "min_lmax_by_orders", ranks, 0)
    check_radial_order(max_n, "fit.hyperopt.max_nradmax_by_orders (default: fit.nradmax_by_orders)")
    if max_l[0] != 0 or min_l[0] != 0:
        raise _fail("max_lmax_by_orders", f"must start with 0 (rank 1 has l = 0 only), got {max_l} / {min_l}")
    for low, high, name in ((min_n, max_n, "nradmax_by_orders"), (min_l, max_l, "lmax_by_orders")):
        if any(lo > hi for lo, hi in zip(low, high, strict=True)):
            raise _fail(f"min_{name}", f"{low} exceeds fit.hyperopt.max_{name} {high} for some rank")
    merged.update(max_nradmax_by_orders=max_n, max_lmax_by_orders=max_l, min_nradmax_by_orders=min_n,
                  min_lmax_by_orders=min_l)


def largest_basis_settings(fit_settings: dict, hyperopt: dict, cutoff: float) -> dict:
    """Fit settings of the largest basis at ``cutoff``: the rows every trial there takes its columns from."""
    return dict(fit_settings, cutoff=float(cutoff), nradmax_by_orders=list(hyperopt["max_nradmax_by_orders"]),
                lmax_by_orders=list(hyperopt["max_lmax_by_orders"]), number_of_functions_per_element=None)


# --------------------------------------------------------------------------- search space
def suggest(trial, hyperopt: dict) -> dict:
    """The fit settings of one trial (``TUNED_FIT_KEYS``), drawn from the search space."""
    cutoffs = hyperopt["cutoffs"]
    changes: dict[str, Any] = {"cutoff": cutoffs[0] if len(cutoffs) == 1 else trial.suggest_categorical("cutoff",
                                                                                                       cutoffs)}
    sizes: dict[str, list[int]] = {}
    for kind in ("nradmax", "lmax"):
        ranges = zip(hyperopt[f"min_{kind}_by_orders"], hyperopt[f"max_{kind}_by_orders"], strict=True)
        sizes[kind] = [low if low == high else trial.suggest_int(f"{kind}_{rank + 1}", low, high)
                       for rank, (low, high) in enumerate(ranges)]
    # no rank with more radial functions than rank 1 (hyperopt_cv.check_radial_order); a clip keeps the
    # search space fixed for TPE
    sizes["nradmax"] = [sizes["nradmax"][0]] + [min(n, sizes["nradmax"][0]) for n in sizes["nradmax"][1:]]
    changes.update(nradmax_by_orders=sizes["nradmax"], lmax_by_orders=sizes["lmax"],
                   number_of_functions_per_element=None)
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
        for rank, (value, low, high) in enumerate(zip(values, hyperopt[f"min_{kind}_by_orders"],
                                                      hyperopt[f"max_{kind}_by_orders"], strict=True)):
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
    return (weights["energy"] * errors["energy_rmse_mev_per_atom"] + weights["force"] * errors["force_rmse_mev_per_a"]
            + weights["virial"] * (errors["virial_rmse_mev_per_atom"] or 0.0))


# --------------------------------------------------------------------------- the problem
class HyperoptProblem:
    """Cross-validations of one set of configurations, one per cutoff, built on first use.

    The design rows of the largest basis come from the fit's feature cache
    (:func:`nestdb.fit.features.compute_features`), computed there when missing.
    """

    def __init__(self, frames: list[Atoms], fit_settings: dict, hyperopt: dict, cache_dir: str | Path | None,
                 n_jobs: int = 1, log: LogLike = None):
        self.frames, self.fit_settings, self.hyperopt = list(frames), fit_settings, hyperopt
        self.cache_dir, self.n_jobs, self.log = cache_dir, n_jobs, log
        self.folds = [stratified_folds(self.frames, hyperopt["cv_folds"], hyperopt["seed"] + 1000 * r)
                      for r in range(hyperopt["cv_repeats"])]
        self._cv: dict[float, CrossValidation] = {}

    def rows(self, cutoff: float):
        """Design rows of the largest basis at ``cutoff`` and its function table."""
        from nestdb.fit.features import build_basis, compute_features

        settings = largest_basis_settings(self.fit_settings, self.hyperopt, cutoff)
        rows, info = compute_features(self.frames, settings, with_virials=True, cache_dir=self.cache_dir,
                                      n_jobs=self.n_jobs)
        return rows, FunctionTable.from_basis(build_basis(settings)), info

    def cross_validation(self, cutoff: float) -> CrossValidation:
        if cutoff not in self._cv:
            start = time.perf_counter()
            rows, functions, info = self.rows(cutoff)
            self._cv[cutoff] = CrossValidation(self.frames, rows, functions, self.fit_settings, self.folds)
            emit(self.log, f"hyperopt: cutoff {cutoff} Å, largest basis {functions.n_functions} functions: rows "
                           f"{info['n_cached']} cached / {info['n_computed']} computed, normal equations of "
                           f"{len(self.folds)} x {self.hyperopt['cv_folds']} folds in "
                           f"{time.perf_counter() - start:.1f} s")
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
    fixed_fit = {k: fit_settings[k] for k in ("elements", "reference_energies", "fit_reference_energies",
                                               "force_weight", "use_sample_weights")}
    digest.update(json.dumps([{k: v for k, v in hyperopt.items() if k not in steering}, fixed_fit],
                             sort_keys=True, default=str).encode())
    for atoms in frames:
        for array in (atoms.numbers, atoms.positions, atoms.cell[:], [float(atoms.info[ENERGY_KEY])],
                      atoms.arrays[FORCES_KEY]):
            digest.update(np.ascontiguousarray(array, dtype=float).tobytes())
    return f"nestdb-hyperopt-{digest.hexdigest()[:16]}"


# --------------------------------------------------------------------------- the study
def open_study(study_dir: str | Path, name: str, hyperopt: dict, worker: int = 0):
    """Create or load the study ``name`` in ``study_dir``'s journal file (shared by every worker)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(study_dir) / JOURNAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    # constant liar: parallel workers do not all sample next to the same running trial
    sampler = optuna.samplers.TPESampler(seed=hyperopt["seed"] + 7919 * worker, multivariate=True,
                                         constant_liar=True, n_startup_trials=hyperopt["n_startup_trials"])
    directions = ["minimize", "minimize"] if hyperopt["cost_objective"] else ["minimize"]
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=directions,
                               load_if_exists=True)


def _recover_stale_trials(study, worker: int, log: LogLike) -> int:
    """Mark this worker's trials left RUNNING by a killed run as FAIL and enqueue their parameters again.

    Each worker index runs as one job at a time, so a RUNNING trial of this
    worker found at its start belongs to a run that died.
    """
    from datetime import datetime

    from optuna.trial import TrialState

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
        emit(log, f"hyperopt: worker {worker} resumed; trials {[t.number for t in stale]} of its killed run "
                  "marked failed and enqueued again")
    return len(stale)


def run_study(frames: list[Atoms], fit_settings: dict, hyperopt: dict | None, study_dir: str | Path, *,
              worker: int = 0, cache_dir: str | Path | None = None, n_jobs: int = 1, log: LogLike = None) -> dict:
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
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from nestdb.fit.settings import validate_fit_settings

    start = time.perf_counter()
    fit_settings = validate_fit_settings(fit_settings)
    hyperopt = validate_hyperopt_settings(hyperopt if hyperopt is not None else fit_settings["hyperopt"],
                                          fit_settings)
    if not frames:
        raise DataError("fit.hyperopt got no configurations to cross-validate")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(frames, fit_settings, hyperopt)
    study = open_study(study_dir, name, hyperopt, worker)
    recovered = _recover_stale_trials(study, worker, log)
    if worker == 0 and hyperopt["enqueue_fit_settings"] and not study.trials:
        params = trial_params(dict(fit_settings, number_of_functions_per_element=None), hyperopt)
        if params is not None:  # the hand-tuned settings as trial 0: the study can only improve on them
            study.enqueue_trial(params, user_attrs={"fit_settings": True})
    problem = HyperoptProblem(frames, fit_settings, hyperopt, cache_dir or fit_settings["feature_cache"],
                              n_jobs, log)
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
        emit(log, f"trial {trial.number}: loss {result['loss']:.4g} (E {result['energy_rmse_mev_per_atom']:.3f} "
                  f"meV/atom, F {result['force_rmse_mev_per_a']:.2f} meV/Å) with {result['n_functions']} functions, "
                  f"cutoff {changes['cutoff']}, {result['seconds']:.1f} s")
        return (result["loss"], result["n_functions"]) if hyperopt["cost_objective"] else result["loss"]

    def too_many_failures(study, trial):
        if (len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) > hyperopt["n_trials"]
                or len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))) > 20 * hyperopt["n_trials"]):
            study.stop()

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < hyperopt["n_trials"]:
        timeout = None if hyperopt["timeout_minutes"] is None else 60.0 * hyperopt["timeout_minutes"]
        study.optimize(objective, timeout=timeout, gc_after_trial=False,
                       callbacks=[MaxTrialsCallback(hyperopt["n_trials"], states=(TrialState.COMPLETE,)),
                                  too_many_failures])
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    emit(log, f"hyperopt: study {name} has {complete} complete trials ({len(finished)} run by worker {worker})")
    return {"study_name": name, "worker": worker, "n_complete": complete, "n_run": len(finished),
            "n_recovered": recovered, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------- results
def summarise_study(frames: list[Atoms], fit_settings: dict, hyperopt: dict | None, study_dir: str | Path,
                    log: LogLike = None) -> dict:
    """Choose the trial and write ``best.json``, ``trials.csv``, ``summary.md`` and ``pareto.png``.

    Returns
    -------
    dict
        The content of ``best.json``: ``settings`` (the fit keys to apply),
        ``trial``, ``select``, the chosen trial's cross-validated errors, the
        best-loss trial, the trial of the config's own fit settings (if run)
        and the study's size.
    """
    from nestdb.fit.settings import validate_fit_settings

    fit_settings = validate_fit_settings(fit_settings)
    hyperopt = validate_hyperopt_settings(hyperopt if hyperopt is not None else fit_settings["hyperopt"],
                                          fit_settings)
    study_dir = Path(study_dir)
    name = study_name(frames, fit_settings, hyperopt)
    study = open_study(study_dir, name, hyperopt)
    records = completed_trials(study)
    chosen = select_trial(records, hyperopt["select"], hyperopt["tolerance"])
    best = min(records, key=lambda r: r["loss"])
    reference = next((r for r in records if r["fit_settings"]), None)
    result = {"settings": chosen["settings"], "trial": chosen["number"], "select": hyperopt["select"],
              "tolerance": hyperopt["tolerance"], "objective": hyperopt["objective"], "chosen": chosen,
              "best_loss": best, "fit_settings_trial": reference, "pareto_front": pareto_front(records),
              "n_complete": len(records), "n_trials": len(study.trials), "study_name": name,
              "cv": {"folds": hyperopt["cv_folds"], "repeats": hyperopt["cv_repeats"], "n_configs": len(frames)}}
    (study_dir / BEST_FILE).write_text(json.dumps(result, indent=2) + "\n")
    write_trials_csv(records, study_dir / TRIALS_FILE)
    write_summary(result, records, study_dir / SUMMARY_FILE)
    plot_pareto(records, chosen, study_dir / PARETO_FILE, objective=hyperopt["objective"])
    emit(log, f"hyperopt: trial {chosen['number']} chosen ({hyperopt['select']}): loss {chosen['loss']:.4g}, "
              f"{chosen['n_functions']} functions; best loss {best['loss']:.4g} with {best['n_functions']}")
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
        raise DataError(f"{path}: not a hyperparameter result with 'settings' ({exc}); rerun the "
                        "fit_hyperopt rule") from None
    unknown = sorted(set(chosen) - set(TUNED_FIT_KEYS))
    if unknown:
        raise DataError(f"{path}: unexpected keys {unknown} in 'settings'")
    return dict(settings, **chosen)


def seed_feature_cache(frames: list[Atoms], fit_settings: dict, hyperopt: dict, chosen: dict,
                       cache_dir: str | Path, log: LogLike = None) -> int:
    """Store the chosen basis's design rows in the feature cache, as columns of the largest basis's rows.

    The fit then reads them instead of computing them (the columns are the
    same numbers pyace computes for that basis; see :mod:`nestdb.fit.hyperopt_cv`).
    Only configurations whose largest-basis rows are cached are stored.

    Returns
    -------
    int
        The number of configurations whose rows of the chosen basis are now in the cache.
    """
    from nestdb.fit.features import _frame_key, _load_cached, _store_cached, basis_key, build_basis
    from nestdb.fit.settings import validate_fit_settings

    target = validate_fit_settings(dict(fit_settings, **chosen))
    source = largest_basis_settings(target, hyperopt, target["cutoff"])
    columns = FunctionTable.from_basis(build_basis(source)).columns_of(build_basis(target))
    source_key, target_key = basis_key(source), basis_key(target)
    source_dir, target_dir = Path(cache_dir) / source_key, Path(cache_dir) / target_key
    _check_columns(frames, target, source_dir / f"{_frame_key(frames[0], source_key)}.npz", columns)
    target_dir.mkdir(parents=True, exist_ok=True)
    stored = present = 0
    for atoms in frames:
        destination = target_dir / f"{_frame_key(atoms, target_key)}.npz"
        if destination.exists():  # e.g. the chosen basis is the largest one
            present += 1
            continue
        rows = _load_cached(source_dir / f"{_frame_key(atoms, source_key)}.npz")
        if rows is None:
            continue
        rows.phi, rows.force_rows = rows.phi[columns], rows.force_rows[:, columns]
        if rows.virial_rows is not None:
            rows.virial_rows = rows.virial_rows[:, columns]
        _store_cached(destination, rows)
        stored += 1
    emit(log, f"hyperopt: rows of the chosen basis ({columns.size} functions) stored for {stored} configurations "
              f"from the largest basis's rows ({present} were cached already)")
    return stored + present


def _check_columns(frames: list[Atoms], target: dict, source_file: Path, columns: np.ndarray) -> None:
    """pyace's own rows of the first configuration for the chosen basis equal the columns taken (a guard)."""
    from nestdb.fit.features import _load_cached, compute_features

    cached = _load_cached(source_file)
    if cached is None:
        return
    direct = compute_features(frames[:1], target, with_virials=False)[0][0]
    if not np.allclose(cached.force_rows[:, columns], direct.force_rows, rtol=1e-10, atol=1e-12):
        raise DataError(f"the rows of basis {target['nradmax_by_orders']}/{target['lmax_by_orders']} are not columns "
                        "of the largest basis's rows; not seeding the feature cache")


# --------------------------------------------------------------------------- workflow steps
def hyperopt_step(step: str, training_paths: list[str | Path], settings: dict, study_dir: str | Path, *,
                  index: int = 0, n_jobs: int = 1, output: str | Path | None = None,
                  e0_paths: list[str | Path] | None = None, log: LogLike = None) -> dict:
    """One step of a cycle's study (rules ``fit_hyperopt_rows``, ``fit_hyperopt_worker``, ``fit_hyperopt``).

    The study cross-validates the training part of the fit's own split
    (``fit.test_fraction``, ``fit.seed``), so the cycle's test metrics stay
    those of configurations no choice has seen.

    Parameters
    ----------
    step
        ``rows``: the largest basis's rows at cutoff number ``index`` of the
        grid, for every configuration (the refit on all data reads them too);
        ``worker``: worker ``index`` runs trials; ``summary``: choose, write
        the results and store the chosen basis's rows in the feature cache.
    training_paths
        The cycle's labelled databases.
    settings
        The ``fit:`` settings (with ``hyperopt``).
    study_dir
        The study's folder (journal, results).
    output
        JSON file receiving the step's summary (``rows`` and ``worker``).
    e0_paths
        Isolated-atom energies of ``reference_energies: {X: isolated_atom}`` elements (as the fit rule).
    """
    from nestdb.fit.dataset import load_training_frames, stratified_split
    from nestdb.fit.features import compute_features
    from nestdb.fit.settings import isolated_atom_elements, resolve_reference_energies, validate_fit_settings

    if e0_paths or isolated_atom_elements(settings.get("reference_energies") or {}):
        settings = resolve_reference_energies(settings, list(e0_paths or []))
    fit_settings = validate_fit_settings(settings)
    hyperopt = validate_hyperopt_settings(fit_settings["hyperopt"], fit_settings)
    frames = load_training_frames(training_paths, log=log)
    cache = fit_settings["feature_cache"] or str(Path(study_dir) / "rows")
    train_idx, _ = stratified_split(frames, fit_settings["test_fraction"], fit_settings["seed"])
    training = [frames[i] for i in train_idx]
    if step == "rows":
        if not 0 <= index < len(hyperopt["cutoffs"]):
            raise ConfigError(f"cutoff number {index} is not in fit.hyperopt.cutoffs {hyperopt['cutoffs']}")
        cutoff = hyperopt["cutoffs"][index]
        start = time.perf_counter()
        _, info = compute_features(frames, largest_basis_settings(fit_settings, hyperopt, cutoff),
                                   cache_dir=cache, n_jobs=n_jobs)
        result = {"cutoff": cutoff, **info, "seconds": time.perf_counter() - start}
    elif step == "worker":
        result = run_study(training, fit_settings, hyperopt, study_dir, worker=index, cache_dir=cache,
                           n_jobs=n_jobs, log=log)
    elif step == "summary":
        result = summarise_study(training, fit_settings, hyperopt, study_dir, log=log)
        seed_feature_cache(frames, fit_settings, hyperopt, result["settings"], cache, log)
    else:
        raise ValueError(f"unknown hyperopt step {step!r}")
    if output is not None and step != "summary":
        Path(output).write_text(json.dumps(result, indent=2) + "\n")
    return result
