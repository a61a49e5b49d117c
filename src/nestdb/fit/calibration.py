"""Calibration of the committee energy STD against actual errors.

A committee drawn from the fit itself is too narrow or too wide by a factor
that depends on the data: the Bayesian posterior only knows the scatter of
the training residuals (on the study's Mg data it is 11-19x smaller than the
test error), the jackknife covariance is closer (1.2-2.3x in RMS) but still
off.  The fix keeps the committee a set of coefficient vectors (so NS can
keep evaluating it from one basis evaluation): hold out
``fit.calibration_fraction`` of the training configurations, fit on the
rest, and find the maximum-likelihood factor ``s`` of Gaussian errors with
the committee STDs,

    s^2 = mean_i (e_i / STD_i)^2,      e_i = (E_pred - E_DFT)_i / N_i,  STD_i per atom,

i.e. the errors divided by the scaled STDs have unit RMS.  (Matching the RMS
of the STDs to the RMS of the errors instead lets a few configurations with
large errors and large STDs set the scale, and left only 32-50 % of the
Mg test errors within one STD.)

The final fit uses all training configurations, and its committee members
are spread by ``s`` around the mean model: ``c_k = c_mean + s (c_k^raw - c_mean)``.
After calibration "committee STD = 60 meV/atom" means "errors of this
configuration's energy are typically within about 60 meV/atom" (on the scale
of the held-out data; far outside the training data it stays a ranking signal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nestdb.fit.metrics import spearman
from nestdb.plotting import save, subplots

CALIBRATION_PLOT = "calibration.png"


def rms(values: np.ndarray) -> float:
    """Root mean square (NaN for an empty array)."""
    values = np.asarray(values, dtype=float)
    return float(np.sqrt(np.mean(values**2))) if values.size else float("nan")


def calibration_factor(std: np.ndarray, abs_error: np.ndarray) -> float:
    """Maximum-likelihood factor ``s = sqrt(mean((abs_error / std)**2))``; 1 when undefined.

    ``s`` makes the errors, divided by ``s * std``, have unit RMS: the
    Gaussian likelihood of the errors given the STDs is largest.

    Parameters
    ----------
    std
        Committee STD per configuration (any unit); configurations with STD 0 are ignored.
    abs_error
        Actual absolute error per configuration (same unit).
    """
    std = np.asarray(std, dtype=float)
    abs_error = np.asarray(abs_error, dtype=float)
    usable = np.isfinite(std) & np.isfinite(abs_error) & (std > 0)
    if not np.any(usable):
        return 1.0
    factor = rms(abs_error[usable] / std[usable])
    return factor if factor > 0 else 1.0


def rescale_committee(mean: np.ndarray, committee: np.ndarray, factor: float) -> np.ndarray:
    """Committee members spread ``factor`` times as far from the mean model."""
    return mean[None, :] + factor * (committee - mean[None, :])


def calibration_summary(std: np.ndarray, abs_error: np.ndarray) -> dict:
    """How well a committee STD describes the actual error on a set of configurations.

    Returns
    -------
    dict
        ``std_rms``, ``error_rms`` (same unit as the inputs), ``ratio``
        (``error_rms / std_rms``, 1 for a calibrated committee),
        ``fraction_within_1std`` / ``fraction_within_2std`` (68 % / 95 % for a
        calibrated Gaussian) and ``spearman`` (rank correlation, ``None``
        when undefined).
    """

    std = np.asarray(std, dtype=float)
    abs_error = np.asarray(abs_error, dtype=float)
    std_rms = rms(std)
    error_rms = rms(abs_error)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "n_configs": int(std.size),
            "std_rms": std_rms,
            "error_rms": error_rms,
            "ratio": error_rms / std_rms if std_rms > 0 else None,
            "fraction_within_1std": float(np.mean(abs_error <= std)) if std.size else None,
            "fraction_within_2std": float(np.mean(abs_error <= 2 * std)) if std.size else None,
            "spearman": spearman(std, abs_error) if std.size >= 3 else None,
        }


def plot_calibration(sets: list[tuple[str, np.ndarray, np.ndarray]], path: str | Path, title: str = "") -> Figure:
    """Log-log scatter of committee STD vs actual |error| (meV/atom), one colour per set; returns the figure.

    Parameters
    ----------
    sets
        ``(label, std_mev, abs_error_mev)`` per data set (e.g. train, test).
    path
        Output image.
    title
        Figure title (e.g. the calibration factor).
    """
    fig, ax = subplots(figsize=(5.5, 5))
    low, high = np.inf, 0.0
    for (label, std, error), colour in zip(sets, ("tab:blue", "tab:orange", "tab:green"), strict=False):
        std = np.clip(np.asarray(std, dtype=float), 1e-6, None)
        error = np.clip(np.asarray(error, dtype=float), 1e-6, None)
        if not std.size:
            continue
        summary = calibration_summary(std, error)
        rho = summary["spearman"]
        text = f"{label} (Spearman {rho:.2f})" if rho is not None else label
        ax.scatter(std, error, s=8, alpha=0.6, color=colour, label=text)
        low = min(low, std.min(), error.min())
        high = max(high, std.max(), error.max())
    if high > 0 and np.isfinite(low):
        line = np.array([low, high])
        ax.plot(line, line, color="black", linewidth=0.8, label="|error| = STD")
        ax.plot(line, 2 * line, color="grey", linewidth=0.8, linestyle="--", label="|error| = 2 STD")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("committee energy STD (meV/atom)")
    ax.set_ylabel("|E_model - E_DFT| (meV/atom)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, path, dpi=120)
