"""Fast energy models for nested sampling: EAM (LAMMPS tables) and Lennard-Jones.

- :mod:`~nestdb.potentials.eam`: LAMMPS ``eam``/``eam/alloy``/``eam/fs``
  readers and :class:`FastEAM`, evaluated by the compiled kernel of
  :mod:`~nestdb.potentials.eam_kernel` (numba) or by numpy;
- :mod:`~nestdb.potentials.lj`: :class:`FastLennardJones` (numpy);
- :mod:`~nestdb.potentials.neighbours`: neighbour search for small periodic
  cells (every pair against every lattice translation within the cutoff);
- :mod:`~nestdb.potentials.splines`: cubic splines as per-interval coefficient
  tables.
"""

from nestdb.potentials.eam import EAM_KINDS, EAMTables, FastEAM, read_eam_file
from nestdb.potentials.lj import FastLennardJones

__all__ = ["EAM_KINDS", "EAMTables", "FastEAM", "FastLennardJones", "read_eam_file"]
