"""A label cache keyed on structure and settings: nothing is computed twice.

Layout: ``<cache_dir>/<settings_hash>/<structure_hash>.extxyz``, one successful
labelled record per file (failures are never cached, so they are retried).
The structure hash canonicalises a configuration: species, cell (rounded to
1e-6 Å) and fractional positions wrapped into the cell and rounded to 1e-6,
sorted, so a wrapped, re-ordered or copied configuration of this cycle, an
earlier cycle or an earlier run is found again. The cache is safe to share
between runs and workflows with the same settings (files are written
atomically); delete a folder to forget a settings hash.

The cache never costs a computed label: :meth:`LabelCache.store` and
:meth:`LabelCache.get` only warn when a file cannot be written or read (the
label job writes its own output first), and :meth:`LabelCache.check_writable`
lets a job refuse to start, before any calculation, when the folder of its
settings cannot be written.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from nestdb.errors import ConfigError
from nestdb.structures.fingerprint import canonical_order, structure_hash

log = logging.getLogger(__name__)


def probe_writable(folder: str | Path) -> OSError | None:
    """Create ``folder`` (and parents) and a file in it; return the error, or None when writable.

    A real write, not :func:`os.access`: that answers yes for root on a
    read-only mount and knows nothing of full disks or quotas.
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nestdb-write-test-"):
            pass
    except OSError as error:
        return error
    return None


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

    def check_writable(self, settings_hash: str) -> None:
        """Refuse (before any calculation) a cache whose folder for ``settings_hash`` cannot be written.

        Raises
        ------
        ConfigError
            Naming the folder, the reason and the fixes (``label.cache_dir``).
        """
        folder = self.directory / settings_hash
        error = probe_writable(folder)
        if error is not None:
            raise ConfigError(
                f"label.cache_dir: cannot write to the label cache folder {folder} ({type(error).__name__}: "
                f"{error.strerror or error}); no calculation was started. Make it writable (e.g. "
                f"`chmod -R u+w {self.directory}`), point label.cache_dir at a writable folder, or set "
                "label.cache_dir: null to label without a cache"
            )

    def get(self, atoms: Atoms, settings_hash: str) -> Atoms | None:
        """The cached label of ``atoms`` with its own positions, order and info, or None.

        The cached forces are re-ordered onto the atoms of ``atoms``; the
        other label keys (energy, stress, virial, cost, settings) are copied
        onto a copy of ``atoms``, whose own info (provenance) is kept. An
        unreadable or unusable cache file is a miss (with a warning): the
        configuration is calculated again.
        """
        path = self.path(atoms, settings_hash)
        if not path.is_file():
            return None
        try:
            cached = read(path, format="extxyz")
            if (
                cached.info.get("label_status") != "ok"
                or "dft_forces" not in cached.arrays
                or len(cached) != len(atoms)
            ):
                raise ValueError("not a successful label of this configuration")
        except Exception as error:  # any reader error: recalculating is always safe
            log.warning(
                "label cache: ignoring %s (%s: %s); the configuration is calculated again",
                path,
                type(error).__name__,
                error,
            )
            return None
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
        try:
            write(temporary, labelled, format="extxyz")
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        return path

    def store(self, labelled: Atoms) -> Path | None:
        """:meth:`put`, best effort: a cache that cannot be written costs a warning, never the label."""
        try:
            return self.put(labelled)
        except OSError as error:
            log.warning(
                "label cache: could not store the label of %s in %s (%s: %s); the labelled record "
                "itself is kept, only a later rerun will calculate it again",
                labelled.info.get("config_id", "this configuration"),
                self.directory,
                type(error).__name__,
                error,
            )
            return None
