"""Phase transitions from an NS heat-capacity curve: peaks, widths, and what melts.

A transition shows as a peak of C_p(T). The reference study quotes the FWHM
of a peak measured from a baseline at the tail with the lower prominence as
the error bar of the transition temperature: the peak's *prominence* is its
height above the higher of the two minima that separate it from higher
peaks (or the curve's ends), and the width is taken at half that prominence.

For small cells the global C_p maximum is usually *not* melting but the
strong expansion of the hot fluid (reference/pymatnest-format.md §6: Mg,
16 atoms, 1 GPa: maximum at 1470 K where <V>/atom goes 24 -> 30 Å^3, while
melting is the smaller peak at 835 K with a 3 % volume jump). Peaks are
therefore classified by the relative volume jump across them:

* ``fluid``: relative jump above ``max_melting_jump`` (expansion of the
  fluid, condensation of a gas), and every peak hotter than the melting one;
* ``melting``: the hottest remaining peak whose jump is at least
  ``min_melting_jump``;
* ``solid-solid``: the remaining peaks below melting;
* ``unknown``: remaining peaks when no melting peak is found.

Peaks where the run does not resolve the temperature (its weight band
``low_pct_i..high_pct_i`` reaches the last recorded sample, as in a run
stopped in the gas) are truncation artefacts and are not reported. The
last sample index is ``table.attrs['n_samples'] - 1`` (set by
:func:`~nestdb.thermo.analyse`); for a table read back from CSV it is taken
as the largest ``high_pct_i`` of the table, which the coldest temperatures
of any run reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import find_peaks, peak_widths

from nestdb.errors import ConfigError, DataError
from nestdb.units import KB_EV_PER_K

__all__ = ["Transition", "detect_transitions", "melting_transition"]

TRANSITION_KINDS = ("melting", "solid-solid", "fluid", "unknown")


@dataclass(frozen=True)
class Transition:
    """One C_p peak of an NS run.

    Attributes
    ----------
    temperature : float
        Peak temperature (K), refined between grid points by a parabola.
    fwhm : float
        Full width (K) at half the peak's prominence, ``high - low``.
    low, high : float
        Temperatures (K) where C_p crosses the half-prominence level.
    cp_peak : float
        C_p at the peak in kB per atom.
    volume_jump : float
        ``<V>(high) - <V>(low)`` per atom (Å^3/atom).
    kind : str
        ``'melting'``, ``'solid-solid'``, ``'fluid'`` or ``'unknown'``.
    prominence : float
        Height of the peak above its baseline, kB per atom.
    relative_volume_jump : float
        ``volume_jump`` divided by ``<V>(low)`` per atom.
    """

    temperature: float
    fwhm: float
    low: float
    high: float
    cp_peak: float
    volume_jump: float
    kind: str
    prominence: float = float("nan")
    relative_volume_jump: float = float("nan")


def _check_table(table: pd.DataFrame, n_atoms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in ("T", "Cp", "V") if c not in table.columns]
    if missing:
        raise DataError(f"detect_transitions: table lacks columns {missing}; pass the output of nestdb.thermo.analyse")
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, (int, np.integer)) or n_atoms < 1:
        raise ConfigError(f"detect_transitions: n_atoms must be a positive integer, got {n_atoms!r}")
    temps = table["T"].to_numpy(dtype=float)
    if temps.size < 3 or np.any(np.diff(temps) <= 0):
        raise DataError("detect_transitions: need at least 3 temperatures in increasing order")
    kB = float(table.attrs.get("kB", KB_EV_PER_K))
    return temps, table["Cp"].to_numpy(dtype=float) / (n_atoms * kB), table["V"].to_numpy(dtype=float) / n_atoms


def _refine_peak(temps: np.ndarray, cp: np.ndarray, i: int) -> tuple[float, float]:
    """Vertex of the parabola through the peak and its neighbours (grid point at the ends)."""
    if i == 0 or i == temps.size - 1:
        return float(temps[i]), float(cp[i])
    coeff = np.polyfit(temps[i - 1 : i + 2], cp[i - 1 : i + 2], 2)
    if coeff[0] >= 0:
        return float(temps[i]), float(cp[i])
    t_vertex = float(np.clip(-coeff[1] / (2 * coeff[0]), temps[i - 1], temps[i + 1]))
    return t_vertex, float(np.polyval(coeff, t_vertex))


def detect_transitions(
    table: pd.DataFrame,
    n_atoms: int,
    min_prominence: float = 0.2,
    min_melting_jump: float = 0.01,
    max_melting_jump: float = 0.12,
) -> list[Transition]:
    """C_p peaks of an :func:`~nestdb.thermo.analyse` table, classified.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`nestdb.thermo.analyse` (columns ``T``, ``Cp`` in
        eV/K for the whole cell, ``V`` in Å^3 for the whole cell) on an
        increasing temperature grid; a fine grid (5-10 K) resolves narrow peaks.
    n_atoms : int
        Atoms in the NS cell (C_p and V are reported per atom).
    min_prominence : float
        Smallest prominence (kB/atom) of a reported peak; the solid's
        sampling noise in 16-atom runs is ~0.2-0.5 kB/atom.
    min_melting_jump, max_melting_jump : float
        Range of the relative volume jump across the half-maximum width that
        a melting peak may have (module docstring).

    Returns
    -------
    list of Transition
        Peaks in order of increasing temperature.
    """
    if not 0 <= min_melting_jump < max_melting_jump:
        raise ConfigError(
            f"detect_transitions: need 0 <= min_melting_jump < max_melting_jump, got "
            f"{min_melting_jump}, {max_melting_jump}"
        )
    temps, cp, volume = _check_table(table, n_atoms)
    if not np.all(np.isfinite(cp)):
        raise DataError("detect_transitions: C_p contains NaN/inf; analyse a run with samples on this grid")
    peaks, props = find_peaks(cp, prominence=min_prominence)
    if "high_pct_i" in table.columns and len(table):
        # Prominences were measured on the whole curve; dropping artefacts afterwards keeps them.
        high = table["high_pct_i"].to_numpy()
        last = int(table.attrs["n_samples"]) - 1 if table.attrs.get("n_samples") else int(high.max())
        resolved = high[peaks] < last
        peaks = peaks[resolved]
        props = {key: value[resolved] for key, value in props.items()}
    if peaks.size == 0:
        return []
    # Width at half the prominence: the reference level is the higher base (lower-prominence tail).
    _, _, left, right = peak_widths(
        cp, peaks, rel_height=0.5, prominence_data=(props["prominences"], props["left_bases"], props["right_bases"])
    )
    index = np.arange(temps.size)
    raw = []
    for k, i in enumerate(peaks):
        low, high = float(np.interp(left[k], index, temps)), float(np.interp(right[k], index, temps))
        v_low, v_high = float(np.interp(low, temps, volume)), float(np.interp(high, temps, volume))
        t_peak, cp_peak = _refine_peak(temps, cp, int(i))
        raw.append(
            dict(
                temperature=t_peak,
                fwhm=high - low,
                low=low,
                high=high,
                cp_peak=cp_peak,
                volume_jump=v_high - v_low,
                prominence=float(props["prominences"][k]),
                relative_volume_jump=(v_high - v_low) / v_low if v_low > 0 else float("nan"),
            )
        )
    kinds = _classify([r["relative_volume_jump"] for r in raw], min_melting_jump, max_melting_jump)
    return [Transition(kind=kind, **r) for r, kind in zip(raw, kinds, strict=True)]


def _classify(jumps: list[float], min_jump: float, max_jump: float) -> list[str]:
    """Kinds of peaks sorted by temperature, from their relative volume jumps."""
    jumps_arr = np.nan_to_num(np.asarray(jumps, dtype=float), nan=0.0)
    fluid = jumps_arr > max_jump
    # Melting is below the first fluid-like peak: everything hotter is fluid already.
    first_fluid = int(np.argmax(fluid)) if fluid.any() else jumps_arr.size
    candidates = [k for k in range(first_fluid) if jumps_arr[k] >= min_jump]
    melt = candidates[-1] if candidates else None
    kinds = []
    for k in range(jumps_arr.size):
        if k >= first_fluid or (melt is not None and k > melt):
            kinds.append("fluid")
        elif k == melt:
            kinds.append("melting")
        else:
            kinds.append("solid-solid" if melt is not None else "unknown")
    return kinds


def melting_transition(table: pd.DataFrame, n_atoms: int, **kwargs) -> Transition | None:
    """The melting peak of :func:`detect_transitions`, or None when none is found.

    ``kwargs`` are passed to :func:`detect_transitions`.
    """
    for transition in detect_transitions(table, n_atoms, **kwargs):
        if transition.kind == "melting":
            return transition
    return None
