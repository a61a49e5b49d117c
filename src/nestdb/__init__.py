"""nestdb: thermodynamically informed MLIP training databases from nested sampling.

Modules by domain: :mod:`nestdb.ns` (nested sampling), :mod:`nestdb.thermo`
(analysis of NS runs), :mod:`nestdb.select` (choosing configurations to
label), :mod:`nestdb.label` (DFT single points), :mod:`nestdb.fit` (ACE fits
and committees), :mod:`nestdb.bench` (benchmarks), :mod:`nestdb.models.calculators`
(energy models chosen by config).
"""

__version__ = "0.1.0"
