"""Reference crystal structures for the benchmarks (primitive cells)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk

from nestdb.errors import ConfigError

KNOWN_STRUCTURES: tuple[str, ...] = ("hcp", "bcc", "fcc", "dhcp")

#: Default volume per atom (Å^3), close to PBE's equilibrium for Mg hcp.
DEFAULT_VOLUME_PER_ATOM = 23.0
#: Default c/a of hcp (dhcp uses twice this per four-layer cell).
DEFAULT_HCP_C_OVER_A = 1.624


def build_structure(
    name: str,
    element: str = "Mg",
    volume_per_atom: float | None = None,
    c_over_a: float = DEFAULT_HCP_C_OVER_A,
) -> Atoms:
    """Primitive cell of a close-packed or bcc crystal at a given volume per atom.

    Cost: no calculator calls.

    Parameters
    ----------
    name
        One of :data:`KNOWN_STRUCTURES`: ``hcp`` (2 atoms), ``bcc`` (1),
        ``fcc`` (1), ``dhcp`` (4, ABAC stacking).
    element
        Chemical symbol.
    volume_per_atom
        Å^3/atom; default :data:`DEFAULT_VOLUME_PER_ATOM` (23 Å^3, Mg).
    c_over_a
        Ideal-layer c/a of the hexagonal structures (per two layers).

    Returns
    -------
    ase.Atoms
        Periodic primitive cell in ASE's standard orientation (cubic axes
        along x, y, z; hexagonal c along z), which the elastic-constant
        strain patterns assume.

    Raises
    ------
    ConfigError
        Unknown structure name (the message lists the known ones) or a
        non-positive volume.
    """
    if name not in KNOWN_STRUCTURES:
        raise ConfigError(
            f"bench.structures: unknown structure {name!r}; choose from {', '.join(KNOWN_STRUCTURES)}"
        )
    volume = DEFAULT_VOLUME_PER_ATOM if volume_per_atom is None else float(volume_per_atom)
    if not volume > 0:
        raise ConfigError(f"volume_per_atom must be positive (Å^3/atom), got {volume_per_atom!r}")
    if name == "fcc":
        return bulk(element, "fcc", a=(4.0 * volume) ** (1 / 3))
    if name == "bcc":
        return bulk(element, "bcc", a=(2.0 * volume) ** (1 / 3))
    # Hexagonal cell holding two close-packed layers per c: V/atom = sqrt(3)/4 a^3 (c/a).
    a = (4.0 * volume / (np.sqrt(3.0) * c_over_a)) ** (1 / 3)
    if name == "hcp":
        return bulk(element, "hcp", a=a, c=c_over_a * a)
    # dhcp: ABAC stacking, four layers per cell.
    cell = [[a, 0.0, 0.0], [-a / 2, a * np.sqrt(3.0) / 2, 0.0], [0.0, 0.0, 2 * c_over_a * a]]
    scaled = [[0, 0, 0], [1 / 3, 2 / 3, 1 / 4], [0, 0, 1 / 2], [2 / 3, 1 / 3, 3 / 4]]
    return Atoms(element * 4, scaled_positions=scaled, cell=cell, pbc=True)
