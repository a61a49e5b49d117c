"""Benchmarks of a model against a reference (method.md §5).

E–V curves and EOS fits (:mod:`~nestdb.bench.eos`), symmetry-preserving
relaxations and elastic constants (:mod:`~nestdb.bench.elastic`), 0 K
enthalpy against pressure and transition pressures
(:mod:`~nestdb.bench.enthalpy`), the Bain path (:mod:`~nestdb.bench.bain`),
phonons with phonopy (:mod:`~nestdb.bench.phonons`), powder XRD
(:mod:`~nestdb.bench.xrd`), reference data from DFT output files
(:mod:`~nestdb.bench.reference_files`), NS-based benchmarks (XRD by
temperature: :mod:`~nestdb.bench.xrd`; phase diagram:
:mod:`~nestdb.bench.phase_diagram`), E–V and elastic comparisons
(:mod:`~nestdb.bench.properties`), and the workflow stages
(:mod:`~nestdb.bench.stage`).
"""

from nestdb.bench.elastic import elastic_constants
from nestdb.bench.eos import DEFAULT_VOLUME_SCALES, ev_curve, fit_eos
from nestdb.bench.plots import plot_ev
from nestdb.structures.crystals import KNOWN_STRUCTURES, build_structure

__all__ = [
    "DEFAULT_VOLUME_SCALES",
    "KNOWN_STRUCTURES",
    "build_structure",
    "elastic_constants",
    "ev_curve",
    "fit_eos",
    "plot_ev",
]
