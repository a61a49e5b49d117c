"""A label cache keyed on structure and settings: nothing is computed twice.

Layout: ``<cache_dir>/<settings_hash>/<structure_hash>.extxyz``, one successful
labelled record per file (failures are never cached, so they are retried).
The structure hash canonicalises a configuration: species, cell (rounded to
1e-6 Å) and fractional positions wrapped into the cell and rounded to 1e-6,
sorted, so a wrapped, re-ordered or copied configuration of this cycle, an
earlier cycle or an earlier run is found again. The cache is safe to share
between runs and workflows with the same settings (files are written
atomically); delete a folder to forget a settings hash.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from nestdb.fingerprint import canonical_order, structure_hash


class LabelCache:
    """Successful labels stored by settings hash and structure hash.

    Parameters
    ----------
    directory
        Cache folder (created when the first label is stored).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, atoms: Atoms, settings_hash: str) -> Path:
        """File that holds the label of ``atoms`` under ``settings_hash``."""
        return self.directory / settings_hash / f"{structure_hash(atoms)}.extxyz"

    def get(self, atoms: Atoms, settings_hash: str) -> Atoms | None:
        """The cached label of ``atoms`` with its own positions, order and info, or None.

        The cached forces are re-ordered onto the atoms of ``atoms``; the
        other label keys (energy, stress, virial, cost, settings) are copied
        onto a copy of ``atoms``, whose own info (provenance) is kept.
        """
        path = self.path(atoms, settings_hash)
        if not path.is_file():
            return None
        cached = read(path, format="extxyz")
        _, order_query = canonical_order(atoms)
        _, order_cached = canonical_order(cached)
        result = atoms.copy()
        result.calc = None
        forces = np.empty((len(atoms), 3))
        forces[order_query] = cached.arrays["dft_forces"][order_cached]
        result.arrays["dft_forces"] = forces
        for key, value in cached.info.items():
            if key.startswith(("dft_", "label_")):
                result.info[key] = value
        return result

    def put(self, labelled: Atoms) -> Path | None:
        """Store a successful label under the settings hash it was asked for (failures are not stored).

        The key is ``label_requested_hash`` (a label obtained with retry settings
        answers the configured settings), else ``label_settings_hash``.
        """
        if labelled.info.get("label_status") != "ok":
            return None
        key = labelled.info.get("label_requested_hash", labelled.info["label_settings_hash"])
        path = self.path(labelled, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: concurrent jobs never see half a file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".extxyz.tmp")
        os.close(handle)
        write(temporary, labelled, format="extxyz")
        os.replace(temporary, path)
        return path
