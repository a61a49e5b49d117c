"""ACE fits: linear ACE with a calibrated Bayesian committee (pyace), and pacemaker.

Typical use::

    from nestdb.fit import load_training_frames, fit_linear_ace
    from nestdb.models.ace_committee import CommitteeACECalculator
    frames = load_training_frames(["cycle_0.edb.extxyz"])
    metrics = fit_linear_ace(frames, {"elements": ["Mg"], "reference_energies": {"Mg": -1688.821}}, "model/")
    atoms.calc = CommitteeACECalculator("model/")
    atoms.get_potential_energy(); atoms.calc.results["energy_std_per_atom"]

Modules: :mod:`~nestdb.fit.settings` (every ``fit:`` key), :mod:`~nestdb.fit.dataset`
(labelled configurations), :mod:`~nestdb.fit.features` (ACE design rows),
:mod:`~nestdb.fit.bayesian` (evidence-maximising ridge), :mod:`~nestdb.fit.linear_ace`
(the fit and its committee), :mod:`~nestdb.fit.calibration` (committee STD
against errors), :mod:`~nestdb.fit.metrics`, :mod:`~nestdb.fit.files` (the
model folder), :mod:`~nestdb.fit.model_card`, :mod:`~nestdb.fit.pacemaker`
and :mod:`~nestdb.fit.pacemaker_member` (nonlinear fits), ``hyperopt*``
(hyperparameter studies) and :mod:`~nestdb.fit.stage` (the workflow stages).
The fitted committee is evaluated by :mod:`nestdb.models.ace_committee`.

pyace is imported lazily, so this package imports without it.
"""

from nestdb.fit.dataset import load_training_frames, read_training_set, split_train_test, stratified_split
from nestdb.fit.features import build_basis, compute_features
from nestdb.fit.linear_ace import fit_linear_ace
from nestdb.fit.metrics import error_metrics, grouped_metrics
from nestdb.fit.settings import DEFAULT_FIT_SETTINGS, validate_fit_settings

__all__ = [
    "DEFAULT_FIT_SETTINGS",
    "build_basis",
    "compute_features",
    "error_metrics",
    "fit_linear_ace",
    "grouped_metrics",
    "load_training_frames",
    "read_training_set",
    "split_train_test",
    "stratified_split",
    "validate_fit_settings",
]
