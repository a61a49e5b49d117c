"""Quantum ESPRESSO (pw.x) labeller through ASE's :class:`ase.calculators.espresso.Espresso`.

Settings (``label.espresso``) are pw.x namelist variables, flat (ASE puts
each in its namelist): ``ecutwfc``/``ecutrho`` (Ry), ``occupations``,
``smearing``, ``degauss`` (Ry), ``conv_thr`` (Ry), ``mixing_beta``,
``electron_maxstep``, ... plus:

- ``pseudopotentials``: ``{element: file name}`` in ``ESPRESSO_PSEUDO``
  (required: pw.x has no built-in potentials),
- ``kpoints_mp_spacing``: maximal k-point spacing, 1/Å without 2π (CASTEP
  convention, :mod:`nestdb.kpoints`); the explicit MP grid is written
  (ASE 3.29's Espresso fails with ``kpts={"density": ...}``), ``kpoints_shift``
  (default false: Γ-centred).

``tprnfor`` and ``tstress`` are always on. Environment: ``ASE_ESPRESSO_COMMAND``
is the executable (default ``pw.x``; options such as ``pw.x -nk 2`` are split
like a shell would, run without one, after the job's MPI launcher:
``srun -n 16 pw.x -nk 2 -in espresso.pwi``); ``ESPRESSO_PSEUDO`` the
pseudopotential folder. An SCF that stopped at ``electron_maxstep``
(``convergence NOT achieved`` in the output) is a failed label.
"""

from __future__ import annotations

import copy
import os
import shlex
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.espresso import Espresso, EspressoProfile

from nestdb.errors import ConfigError
from nestdb.kpoints import monkhorst_pack_grid
from nestdb.label.core import Labeller, LabellingFailure
from nestdb.label.launch import code_argv

ESPRESSO_DEFAULTS: dict[str, Any] = {
    "ecutwfc": 40.0,  # Ry
    "ecutrho": None,  # Ry; pw.x default 4 * ecutwfc (norm-conserving)
    "occupations": "smearing",
    "smearing": "gaussian",
    "degauss": 0.0147,  # Ry, 0.2 eV as the study's CASTEP smearing
    "conv_thr": 1.0e-8,  # Ry
    "mixing_beta": 0.7,
    "electron_maxstep": 100,
    "input_dft": None,
    "pseudopotentials": None,
    "kpoints_mp_spacing": 0.03,  # 1/Angstrom, CASTEP convention (no 2 pi)
    "kpoints_shift": False,
}
_OWN_KEYS = ("pseudopotentials", "kpoints_mp_spacing", "kpoints_shift")
_FIXED = {"calculation": "scf", "tprnfor": True, "tstress": True}
_NOT_CONVERGED = "convergence NOT achieved"
_CONVERGED = "convergence has been achieved"
OUTPUT = "espresso.pwo"


class EspressoLabeller(Labeller):
    """Single points with pw.x.

    Parameters
    ----------
    settings
        Keys of :data:`ESPRESSO_DEFAULTS` or further pw.x namelist variables;
        ``None`` leaves a variable to pw.x.
    base_dir
        Unused.

    Raises
    ------
    ConfigError
        Missing ``pseudopotentials``, a bad k-point spacing, or keys the
        labeller sets itself.
    """

    name = "espresso"

    def __init__(self, settings: dict[str, Any] | None = None, base_dir: str | Path = "."):
        resolved = copy.deepcopy(ESPRESSO_DEFAULTS)
        resolved.update(copy.deepcopy(settings or {}))
        fixed = sorted((set(resolved) & set(_FIXED)) | ({"kpts", "input_data", "kspacing"} & set(resolved)))
        if fixed:
            raise ConfigError(
                f"label.espresso: {fixed} are set by the labeller (scf with forces and stress, "
                "k-points from kpoints_mp_spacing); remove them"
            )
        pseudos = resolved["pseudopotentials"]
        if not (isinstance(pseudos, dict) and pseudos and all(isinstance(v, str) for v in pseudos.values())):
            raise ConfigError(
                "label.espresso.pseudopotentials: required, a mapping {element: file in ESPRESSO_PSEUDO}, "
                f"e.g. {{Mg: Mg.pbe-spnl-rrkjus_psl.1.0.0.UPF}}; got {pseudos!r}"
            )
        spacing = resolved["kpoints_mp_spacing"]
        if isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or spacing <= 0:
            raise ConfigError(
                f"label.espresso.kpoints_mp_spacing: expected a positive number (1/Å, no 2π), got {spacing!r}"
            )
        super().__init__(resolved)
        self.base_dir = Path(base_dir)

    def input_data(self) -> dict[str, Any]:
        """Flat pw.x variables written to the input (settings without ``None`` values, plus fixed ones)."""
        data = {k: v for k, v in self.settings.items() if v is not None and k not in _OWN_KEYS}
        data.update(_FIXED)
        return data

    def calculator_for(self, atoms: Atoms, directory: Path) -> Espresso:
        """Fresh calculator writing ``espresso.pwi`` with the explicit k-point grid of ``atoms``' cell."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        command = os.environ.get("ASE_ESPRESSO_COMMAND") or "pw.x"
        profile = EspressoProfile(
            command=shlex.join(code_argv(self.launch_prefix(), command)),
            pseudo_dir=os.environ.get("ESPRESSO_PSEUDO") or str(Path.home() / "espresso" / "pseudo"),
        )
        grid = monkhorst_pack_grid(atoms, castep_spacing=self.settings["kpoints_mp_spacing"])
        shift = (1, 1, 1) if self.settings["kpoints_shift"] else (0, 0, 0)
        return Espresso(
            profile=profile,
            directory=str(directory),
            input_data=self.input_data(),
            pseudopotentials=dict(self.settings["pseudopotentials"]),
            kpts=grid,
            koffset=shift,
        )

    def write_inputs(self, atoms: Atoms, directory: str | Path) -> list[Path]:
        """Write ``espresso.pwi`` as a run would, without running pw.x."""
        calc = self.calculator_for(atoms, Path(directory))
        calc.write_inputfiles(atoms, ["energy", "forces", "stress"])
        return [Path(directory) / calc.template.inputname]

    def isolated_atom_overrides(self, magnetic: bool) -> dict[str, Any]:
        """Γ-centred single k-point; ``nspin = 2`` if magnetic (starting moments from the atoms)."""
        return {"kpoints_mp_spacing": 1.0, **({"nspin": 2} if magnetic else {})}

    def energy(self, atoms: Atoms) -> float:
        energy = super().energy(atoms)
        output = Path(atoms.calc.directory) / OUTPUT
        text = output.read_text(errors="replace") if output.is_file() else ""
        if _NOT_CONVERGED in text or _CONVERGED not in text:
            raise LabellingFailure(
                f"SCF not converged ({output.name} lacks '{_CONVERGED}'); raise label.espresso."
                "electron_maxstep or add safer settings (mixing_beta) to label.retry.espresso",
                kind="scf",
            )
        return energy
