"""Temperature at which each NS sample is most probable, and the coldest temperature a run resolves."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicHermiteSpline

from nestdb.errors import ConfigError
from nestdb.thermo.analysis import _check_energies, _moments, log_phase_volume, log_prior
from nestdb.thermo.energies import NSEnergies
from nestdb.units import KB_EV_PER_K

__all__ = ["sample_temperatures", "resolved_temperature"]

# Adaptive refinement of the per-sample temperature grid (see sample_temperatures).
_REFINE_ROUNDS = 6
_REFINE_MAX_NEW = 64


def _monotone_hermite_slopes(x: np.ndarray, y: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """Clamp exact node slopes so the cubic Hermite interpolant stays monotone.

    For increasing data a slope no larger than 3x either adjacent secant is
    sufficient (Fritsch & Carlson 1980); huge exact slopes (zero variance on
    a plateau) are therefore harmless.
    """
    with np.errstate(over="ignore", divide="ignore"):
        secant = np.diff(y) / np.diff(x)
    limit = np.empty_like(slopes)
    limit[0], limit[-1] = 3 * secant[0], 3 * secant[-1]
    limit[1:-1] = 3 * np.minimum(secant[:-1], secant[1:])
    clamped = np.clip(np.nan_to_num(slopes, nan=0.0, posinf=np.inf), 0.0, limit)
    # Nodes a hair apart (a short, hot run) overflow the secant; a zero slope
    # keeps the interpolant monotone there and finite.
    clamped[~np.isfinite(clamped)] = 0.0
    return clamped


def _check_grid(t_min: float, t_max: float, n_grid: int, caller: str) -> None:
    if not (0 < t_min < t_max) or not np.isfinite(t_max):
        raise ConfigError(f"{caller}: need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if n_grid < 8:
        raise ConfigError(f"{caller}: n_grid must be >= 8, got {n_grid}")


def _grid_moments(energies: NSEnergies, kB: float, t_min: float, t_max: float, n_grid: int) -> dict[str, np.ndarray]:
    """log Z, <h>, Var(h) on a log-spaced T grid, refined where <h>(T) is steep."""
    h = energies.enthalpy - energies.enthalpy.min()
    prior = log_prior(energies)
    log_t = np.linspace(np.log(t_min), np.log(t_max), n_grid)
    grid = _moments(prior, h, 1.0 / (kB * np.exp(log_t)))
    grid["log_t"] = log_t
    # A transition squeezes many samples into one grid interval of <h>; bisect
    # (in ln T) the intervals holding many more samples than average, a few
    # rounds, evaluating moments only at the new nodes.
    sorted_h = np.sort(h)
    for _ in range(_REFINE_ROUNDS):
        counts = np.diff(np.searchsorted(sorted_h, np.maximum.accumulate(grid["mean_h"])))
        crowded = np.flatnonzero(counts > max(4 * h.size / n_grid, 8))
        if crowded.size == 0:
            break
        crowded = crowded[np.argsort(counts[crowded])[::-1][:_REFINE_MAX_NEW]]
        new_log_t = 0.5 * (grid["log_t"][crowded] + grid["log_t"][crowded + 1])
        new = _moments(prior, h, 1.0 / (kB * np.exp(new_log_t)))
        new["log_t"] = new_log_t
        order = np.argsort(np.concatenate((grid["log_t"], new_log_t)), kind="stable")
        grid = {key: np.concatenate((grid[key], new[key]))[order] for key in grid}
    # Lower bound of the weight of the final live set (never written to the
    # .energies file): its prior mass X_M, all of it below the last sample.
    log_x_end = log_phase_volume(energies.n_samples, energies.n_walkers, energies.n_cull)[0][-1]
    if energies.flat_v_prior:
        log_x_end += energies.n_atoms * np.log(energies.volume[-1])
    grid["log_live_ratio"] = log_x_end - h[-1] / (kB * np.exp(grid["log_t"])) - grid["log_Z"]
    return grid


def _resolved_from_grid(grid: dict[str, np.ndarray], live_set_ratio: float) -> float:
    log_ratio, log_t = grid["log_live_ratio"], grid["log_t"]
    unresolved = np.flatnonzero(log_ratio > np.log(live_set_ratio))
    if unresolved.size == 0:
        return float(np.exp(log_t[0]))
    k = unresolved[-1]  # the hottest unresolved node: conservative if the ratio is not monotone
    if k == log_t.size - 1:
        return float(np.exp(log_t[-1]))
    # ln(ratio) is close to linear in beta between nodes; interpolate in 1/T.
    inv_t = np.exp(-log_t[k : k + 2])
    frac = (log_ratio[k] - np.log(live_set_ratio)) / (log_ratio[k] - log_ratio[k + 1])
    return float(1.0 / (inv_t[0] + frac * (inv_t[1] - inv_t[0])))


def resolved_temperature(
    energies: NSEnergies,
    kB: float = KB_EV_PER_K,
    t_min: float = 1.0,
    t_max: float = 1e5,
    live_set_ratio: float = 1.0,
    n_grid: int = 256,
) -> float:
    """Lowest temperature the recorded samples of a run describe.

    The final live set (K walkers holding the prior mass ``X_M`` below the
    last recorded enthalpy ``H_M``) is not in the ``.energies`` file, and its
    weight is at least ``X_M e^{-beta H_M}``. A temperature counts as resolved
    while this lower bound is at most ``live_set_ratio`` times the recorded
    ``Z(beta)`` (the same idea as pymatnest's ``converge_down_to_T``). For a
    converged 16-atom Mg run this is ~150 K; for a run stopped in the gas it
    is tens of thousands of K. Returns a temperature in ``[t_min, t_max]``
    (``t_min``: resolved everywhere searched; ``t_max``: nowhere); ``n_grid``
    as in :func:`sample_temperatures`.
    """
    _check_energies(energies)
    _check_grid(t_min, t_max, n_grid, "resolved_temperature")
    if not live_set_ratio > 0:
        raise ConfigError(f"resolved_temperature: live_set_ratio must be > 0, got {live_set_ratio}")
    return _resolved_from_grid(_grid_moments(energies, kB, t_min, t_max, n_grid), live_set_ratio)


def sample_temperatures(
    energies: NSEnergies,
    kB: float = KB_EV_PER_K,
    t_min: float = 1.0,
    t_max: float = 1e5,
    n_grid: int = 256,
    live_set_ratio: float | None = 1.0,
) -> np.ndarray:
    """Temperature at which each NS sample is most probable.

    The normalised weight of sample ``i`` is ``p_i(beta) = a_i e^{-beta H_i} / Z(beta)``
    (method.md §2). Since ``d ln p_i / d beta = <H>_beta - H_i`` and ``ln Z`` is
    convex, ``ln p_i`` is concave in ``beta`` and has its single maximum where
    the mean enthalpy equals the sample's enthalpy, ``<H>(T_i) = H_i``. The
    estimator therefore inverts the monotone curve ``<H>(T)``:

    1. evaluate ``<H>`` and ``Var(H)`` on ``n_grid`` log-spaced temperatures
       in ``[t_min, t_max]`` (O(n_grid · M), vectorised), bisecting grid
       intervals that hold many samples (transitions);
    2. interpolate ``ln T`` as a function of ``<H>`` with a cubic Hermite
       spline using the exact slopes ``d ln T / d<H> = kB T / Var(H)``
       (clamped to keep it monotone);
    3. samples with ``H_i`` below ``<H>(t_min)`` get ``t_min`` and those
       above ``<H>(t_max)`` get ``t_max``;
    4. unless ``live_set_ratio`` is None, temperatures below the run's
       :func:`resolved_temperature` are raised to it. Without this floor the
       last samples of every run take all the weight as T -> 0 and would be
       labelled a few K even when the run stopped in the hot gas; with it
       they carry the coldest temperature the run actually describes.

    The result is never NaN, nonincreasing wherever ``H`` decreases with the
    iteration, and (above the floor) agrees with a brute-force argmax of
    ``p_i`` on a fine grid to ~1e-4 relative (see tests). Cost: about
    0.1 s per 10^5 samples.

    Parameters
    ----------
    energies : NSEnergies
        The run.
    kB : float
        Boltzmann constant (eV/K by default).
    t_min, t_max : float
        Temperature range searched, ``0 < t_min < t_max``.
    n_grid : int
        Number of initial grid temperatures (>= 8).
    live_set_ratio : float or None
        Resolution criterion of :func:`resolved_temperature`; None disables
        the floor (pure argmax over the recorded samples).

    Returns
    -------
    np.ndarray
        One temperature per sample (line order of the energies file).
    """
    _check_energies(energies)
    _check_grid(t_min, t_max, n_grid, "sample_temperatures")
    if live_set_ratio is not None and not live_set_ratio > 0:
        raise ConfigError(f"sample_temperatures: live_set_ratio must be > 0 or None, got {live_set_ratio}")

    h = energies.enthalpy - energies.enthalpy.min()
    grid = _grid_moments(energies, kB, t_min, t_max, n_grid)
    log_t, mean_h = grid["log_t"], grid["mean_h"]
    # <H>(T) is nondecreasing in exact arithmetic; keep strictly rising nodes
    # only (plateaus where one sample holds all weight carry no information).
    running_max = np.maximum.accumulate(np.concatenate(([-np.inf], mean_h[:-1])))
    keep = mean_h > running_max
    result = np.full(h.shape, t_min)
    if keep.sum() >= 2:
        x, y = mean_h[keep], log_t[keep]
        with np.errstate(divide="ignore", over="ignore"):
            exact_slope = kB * np.exp(y) / grid["var_h"][keep]
        inside = (h > x[0]) & (h < x[-1])
        # Nodes a hair apart (short, hot runs) overflow the spline coefficients of
        # their interval; linear interpolation stands in there.
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            spline = CubicHermiteSpline(x, y, _monotone_hermite_slopes(x, y, exact_slope))
            log_result = spline(h[inside])
        bad = ~np.isfinite(log_result)
        log_result[bad] = np.interp(h[inside][bad], x, y)
        result[inside] = np.exp(np.clip(log_result, log_t[0], log_t[-1]))
        result[h >= x[-1]] = t_max
    # else: all weight on one sample at every T (e.g. a single sample).
    if live_set_ratio is not None:
        np.maximum(result, _resolved_from_grid(grid, live_set_ratio), out=result)
    return result
