"""Snapshots of a nested-sampling run and exact restart from them.

A snapshot is taken between two iterations and holds everything the rest of
the run depends on: the live walkers, step sizes and acceptance counters,
the state of the clone-choice generator (every walk seeds its own generator
from ``(seed, iteration, clone)``), the convergence tracker and the byte
lengths of ``.energies`` and ``.traj.extxyz`` at that moment, plus the
fingerprint of the chain (:func:`chain_fingerprint`): the sampling settings,
the atoms, the calculator spec and the sha256 of every model file it reads.

File format (``<prefix>.restart.npz``, version :data:`SNAPSHOT_VERSION`): an
uncompressed ``.npz`` of plain arrays, read with ``allow_pickle=False`` so a
crafted file cannot run code. ``header.npy`` holds a JSON document (format
name, version, sha256) and ``state.npy`` the JSON of every non-array value
(the generator state is a dict of ints); each array of the state is a
member of its own, referenced from the JSON as ``{"$array": name}``. The
sha256 covers the state JSON and every array (name, dtype, shape, bytes)
and is verified before anything is used. The file is written to a
temporary file, fsynced and moved into place with ``os.replace``, so a kill
at any moment leaves either the previous or the new snapshot, never half
of one.

On restart the two output files are cut back to the recorded lengths (lines
written after the snapshot are written again, identically) and the run
continues; with a deterministic calculator the files end byte-identical to
those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nestdb.errors import ConfigError, DataError
from nestdb.models.ace_committee import COMMITTEE_FILE, POTENTIAL_FILE
from nestdb.models.pacemaker_committee import COMMITTEE_INDEX
from nestdb.ns.output import SNAPSHOT_SUFFIX, output_paths
from nestdb.ns.settings import RESTART_MAY_CHANGE, NSSettings
from nestdb.potentials.eam import guess_kind
from nestdb.potentials.lj import LJ_DEFAULTS

#: Name written into every snapshot's header.
SNAPSHOT_FORMAT = "nestdb-ns-snapshot"
#: Bumped when the snapshot content changes incompatibly (1: the old pickle files).
SNAPSHOT_VERSION = 2
#: Suffix of the version-1 snapshots (pickles), refused unread.
LEGACY_SNAPSHOT_SUFFIX = ".restart.pkl"
_HEADER, _STATE = "header", "state"


# --------------------------------------------------------------------------- file format
def save_snapshot(path: str | Path, state: dict) -> None:
    """Write ``state`` atomically (temporary file, fsync, ``os.replace``).

    ``state`` may hold dicts with string keys, lists, numbers, strings,
    booleans, None and numpy arrays (stored as arrays, not as JSON).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    document = json.dumps(_encode(state, "", arrays), sort_keys=True).encode()
    header = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "sha256": _digest(document, arrays)}
    members = {_HEADER: _json_array(header), _STATE: np.frombuffer(document, dtype=np.uint8), **arrays}
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **members)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_folder(path.parent)


def load_snapshot(path: str | Path) -> dict:
    """Read a snapshot written by :func:`save_snapshot`, checksum verified.

    Raises
    ------
    DataError
        The file is a legacy pickle snapshot (never unpickled), not a nestdb
        snapshot, of another format version, or damaged (checksum); the
        message names the file and what to delete.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise DataError(f"restart snapshot {path} cannot be read ({err}); {afresh_hint(path)}") from None
    if magic[:1] == b"\x80":
        raise legacy_snapshot_error(path)
    if magic != b"PK\x03\x04":
        raise DataError(f"restart snapshot {path} is not a nestdb snapshot (not an .npz file); {afresh_hint(path)}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        # allow_pickle=False: an object array (pickled data) ends here, unread
        raise DataError(
            f"restart snapshot {path} is not a nestdb snapshot or is damaged ({err}); {afresh_hint(path)}"
        ) from None
    try:
        header = json.loads(_json_bytes(members.pop(_HEADER)))
        document = _json_bytes(members.pop(_STATE))
    except (KeyError, ValueError, TypeError) as err:
        raise DataError(
            f"restart snapshot {path} is not a nestdb snapshot (no valid header: {err}); {afresh_hint(path)}"
        ) from None
    if not isinstance(header, dict) or header.get("format") != SNAPSHOT_FORMAT:
        raise DataError(f"restart snapshot {path} is not a nestdb snapshot; {afresh_hint(path)}")
    if header.get("version") != SNAPSHOT_VERSION:
        raise DataError(
            f"restart snapshot {path} has format version {header.get('version')!r}; this nestdb "
            f"reads version {SNAPSHOT_VERSION}. {afresh_hint(path).capitalize()}"
        )
    if header.get("sha256") != _digest(document, members):
        raise DataError(
            f"restart snapshot {path} is damaged: its content does not match its sha256 checksum; {afresh_hint(path)}"
        )
    try:
        return _decode(json.loads(document), members)
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"restart snapshot {path} is not a nestdb snapshot ({err}); {afresh_hint(path)}") from None


def legacy_snapshot_error(path: str | Path) -> DataError:
    """The refusal of a version-1 (pickle) snapshot, which is never unpickled."""
    return DataError(
        f"{path} is a restart snapshot in the old pickle format (nestdb snapshot version 1); it is not read, "
        f"because loading a pickle can run any code in it. {afresh_hint(path).capitalize()} (the run's "
        f"snapshots are now {SNAPSHOT_SUFFIX} files)"
    )


def afresh_hint(path: str | Path) -> str:
    """What to delete to start a run afresh: the ``ns`` rule's restart/ folder, else the snapshot."""
    path = Path(path)
    if path.parent.name == "restart":
        return f"delete the folder {path.parent} (the run's restart folder) to start the run afresh"
    return f"delete {path} to start the run afresh"


def _encode(value, name: str, arrays: dict[str, np.ndarray]):
    """JSON-able copy of ``value``; arrays go to ``arrays`` under their key path."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"snapshot value {name!r}: object arrays cannot be stored")
        arrays[name] = value
        return {"$array": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"snapshot value {name!r}: keys must be strings")
        return {key: _encode(item, f"{name}.{key}" if name else key, arrays) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{name}.{index}", arrays) for index, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"snapshot value {name!r} of type {type(value).__name__} cannot be stored")


def _decode(value, arrays: dict[str, np.ndarray]):
    if isinstance(value, dict):
        if set(value) == {"$array"}:
            return arrays[value["$array"]]
        return {key: _decode(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    return value


def _digest(document: bytes, arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the state JSON and every array's name, dtype, shape and bytes."""
    hasher = hashlib.sha256(document)
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        hasher.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()


def _json_array(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)


def _json_bytes(array: np.ndarray) -> bytes:
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"a JSON member must be a 1-d uint8 array, got {array.dtype} {array.shape}")
    return array.tobytes()


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable too (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------- chain fingerprint
def model_fingerprint(spec: dict, base_dir: str | Path = ".") -> dict:
    """What defines the energy model of a calculator spec (:func:`nestdb.models.calculators.make_calculator`).

    Returns ``{"calculator": spec without paths, defaults filled in,
    "files": {label: {"path", "sha256"}}}`` with one entry per file the
    calculator reads: ``file`` (EAM), ``model/potential.yaml`` and
    ``model/committee.npz`` (ace_committee), ``model/committee.json`` and
    the members and active set it lists (pacemaker_committee). Paths are
    not compared, contents are: a moved but identical file is the same model.
    """
    spec = json.loads(json.dumps(spec))
    calc_type = spec.get("type")
    base = Path(base_dir)
    files: dict[str, Path] = {}
    if calc_type == "lj":
        spec = {"type": "lj", **{key: float(spec.get(key, value)) for key, value in LJ_DEFAULTS.items()}}
    elif calc_type == "eam" and "file" in spec:
        files["file"] = _resolve(spec.pop("file"), base)
        spec.setdefault("kind", guess_kind(files["file"]))
        spec.setdefault("implementation", "nestdb")
    elif calc_type in ("ace_committee", "pacemaker_committee") and "model" in spec:
        folder = _resolve(spec.pop("model"), base)
        files.update({f"model/{name}": folder / name for name in _model_files(calc_type, folder)})
    else:  # another type: every path-valued key, and the files directly inside a folder
        for key in [
            key
            for key, value in spec.items()
            if key != "type" and isinstance(value, str) and value and _resolve(value, base).exists()
        ]:
            path = _resolve(spec.pop(key), base)
            children = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
            files.update({f"{key}/{p.name}" if path.is_dir() else key: p for p in children})
    return {
        "calculator": spec,
        "files": {label: {"path": str(path), "sha256": _file_sha256(path)} for label, path in files.items()},
    }


def calculator_fingerprint(calculator) -> dict:
    """A fallback model fingerprint from a built calculator: its class and JSON-able parameters.

    Callers that know the spec pass :func:`model_fingerprint` instead, which
    also covers the files the model reads.
    """
    parameters = dict(getattr(calculator, "parameters", None) or {})
    try:
        parameters = json.loads(json.dumps(parameters))
    except (TypeError, ValueError):
        parameters = {}
    kind = type(calculator)
    return {"calculator": {"class": f"{kind.__module__}.{kind.__qualname__}", **parameters}, "files": {}}


def chain_fingerprint(settings: NSSettings, numbers: np.ndarray, model: dict) -> dict:
    """Everything that defines the chain of a run: settings (pressure included), atoms, model."""
    return json.loads(json.dumps({"settings": asdict(settings), "numbers": [int(z) for z in numbers], "model": model}))


def _model_files(calc_type: str, folder: Path) -> list[str]:
    """Names of the files in a committee folder that its calculator reads."""
    if calc_type == "ace_committee":
        return [POTENTIAL_FILE, COMMITTEE_FILE]
    names = [COMMITTEE_INDEX]
    try:
        index = json.loads((folder / COMMITTEE_INDEX).read_text())
        names += [str(name) for name in index["members"]]
        names += [str(index["active_set"])] if index.get("active_set") else []
    except (OSError, ValueError, KeyError, TypeError):
        pass  # building the calculator reports the broken index
    return names


def _resolve(value, base: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def _file_sha256(path: Path) -> str | None:
    """sha256 of a file's bytes, None when it does not exist."""
    if not path.is_file():
        return None
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def fingerprint_changes(old: dict, new: dict) -> tuple[list[str], list[str], list[str]]:
    """Differences between two chain fingerprints: (settings, atoms, model) lines.

    Settings in :data:`~nestdb.ns.settings.RESTART_MAY_CHANGE` are ignored.
    """
    old_settings, new_settings = old.get("settings", {}), new["settings"]
    settings = [
        f"{key}: {old_settings.get(key)!r} -> {new_settings[key]!r}"
        for key in sorted(new_settings)
        if key not in RESTART_MAY_CHANGE and old_settings.get(key) != new_settings[key]
    ]
    atoms = [f"atomic numbers {old.get('numbers')} -> {new['numbers']}"] if old.get("numbers") != new["numbers"] else []
    old_model, new_model = old.get("model") or {}, new["model"]
    old_calc, new_calc = old_model.get("calculator", {}), new_model["calculator"]
    if old_calc.get("type") != new_calc.get("type"):  # the other keys of two types do not compare
        return settings, atoms, [f"type: {old_calc.get('type')!r} -> {new_calc.get('type')!r}"]
    model = [
        f"{key}: {old_calc.get(key)!r} -> {new_calc.get(key)!r}"
        for key in sorted(set(old_calc) | set(new_calc))
        if old_calc.get(key) != new_calc.get(key)
    ]
    old_files, new_files = old_model.get("files", {}), new_model["files"]
    for label in sorted(set(old_files) | set(new_files)):
        before, after = old_files.get(label, {}), new_files.get(label, {})
        if before.get("sha256") != after.get("sha256"):
            where = after.get("path") or before.get("path")
            model.append(f"{where}: sha256 {_short(before.get('sha256'))} -> {_short(after.get('sha256'))}")
    return settings, atoms, model


def _short(digest: str | None) -> str:
    return "none" if digest is None else digest[:12] + "..."


def check_compatible(state: dict, fingerprint: dict, path: str | Path, hint: str | None = None) -> None:
    """ConfigError unless the snapshot continues the chain ``fingerprint`` describes.

    The message names every changed setting, the atoms, calculator key and
    model file (with both sha256 prefixes), and what to delete to start
    afresh (``hint``, default :func:`afresh_hint` of ``path``). Keys in
    :data:`~nestdb.ns.settings.RESTART_MAY_CHANGE` (e.g. ``max_iter`` to
    extend a finished run) may differ.
    """
    settings, atoms, model = fingerprint_changes(state["fingerprint"], fingerprint)
    reasons = []
    if atoms:
        reasons.append(f"the snapshot holds other atoms than the composition asked for ({atoms[0]})")
    if settings:
        reasons.append(f"settings changed ({', '.join(settings)})")
    if model:
        reasons.append(f"the calculator changed ({'; '.join(model)})")
    if reasons:
        raise ConfigError(
            f"cannot resume from {path}: {'; '.join(reasons)}. The snapshot continues the old "
            f"chain: restore the old values, or {hint or afresh_hint(path)}"
        )


# --------------------------------------------------------------------------- output files
def truncate_outputs(offsets: dict[str, int], paths: dict[str, Path]) -> None:
    """Cut each output file back to its length at the snapshot."""
    for kind, length in offsets.items():
        path = paths[kind]
        if not path.exists() or path.stat().st_size < length:
            size = path.stat().st_size if path.exists() else "missing"
            raise DataError(
                f"cannot restart: {path} ({size} bytes) is shorter than at the snapshot "
                f"({length} bytes); it was changed after the run was killed. Delete the "
                "snapshot to start afresh"
            )
        with open(path, "r+b") as handle:
            handle.truncate(length)


def publish_outputs(work_prefix: str | Path, out_prefix: str | Path) -> None:
    """Move a finished run's four outputs from its work folder to ``out_prefix``,
    then delete the snapshot and the emptied work folder."""
    work, out = output_paths(work_prefix), output_paths(out_prefix)
    Path(out["energies"]).parent.mkdir(parents=True, exist_ok=True)
    for kind in ("energies", "traj", "final", "summary"):
        os.replace(work[kind], out[kind])
    work["restart"].unlink(missing_ok=True)
    try:
        work["restart"].parent.rmdir()
    except OSError:
        pass  # other files (e.g. pymatnest's) stay for inspection
