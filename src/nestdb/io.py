"""Files every stage writes or reads: the one JSON writer, atomic writes, small tables, extended XYZ.

* :func:`write_json` is how nestdb writes JSON (summaries, metrics, benchmark
  results, model indexes): numpy values and paths converted by
  :func:`jsonable`, two-space indent, a final newline, written atomically.
* :func:`atomic_write` / :func:`write_text_atomic`: a temporary file in the
  same folder moved into place, so a killed job never leaves half a file.
* :func:`read_frames`: all frames of an extended-XYZ file, ``[]`` for an
  empty one (a run that culled nothing writes an empty trajectory).
* :func:`write_sample_temperatures` / :func:`read_sample_temperatures`: the
  per-sample temperature table of an NS run (``sample_temperatures.csv``),
  written by the analysis and read by the selection and XRD benchmark.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms
from ase.io import read

#: Columns of ``sample_temperatures.csv``: the ``.energies`` line and iteration, H, V, and the sample's T.
SAMPLE_TEMPERATURE_COLUMNS = ("line", "iter", "enthalpy", "volume", "temp")


def jsonable(value: Any) -> Any:
    """Plain-Python copy of nested dicts/lists/tuples holding numpy values and paths, for ``json.dumps``.

    Numpy arrays become lists, numpy scalars Python numbers, paths strings,
    mapping keys strings; anything else is returned as it is (``json.dumps``
    then refuses what it cannot write, naming the type).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to ``path``; it replaces ``path`` only when the block succeeds.

    Parameters
    ----------
    path
        The file to write; its folder is created.
    mode
        ``"w"`` (text) or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, mode) as handle:
            yield handle
        os.replace(temporary, path)  # same folder: a rename
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as handle:
        handle.write(text)


def write_json(path: str | Path, value: Any) -> None:
    """Write ``value`` as indented JSON (numpy values and paths allowed), atomically.

    Parameters
    ----------
    path
        Output file; its folder is created.
    value
        Nested dicts, lists, numbers, strings, numpy values and paths (:func:`jsonable`).
    """
    write_text_atomic(path, json.dumps(jsonable(value), indent=2) + "\n")


def read_frames(path: str | Path) -> list[Atoms]:
    """Every frame of an extended-XYZ file; ``[]`` for an empty file."""
    if Path(path).stat().st_size == 0:
        return []
    return read(path, index=":", format="extxyz")


def write_sample_temperatures(
    path: str | Path,
    iters: Sequence[int],
    enthalpy: Sequence[float],
    volume: Sequence[float],
    temperatures: Sequence[float],
) -> None:
    """Write ``sample_temperatures.csv`` (:data:`SAMPLE_TEMPERATURE_COLUMNS`; floats as ``repr``, exact).

    Empty sequences give the header alone.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SAMPLE_TEMPERATURE_COLUMNS)
        for line, (it, h, v, t) in enumerate(zip(iters, enthalpy, volume, temperatures, strict=True)):
            writer.writerow([line, int(it), repr(float(h)), repr(float(v)), repr(float(t))])


def read_sample_temperatures(path: str | Path) -> dict[str, np.ndarray]:
    """Per-sample ``iter``, ``enthalpy`` and ``temp`` of ``sample_temperatures.csv``."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) for row in rows]) for key in ("iter", "enthalpy", "temp")}
