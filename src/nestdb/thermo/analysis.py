"""NS quadrature: prior masses, canonical averages over a temperature grid (ns_analyse's formulas).

Sample ``i`` (line index of ``<prefix>.energies``) with enthalpy ``H_i`` and
volume ``V_i`` carries the prior mass ``a_i = X_i - X_{i+1}`` of the phase
volume it removed; canonical averages are sums with weights
``w_i(beta) = a_i exp(-beta (H_i - H_min))`` (x ``V_i^N`` for a flat volume
prior). Formulas and columns follow ns_analyse (reference/pymatnest-format.md
§4) so tables compare line by line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nestdb.errors import ConfigError, DataError
from nestdb.thermo.energies import NSEnergies
from nestdb.units import KB_EV_PER_K

__all__ = ["TABLE_COLUMNS", "log_phase_volume", "analyse", "bootstrap", "combine_runs"]

#: Columns of the table returned by :func:`analyse`, in order.
TABLE_COLUMNS = ("T", "log_Z", "F", "U", "Cp", "V", "thermal_exp", "low_pct_i", "mode_i", "high_pct_i", "Z_fract")

# Upper bound on the number of float64 entries of one (temperature x sample)
# block; keeps memory at ~50 MB per temporary for runs of 10^6 samples.
_BLOCK_ENTRIES = 2_000_000


# --------------------------------------------------------------------------- quadrature


def log_phase_volume(n_samples: int, n_walkers: int, n_cull: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Log phase-space volume and log prior mass of every NS sample.

    With K walkers and P culled per iteration, sample ``i`` (line index) is
    removed from a live set of ``K + 1 - (i mod P)`` walkers of which
    ``K - (i mod P)`` stay, hence (SENS, PRX 4, 031034, Eq. 3)::

        log X_i = sum_{k<=i} [ln(K - k mod P) - ln(K + 1 - k mod P)]
        log a_i = log X_i - ln(K + 1 - (i+1) mod P)

    For P = 1 this is ``X_i = (K/(K+1))^(i+1)`` and ``a_i = X_i/(K+1) = X_i - X_{i+1}``.

    Returns ``(log_X, log_a)``, arrays of length ``n_samples``.
    """
    if n_walkers < 1 or n_cull < 1 or n_cull > n_walkers:
        raise ConfigError(f"log_phase_volume: need n_walkers >= n_cull >= 1, got {n_walkers=}, {n_cull=}")
    index_mod = np.arange(n_samples) % n_cull
    log_x = np.cumsum(np.log(n_walkers - index_mod) - np.log(n_walkers + 1 - index_mod))
    next_mod = (np.arange(n_samples) + 1) % n_cull
    log_a = log_x - np.log(n_walkers + 1 - next_mod)
    return log_x, log_a


def log_prior(energies: NSEnergies) -> np.ndarray:
    """log a_i, plus N ln V_i for a flat-volume-prior run (ns_analyse reweighting)."""
    _, log_a = log_phase_volume(energies.n_samples, energies.n_walkers, energies.n_cull)
    if energies.flat_v_prior:
        log_a = log_a + energies.n_atoms * np.log(energies.volume)
    return log_a


def _check_energies(energies: NSEnergies) -> None:
    if energies.n_samples == 0:
        raise DataError("NS energies contain no samples; nothing to analyse")
    if energies.enthalpy.shape != energies.volume.shape:
        raise DataError("NS energies: enthalpy and volume arrays differ in length")


def _temperature_blocks(n_temps: int, n_samples: int):
    block = max(1, _BLOCK_ENTRIES // max(n_samples, 1))
    for start in range(0, n_temps, block):
        yield slice(start, min(start + block, n_temps))


def _moments(
    log_prior: np.ndarray, h: np.ndarray, betas: np.ndarray, volume: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Weighted sums at every beta: log Z, <h>, Var(h); with ``volume`` also
    <V>, Cov(V, h), the 10 %-of-max weight band and its weight share.

    Each temperature row is shifted by its largest log weight (log-sum-exp),
    variances are two-pass, and rows are processed in memory-bounded blocks.
    """
    keys = ["log_Z", "mean_h", "var_h"] + (["V", "cov_vh", "Z_fract"] if volume is not None else [])
    out = {k: np.empty(betas.shape[0]) for k in keys}
    if volume is not None:
        out.update({k: np.empty(betas.shape[0], dtype=np.int64) for k in ("low_pct_i", "mode_i", "high_pct_i")})
    for sl in _temperature_blocks(betas.shape[0], h.shape[0]):
        log_w = log_prior[None, :] - betas[sl, None] * h[None, :]
        shift = log_w.max(axis=1)
        w = np.exp(log_w - shift[:, None])
        z = w.sum(axis=1)
        mean_h = (w @ h) / z
        dh = h[None, :] - mean_h[:, None]
        out["log_Z"][sl] = np.log(z) + shift
        out["mean_h"][sl] = mean_h
        out["var_h"][sl] = np.einsum("tm,tm->t", w, dh * dh) / z
        if volume is None:
            continue
        mean_v = (w @ volume) / z
        out["V"][sl] = mean_v
        out["cov_vh"][sl] = np.einsum("tm,tm->t", w, dh * (volume[None, :] - mean_v[:, None])) / z
        # max(w) is exactly 1 after the shift; the 10 % band follows ns_analyse.
        above = w > w.max(axis=1, keepdims=True) / 10.0
        low = above.argmax(axis=1)
        high = h.size - 1 - above[:, ::-1].argmax(axis=1)
        out["low_pct_i"][sl], out["high_pct_i"][sl], out["mode_i"][sl] = low, high, w.argmax(axis=1)
        csum = np.cumsum(w, axis=1)
        rows = np.arange(w.shape[0])
        below_low = np.where(low > 0, csum[rows, np.maximum(low - 1, 0)], 0.0)
        out["Z_fract"][sl] = (csum[rows, high] - below_low) / z
    return out


def analyse(energies: NSEnergies, temperatures: np.ndarray, kB: float = KB_EV_PER_K) -> pd.DataFrame:
    """Thermodynamic averages of an NS run on a temperature grid (as ns_analyse).

    With ``h_i = H_i - H_min``, ``w_i = a_i exp(-beta h_i)`` (× ``V_i^N`` for a
    flat volume prior), ``Z = sum w_i`` and ``f`` extra degrees of freedom:

    * ``log_Z = ln Z`` (true ln Z is ``log_Z - beta H_min``)
    * ``F = -log_Z/beta + f/(2 beta) + H_min`` (ns_analyse's definition)
    * ``U = f/(2 beta) + <h> + H_min`` (an enthalpy)
    * ``Cp = f kB/2 + kB beta^2 Var(h)`` (whole system, eV/K)
    * ``V = <V>``, ``thermal_exp = kB beta^2 Cov(V, h) / <V>`` (1/K)
    * ``low_pct_i``/``high_pct_i``: first/last sample with ``w_i > max(w)/10``,
      ``mode_i``: sample of largest weight, ``Z_fract``: weight share of
      ``low_pct_i .. high_pct_i``.

    Sums are evaluated with a per-temperature log shift, so runs of 10^6
    samples and any temperature are safe from overflow.

    Parameters
    ----------
    energies : NSEnergies
        The run, e.g. from :func:`read_energies`.
    temperatures : array_like
        Temperatures in K (kelvin if ``kB`` is in eV/K), all > 0.
    kB : float
        Boltzmann constant in the energy unit of the file per temperature unit.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`; ``attrs`` holds ``kB``, ``n_atoms``,
        ``n_walkers``, ``n_cull``, ``H_min`` and ``n_samples``.
    """
    _check_energies(energies)
    temps = np.atleast_1d(np.asarray(temperatures, dtype=float))
    if temps.size == 0 or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
        raise ConfigError(f"analyse: temperatures must be finite and > 0, got {temps[:5]}...")
    if not kB > 0:
        raise ConfigError(f"analyse: kB must be > 0, got {kB}")
    h_min = float(energies.enthalpy.min())
    betas = 1.0 / (kB * temps)
    cols = _moments(log_prior(energies), energies.enthalpy - h_min, betas, volume=energies.volume)
    f = energies.n_extra_dof
    table = pd.DataFrame(
        {
            "T": temps,
            "log_Z": cols["log_Z"],
            "F": -cols["log_Z"] / betas + f / (2.0 * betas) + h_min,
            "U": f / (2.0 * betas) + cols["mean_h"] + h_min,
            "Cp": f * kB / 2.0 + kB * betas**2 * cols["var_h"],
            "V": cols["V"],
            "thermal_exp": kB * betas**2 * cols["cov_vh"] / cols["V"],
            "low_pct_i": cols["low_pct_i"],
            "mode_i": cols["mode_i"],
            "high_pct_i": cols["high_pct_i"],
            "Z_fract": cols["Z_fract"],
        }
    )
    table.attrs.update(
        kB=float(kB),
        n_atoms=energies.n_atoms,
        n_walkers=energies.n_walkers,
        n_cull=energies.n_cull,
        H_min=h_min,
        n_samples=energies.n_samples,
    )
    return table


# --------------------------------------------------------------------------- error bars


def _random_log_prior(energies: NSEnergies, rng: np.random.Generator) -> np.ndarray:
    """log a_i for one random realisation of the NS shrinkage factors.

    The i-th cull leaves the largest of ``m_i = K - (i mod P)`` uniform
    volume fractions, ``t_i ~ Beta(m_i, 1)`` (mean ``m_i/(m_i+1)``, the
    deterministic factor of :func:`log_phase_volume`); ``X_i = prod t_k``
    and ``a_i = X_i (1 - t_{i+1})``.
    """
    n, k, p = energies.n_samples, energies.n_walkers, energies.n_cull
    m = k - np.arange(n + 1) % p
    log_t = np.log(rng.random(n + 1)) / m  # log of Beta(m, 1) by inversion
    log_x = np.cumsum(log_t[:-1])
    log_a = log_x + np.log(-np.expm1(log_t[1:]))
    if energies.flat_v_prior:
        log_a = log_a + energies.n_atoms * np.log(energies.volume)
    return log_a


def bootstrap(
    energies: NSEnergies, temperatures: np.ndarray, n_boot: int = 50, seed: int = 0, kB: float = KB_EV_PER_K
) -> pd.DataFrame:
    """Error bars of U, C_p and <V> from the statistical uncertainty of the NS process.

    The phase-volume shrinkage of every iteration is a random variable that
    :func:`analyse` replaces by its mean. Redrawing all shrinkage factors
    ``n_boot`` times (Skilling's error estimate) and re-evaluating the
    averages gives their spread; it does not include the error from
    imperfect sampling (too short walks), for which compare independent
    runs with :func:`combine_runs`.

    Parameters
    ----------
    energies : NSEnergies
        The run.
    temperatures : array_like
        Temperatures (K), all > 0.
    n_boot : int
        Number of random realisations (>= 2).
    seed : int
        Seed of the random generator (results are reproducible).
    kB : float
        Boltzmann constant (eV/K).

    Returns
    -------
    pandas.DataFrame
        Columns ``T``, ``U``, ``U_err``, ``Cp``, ``Cp_err``, ``V``, ``V_err``:
        the values of :func:`analyse` and the standard deviation over the
        realisations (same units; whole system).
    """
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 2:
        raise ConfigError(f"bootstrap: n_boot must be an integer >= 2, got {n_boot!r}")
    central = analyse(energies, temperatures, kB=kB)
    betas = 1.0 / (kB * central["T"].to_numpy())
    h_min = float(energies.enthalpy.min())
    h = energies.enthalpy - h_min
    rng = np.random.default_rng(seed)
    samples = {key: np.empty((int(n_boot), betas.size)) for key in ("U", "Cp", "V")}
    for b in range(int(n_boot)):
        cols = _moments(_random_log_prior(energies, rng), h, betas, volume=energies.volume)
        samples["U"][b] = cols["mean_h"]
        samples["Cp"][b] = kB * betas**2 * cols["var_h"]
        samples["V"][b] = cols["V"]
    out = pd.DataFrame({"T": central["T"]})
    for key in ("U", "Cp", "V"):
        out[key] = central[key]
        out[f"{key}_err"] = samples[key].std(axis=0, ddof=1)
    out.attrs.update(central.attrs, n_boot=int(n_boot))
    return out


def combine_runs(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Mean and standard error over :func:`analyse` tables of independent runs.

    Parameters
    ----------
    tables : list of pandas.DataFrame
        At least two tables on the same temperature grid.

    Returns
    -------
    pandas.DataFrame
        ``T`` and, for ``U``, ``Cp``, ``V``, the mean and ``<key>_err``, the
        standard error of the mean (std / sqrt(n_runs)).
    """
    if len(tables) < 2:
        raise ConfigError(f"combine_runs: need at least 2 independent runs, got {len(tables)}")
    temps = tables[0]["T"].to_numpy()
    for j, table in enumerate(tables[1:], start=1):
        if table["T"].shape != temps.shape or not np.allclose(table["T"].to_numpy(), temps):
            raise DataError(f"combine_runs: table {j} has a different temperature grid from table 0")
    out = pd.DataFrame({"T": temps})
    for key in ("U", "Cp", "V"):
        stack = np.stack([t[key].to_numpy() for t in tables])
        out[key] = stack.mean(axis=0)
        out[f"{key}_err"] = stack.std(axis=0, ddof=1) / np.sqrt(len(tables))
    out.attrs.update(tables[0].attrs, n_runs=len(tables))
    return out
