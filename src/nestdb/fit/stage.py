"""The fitting stages of the workflow: one function per rule (``fit``, ``fit_pacemaker_prepare``, ``fit_pacemaker``,
``fit_hyperopt_rows``, ``fit_hyperopt_worker``, ``fit_hyperopt``).

Each fits (or prepares, or collects) one cycle's committee on all labels so
far: the labelled databases of the cycles in, the model folder out.
``e0_paths`` are the isolated-atom energies of the elements whose
``reference_energies`` are ``isolated_atom``
(:func:`nestdb.fit.settings.resolve_reference_energies`).
"""

from __future__ import annotations

import time
from pathlib import Path

from ase import Atoms

from nestdb.errors import ConfigError
from nestdb.fit.dataset import load_training_frames, stratified_split
from nestdb.fit.features import compute_features
from nestdb.fit.hyperopt import (
    apply_hyperopt_result,
    largest_basis_settings,
    run_study,
    seed_feature_cache,
    summarise_study,
)
from nestdb.fit.linear_ace import fit_linear_ace
from nestdb.fit.pacemaker import collect_committee, prepare_committee
from nestdb.fit.settings import (
    isolated_atom_elements,
    resolve_reference_energies,
    validate_fit_settings,
    validate_hyperopt_settings,
)
from nestdb.io import write_json


def _inputs(
    training_paths: list[str | Path], settings: dict, e0_paths: list[str | Path] | None
) -> tuple[list[Atoms], dict]:
    """The training frames, and the settings with isolated-atom reference energies filled in."""
    if e0_paths or isolated_atom_elements(settings.get("reference_energies") or {}):
        settings = resolve_reference_energies(settings, list(e0_paths or []))
    return load_training_frames(training_paths), settings


def fit_cycle(
    training_paths: list[str | Path],
    settings: dict,
    out_dir: str | Path,
    e0_paths: list[str | Path] | None = None,
    hyperopt_result: str | Path | None = None,
) -> dict:
    """The linear-ACE committee of one cycle (rule ``fit``, :func:`nestdb.fit.linear_ace.fit_linear_ace`).

    ``hyperopt_result`` is the cycle's ``best.json`` when ``fit.hyperopt`` is
    enabled: its settings replace the searched keys of ``settings``
    (:func:`nestdb.fit.hyperopt.apply_hyperopt_result`).

    Returns
    -------
    dict
        The metrics written to ``out_dir/metrics.json``.
    """
    if hyperopt_result is not None:
        settings = apply_hyperopt_result(settings, hyperopt_result)
    frames, settings = _inputs(training_paths, settings, e0_paths)
    return fit_linear_ace(frames, settings, out_dir)


def fit_pacemaker_prepare(
    training_paths: list[str | Path], settings: dict, out_dir: str | Path, e0_paths: list[str | Path] | None = None
) -> dict:
    """The pacemaker members' inputs (rule ``fit_pacemaker_prepare``, :func:`nestdb.fit.pacemaker.prepare_committee`).

    Returns
    -------
    dict
        ``{"members": [member folder, ...]}``.
    """
    frames, settings = _inputs(training_paths, settings, e0_paths)
    return {"members": [str(folder) for folder in prepare_committee(frames, settings, out_dir)]}


def fit_pacemaker_collect(
    training_paths: list[str | Path], settings: dict, out_dir: str | Path, e0_paths: list[str | Path] | None = None
) -> dict:
    """Export and score the pacemaker members after their jobs ran (rule ``fit_pacemaker``).

    The members are ``out_dir/member_<k>/`` (:func:`nestdb.fit.pacemaker.collect_committee`).

    Returns
    -------
    dict
        The committee's metrics.
    """
    frames, settings = _inputs(training_paths, settings, e0_paths)
    members = sorted(Path(out_dir).glob("member_*/"), key=lambda p: int(p.name.split("_")[1]))
    return collect_committee(frames, settings, members, out_dir)


# --------------------------------------------------------------------------- fit.hyperopt
def _hyperopt_inputs(
    training_paths: list[str | Path], settings: dict, study_dir: str | Path, e0_paths: list[str | Path] | None
) -> tuple[list[Atoms], list[Atoms], dict, dict, str]:
    """All frames, the study's training part, fit and hyperopt settings, and the rows cache folder.

    The study cross-validates the training part of the fit's own split
    (``fit.test_fraction``, ``fit.seed``), so the cycle's test metrics stay
    those of configurations no choice has seen.
    """
    frames, settings = _inputs(training_paths, settings, e0_paths)
    fit_settings = validate_fit_settings(settings)
    hyperopt = validate_hyperopt_settings(fit_settings["hyperopt"], fit_settings)
    cache = fit_settings["feature_cache"] or str(Path(study_dir) / "rows")
    train_idx, _ = stratified_split(frames, fit_settings["test_fraction"], fit_settings["seed"])
    return frames, [frames[i] for i in train_idx], fit_settings, hyperopt, cache


def _write_step(output: str | Path | None, result: dict) -> dict:
    if output is not None:
        write_json(output, result)
    return result


def fit_hyperopt_rows(
    training_paths: list[str | Path],
    settings: dict,
    study_dir: str | Path,
    index: int,
    *,
    n_jobs: int = 1,
    output: str | Path | None = None,
    e0_paths: list[str | Path] | None = None,
) -> dict:
    """The largest basis's design rows at cutoff number ``index`` of ``fit.hyperopt.cutoffs``.

    Rule ``fit_hyperopt_rows``. Rows of every configuration go to the feature cache (the refit on all
    data reads them too); ``output`` receives the step's summary (JSON).
    """
    frames, _, fit_settings, hyperopt, cache = _hyperopt_inputs(training_paths, settings, study_dir, e0_paths)
    if not 0 <= index < len(hyperopt["cutoffs"]):
        raise ConfigError(f"cutoff number {index} is not in fit.hyperopt.cutoffs {hyperopt['cutoffs']}")
    cutoff = hyperopt["cutoffs"][index]
    start = time.perf_counter()
    _, info = compute_features(
        frames, largest_basis_settings(fit_settings, hyperopt, cutoff), cache_dir=cache, n_jobs=n_jobs
    )
    return _write_step(output, {"cutoff": cutoff, **info, "seconds": time.perf_counter() - start})


def fit_hyperopt_worker(
    training_paths: list[str | Path],
    settings: dict,
    study_dir: str | Path,
    index: int,
    *,
    n_jobs: int = 1,
    output: str | Path | None = None,
    e0_paths: list[str | Path] | None = None,
) -> dict:
    """Worker ``index`` of the cycle's study runs trials (rule ``fit_hyperopt_worker``, :func:`run_study`)."""
    _, training, fit_settings, hyperopt, cache = _hyperopt_inputs(training_paths, settings, study_dir, e0_paths)
    return _write_step(
        output, run_study(training, fit_settings, hyperopt, study_dir, worker=index, cache_dir=cache, n_jobs=n_jobs)
    )


def fit_hyperopt_summary(
    training_paths: list[str | Path], settings: dict, study_dir: str | Path, *, e0_paths: list[str | Path] | None = None
) -> dict:
    """Choose the study's settings, write its results, seed the chosen basis's rows (rule ``fit_hyperopt``).

    Writes ``best.json``, ``trials.csv``, ``summary.md`` and ``pareto.png``
    in ``study_dir`` (:func:`nestdb.fit.hyperopt.summarise_study`).
    """
    frames, training, fit_settings, hyperopt, cache = _hyperopt_inputs(training_paths, settings, study_dir, e0_paths)
    result = summarise_study(training, fit_settings, hyperopt, study_dir)
    seed_feature_cache(frames, fit_settings, hyperopt, result["settings"], cache)
    return result
