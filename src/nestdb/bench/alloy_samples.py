"""Alloy observables of the NS samples: chemical short-range order and mixing enthalpy against temperature.

* **Short-range order** of one run: the first-shell Warren–Cowley parameter
  of every culled configuration (:func:`nestdb.structures.warren_cowley.warren_cowley`)
  averaged with the NS weights at each temperature,
  <alpha>(T) = sum_i w_i(T) alpha_i / sum_i w_i(T), w_i = a_i exp(-(H_i - H_min)/kT)
  (the weights of :mod:`nestdb.thermo`; only the samples in the trajectory
  count, every ``traj_interval``-th). The effective number of samples
  (sum w)^2 / sum w^2 shows where the average rests on a handful of them.
* **Mixing enthalpy** at one pressure from the runs of all compositions of a
  cycle: dH_mix(x, T) = U_x(T)/N_x - sum_i x_i U_i(T)/N_i, with U the NS
  enthalpy of each run (``thermo.csv``) and U_i that of the pure element i's
  run. It needs a pure run of every element at that pressure.

Both use the model the runs sampled with (cycle 0: the classical
potential; later: the previous cycle's committee).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from matplotlib.figure import Figure

from nestdb.errors import DataError
from nestdb.plotting import save, subplots
from nestdb.structures.warren_cowley import pair_label, random_reference, warren_cowley
from nestdb.thermo.analysis import log_prior
from nestdb.thermo.energies import NSEnergies
from nestdb.units import KB_EV_PER_K


# --------------------------------------------------------------------------- short-range order
def _frame_lines(frames: list[Atoms], energies: NSEnergies) -> np.ndarray:
    """Line of the ``.energies`` file of each trajectory frame (same iteration, closest enthalpy)."""
    lines = np.empty(len(frames), dtype=int)
    for k, atoms in enumerate(frames):
        if "iter" not in atoms.info or "ns_energy" not in atoms.info:
            raise DataError(f"trajectory frame {k} has no info keys iter/ns_energy: not a culled NS sample")
        candidates = np.flatnonzero(energies.iters == int(atoms.info["iter"]))
        if candidates.size == 0:
            raise DataError(
                f"trajectory frame {k} has iter={atoms.info['iter']}, not in the energies file; the "
                "trajectory and the .energies file belong to different runs"
            )
        lines[k] = candidates[np.argmin(np.abs(energies.enthalpy[candidates] - float(atoms.info["ns_energy"])))]
    return lines


def weighted_by_temperature(
    energies: NSEnergies, lines: np.ndarray, values: np.ndarray, temperatures: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """NS-weighted averages of per-sample values on a temperature grid, and the effective sample counts.

    Parameters
    ----------
    energies
        The run's :class:`~nestdb.thermo.energies.NSEnergies`.
    lines
        Sample line of each value.
    values
        (n_values, n_columns) per-sample observables.
    temperatures
        Grid (K).
    """
    prior = log_prior(energies)[lines]
    h = energies.enthalpy[lines] - energies.enthalpy.min()
    averages = np.empty((len(temperatures), values.shape[1]))
    n_eff = np.empty(len(temperatures))
    for k, temperature in enumerate(temperatures):
        log_w = prior - h / (KB_EV_PER_K * temperature)
        w = np.exp(log_w - log_w.max())
        averages[k] = (w[:, None] * values).sum(axis=0) / w.sum()
        n_eff[k] = w.sum() ** 2 / (w**2).sum()
    return averages, n_eff


def sro_table(
    frames: list[Atoms],
    energies: NSEnergies | None,
    elements: list[str],
    temperatures: np.ndarray,
    neighbours: str | int | float = "sann",
) -> tuple[pd.DataFrame, list[str]]:
    """First-shell Warren–Cowley parameters of one run's culled samples, NS-averaged at each temperature.

    Cost: no calculator calls; one neighbour list per culled configuration.

    Parameters
    ----------
    frames
        The run's culled samples (its ``.traj.extxyz``); none gives an empty table.
    energies
        The run's ``.energies`` (None when there are no frames).
    elements
        The campaign's elements (pair order of the columns).
    temperatures
        Grid (K).
    neighbours
        First-shell rule (:func:`~nestdb.structures.warren_cowley.neighbour_pairs`).

    Returns
    -------
    (pandas.DataFrame, list of str)
        ``T``, one ``alpha_<A>-<B>`` column per pair present, its
        ``alpha_random_<A>-<B>`` (random arrangements of the same species on
        the samples' sites: the zero of order in a small cell,
        :func:`~nestdb.structures.warren_cowley.random_reference`), ``n_eff``;
        and the pairs present.
    """
    present = [e for e in elements if frames and e in set(frames[0].get_chemical_symbols())]
    pairs = [pair_label(a, b) for k, a in enumerate(present) for b in present[k + 1 :]]
    table = pd.DataFrame({"T": temperatures})
    if frames and pairs:
        values = np.array(
            [
                [warren_cowley(atoms, neighbours, present)[p] for p in pairs]
                + [random_reference(atoms, neighbours, present, seed=k)[p] for p in pairs]
                for k, atoms in enumerate(frames)
            ]
        )
        averages, n_eff = weighted_by_temperature(energies, _frame_lines(frames, energies), values, temperatures)
        for j, pair in enumerate(pairs):
            table[pair] = averages[:, j]
            table[pair.replace("alpha_", "alpha_random_")] = averages[:, len(pairs) + j]
        table["n_eff"] = n_eff
    return table, pairs


def plot_sro(table: pd.DataFrame, pairs: list[str], path: str | Path, title: str = "") -> Figure:
    """alpha(T) of each pair (solid) and of random arrangements of its species (dashed); returns the figure."""
    fig, ax = subplots(figsize=(6, 4))
    for k, pair in enumerate(pairs):
        if pair in table:
            ax.plot(table["T"], table[pair], color=f"C{k}", label=pair.replace("alpha_", "α "))
            ax.plot(
                table["T"],
                table[pair.replace("alpha_", "alpha_random_")],
                "--",
                color=f"C{k}",
                label=pair.replace("alpha_", "random arrangement "),
            )
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("Warren–Cowley α, first shell")
    ax.set_title(title or "chemical short-range order of the NS samples", fontsize=10)
    if pairs:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no samples with two species", ha="center", transform=ax.transAxes)
    return save(fig, path, dpi=110)


# --------------------------------------------------------------------------- mixing enthalpy
def mixing_enthalpy(
    tables: dict[str, pd.DataFrame], compositions: dict[str, dict[str, int]], elements: list[str]
) -> pd.DataFrame:
    """Mixing enthalpy per atom of each composition against temperature from the runs' NS enthalpies.

    Parameters
    ----------
    tables
        ``{tag: thermo table}`` (columns ``T`` and ``U``, U the run's enthalpy
        in eV) of every composition at one pressure, on the same grid.
    compositions
        ``{tag: {element: atoms}}``.
    elements
        The campaign's elements; each needs a pure composition.

    Returns
    -------
    pandas.DataFrame
        Long table: ``composition``, ``x_<element>``, ``T``,
        ``enthalpy_per_atom``, ``mixing_enthalpy`` (eV/atom; 0 for the pure runs).

    Raises
    ------
    DataError
        An element without a pure run, or tables on different temperature grids.
    """
    per_atom, fractions = {}, {}
    for tag, table in tables.items():
        counts = compositions[tag]
        n_atoms = sum(counts.values())
        per_atom[tag] = table.set_index("T")["U"] / n_atoms
        fractions[tag] = {e: counts.get(e, 0) / n_atoms for e in elements}
    pure = {}
    for element in elements:
        tags = [tag for tag, x in fractions.items() if x[element] == 1.0]
        if not tags:
            raise DataError(
                f"mixing enthalpy: no pure {element} run at this pressure; add a composition "
                f"{{{element}: n}} to ns.composition"
            )
        pure[element] = per_atom[tags[0]]
    grids = {tuple(np.round(h.index.to_numpy(dtype=float), 6)) for h in per_atom.values()}
    if len(grids) > 1:
        raise DataError("mixing enthalpy: the runs' thermo tables have different temperature grids")
    rows = []
    for tag, h in per_atom.items():
        reference = sum(fractions[tag][e] * pure[e] for e in elements)
        for temperature, value, ref in zip(h.index, h.to_numpy(), reference.to_numpy(), strict=True):
            rows.append(
                {
                    "composition": tag,
                    **{f"x_{e}": fractions[tag][e] for e in elements},
                    "T": float(temperature),
                    "enthalpy_per_atom": float(value),
                    "mixing_enthalpy": float(value - ref),
                }
            )
    return pd.DataFrame(rows)


def plot_mixing(
    table: pd.DataFrame,
    elements: list[str],
    path: str | Path,
    title: str = "",
    plot_temperatures: list[float] | None = None,
) -> Figure:
    """Mixing enthalpy against T per composition, and against composition at a few temperatures."""
    fig, (left, right) = subplots(1, 2, figsize=(10, 4))
    for tag, rows in table.groupby("composition", sort=False):
        left.plot(rows["T"], 1000 * rows["mixing_enthalpy"], label=tag)
    left.set_xlabel("temperature (K)")
    left.set_ylabel("mixing enthalpy (meV/atom)")
    left.legend(fontsize=7)
    temperatures = sorted(set(table["T"]))
    chosen = plot_temperatures or [temperatures[int(round(q * (len(temperatures) - 1)))] for q in (0.1, 0.3, 0.6, 0.9)]
    x_column = f"x_{elements[-1]}"
    for temperature in chosen:
        nearest = min(temperatures, key=lambda t: abs(t - temperature))
        rows = table[table["T"] == nearest].sort_values(x_column)
        right.plot(rows[x_column], 1000 * rows["mixing_enthalpy"], "o-", label=f"{nearest:g} K")
    right.axhline(0.0, color="grey", lw=0.5)
    right.set_xlabel(f"x({elements[-1]})" + (" (other elements pooled)" if len(elements) > 2 else ""))
    right.set_ylabel("mixing enthalpy (meV/atom)")
    right.legend(fontsize=7)
    fig.suptitle(title or "mixing enthalpy of the NS runs", fontsize=10)
    return save(fig, path, dpi=110)
