"""Calibration of the committee energy STD against actual errors.

The raw Bayesian-ridge posterior of a linear ACE is far too narrow: the
posterior only knows the scatter of the training residuals around the best
fit in the span of the basis (the noise term), while the error of a new
configuration is dominated by what the basis cannot represent.  Measured on
the study's Mg data the raw committee STD is 11-19x smaller than the error.

The fix used here is the simplest one that keeps the committee a set of
coefficient vectors (so NS can keep evaluating it from one basis
evaluation): hold out ``fit.calibration_fraction`` of the training
configurations, fit on the rest, and find the factor ``s`` that makes the
RMS of the committee STD equal to the RMS of the actual per-atom energy
error on the held-out configurations,

    s = RMS(|E_pred - E_DFT| / N) / RMS(STD / N).

The final fit uses all training configurations, and its committee members
are spread by ``s`` around the mean model: ``c_k = c_mean + s (c_k^raw - c_mean)``.
After calibration, "committee STD = 60 meV/atom" means "the expected RMS
error of this configuration's energy is about 60 meV/atom" (on the scale of
the held-out data; far outside the training data it stays a ranking signal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CALIBRATION_PLOT = "calibration.png"


def rms(values: np.ndarray) -> float:
    """Root mean square (NaN for an empty array)."""
    values = np.asarray(values, dtype=float)
    return float(np.sqrt(np.mean(values ** 2))) if values.size else float("nan")


def calibration_factor(std: np.ndarray, abs_error: np.ndarray) -> float:
    """Factor ``s`` with ``RMS(s * std) == RMS(abs_error)``; 1 when undefined.

    Parameters
    ----------
    std
        Committee STD per configuration (any unit).
    abs_error
        Actual absolute error per configuration (same unit).
    """
    std_rms = rms(std)
    error_rms = rms(abs_error)
    if not np.isfinite(std_rms) or std_rms <= 0 or not np.isfinite(error_rms) or error_rms <= 0:
        return 1.0
    return error_rms / std_rms


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
    from nestdb.fit.metrics import spearman

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


def plot_calibration(sets: list[tuple[str, np.ndarray, np.ndarray]], path: str | Path,
                     title: str = "") -> None:
    """Log-log scatter of committee STD vs actual |error| (meV/atom), one colour per set.

    Parameters
    ----------
    sets
        ``(label, std_mev, abs_error_mev)`` per data set (e.g. train, test).
    path
        Output image.
    title
        Figure title (e.g. the calibration factor).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    low, high = np.inf, 0.0
    for (label, std, error), colour in zip(sets, ("tab:blue", "tab:orange", "tab:green")):
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
