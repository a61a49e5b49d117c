"""Merging selected or labelled databases of many cycles and pressures, repeats dropped."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ase import Atoms
from ase.io import read, write

from nestdb.errors import DataError
from nestdb.structures.fingerprint import structure_hash


def _read_extxyz(path: Path) -> list[Atoms]:
    if not path.is_file():
        raise DataError(f"merge_databases: database file {path} does not exist")
    if path.stat().st_size == 0:
        return []
    try:
        return read(path, index=":", format="extxyz")
    except Exception as exc:  # ase raises many types for corrupt files
        raise DataError(f"merge_databases: cannot read {path} as extended XYZ ({exc})") from None


def merge_databases(paths: Iterable[str | Path], out_path: str | Path, by_structure: bool = True) -> dict:
    """Concatenate extxyz databases, dropping repeated configurations (first kept).

    A frame is a duplicate when its ``config_id`` was seen before or, with
    ``by_structure``, when an identical structure (:func:`nestdb.structures.fingerprint.structure_hash`)
    was. Provenance info keys (``cycle``, ``pressure``, ``iter``, ``temp``,
    ``enthalpy``, ``weight``, ``config_type``, ...) travel unchanged.

    Parameters
    ----------
    paths : iterable of str or Path
        Selected or labelled extxyz files, in priority order.
    out_path : str or Path
        Output extxyz file (overwritten).
    by_structure : bool
        Also drop frames whose structure equals an earlier one.

    Returns
    -------
    dict
        ``{"n_read", "n_written", "n_duplicates", "n_duplicate_ids",
        "n_duplicate_structures", "per_file": {path: n_frames}, "out_path"}``.

    Raises
    ------
    DataError
        A file is missing or unreadable, or a frame has no ``config_id``.
    """
    paths = [Path(p) for p in paths]
    merged: list[Atoms] = []
    seen_ids: set[str] = set()
    seen_structures: set[bytes] = set()
    per_file: dict[str, int] = {}
    n_read = n_dup_ids = n_dup_structures = 0
    for path in paths:
        frames = _read_extxyz(path)
        per_file[str(path)] = len(frames)
        n_read += len(frames)
        for j, atoms in enumerate(frames):
            if "config_id" not in atoms.info:
                raise DataError(
                    f"merge_databases: frame {j} of {path} has no info key 'config_id'; "
                    "merge only files written by nestdb.select (or their labelled versions)"
                )
            config_id = str(atoms.info["config_id"])
            key = structure_hash(atoms) if by_structure else None
            if config_id in seen_ids:
                n_dup_ids += 1
            elif key is not None and key in seen_structures:
                n_dup_structures += 1
            else:
                seen_ids.add(config_id)
                if key is not None:
                    seen_structures.add(key)
                merged.append(atoms)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write(out_path, merged, format="extxyz")
    return {
        "n_read": n_read,
        "n_written": len(merged),
        "n_duplicates": n_read - len(merged),
        "n_duplicate_ids": n_dup_ids,
        "n_duplicate_structures": n_dup_structures,
        "per_file": per_file,
        "out_path": str(out_path),
    }
