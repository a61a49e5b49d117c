"""CASTEP plane-wave labeller (the magnesium study's reference code).

Settings are CASTEP ``.param`` keywords (as in ``config/mg-study.yaml``,
``label.castep``) plus ``kpoints_mp_spacing`` and ``pseudopotentials``, which
go to the ``.cell`` file. Nothing here needs a CASTEP binary until a
calculation actually runs.

How CASTEP is started
---------------------
The executable comes from the environment variable ``CASTEP_COMMAND``
(ASE's convention; default ``castep``), split like a shell would split it
but run without a shell; the MPI launcher built from the job's Snakemake
resources (:mod:`nestdb.label.launch`) is put in front and the seed name at
the end, e.g. with ``CASTEP_COMMAND=castep.mpi`` and ``mpi: srun, tasks: 16``::

    srun -n 16 castep.mpi castep

runs inside the configuration's raw folder. Because CASTEP parallelises
itself through this command, the labelling step itself runs as a single
process (not under ``mpirun``). Pseudopotential files named in
``pseudopotentials`` are found by CASTEP through ``PSPOT_DIR`` (or, like
ASE does, linked from ``CASTEP_PP_PATH``); an on-the-fly string such as
``"3|1.8|7|8|9|20U:30:21:32"`` (the study's Mg potential, CASTEP's default
for Mg) needs no file.

Failures
--------
A non-zero exit status, a non-empty ``*.err`` file, a ``.castep`` output that
is missing or incomplete, or an SCF that did not converge (read from the SCF
tables and warnings of the ``.castep`` text by
:func:`nestdb.label.castep_output.scf_report`) raise :class:`CastepFailure`;
:func:`nestdb.label.label_configuration` turns it into a
``label_status="failed"`` record.

Energy
------
``dft_energy`` is what the study recorded: CASTEP's ``Total energy corrected
for finite basis set`` when ``finite_basis_corr`` is on (checked against
``cycle_0.edb.extxyz``: equal to its 6 printed decimals for all 12 real
outputs), else the ``Final free energy (E-TS)``. The free energy (consistent
with the forces) is kept as ``dft_free_energy``.
"""

from __future__ import annotations

import copy
import os
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ase import Atoms
from ase.calculators.castep import Castep
from ase.io.castep import write_castep_cell

from nestdb.errors import ConfigError
from nestdb.label.castep_output import scf_report
from nestdb.label.core import Labeller, LabellingFailure
from nestdb.label.launch import code_argv

#: Settings with their defaults (the study's values, ``method.md`` section 3).
#: ``None`` leaves the keyword out of the input (CASTEP's own default).
CASTEP_DEFAULTS: dict[str, Any] = {
    "xc_functional": "PBE",
    "cut_off_energy": 700,  # eV
    "elec_energy_tol": 1.0e-9,  # eV
    "fine_grid_scale": 4.0,
    "max_scf_cycles": 150,
    "smearing_scheme": "Gaussian",
    "smearing_width": 0.2,  # eV
    "finite_basis_corr": "automatic",
    "calculate_stress": True,
    "opt_strategy": "speed",
    "data_distribution": "Gvector",
    "spin_polarized": None,
    # .cell keywords
    "kpoints_mp_spacing": 0.015,  # 1/Angstrom, CASTEP convention (no 2 pi)
    "pseudopotentials": None,  # {element: file name or on-the-fly string}
}
_CELL_SETTINGS = ("kpoints_mp_spacing", "pseudopotentials")

#: Keywords always written to the .param (not settings: the labeller needs them).
_FIXED_PARAM = {"task": "SinglePoint", "write_checkpoint": "none"}

#: Seed name of the input/output files inside the raw folder.
SEED = "castep"


class CastepFailure(LabellingFailure):
    """CASTEP did not produce a usable, converged result."""


def _validate(settings: dict[str, Any]) -> None:
    def positive(key: str, unit: str) -> None:
        value = settings[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"label.castep.{key}: expected a positive number ({unit}), got {value!r}")

    positive("cut_off_energy", "eV")
    positive("elec_energy_tol", "eV")
    positive("fine_grid_scale", "multiple of the standard grid")
    positive("smearing_width", "eV")
    positive("kpoints_mp_spacing", "1/Angstrom, without 2 pi")
    cycles = settings["max_scf_cycles"]
    if cycles is not None and (isinstance(cycles, bool) or not isinstance(cycles, int) or cycles <= 0):
        raise ConfigError(f"label.castep.max_scf_cycles: expected a positive integer, got {cycles!r}")
    if settings["kpoints_mp_spacing"] is None:
        raise ConfigError("label.castep.kpoints_mp_spacing: required (1/Angstrom, e.g. 0.015)")
    if settings["calculate_stress"] is not True:
        raise ConfigError(
            "label.castep.calculate_stress: must be true (labelled records of periodic cells need the stress)"
        )
    pspots = settings["pseudopotentials"]
    if pspots is not None and not (
        isinstance(pspots, dict)
        and all(
            isinstance(k, str) and isinstance(v, str) and v.strip() and len(v.split()) == 1 for k, v in pspots.items()
        )
    ):
        raise ConfigError(
            "label.castep.pseudopotentials: expected a mapping {element: file or on-the-fly string}, "
            f"e.g. {{Mg: '3|1.8|7|8|9|20U:30:21:32'}} or {{Mg: Mg_00PBE.usp}}; got {pspots!r}"
        )
    for key, value in settings.items():
        if key != "pseudopotentials" and not (value is None or isinstance(value, (str, int, float, bool))):
            raise ConfigError(f"label.castep.{key}: expected a single value, got {value!r}")


def _check_castep_output(path: Path) -> None:
    """Raise :class:`CastepFailure` unless ``path`` is a complete, SCF-converged .castep file."""
    if not path.is_file():
        raise CastepFailure(f"CASTEP wrote no {path.name}")
    report = scf_report(path.read_text(errors="replace"))
    if report.converged:
        return
    if report.reason.startswith(("no final energy", "incomplete")):
        raise CastepFailure(f"{path.name}: {report.reason}")
    raise CastepFailure(
        f"SCF not converged in {path.name}: {report.reason}; raise label.castep.max_scf_cycles "
        "or loosen label.castep.elec_energy_tol",
        kind="scf",
    )


def _write_cell_with_settings(filename, atoms, castep_cell=None, **kwargs):
    """``write_castep_cell`` that honours ``castep_cell``.

    ASE 3.29 ignores that argument and takes the keywords from
    ``atoms.calc.cell``, so ``calc.prepare_input_files(atoms)`` with atoms
    whose calculator is another one (or none) would drop the k-point spacing
    and pseudopotentials.
    """
    carrier = atoms.copy()
    carrier.calc = SimpleNamespace(cell=castep_cell)
    return write_castep_cell(filename, carrier, castep_cell=castep_cell, **kwargs)


class CheckedCastep(Castep):
    """ASE's Castep calculator with strict failure checks and no keyword lookup.

    Differences from :class:`ase.calculators.castep.Castep`: the command's
    exit status and output are checked (stdout/stderr go to
    ``castep.stdout``/``castep.stderr``), stale output files are removed before
    a run, and a non-converged SCF raises :class:`CastepFailure` instead of
    only a Python warning.
    """

    #: argv put in front of the CASTEP command (MPI launcher); set by the labeller.
    launch_prefix: list[str] = []

    def run(self):
        directory = Path(self._directory)
        self._calls += 1
        # CASTEP appends to an existing .castep: remove stale output so that a
        # failed run cannot be mistaken for an old successful one.
        for stale in [directory / f"{self._seed}.castep", *directory.glob(f"{self._seed}*.err")]:
            stale.unlink(missing_ok=True)
        # An argv list, no shell: nothing in the config or environment is interpreted by a shell.
        argv = code_argv(self.launch_prefix, self._castep_command, self._seed)
        command = shlex.join(argv)
        try:
            proc = subprocess.run(argv, cwd=directory, capture_output=True, text=True)
        except FileNotFoundError as error:
            raise CastepFailure(
                f"cannot start {command!r} ({error.strerror}); set CASTEP_COMMAND to the CASTEP "
                "executable, e.g. 'castep.mpi'"
            ) from error
        (directory / f"{self._seed}.stdout").write_text(proc.stdout)
        (directory / f"{self._seed}.stderr").write_text(proc.stderr)
        errors = "\n".join(p.read_text(errors="replace").strip() for p in sorted(directory.glob(f"{self._seed}*.err")))
        if errors.strip():
            self._error = errors
            raise CastepFailure(f"CASTEP error file(s): {errors.strip()[:500]}")
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip())[-500:]
            raise CastepFailure(
                f"command {command!r} exited with status {proc.returncode}"
                + (f": {tail}" if tail else "")
                + " (set CASTEP_COMMAND to the CASTEP executable, e.g. 'castep.mpi'; the MPI launcher "
                "comes from the job's mpi/tasks resources)"
            )

    def read(self, castep_file):
        _check_castep_output(Path(castep_file))
        super().read(castep_file)


class CastepLabeller(Labeller):
    """Single points with CASTEP through ASE.

    Parameters
    ----------
    settings
        Any of the keys of :data:`CASTEP_DEFAULTS`; missing keys take the
        defaults (the study's settings), ``None`` leaves a ``.param``
        keyword to CASTEP.
    base_dir
        Unused (pseudopotentials are found through ``PSPOT_DIR``).

    Raises
    ------
    ConfigError
        Unknown keys (named as ``label.castep.<key>``) or malformed values.
    """

    name = "castep"

    def __init__(self, settings: dict[str, Any] | None = None, base_dir: str | Path = "."):
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(CASTEP_DEFAULTS))
        if unknown:
            names = ", ".join(f"label.castep.{key}" for key in unknown)
            raise ConfigError(
                f"{names}: unknown setting(s); allowed: {', '.join(CASTEP_DEFAULTS)} "
                "(ask for another CASTEP keyword to be added)"
            )
        resolved = copy.deepcopy(CASTEP_DEFAULTS)
        resolved.update(copy.deepcopy(settings))
        _validate(resolved)
        super().__init__(resolved)

    def param_keywords(self) -> dict[str, Any]:
        """Keywords written to the ``.param`` file (fixed ones plus the non-``None`` settings)."""
        keywords = dict(_FIXED_PARAM)
        for key, value in self.settings.items():
            if value is not None and key not in _CELL_SETTINGS:
                # Upper case: ASE writes SPIN= moments only when spin_polarized == "TRUE".
                keywords[key] = ("TRUE" if value else "FALSE") if isinstance(value, bool) else value
        return keywords

    def isolated_atom_overrides(self, magnetic: bool) -> dict[str, Any]:
        """One k-point (a spacing larger than any reciprocal vector of the box); spin-polarised if magnetic."""
        return {"kpoints_mp_spacing": 1.0, **({"spin_polarized": True} if magnetic else {})}

    def explain(self, error: Exception) -> str | None:
        if isinstance(error, FileNotFoundError) and ".castep" in str(error):
            return f"CASTEP wrote no output ({error}); check CASTEP_COMMAND"
        return None

    def energy(self, atoms: Atoms) -> float:
        """The study's ``dft_energy``: the finite-basis-corrected total energy when CASTEP printed one."""
        free_energy = float(atoms.get_potential_energy(force_consistent=True))
        corrected = atoms.calc.results.get("energy_with_finite_basis_set_correction")
        return free_energy if corrected is None else float(corrected)

    def extra_info(self, atoms: Atoms) -> dict[str, Any]:
        """``dft_free_energy``: the ``Final free energy (E-TS)`` at the full cut-off (eV)."""
        return {"dft_free_energy": float(atoms.get_potential_energy(force_consistent=True))}

    def code_cpu_s(self, directory: Path) -> float | None:
        """Wall time × MPI processes × threads from ``castep.castep`` (None when absent or incomplete)."""
        path = Path(directory) / f"{SEED}.castep"
        if not path.is_file():
            return None
        return scf_report(path.read_text(errors="replace")).cpu_s

    def calculator(self, directory: Path) -> CheckedCastep:
        """Fresh calculator writing ``castep.param``/``castep.cell`` and CASTEP's output into ``directory``.

        The command is ``$CASTEP_COMMAND`` (default ``castep``), read now.
        No CASTEP binary is needed to build the calculator or to write the
        input files (``calc.prepare_input_files(atoms)``).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        calc = CheckedCastep(
            directory=str(directory),
            label=SEED,
            castep_command=os.environ.get("CASTEP_COMMAND") or "castep",
            keyword_tolerance=3,  # no castep_keywords.json lookup (that would run the binary)
        )
        # Castep.__setattr__ treats unknown attributes as CASTEP keywords: set it directly.
        calc.__dict__["launch_prefix"] = self.launch_prefix()
        calc._write_cell = _write_cell_with_settings
        calc._rename_existing_dir = False  # never move the caller's folder out of the way
        calc._export_settings = False  # no ASE interface comments in the .param
        calc._check_checkfile = True
        for key, value in self.param_keywords().items():
            setattr(calc.param, key, value)  # on .param directly: Castep.__setattr__ drops unknown keys
        calc.cell.kpoints_mp_spacing = self.settings["kpoints_mp_spacing"]
        pspots = self.settings["pseudopotentials"]
        if pspots:
            calc.cell.species_pot = [(element, pot) for element, pot in sorted(pspots.items())]
        return calc
