"""Reading a CASTEP ``.castep`` output: results through ASE, convergence and cost from the text.

ASE's reader (``ase.io.read(path, format="castep-castep")``) gives the
structure, the free energy at the full cut-off, forces and stress; it does not
say whether the electronic minimisation converged. :func:`scf_report`
reads that from the SCF tables CASTEP prints (one per cut-off energy when
``finite_basis_corr: automatic`` samples three cut-offs) and from CASTEP's
own warning, so that an unconverged calculation is never taken as a label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from nestdb.errors import DataError

#: Text CASTEP writes when the SCF stopped at ``max_scf_cycles`` unconverged.
SCF_FAILURE_MARKERS = (
    "SCF cycles performed but system has not reached the groundstate",
    "electronic minimisation did not converge",
)

_FLOAT = r"[-+]?\d+\.?\d*(?:[EeDd][-+]?\d+)?"
_SCF_ROW = re.compile(rf"^\s*(\d+)\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s+<-- SCF")
_TOLERANCE = re.compile(rf"total energy / atom convergence tol\.\s*:\s*({_FLOAT})")
_MAX_CYCLES = re.compile(r"max\. number of SCF cycles\s*:\s*(\d+)")
_PROCESSES = re.compile(r"Calculation parallelised over\s+(\d+) process")
_THREADS = re.compile(r"Each process may use up to\s+(\d+) thread")
_TOTAL_TIME = re.compile(rf"Total time\s*=\s*({_FLOAT})\s*s")
_GRID = re.compile(r"MP grid size for SCF calculation is\s+(\d+)\s+(\d+)\s+(\d+)")


@dataclass
class ScfReport:
    """What a ``.castep`` file says about its electronic minimisations and cost.

    Attributes
    ----------
    converged
        True when every SCF table ended below the energy tolerance before
        ``max_scf_cycles`` and CASTEP printed no non-convergence warning.
    reason
        Why not converged (empty when converged).
    iterations
        SCF iterations of each table (one per sampled cut-off energy).
    last_gain
        ``|energy gain per atom|`` (eV) of the last iteration of each table.
    tolerance, max_cycles
        ``elec_energy_tol`` (eV/atom) and ``max_scf_cycles`` as CASTEP echoed them.
    wall_s
        CASTEP's ``Total time`` (s), or None for an incomplete file.
    processes, threads
        MPI processes and threads per process.
    kpoint_grid
        Monkhorst–Pack grid used, e.g. ``(4, 4, 4)``.
    """

    converged: bool
    reason: str = ""
    iterations: list[int] = field(default_factory=list)
    last_gain: list[float] = field(default_factory=list)
    tolerance: float | None = None
    max_cycles: int | None = None
    wall_s: float | None = None
    processes: int = 1
    threads: int = 1
    kpoint_grid: tuple[int, int, int] | None = None

    @property
    def cpu_s(self) -> float | None:
        """Core-seconds charged: wall time × processes × threads (None for an incomplete file)."""
        return None if self.wall_s is None else self.wall_s * self.processes * self.threads


def _first(pattern: re.Pattern, text: str, kind=float):
    match = pattern.search(text)
    return None if match is None else kind(match.group(1).replace("D", "E").replace("d", "e"))


def _scf_tables(text: str) -> list[list[float]]:
    """Energy gains per atom of each SCF table (the ``Initial`` row has none)."""
    tables: list[list[float]] = []
    in_table = False
    for line in text.splitlines():
        if "<-- SCF" not in line:
            in_table = False
            continue
        if line.lstrip().startswith("Initial"):
            tables.append([])
            in_table = True
            continue
        row = _SCF_ROW.match(line)
        if row and in_table:
            tables[-1].append(abs(float(row.group(4).replace("D", "E"))))
    return tables


def scf_report(text: str) -> ScfReport:
    """Convergence, SCF iterations and cost of one CASTEP run from its ``.castep`` text.

    Parameters
    ----------
    text
        Content of the ``.castep`` file (one run; CASTEP appends later runs).

    Returns
    -------
    ScfReport
    """
    tables = _scf_tables(text)
    grid = _GRID.search(text)
    report = ScfReport(
        converged=False,
        iterations=[len(t) for t in tables],
        last_gain=[t[-1] if t else float("inf") for t in tables],
        tolerance=_first(_TOLERANCE, text),
        max_cycles=_first(_MAX_CYCLES, text, int),
        wall_s=_first(_TOTAL_TIME, text),
        processes=_first(_PROCESSES, text, int) or 1,
        threads=_first(_THREADS, text, int) or 1,
        kpoint_grid=None if grid is None else tuple(int(n) for n in grid.groups()),
    )
    lowered = text.lower()
    marker = next((m for m in SCF_FAILURE_MARKERS if m.lower() in lowered), None)
    if marker is not None:
        report.reason = f"CASTEP reports {marker!r}"
    elif not tables:
        report.reason = "no SCF table in the output (run killed before the first SCF?)"
    elif report.tolerance is not None and report.last_gain[-1] > report.tolerance:
        report.reason = (
            f"last SCF energy gain {report.last_gain[-1]:.2e} eV/atom is above elec_energy_tol={report.tolerance:.1e}"
        )
    elif report.max_cycles is not None and max(report.iterations) >= report.max_cycles:
        report.reason = f"an SCF table used all max_scf_cycles={report.max_cycles} iterations"
    elif "Final free energy" not in text and "Final energy" not in text:
        report.reason = "no final energy (run killed or crashed?)"
    elif report.wall_s is None:
        report.reason = "incomplete output (no 'Total time' line: run killed or crashed?)"
    else:
        report.converged = True
    return report


def read_castep_output(path: str | Path) -> tuple[Atoms, ScfReport]:
    """Structure with CASTEP's results (ASE's reader) and the SCF report of one ``.castep`` file.

    Parameters
    ----------
    path
        A ``.castep`` output file.

    Returns
    -------
    atoms, report
        ``atoms`` carries a single-point calculator: ``get_potential_energy(
        force_consistent=True)`` is the ``Final free energy (E-TS)`` at the full
        cut-off, ``get_stress()`` CASTEP's printed stress (ASE sign: negative
        under compression). ``report`` says whether the SCF converged.

    Raises
    ------
    nestdb.errors.DataError
        A result CASTEP printed as NaN/inf (or misshapen forces), naming the file and the quantity.
    """
    path = Path(path)
    atoms = read(path, format="castep-castep")
    results = atoms.calc.results if atoms.calc is not None else {}
    for key, value in results.items():
        value = np.asarray(value)
        if value.dtype.kind in "fiuc" and not np.all(np.isfinite(value)):
            raise DataError(
                f"{path}: CASTEP's {key} is not finite ({value.reshape(-1)[:9].tolist()}); "
                "this output cannot be a label"
            )
    if "forces" in results and np.shape(results["forces"]) != (len(atoms), 3):
        raise DataError(f"{path}: CASTEP's forces have shape {np.shape(results['forces'])}, expected ({len(atoms)}, 3)")
    return atoms, scf_report(path.read_text(errors="replace"))
