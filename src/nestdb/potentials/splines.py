"""Cubic splines on uniform grids, stored as one coefficient row per interval.

EAM tables hold 10^3-10^4 points on a uniform grid, so the interval of any
argument is one multiplication away; the value and derivative of several
functions sharing a grid then come from one row gather and one Horner
evaluation, with no per-call scipy overhead. The interpolant is scipy's
not-a-knot cubic spline, the same curve as ASE's EAM
(``InterpolatedUnivariateSpline(k=3)``).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline


def interval_coefficients(start: float, step: float, values: np.ndarray, n_intervals: int) -> np.ndarray:
    """Spline coefficients on the grid ``i * step`` (i = 0 .. n_intervals).

    The spline interpolates ``values`` given on ``start + k * step``; intervals
    of the output grid that lie outside those points use the nearest end
    polynomial (extrapolation), so ``start`` may be one step above 0 (ASE's
    pair-function spline skips r = 0).

    Returns
    -------
    (n_intervals, 4) array
        Row i holds (c3, c2, c1, c0) with f(x) = ((c3 t + c2) t + c1) t + c0,
        t = x - i * step.
    """
    first_knot = int(round(start / step))
    spline = CubicSpline(start + step * np.arange(len(values)), values, bc_type="not-a-knot")
    per_knot = spline.c.T  # (len(values) - 1, 4), powers of (x - knot) from the highest
    knot_index = np.arange(n_intervals) - first_knot
    nearest = np.clip(knot_index, 0, len(per_knot) - 1)
    c3, c2, c1, c0 = per_knot[nearest].T
    # re-expand the nearest polynomial about this interval's left end (0 inside the data)
    d = (knot_index - nearest) * step
    return np.stack(
        [c3, 3.0 * c3 * d + c2, (3.0 * c3 * d + 2.0 * c2) * d + c1, ((c3 * d + c2) * d + c1) * d + c0], axis=1
    )


def evaluate(rows: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and derivatives of the cubics in ``rows`` ((M, 4k)) at ``offsets`` ((M,)).

    Returns two (M, k) arrays, one column per function stored side by side.
    """
    coeffs = rows.reshape(len(rows), -1, 4)
    t = offsets[:, None]
    c3, c2, c1, c0 = coeffs[..., 0], coeffs[..., 1], coeffs[..., 2], coeffs[..., 3]
    value = ((c3 * t + c2) * t + c1) * t + c0
    derivative = (3.0 * c3 * t + 2.0 * c2) * t + c1
    return value, derivative
