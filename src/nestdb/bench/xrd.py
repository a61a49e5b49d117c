"""Powder X-ray diffraction patterns of periodic cells and of NS samples by temperature.

The pattern of a periodic cell is computed from its structure factors: every
reciprocal-lattice vector G with |G| < 4π/λ gives a reflection at
2θ = 2 asin(λ|G|/4π) with intensity |F(G)|² times the Lorentz–polarisation
factor, broadened by a Gaussian. Summing over all G (not unique hkl) counts
multiplicities. ASE's ``XrDebye`` would treat the small NS cell as an
isolated cluster, which smears out exactly the Bragg peaks that tell the
phases apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.utils.xrdebye import waasmaier
from matplotlib.figure import Figure

from nestdb.errors import ConfigError, DataError
from nestdb.plotting import save, subplots

#: Cromer–Mann coefficients (a1..a4, b1..b4 in Å², c) of f(s), s = sin θ / λ;
#: International Tables for Crystallography Vol. C, Table 6.1.1.4.
_CROMER_MANN = {
    "Mg": ((5.4204, 2.1735, 1.2269, 2.3073), (2.8275, 79.2611, 0.3808, 7.1937), 0.8584),
}


def form_factor(element: str, s: np.ndarray) -> np.ndarray:
    """Atomic X-ray form factor f(s), s = sin θ / λ in 1/Å.

    Elements without tabulated coefficients here use ASE's Waasmaier–Kirfel
    table when it has them, else the constant Z (relative intensities of
    one-element cells are then still right up to a smooth envelope).
    """
    s = np.asarray(s, dtype=float)
    if element in _CROMER_MANN:
        a, b, c = _CROMER_MANN[element]
        return c + sum(ai * np.exp(-bi * s**2) for ai, bi in zip(a, b, strict=True))

    if element in waasmaier:
        coefficients = waasmaier[element]
        return coefficients[10] + sum(coefficients[2 * i] * np.exp(-coefficients[2 * i + 1] * s**2) for i in range(5))
    return np.full_like(s, float(atomic_numbers[element]))


def powder_pattern(atoms: Atoms, two_theta: np.ndarray, wavelength: float = 0.62, fwhm: float = 0.2) -> np.ndarray:
    """Powder XRD intensity of one periodic cell on a 2θ grid (degrees).

    Cost: no calculator calls; O(n_G × n_atoms) with n_G the reciprocal
    vectors inside the limiting sphere (a few thousand for a 64-atom cell at
    λ = 0.62 Å up to 2θ = 30°).

    Parameters
    ----------
    atoms
        Periodic cell.
    two_theta
        Grid of 2θ (degrees).
    wavelength
        X-ray wavelength (Å); 0.62 Å in the study.
    fwhm
        Gaussian peak width (degrees 2θ).

    Returns
    -------
    numpy.ndarray
        Intensity on the grid divided by n_atoms² (arbitrary units): Bragg
        peaks of a crystal are then the same for any supercell of it.
    """
    if not (wavelength > 0 and fwhm > 0):
        raise ConfigError(f"bench.xrd: wavelength and fwhm must be positive, got {wavelength!r}, {fwhm!r}")
    two_theta = np.asarray(two_theta, dtype=float)
    g_max = 4 * np.pi * np.sin(np.radians(min(two_theta.max() + 3 * fwhm, 179.0) / 2)) / wavelength
    reciprocal = 2 * np.pi * np.array(atoms.cell.reciprocal())  # rows b_i, with a_i . b_j = 2 pi delta_ij
    # Integer ranges that cover the sphere |G| < g_max.
    limits = [int(np.ceil(g_max * np.linalg.norm(atoms.cell[i]) / (2 * np.pi))) for i in range(3)]
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in limits], indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    g_vectors = hkl @ reciprocal
    g_norm = np.linalg.norm(g_vectors, axis=1)
    keep = (g_norm > 1e-9) & (g_norm < g_max)
    hkl, g_norm = hkl[keep], g_norm[keep]
    s = g_norm / (4 * np.pi)
    symbols = atoms.get_chemical_symbols()
    f = np.stack([form_factor(symbol, s) for symbol in symbols], axis=1)
    scaled = atoms.get_scaled_positions()
    intensity = np.empty(len(hkl))
    # |F(G)|^2 in chunks of G: dilute NS cells (hundreds of A^3/atom) have ~10^5 of them.
    for start in range(0, len(hkl), 16384):
        part = slice(start, start + 16384)
        phases = np.exp(2j * np.pi * hkl[part] @ scaled.T)  # (n_G, n_atoms)
        intensity[part] = np.abs((f[part] * phases).sum(axis=1)) ** 2
    theta = np.arcsin(np.clip(wavelength * g_norm / (4 * np.pi), 0, 1))
    lorentz_polarisation = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    centres = np.degrees(2 * theta)
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    pattern = np.zeros_like(two_theta)
    # Peaks in chunks: memory stays small for big cells.
    weights = intensity * lorentz_polarisation
    for start in range(0, len(centres), 2048):
        c = centres[start : start + 2048]
        w = weights[start : start + 2048]
        pattern += (w[:, None] * np.exp(-0.5 * ((two_theta[None, :] - c[:, None]) / sigma) ** 2)).sum(axis=0)
    return pattern / len(atoms) ** 2


def patterns_by_temperature(
    frames: Sequence[Atoms],
    temperatures: np.ndarray,
    bins,
    two_theta: np.ndarray,
    wavelength: float = 0.62,
    fwhm: float = 0.2,
    max_per_bin: int = 20,
) -> list[dict]:
    """Average powder patterns of NS samples in temperature bins.

    Cost: no calculator calls; at most ``max_per_bin`` patterns per bin
    (samples equally spaced in iteration among those in the bin).

    Parameters
    ----------
    frames
        Culled NS configurations.
    temperatures
        Temperature of each frame (K), e.g. from
        :func:`nestdb.select.frame_temperatures`.
    bins
        Increasing bin edges (K).
    two_theta, wavelength, fwhm
        See :func:`powder_pattern`.
    max_per_bin
        Cap on the samples averaged per bin.

    Returns
    -------
    list of dict
        Per non-empty bin: ``t_low``, ``t_high``, ``n_samples`` (in the bin),
        ``n_used``, ``intensity`` (mean pattern).
    """
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"bench.xrd.temperature_bins must be at least two increasing edges (K), got {bins!r}")
    temperatures = np.asarray(temperatures, dtype=float)
    if len(temperatures) != len(frames):
        raise DataError(f"patterns_by_temperature: {len(frames)} frames but {len(temperatures)} temperatures")
    results = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        members = np.flatnonzero((temperatures >= low) & (temperatures < high))
        if members.size == 0:
            continue
        used = members[np.unique(np.linspace(0, members.size - 1, min(max_per_bin, members.size)).astype(int))]
        mean = np.mean([powder_pattern(frames[i], two_theta, wavelength, fwhm) for i in used], axis=0)
        results.append(
            {
                "t_low": float(low),
                "t_high": float(high),
                "n_samples": int(members.size),
                "n_used": int(used.size),
                "intensity": mean,
            }
        )
    return results


def two_theta_grid(cfg: dict) -> np.ndarray:
    """The 2θ grid (degrees) of the ``bench.xrd`` settings: ``two_theta_range`` in steps of ``two_theta_step``."""
    low, high = cfg["two_theta_range"]
    return np.arange(low, high + 0.5 * cfg["two_theta_step"], cfg["two_theta_step"])


def plot_patterns(
    two_theta: np.ndarray,
    binned: list[dict],
    path: str | Path,
    title: str = "",
    references: dict[str, np.ndarray] | None = None,
) -> Figure:
    """Stacked patterns (coldest at the bottom), ideal crystals on top for comparison."""
    fig, ax = subplots(figsize=(6.5, 5))
    offset = 0.0
    curves = [(f"{b['t_low']:g}–{b['t_high']:g} K (n={b['n_samples']})", b["intensity"], "C0") for b in binned]
    curves += [(f"ideal {name}", pattern, "k") for name, pattern in (references or {}).items()]
    if not curves:
        ax.text(0.5, 0.5, "no samples in the temperature bins", ha="center", va="center", transform=ax.transAxes)
    for label, intensity, colour in curves:
        scale = float(np.max(intensity)) or 1.0
        ax.plot(two_theta, intensity / scale + offset, color=colour, lw=0.8)
        ax.text(two_theta[-1], offset + 0.3, label, ha="right", fontsize=7)
        offset += 1.1
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("intensity (normalised, offset)")
    ax.set_yticks([])
    ax.set_title(title)
    return save(fig, path, dpi=130)
