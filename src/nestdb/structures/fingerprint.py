"""Fingerprint of a configuration, shared by the label cache and database merging.

Canonical form: species, cell (rounded to 1e-6 Å) and fractional positions
wrapped into the cell and rounded to 1e-6, atoms sorted by (Z, x, y, z), so a
wrapped, re-ordered or copied configuration has the same hash.
"""

from __future__ import annotations

import hashlib

import numpy as np
from ase import Atoms

#: Decimals kept of the Cartesian cell (Å) and fractional positions in the structure hash.
DECIMALS = 6


def canonical_order(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Rounded wrapped fractional positions and the order that sorts atoms by (Z, x, y, z)."""
    fractional = np.round(atoms.get_scaled_positions(wrap=True), DECIMALS) % 1.0
    fractional = np.round(fractional, DECIMALS)  # 0.9999996 -> 1.0 -> 0.0
    order = np.lexsort((fractional[:, 2], fractional[:, 1], fractional[:, 0], atoms.numbers))
    return fractional, order


def structure_hash(atoms: Atoms) -> str:
    """Hash of a configuration that ignores atom order and wrapping.

    Parameters
    ----------
    atoms
        A periodic configuration.

    Returns
    -------
    str
        ``"s-"`` followed by 20 hex digits.
    """
    fractional, order = canonical_order(atoms)
    digest = hashlib.sha256()
    digest.update(np.asarray(atoms.numbers[order], dtype=np.int64).tobytes())
    digest.update(np.round(atoms.cell.array, DECIMALS).astype(np.float64).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    digest.update(np.ascontiguousarray(fractional[order]).tobytes())
    return "s-" + digest.hexdigest()[:20]
