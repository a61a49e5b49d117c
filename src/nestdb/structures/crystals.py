"""Reference crystal structures for the benchmarks (primitive cells), sized per element.

No element is assumed: the starting volume per atom and the hcp c/a of each
element come from ASE's reference data (the element's experimental ground
state, :data:`ase.data.reference_states`), so E–V scans, relaxations and
phonons start near the element's own equilibrium.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii, reference_states

from nestdb.errors import ConfigError

KNOWN_STRUCTURES: tuple[str, ...] = ("hcp", "bcc", "fcc", "dhcp")

#: c/a of ideal close packing, for elements whose ground state is not hexagonal.
IDEAL_C_OVER_A = math.sqrt(8.0 / 3.0)


def _element_number(element: str) -> int:
    if element not in atomic_numbers or element == "X":
        raise ConfigError(f"unknown chemical element {element!r}; use a symbol such as 'Cu' or 'Al'")
    return atomic_numbers[element]


def reference_volume_per_atom(element: str) -> float:
    """Volume per atom (Å³) of ``element``'s ground-state crystal in ASE's reference data.

    fcc a³/4, bcc a³/2, hcp √3/4 a² c, diamond a³/8; other lattices through
    ``ase.build.bulk``; elements without a usable crystal in the table (gases,
    orthorhombic cells given without their basis) use close-packed spheres of
    their covalent radius, 4√2 r³.

    Parameters
    ----------
    element
        Chemical symbol.

    Returns
    -------
    float
        The starting volume of the benchmarks' structures (equilibrium of
        experiment, within a few per cent of PBE's for metals).
    """
    number = _element_number(element)
    state = reference_states[number] or {}
    symmetry, a = state.get("symmetry"), state.get("a")
    if a is not None:
        if symmetry == "fcc":
            return a**3 / 4.0
        if symmetry == "bcc":
            return a**3 / 2.0
        if symmetry == "hcp":
            return math.sqrt(3.0) / 4.0 * a**3 * state["c/a"]
        if symmetry == "diamond":
            return a**3 / 8.0
        # orthorhombic entries hold a multi-atom cell without its basis: no volume per atom from them
        try:
            if symmetry == "orthorhombic":
                raise ValueError(symmetry)
            crystal = bulk(element)
            return float(crystal.get_volume() / len(crystal))
        except Exception:  # ASE cannot build every tabulated lattice; fall back to the radius estimate
            pass
    return 4.0 * math.sqrt(2.0) * float(covalent_radii[number]) ** 3


def reference_c_over_a(element: str) -> float:
    """c/a (per two layers) of ``element``'s hexagonal cells: its own if its ground state is hcp, else ideal."""
    state = reference_states[_element_number(element)] or {}
    if state.get("symmetry") == "hcp" and state.get("c/a"):
        return float(state["c/a"])
    return IDEAL_C_OVER_A


def build_structure(
    name: str,
    element: str,
    volume_per_atom: float | None = None,
    c_over_a: float | None = None,
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
        Å^3/atom; default :func:`reference_volume_per_atom` of ``element``.
    c_over_a
        Ideal-layer c/a of the hexagonal structures (per two layers);
        default :func:`reference_c_over_a` of ``element``.

    Returns
    -------
    ase.Atoms
        Periodic primitive cell in ASE's standard orientation (cubic axes
        along x, y, z; hexagonal c along z), which the elastic-constant
        strain patterns assume.

    Raises
    ------
    ConfigError
        Unknown structure name (the message lists the known ones), unknown
        element or a non-positive volume.
    """
    if name not in KNOWN_STRUCTURES:
        raise ConfigError(f"bench.structures: unknown structure {name!r}; choose from {', '.join(KNOWN_STRUCTURES)}")
    volume = reference_volume_per_atom(element) if volume_per_atom is None else float(volume_per_atom)
    if not volume > 0:
        raise ConfigError(f"volume_per_atom must be positive (Å^3/atom), got {volume_per_atom!r}")
    c_over_a = reference_c_over_a(element) if c_over_a is None else float(c_over_a)
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
