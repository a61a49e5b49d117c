"""Compare the results/ folders of two workflow runs of the same config (issue 14: behaviour unchanged).

    python benchmarks/compare_runs.py /tmp/before/results /tmp/after/results

What is compared, file kind by file kind (every file under results/ is in
one class; a file present on one side only is a difference):

* everything upstream of the first DFT label — cycle 0's NS files
  (``.energies``, ``.traj.extxyz``, ``.final.extxyz``, summary), its
  thermodynamics and sample temperatures, its selection (candidates and one
  file per configuration) and XRD: **byte-identical** (timing keys of the
  summary aside);
* everything downstream of GPAW: **equal to round-off**. Two runs of the
  same code already differ there: GPAW's energies in the last bits (1e-13
  eV), which the regression on a few configurations amplifies to ~1e-8 in
  the committee coefficients and the later cycles' NS energies, EOS fits
  and metrics. These files are compared number by number (JSON, CSV/TSV,
  extended XYZ, ``committee.npz``, and the numbers inside text files such as
  ``.energies``, ``potential.yaml``, ``.yace`` and the model card) with
  ``rtol`` 1e-5, and the largest relative difference is reported, so that
  it can be set beside the run-to-run noise of the unchanged code (compare
  two runs of it the same way);
* wall-clock and CPU-time keys and columns are skipped everywhere;
* figures (PNG), raw DFT logs, the Snakemake benchmark tables (run times)
  and caches keyed by content: existence only.

Exit status 0 when nothing differs beyond that; the differences are printed otherwise.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
from ase.io import read

#: Keys whose values are clocks (wall or CPU time, rates) and differ between any two runs.
TIMING_KEY = re.compile(r"(^|_)(wall|cpu|time|timings|calls_per_s|iters_per_s|elapsed)(_|$)|_s$|per_s$")
#: Wall-time phrases in text files (the model card's "Fit wall time 3.2 s.").
TIMING_TEXT = re.compile(r"wall time [\d.]+ s")
#: Files compared by existence only: figures, the code's raw output, run times, content-keyed caches.
EXISTENCE_ONLY = re.compile(r"\.png$|/raw(_[a-z]+)?/|^benchmarks/|/feature_cache/|/cache/|\.snakemake_timestamp$")
#: Files upstream of the first DFT label: cycle 0's NS run, its analysis, selection and XRD.
BYTE_IDENTICAL = re.compile(r"^(ns|analyse|select)/cycle0/|^bench/cycle0/xrd/")
#: Relative tolerance of the numbers downstream of the DFT labels (round-off amplified by the fit).
RTOL = 1e-5
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


class Comparison:
    """Differences found and the largest relative difference of the numbers compared."""

    def __init__(self) -> None:
        self.differences: list[str] = []
        self.max_rel = 0.0

    def numbers(self, a, b, where: str) -> None:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.shape != b.shape:
            self.differences.append(f"{where}: shape {a.shape} != {b.shape}")
            return
        same_nan = np.isnan(a) & np.isnan(b)
        scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)
        with np.errstate(invalid="ignore"):
            rel = np.where(same_nan | (a == b), 0.0, np.abs(a - b) / scale)
        rel = np.nan_to_num(rel, nan=np.inf)
        worst = float(rel.max()) if rel.size else 0.0
        self.max_rel = max(self.max_rel, worst)
        if worst > RTOL:
            self.differences.append(f"{where}: relative difference {worst:.3g}")

    def value(self, a, b, where: str) -> None:
        """Parsed JSON-like values: numbers by :meth:`numbers`, the rest equal."""
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                if TIMING_KEY.search(str(key)):
                    continue
                if key not in a or key not in b:
                    self.differences.append(f"{where}/{key}: only in {'after' if key in b else 'before'}")
                else:
                    self.value(a[key], b[key], f"{where}/{key}")
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            if len(a) != len(b):
                self.differences.append(f"{where}: length {len(a)} != {len(b)}")
            else:
                for k, (x, y) in enumerate(zip(a, b, strict=True)):
                    self.value(x, y, f"{where}[{k}]")
        elif _is_number(a) and _is_number(b):
            self.numbers(float(a), float(b), where)
        elif a != b:
            self.differences.append(f"{where}: {a!r} != {b!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _cell(value: str):
    try:
        return float(value)
    except ValueError:
        return value


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def compare_table(result: Comparison, a: str, b: str, delimiter: str) -> None:
    """Two CSV/TSV texts, timing columns skipped."""
    rows_a = list(csv.reader(io.StringIO(a), delimiter=delimiter))
    rows_b = list(csv.reader(io.StringIO(b), delimiter=delimiter))
    if not rows_a or not rows_b or rows_a[0] != rows_b[0] or len(rows_a) != len(rows_b):
        if rows_a != rows_b:
            result.differences.append("header or number of rows differ")
        return
    keep = [k for k, name in enumerate(rows_a[0]) if not TIMING_KEY.search(name)]
    for line, (row_a, row_b) in enumerate(zip(rows_a[1:], rows_b[1:], strict=True), start=2):
        for k in keep:
            result.value(_cell(row_a[k]), _cell(row_b[k]), f"line {line}, {rows_a[0][k]}")


def compare_extxyz(result: Comparison, a: Path, b: Path) -> None:
    """The same configurations and labels, info keys and arrays; timing info keys skipped."""
    frames_a, frames_b = read(a, index=":"), read(b, index=":")
    if len(frames_a) != len(frames_b):
        result.differences.append(f"{len(frames_a)} frames != {len(frames_b)}")
        return
    for k, (x, y) in enumerate(zip(frames_a, frames_b, strict=True)):
        if x.get_chemical_symbols() != y.get_chemical_symbols():
            result.differences.append(f"frame {k}: species differ")
            continue
        result.numbers(x.positions, y.positions, f"frame {k} positions")
        result.numbers(x.cell.array, y.cell.array, f"frame {k} cell")
        result.value(
            {key: _plain(v) for key, v in x.info.items()},
            {key: _plain(v) for key, v in y.info.items()},
            f"frame {k} info",
        )
        for key in sorted(set(x.arrays) | set(y.arrays)):
            if key not in x.arrays or key not in y.arrays:
                result.differences.append(f"frame {k}: array {key} on one side only")
            elif x.arrays[key].dtype.kind in "fi":
                result.numbers(x.arrays[key], y.arrays[key], f"frame {k} {key}")
            elif not np.array_equal(x.arrays[key], y.arrays[key]):
                result.differences.append(f"frame {k}: array {key} differs")


def compare_npz(result: Comparison, a: Path, b: Path) -> None:
    with np.load(a) as x, np.load(b) as y:
        if sorted(x.files) != sorted(y.files):
            result.differences.append(f"arrays {sorted(x.files)} != {sorted(y.files)}")
            return
        for key in x.files:
            if x[key].dtype.kind in "fi":
                result.numbers(x[key], y[key], key)
            elif not np.array_equal(x[key], y[key]):
                result.differences.append(f"{key}: differs")


def compare_text(result: Comparison, a: str, b: str) -> None:
    """Text with its numbers compared as numbers (``.energies``, potentials, the model card)."""
    a, b = TIMING_TEXT.sub("wall time <t> s", a), TIMING_TEXT.sub("wall time <t> s", b)
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        result.differences.append("text differs (beyond its numbers)")
        return
    result.numbers([float(m) for m in NUMBER.findall(a)], [float(m) for m in NUMBER.findall(b)], "numbers")


def compare_file(relative: str, a: Path, b: Path) -> tuple[str, Comparison]:
    """How one file present on both sides was compared, and the result."""
    result = Comparison()
    if EXISTENCE_ONLY.search(relative):
        return "exists", result
    if BYTE_IDENTICAL.search(relative):
        if relative.endswith(".json"):  # the NS summary: identical but for its clocks
            result.value(json.loads(a.read_text()), json.loads(b.read_text()), "")
            if result.max_rel:
                result.differences.append(f"numbers differ (relative {result.max_rel:.3g})")
        elif a.read_bytes() != b.read_bytes():
            result.differences.append("bytes differ")
        return "identical", result
    suffix = a.suffix
    if suffix == ".extxyz":
        compare_extxyz(result, a, b)
    elif suffix == ".npz":
        compare_npz(result, a, b)
    elif suffix == ".json":
        result.value(json.loads(a.read_text()), json.loads(b.read_text()), "")
    elif suffix in (".csv", ".tsv"):
        compare_table(result, a.read_text(), b.read_text(), "\t" if suffix == ".tsv" else ",")
    else:
        compare_text(result, a.read_text(), b.read_text())
    return "numbers", result


def compare_runs(before: Path, after: Path) -> tuple[dict[str, int], list[str], dict[str, float]]:
    """Files per comparison kind, every difference, and the largest relative difference per file."""
    files_a = {str(p.relative_to(before)) for p in before.rglob("*") if p.is_file()}
    files_b = {str(p.relative_to(after)) for p in after.rglob("*") if p.is_file()}
    problems = [f"{name}: only in before" for name in sorted(files_a - files_b)]
    problems += [f"{name}: only in after" for name in sorted(files_b - files_a)]
    counts: dict[str, int] = {}
    worst: dict[str, float] = {}
    for name in sorted(files_a & files_b):
        kind, result = compare_file(name, before / name, after / name)
        counts[kind] = counts.get(kind, 0) + 1
        problems += [f"{name}: {d}" for d in result.differences]
        if result.max_rel:
            worst[name] = result.max_rel
    return counts, problems, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results/ of the first run")
    parser.add_argument("after", type=Path, help="results/ of the second run")
    parser.add_argument("--top", type=int, default=10, help="list this many files with the largest differences")
    args = parser.parse_args(argv)
    counts, problems, worst = compare_runs(args.before, args.after)
    print("compared: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    print(
        f"files with numbers not bit-identical: {len(worst)}; largest relative difference "
        f"{max(worst.values(), default=0.0):.3g}" + (f" ({max(worst, key=worst.get)})" if worst else "")
    )
    for name, value in sorted(worst.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {value:.3g}  {name}")
    for line in problems:
        print("DIFF", line)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
