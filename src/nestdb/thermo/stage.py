"""The analysis stage of the workflow: one NS run's thermodynamics.

Rules ``analyse`` and ``bench_phase_diagram_analyse``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nestdb.io import write_sample_temperatures
from nestdb.plotting import plot_message
from nestdb.thermo.analysis import TABLE_COLUMNS, analyse, bootstrap
from nestdb.thermo.energies import count_samples, read_energies
from nestdb.thermo.plots import plot_analysis
from nestdb.thermo.temperatures import sample_temperatures
from nestdb.thermo.transitions import Transition, detect_transitions

log = logging.getLogger(__name__)

#: Columns of the ``transitions.csv`` of a run (the fields of :class:`~nestdb.thermo.transitions.Transition`).
TRANSITION_COLUMNS = tuple(f.name for f in dataclasses.fields(Transition))


def analyse_run(
    energies_path: str | Path,
    table_path: str | Path,
    temperatures_path: str | Path,
    plot_path: str | Path,
    grid: dict,
    title: str = "",
    transitions_path: str | Path | None = None,
) -> Figure:
    """Thermodynamics of one run: a table over T, per-sample temperatures, a plot; returns the plot's figure.

    ``grid`` is the ``analyse`` config block (``t_min``, ``t_max``,
    ``t_step``; optional ``bootstrap``: number of redrawn NS processes for
    C_p/<V> error bands, 0 for none). C_p peaks (:func:`nestdb.thermo.detect_transitions`)
    are marked on the plot and, with ``transitions_path``, written as CSV.
    A run the committee stopped before its first iteration has no samples:
    it gets an empty table and a plot that says so (its selection falls back
    to the final live set), instead of failing the cycle.
    """
    if count_samples(energies_path) == 0:
        log.warning("%s has no samples (run stopped before its first iteration)", energies_path)
        pd.DataFrame(columns=list(TABLE_COLUMNS)).to_csv(table_path, index=False)
        if transitions_path:
            pd.DataFrame(columns=list(TRANSITION_COLUMNS)).to_csv(transitions_path, index=False)
        write_sample_temperatures(temperatures_path, [], [], [], [])
        return plot_message(plot_path, f"{title}: no NS samples (stopped before the first iteration)")
    energies = read_energies(energies_path)
    temperatures = np.arange(grid["t_min"], grid["t_max"] + 0.5 * grid["t_step"], grid["t_step"])
    table = analyse(energies, temperatures)
    if grid.get("bootstrap", 0):
        errors = bootstrap(energies, temperatures, n_boot=int(grid["bootstrap"]))
        table = table.assign(U_err=errors["U_err"], Cp_err=errors["Cp_err"], V_err=errors["V_err"])
    table.to_csv(table_path, index=False)
    transitions = detect_transitions(table, energies.n_atoms) if energies.n_atoms and len(table) >= 3 else []
    for t in transitions:
        log.info(
            "C_p peak (%s) at %.0f K, FWHM %.0f K, volume jump %.3g A^3/atom",
            t.kind,
            t.temperature,
            t.fwhm,
            t.volume_jump,
        )
    if transitions_path:
        pd.DataFrame([dataclasses.asdict(t) for t in transitions], columns=list(TRANSITION_COLUMNS)).to_csv(
            transitions_path, index=False
        )
    write_sample_temperatures(
        temperatures_path, energies.iters, energies.enthalpy, energies.volume, sample_temperatures(energies)
    )
    fig = plot_analysis(table, plot_path, title=title, n_atoms=energies.n_atoms, transitions=transitions)
    log.info("analysed %d samples of %s", len(energies.enthalpy), energies_path)
    return fig
