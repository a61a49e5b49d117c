"""Reading pymatnest/nestdb ``.energies`` files (header + one ``iter H V`` line per cull)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nestdb.errors import DataError

__all__ = ["NSEnergies", "read_energies", "count_samples", "ENTHALPY_RTOL"]

#: Largest relative rise of the enthalpy from one sample line to the next that
#: is taken as round-off. NS culls walkers in order of decreasing enthalpy
#: (a walk never crosses the last cull's H), so a larger rise means a file put
#: together wrongly: reversed, or a block appended twice.
ENTHALPY_RTOL = 1e-9


@dataclass
class NSEnergies:
    """Contents of a ``<prefix>.energies`` file.

    ``n_walkers`` K, ``n_cull`` P, ``n_extra_dof`` (momentum DOF integrated
    out analytically; 0 when H contains the kinetic energy), ``flat_v_prior``,
    ``n_atoms`` (0 for the old 3-field header); per sample: ``iters`` (int),
    ``enthalpy`` (eV, incl. P·V and MD kinetic energy), ``volume`` (Å^3, NaN
    for 2-column files).
    """

    n_walkers: int
    n_cull: int
    n_extra_dof: int
    flat_v_prior: bool
    n_atoms: int
    iters: np.ndarray
    enthalpy: np.ndarray
    volume: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of recorded samples (lines after the header)."""
        return int(self.enthalpy.shape[0])


# --------------------------------------------------------------------------- reading


def _parse_header(path: Path, line: str) -> tuple[int, int, int, bool, int]:
    fields = line.split()
    hint = f"expected 'n_walkers n_cull nExtraDOF flat_V_prior N_atoms' (or the old first 3), got {line.strip()!r}"
    try:
        if len(fields) not in (3, 5) or (len(fields) == 5 and fields[3] not in ("True", "False")):
            raise ValueError
        n_walkers, n_cull, n_extra = (int(f) for f in fields[:3])
        flat, n_atoms = (fields[3] == "True", int(fields[4])) if len(fields) == 5 else (False, 0)
    except ValueError:
        raise DataError(f"{path}: line 1 is not a valid header; {hint}") from None
    if n_walkers < 1 or not 1 <= n_cull <= n_walkers or n_extra < 0 or n_atoms < 0 or (flat and n_atoms == 0):
        raise DataError(
            f"{path}: line 1 has impossible values (need n_walkers >= n_cull >= 1, nExtraDOF >= 0, "
            f"N_atoms > 0 with a flat V prior); {hint}"
        )
    return n_walkers, n_cull, n_extra, flat, n_atoms


def _locate_bad_line(path: Path, lines: list[str]) -> DataError:
    """Find the first malformed sample line and describe it (slow path)."""
    n_cols = None
    for lineno, text in enumerate(lines[1:], start=2):
        fields = text.split()
        if not fields:
            problem = "is empty"
        elif len(fields) not in (2, 3):
            problem = f"has {len(fields)} fields, expected 'iter H V'"
        elif n_cols is not None and len(fields) != n_cols:
            problem = f"has {len(fields)} fields but earlier lines have {n_cols}"
        else:
            try:
                values = [float(f) for f in fields]
                if float(fields[0]) != int(float(fields[0])) or not np.all(np.isfinite(values)):
                    raise ValueError
                problem = ""
            except ValueError:
                problem = "is not numeric/finite"
        if problem:
            return DataError(f"{path}: line {lineno} {problem}: {text.strip()[:80]!r}; fix or delete it")
        n_cols = len(fields)
    return DataError(f"{path}: could not parse the sample lines")


def _check_non_increasing(path: Path, enthalpy: np.ndarray) -> None:
    """Raise :class:`DataError` at the first line whose enthalpy rises beyond round-off."""
    rise = np.diff(enthalpy)
    scale = np.maximum(np.abs(enthalpy[:-1]), np.abs(enthalpy[1:]))
    bad = np.flatnonzero(rise > ENTHALPY_RTOL * scale)
    if bad.size:
        k = int(bad[0])  # samples k and k + 1 are on lines k + 2 and k + 3 (line 1: header)
        raise DataError(
            f"{path}: line {k + 3}: the enthalpy rises from {float(enthalpy[k])!r} (line {k + 2}) to "
            f"{float(enthalpy[k + 1])!r} eV ({bad.size} rise(s) in the file); NS culls walkers in order of "
            f"decreasing enthalpy, so the file is not one run's record in order (reversed, a block appended "
            f"twice, or files concatenated). Use the run's own .energies file or rerun it"
        )


def _read_text(path: Path) -> str:
    """The file as text; :class:`DataError` for a missing or binary file (NUL bytes or not UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read NS energies file {path}: {exc}") from None
    binary_at = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        binary_at = exc.start if binary_at < 0 else min(binary_at, exc.start)
    if binary_at >= 0:
        raise DataError(
            f"{path} is not a text file (binary data at byte {binary_at}); expected a pymatnest/nestdb "
            "'.energies' file: a header line and one 'iter H V' line per culled walker"
        )
    return text


def count_samples(path: str | Path) -> int:
    """Number of non-empty lines after the header (0 for a header-only file of a run stopped at once).

    Raises :class:`DataError` for a missing or binary file, like :func:`read_energies`.
    """
    lines = _read_text(Path(path)).splitlines()
    return max(sum(1 for line in lines if line.strip()) - 1, 0)


def read_energies(path: str | Path) -> NSEnergies:
    """Read a pymatnest/nestdb ``.energies`` file.

    Header ``K n_cull nExtraDOF flat_V_prior N`` (old files: first 3), then
    one ``iter H V`` line per culled walker (old files: ``iter H``).
    Raises :class:`DataError` naming the file and line if it is missing,
    not text, empty, truncated (no final newline), not numeric, or if its
    enthalpies rise from one line to the next by more than
    :data:`ENTHALPY_RTOL` relative (NS writes them in decreasing order).
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{path}: empty file, expected a header line and 'iter H V' lines")
    header = _parse_header(path, lines[0])
    if len(lines) < 2:
        raise DataError(f"{path}: header only, no samples (the run wrote no iteration yet)")
    # Every sample line is written with its newline in one flush: a missing
    # final newline means the last write was cut (killed run, full disk).
    if not text.endswith("\n"):
        raise DataError(
            f"{path}: line {len(lines)} is incomplete (no end of line; the file looks truncated, "
            f"delete the incomplete last line or re-run): {lines[-1].strip()[:80]!r}"
        )
    if any(not line.strip() for line in lines[1:]):
        raise _locate_bad_line(path, lines)
    try:
        # Fast C parser; any irregularity drops to the line-by-line diagnosis.
        table = np.loadtxt(lines[1:], dtype=float, ndmin=2)
    except ValueError:
        raise _locate_bad_line(path, lines) from None
    if table.shape[1] not in (2, 3) or not np.all(np.isfinite(table)) or np.any(table[:, 0] != np.round(table[:, 0])):
        raise _locate_bad_line(path, lines)
    _check_non_increasing(path, table[:, 1])
    volume = table[:, 2] if table.shape[1] == 3 else np.full(table.shape[0], np.nan)
    n_walkers, n_cull, n_extra, flat, n_atoms = header
    if flat and table.shape[1] == 2:
        raise DataError(f"{path}: flat_V_prior=True but the file has no volume column")
    return NSEnergies(
        n_walkers,
        n_cull,
        n_extra,
        flat,
        n_atoms,
        iters=table[:, 0].astype(np.int64),
        enthalpy=table[:, 1].copy(),
        volume=np.ascontiguousarray(volume),
    )
