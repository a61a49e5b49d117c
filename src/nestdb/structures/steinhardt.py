"""Steinhardt bond-orientational order parameters Q_l, W_l of configurations.

For every bond ``r_ij`` from atom ``i`` to a neighbour ``j``, ``Y_lm(r_ij)``
are the spherical harmonics of its direction. The system order parameters
(Steinhardt, Nelson, Ronchetti, PRB 28, 784 (1983)) average them over all
bonds of all atoms::

    Qbar_lm = sum_i sum_j Y_lm(r_ij) / sum_i N_b(i)
    Q_l = sqrt(4 pi/(2l+1) sum_m |Qbar_lm|^2)
    W_l = sum_{m1+m2+m3=0} (l l l; m1 m2 m3) Qbar_lm1 Qbar_lm2 Qbar_lm3 / (sum_m |Qbar_lm|^2)^(3/2)

(W_l is the normalised "W-hat"). Ideal crystals: fcc Q6 = 0.575, W6 = -0.013;
hcp Q6 = 0.485, W6 = -0.012; bcc with its 14 first+second neighbours
Q6 = 0.511, W6 = +0.013 (0.628 with only the 8 nearest); a liquid's system
average is small (~0.1 for 16 atoms, -> 0 for large cells).

Neighbours are found with ASE's neighbour list and chosen by SANN
(van Meel, Filion, Valeriani, Frenkel, J. Chem. Phys. 136, 234107 (2012)):
the smallest ``m >= 3`` nearest neighbours with ``sum_{k<=m} r_k/(m-2) < r_{m+1}``,
parameter-free (12 for fcc/hcp, 14 for bcc); alternatively a fixed
``cutoff`` (e.g. the first minimum of g(r), :func:`rdf_first_minimum`) or the
``nearest`` N neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import cache

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.special import sph_harm_y

from nestdb.errors import ConfigError, DataError
from nestdb.structures.neighbours import first_shell

__all__ = [
    "IDEAL_Q6_W6",
    "PHASES",
    "steinhardt",
    "classify_phase",
    "order_parameters",
    "rdf_first_minimum",
    "wigner_3j",
]

#: (Q6, W6) of ideal crystals (bcc with 14 neighbours), for plots.
IDEAL_Q6_W6 = {"fcc": (0.5745, -0.0131), "hcp": (0.4848, -0.0124), "bcc": (0.5106, 0.0131)}
#: Q4/Q6 of the ideal crystals: independent of thermal damping to first order, separates fcc from hcp.
_IDEAL_Q4_OVER_Q6 = {"fcc": 0.19094 / 0.57452, "hcp": 0.09722 / 0.48476, "bcc": 0.03637 / 0.51069}
PHASES = ("fcc", "hcp", "bcc", "liquid")


# --------------------------------------------------------------------------- Wigner 3j


def _fact(n: int) -> int:
    return math.factorial(n)


@cache
def wigner_3j(j1: int, j2: int, j3: int, m1: int, m2: int, m3: int) -> float:
    """Wigner 3j symbol of integer arguments, exact by the Racah formula.

    Zero unless ``m1 + m2 + m3 = 0``, the triangle condition holds and
    ``|m_k| <= j_k``. Evaluated in exact rational arithmetic (the square root
    taken last), so symbols for l <= 10 are exact to double precision.
    """
    if (
        m1 + m2 + m3 != 0
        or not abs(j1 - j2) <= j3 <= j1 + j2
        or any(abs(m) > j for m, j in ((m1, j1), (m2, j2), (m3, j3)))
    ):
        return 0.0
    triangle = Fraction(_fact(j1 + j2 - j3) * _fact(j1 - j2 + j3) * _fact(-j1 + j2 + j3), _fact(j1 + j2 + j3 + 1))
    norm = triangle * (
        _fact(j1 + m1) * _fact(j1 - m1) * _fact(j2 + m2) * _fact(j2 - m2) * _fact(j3 + m3) * _fact(j3 - m3)
    )
    k_min = max(0, j2 - j3 - m1, j1 - j3 + m2)
    k_max = min(j1 + j2 - j3, j1 - m1, j2 + m2)
    total = Fraction(0)
    for k in range(k_min, k_max + 1):
        total += Fraction(
            (-1) ** k,
            _fact(k)
            * _fact(j1 + j2 - j3 - k)
            * _fact(j1 - m1 - k)
            * _fact(j2 + m2 - k)
            * _fact(j3 - j2 + m1 + k)
            * _fact(j3 - j1 - m2 + k),
        )
    sign = -1 if (j1 - j2 - m3) % 2 else 1
    return sign * float(total) * math.sqrt(float(norm))


@cache
def _w_terms(degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index triples (m1, m2, m3 = -m1-m2, offset by the degree l) and 3j values of W_l."""
    i1, i2, i3, coef = [], [], [], []
    for m1 in range(-degree, degree + 1):
        for m2 in range(-degree, degree + 1):
            m3 = -m1 - m2
            if abs(m3) <= degree:
                i1.append(m1 + degree)
                i2.append(m2 + degree)
                i3.append(m3 + degree)
                coef.append(wigner_3j(degree, degree, degree, m1, m2, m3))
    return np.array(i1), np.array(i2), np.array(i3), np.array(coef)


def rdf_first_minimum(
    frames: Sequence[Atoms], r_max: float = 6.0, bin_width: float = 0.05, smoothing: float = 0.1
) -> float:
    """Position (Å) of the first minimum of the pair distribution g(r) of configurations.

    The histogram of pair distances (over all frames) is divided by the shell
    volume, smoothed with a Gaussian of width ``smoothing`` (Å), and the
    first local minimum after the first peak is returned; usable as a fixed
    ``cutoff`` of :func:`steinhardt`.
    """
    edges = np.arange(0.0, r_max + bin_width, bin_width)
    hist = np.zeros(edges.size - 1)
    for atoms in frames:
        hist += np.histogram(neighbor_list("d", atoms, r_max), bins=edges)[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    g = hist / (centres**2)
    kernel_x = np.arange(-4 * smoothing, 4 * smoothing + bin_width / 2, bin_width)
    kernel = np.exp(-0.5 * (kernel_x / smoothing) ** 2)
    g = np.convolve(g, kernel / kernel.sum(), mode="same")
    if not g.any():
        raise DataError(f"no pairs closer than r_max={r_max} Å; increase r_max")
    peak = int(np.argmax(g > 0.5 * g.max()))
    while peak + 1 < g.size and g[peak + 1] >= g[peak]:
        peak += 1
    for k in range(peak + 1, g.size - 1):
        if g[k] <= g[k - 1] and g[k] < g[k + 1]:
            return float(centres[k])
    raise DataError(f"g(r) has no minimum after its first peak below r_max={r_max} Å; increase r_max")


# --------------------------------------------------------------------------- order parameters


def _mean_qlm(bonds: np.ndarray, degree: int) -> np.ndarray:
    """Qbar_lm, m = -l..l (l = degree): spherical harmonics averaged over all bonds."""
    r = np.linalg.norm(bonds, axis=1)
    polar = np.arccos(np.clip(bonds[:, 2] / r, -1.0, 1.0))
    azimuth = np.arctan2(bonds[:, 1], bonds[:, 0])
    m = np.arange(-degree, degree + 1)
    return sph_harm_y(degree, m[:, None], polar[None, :], azimuth[None, :]).mean(axis=1)


def _q_w(qlm: np.ndarray, degree: int) -> tuple[float, float]:
    norm2 = float(np.sum(np.abs(qlm) ** 2))
    q = math.sqrt(4 * math.pi / (2 * degree + 1) * norm2)
    if norm2 == 0.0:
        return q, 0.0
    i1, i2, i3, coef = _w_terms(degree)
    w = np.sum(coef * qlm[i1] * qlm[i2] * qlm[i3]).real / norm2**1.5
    return q, float(w)


def steinhardt(atoms: Atoms, degree: int = 6, neighbours: str | int | float = "sann") -> tuple[float, float]:
    """System order parameters ``(Q_l, W_l)`` of one configuration.

    Parameters
    ----------
    atoms : ase.Atoms
        A configuration (periodic or not).
    degree : int
        The spherical harmonics' degree l (6 for Q6/W6, 4 for Q4/W4).
    neighbours : 'sann', int or float
        ``'sann'`` (parameter-free, default), the number of nearest
        neighbours, or a cutoff radius in Å.

    Returns
    -------
    tuple of float
        ``(Q_l, W_l)`` with W_l normalised (W-hat).
    """
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ConfigError(f"steinhardt: the degree l must be a positive integer, got {degree!r}")
    return _q_w(_mean_qlm(first_shell(atoms, neighbours, "order parameters")[2], int(degree)), int(degree))


def classify_phase(q4: float, q6: float, w6: float, q6_liquid: float = 0.25) -> str:
    """Phase label from system order parameters: 'fcc', 'hcp', 'bcc' or 'liquid'.

    ``Q6 < q6_liquid`` is liquid (disordered). Otherwise the sign of W6 and
    the ratio Q4/Q6 (insensitive to the thermal damping that lowers both)
    decide: bcc has W6 > 0 and Q4/Q6 = 0.07, fcc and hcp have W6 < 0 and
    Q4/Q6 = 0.33 and 0.20 (the closer one wins). A positive W6 with a large
    Q4/Q6 (> 0.135, between bcc and hcp) fits no crystal: small liquid cells
    keep Q6 ~ 0.3-0.4 from their short-range order and land there.
    """
    if q6 < q6_liquid:
        return "liquid"
    ratio = q4 / q6
    if w6 > 0:
        return "bcc" if ratio < 0.5 * (_IDEAL_Q4_OVER_Q6["bcc"] + _IDEAL_Q4_OVER_Q6["hcp"]) else "liquid"
    return min(("fcc", "hcp"), key=lambda phase: abs(ratio - _IDEAL_Q4_OVER_Q6[phase]))


def order_parameters(atoms: Atoms, neighbours: str | int | float = "sann", q6_liquid: float = 0.25) -> dict:
    """Q4, Q6, W6 and the phase label of one configuration.

    Returns
    -------
    dict
        ``{"q4", "q6", "w6", "phase"}``; the selection writes them as info keys.
    """
    bonds = first_shell(atoms, neighbours, "order parameters")[2]
    q6, w6 = _q_w(_mean_qlm(bonds, 6), 6)
    q4, _ = _q_w(_mean_qlm(bonds, 4), 4)
    return {"q4": q4, "q6": q6, "w6": w6, "phase": classify_phase(q4, q6, w6, q6_liquid)}
