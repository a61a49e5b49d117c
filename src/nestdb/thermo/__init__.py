"""Thermodynamics of nested-sampling runs (the quadrature of pymatnest's ns_analyse).

Submodules: :mod:`~nestdb.thermo.energies` (reading ``.energies`` files),
:mod:`~nestdb.thermo.analysis` (log X_i, weights, Z(T), U, C_p, <V>, thermal
expansion; bootstrap error bars), :mod:`~nestdb.thermo.temperatures` (the
temperature of every sample, used by :mod:`nestdb.select`),
:mod:`~nestdb.thermo.transitions` (C_p peaks, FWHM, melting vs fluid
expansion), :mod:`~nestdb.thermo.plots` and :mod:`~nestdb.thermo.stage`
(the workflow's analysis stage; ``nestdb analyse``, like ``ns_analyse``,
is :mod:`nestdb.cli.analyse`).
"""

from nestdb.thermo.analysis import TABLE_COLUMNS, analyse, bootstrap, combine_runs, log_phase_volume
from nestdb.thermo.energies import NSEnergies, read_energies
from nestdb.thermo.plots import plot_analysis
from nestdb.thermo.temperatures import resolved_temperature, sample_temperatures
from nestdb.thermo.transitions import Transition, detect_transitions, melting_transition

__all__ = [
    "NSEnergies",
    "read_energies",
    "TABLE_COLUMNS",
    "log_phase_volume",
    "analyse",
    "bootstrap",
    "combine_runs",
    "sample_temperatures",
    "resolved_temperature",
    "Transition",
    "detect_transitions",
    "melting_transition",
    "plot_analysis",
]
