"""Linear-ACE fits with a Bayesian committee (pyace + scikit-learn).

Typical use::

    from nestdb.fit import load_training_frames, fit_linear_ace, CommitteeACECalculator
    frames = load_training_frames(["cycle_0.edb.extxyz"])
    metrics = fit_linear_ace(frames, {"reference_energies": {"Mg": -1688.821}}, "model/")
    atoms.calc = CommitteeACECalculator("model/")
    atoms.get_potential_energy(); atoms.calc.results["energy_std_per_atom"]

pyace is imported lazily, so this package imports without it.
"""

from nestdb.fit.committee import Committee, CommitteeACECalculator, load_committee, predict_frames
from nestdb.fit.dataset import load_training_frames, read_training_set, split_train_test
from nestdb.fit.linear_ace import DEFAULT_FIT_SETTINGS, build_basis, fit_linear_ace, validate_fit_settings
from nestdb.fit.metrics import error_metrics

__all__ = [
    "Committee",
    "CommitteeACECalculator",
    "DEFAULT_FIT_SETTINGS",
    "build_basis",
    "error_metrics",
    "fit_linear_ace",
    "load_committee",
    "load_training_frames",
    "predict_frames",
    "read_training_set",
    "split_train_test",
    "validate_fit_settings",
]
