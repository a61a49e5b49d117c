"""Benchmarks of a model against a reference (method.md §5): E–V curves, EOS fits, elastic constants."""

from nestdb.bench.elastic import elastic_constants, relax_cell
from nestdb.bench.eos import DEFAULT_VOLUME_SCALES, ev_curve, fit_eos
from nestdb.bench.plots import plot_ev
from nestdb.bench.structures import KNOWN_STRUCTURES, build_structure

__all__ = [
    "DEFAULT_VOLUME_SCALES",
    "KNOWN_STRUCTURES",
    "build_structure",
    "elastic_constants",
    "ev_curve",
    "fit_eos",
    "plot_ev",
    "relax_cell",
]
