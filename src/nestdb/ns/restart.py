"""Snapshots of a nested-sampling run and exact restart from them.

A snapshot is taken between two iterations and holds everything the rest of
the run depends on: the live walkers, step sizes and acceptance counters,
the state of the clone-choice generator (every walk seeds its own generator
from ``(seed, iteration, clone)``), the convergence tracker and the byte
lengths of ``.energies`` and ``.traj.extxyz`` at that moment. It is written
to a temporary file and moved into place with ``os.replace``, so a kill at
any moment leaves either the previous or the new snapshot, never half of one.

On restart the two output files are cut back to the recorded lengths (lines
written after the snapshot are written again, identically) and the run
continues; with a deterministic calculator the files end byte-identical to
those of an uninterrupted run.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nestdb.errors import ConfigError, DataError
from nestdb.ns.settings import RESTART_MAY_CHANGE, NSSettings

#: Bumped when the snapshot content changes incompatibly.
SNAPSHOT_VERSION = 1


def save_snapshot(path: str | Path, state: dict) -> None:
    """Write ``state`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        pickle.dump({"version": SNAPSHOT_VERSION, **state}, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_snapshot(path: str | Path) -> dict:
    """Read a snapshot written by :func:`save_snapshot`; DataError if unusable."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as err:
        raise DataError(f"restart snapshot {path} cannot be read ({err}); delete it to start the run afresh") from None
    if not isinstance(state, dict) or state.get("version") != SNAPSHOT_VERSION:
        raise DataError(f"restart snapshot {path} is not a version-{SNAPSHOT_VERSION} nestdb snapshot; "
                        "delete it to start the run afresh")
    return state


def check_compatible(state: dict, settings: NSSettings, numbers: np.ndarray, path: str | Path) -> None:
    """ConfigError unless the snapshot was made with the same atoms and sampling settings.

    Keys in :data:`~nestdb.ns.settings.RESTART_MAY_CHANGE` (e.g. ``max_iter``
    to extend a finished run) may differ.
    """
    if not np.array_equal(np.asarray(state["numbers"]), numbers):
        raise ConfigError(f"restart snapshot {path} holds other atoms than the composition asked for; "
                          "delete it or use another output prefix")
    old, new = state["settings"], asdict(settings)
    changed = sorted(key for key in new if key not in RESTART_MAY_CHANGE and old.get(key) != new[key])
    if changed:
        details = ", ".join(f"{key}: {old.get(key)!r} -> {new[key]!r}" for key in changed)
        raise ConfigError(f"cannot restart from {path}: settings changed ({details}); restore them, or "
                          "delete the snapshot to start afresh")


def truncate_outputs(offsets: dict[str, int], paths: dict[str, Path]) -> None:
    """Cut each output file back to its length at the snapshot."""
    for kind, length in offsets.items():
        path = paths[kind]
        if not path.exists() or path.stat().st_size < length:
            size = path.stat().st_size if path.exists() else "missing"
            raise DataError(f"cannot restart: {path} ({size} bytes) is shorter than at the snapshot "
                            f"({length} bytes); it was changed after the run was killed. Delete the "
                            "snapshot to start afresh")
        with open(path, "r+b") as handle:
            handle.truncate(length)


def publish_outputs(work_prefix: str | Path, out_prefix: str | Path) -> None:
    """Move a finished run's four outputs from its work folder to ``out_prefix``,
    then delete the snapshot and the emptied work folder."""
    from nestdb.ns.output import output_paths

    work, out = output_paths(work_prefix), output_paths(out_prefix)
    Path(out["energies"]).parent.mkdir(parents=True, exist_ok=True)
    for kind in ("energies", "traj", "final", "summary"):
        os.replace(work[kind], out[kind])
    work["restart"].unlink(missing_ok=True)
    try:
        work["restart"].parent.rmdir()
    except OSError:
        pass  # other files (e.g. pymatnest's) stay for inspection
