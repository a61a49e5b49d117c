"""VASP labeller through ASE's :class:`ase.calculators.vasp.Vasp`.

Settings (``label.vasp``) are INCAR keywords in lower case as ASE's Vasp
calculator takes them (``encut``, ``ediff``, ``ismear``, ``sigma``, ``amix``,
``nelm``, ...) plus:

- ``xc`` (ASE's functional name, default ``PBE``) and ``setups`` (POTCAR
  choice per element, e.g. ``{Mg: _pv}``; default ASE's minimal set),
- ``kpoints_mp_spacing``: maximal k-point spacing in 1/Å *without* 2π, the
  CASTEP convention (:mod:`nestdb.kpoints`); the explicit grid goes to
  ``KPOINTS`` (``gamma``: Γ-centred, default true). VASP's own ``KSPACING`` is
  ``2π`` times this.

Single point: ``IBRION = -1``, ``NSW = 0``, no WAVECAR/CHGCAR. Environment:
``ASE_VASP_COMMAND`` (or ``VASP_COMMAND``) is the executable, e.g.
``vasp_std``; it runs without a shell, after the MPI launcher of the job
(``srun -n 16 vasp_std``). POTCARs come from ``VASP_PP_PATH``
(``$VASP_PP_PATH/potpaw_PBE/<element><setup>/POTCAR``).
An electronic minimisation that reached ``NELM`` without meeting ``EDIFF``
(ASE reads that from ``OUTCAR``) is a failed label.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.vasp import Vasp
from ase.io import write

from nestdb.errors import ConfigError
from nestdb.kpoints import monkhorst_pack_grid
from nestdb.label.core import Labeller, LabellingFailure
from nestdb.label.launch import code_argv

#: Defaults: PBE, 500 eV, Methfessel–Paxton smearing as for metals.
VASP_DEFAULTS: dict[str, Any] = {
    "xc": "PBE",
    "setups": None,
    "encut": 500.0,
    "ediff": 1.0e-6,
    "prec": "Accurate",
    "ismear": 1,
    "sigma": 0.1,
    "nelm": 100,
    "algo": "Normal",
    "lreal": False,
    "kpoints_mp_spacing": 0.03,  # 1/Angstrom, CASTEP convention (no 2 pi)
    "gamma": True,
}
#: Keywords fixed for a single point (not settings).
_FIXED = {"ibrion": -1, "nsw": 0, "lwave": False, "lcharg": False, "isif": 2}
_OWN_KEYS = ("kpoints_mp_spacing", "gamma")


def _known_vasp_keys() -> set[str]:
    calc = Vasp()
    keys = {
        "xc",
        "setups",
        "pp",
        "kpts",
        "gamma",
        "kpts_nintersections",
        "reciprocal",
        "ldau_luj",
        "ignore_constraints",
        "net_charge",
    }
    for name in (
        "float_params",
        "exp_params",
        "string_params",
        "int_params",
        "bool_params",
        "list_bool_params",
        "list_int_params",
        "list_float_params",
        "special_params",
        "dict_params",
    ):
        keys |= set(getattr(calc, name))
    return keys


class CheckedVasp(Vasp):
    """ASE's Vasp without a shell: argv = MPI launcher + ``ASE_VASP_COMMAND`` split."""

    launch_prefix: list[str] = []

    def _run(self, command=None, out=None, directory=None):
        argv = code_argv(self.launch_prefix, command or self.command)
        result = subprocess.run(argv, cwd=directory or self.directory, capture_output=True, text=True)
        if out is not None:
            out.write(result.stdout)
        return result.returncode, result.stderr


class VaspLabeller(Labeller):
    """Single points with VASP.

    Parameters
    ----------
    settings
        Keys of :data:`VASP_DEFAULTS` or any INCAR keyword ASE's Vasp knows;
        ``None`` leaves a keyword to VASP.
    base_dir
        Unused.

    Raises
    ------
    ConfigError
        A key ASE's Vasp does not know (it would silently ignore it), or a bad k-point spacing.
    """

    name = "vasp"

    def __init__(self, settings: dict[str, Any] | None = None, base_dir: str | Path = "."):
        resolved = copy.deepcopy(VASP_DEFAULTS)
        resolved.update(copy.deepcopy(settings or {}))
        unknown = sorted(set(resolved) - _known_vasp_keys() - set(_OWN_KEYS))
        if unknown:
            raise ConfigError(
                f"label.vasp: unknown key(s) {unknown}: not INCAR keywords of ASE's Vasp calculator "
                "(use lower case, e.g. encut, ediff, ismear, sigma, amix, nelm)"
            )
        fixed = sorted(set(resolved) & set(_FIXED) | ({"kpts"} & set(resolved)))
        if fixed:
            raise ConfigError(
                f"label.vasp: {fixed} are set by the labeller (single point, "
                "k-points from kpoints_mp_spacing); remove them"
            )
        spacing = resolved["kpoints_mp_spacing"]
        if isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or spacing <= 0:
            raise ConfigError(
                f"label.vasp.kpoints_mp_spacing: expected a positive number (1/Å, no 2π), got {spacing!r}"
            )
        super().__init__(resolved)
        self.base_dir = Path(base_dir)

    def vasp_parameters(self, atoms: Atoms) -> dict[str, Any]:
        """Keyword arguments of ``Vasp`` for ``atoms`` (explicit k-point grid, fixed single-point keys)."""
        parameters = {k: v for k, v in self.settings.items() if v is not None and k not in _OWN_KEYS}
        parameters.update(_FIXED)
        parameters["kpts"] = monkhorst_pack_grid(atoms, castep_spacing=self.settings["kpoints_mp_spacing"])
        parameters["gamma"] = bool(self.settings["gamma"])
        return parameters

    def _calculator(self, directory: Path, atoms: Atoms) -> CheckedVasp:
        command = os.environ.get("ASE_VASP_COMMAND") or os.environ.get("VASP_COMMAND") or "vasp_std"
        calc = CheckedVasp(directory=str(directory), command=command, **self.vasp_parameters(atoms))
        calc.launch_prefix = self.launch_prefix()
        return calc

    def calculator_for(self, atoms: Atoms, directory: Path) -> CheckedVasp:
        """Fresh calculator writing into ``directory`` with the k-point grid of ``atoms``' cell."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return self._calculator(directory, atoms)

    def write_inputs(self, atoms: Atoms, directory: str | Path) -> list[Path]:
        """Write ``INCAR``, ``KPOINTS`` and ``POSCAR`` as a run would, without POTCAR or VASP.

        Returns
        -------
        list of Path
            The files written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        calc = self._calculator(directory, atoms)
        # What Vasp.initialize does, minus the POTCAR lookup (needs VASP_PP_PATH).
        calc._set_spinpol(atoms)
        calc.sort, calc.resort = calc._make_sort(atoms, special_setups=[])
        calc.write_incar(atoms, directory=str(directory))
        calc.write_kpoints(atoms=atoms, directory=str(directory))
        write(directory / "POSCAR", atoms[calc.sort], format="vasp", direct=True)
        return [directory / name for name in ("INCAR", "KPOINTS", "POSCAR")]

    def isolated_atom_overrides(self, magnetic: bool) -> dict[str, Any]:
        """Γ point only; ``ISPIN = 2`` if magnetic (MAGMOM from the atoms' initial moments)."""
        return {"kpoints_mp_spacing": 1.0, **({"ispin": 2} if magnetic else {})}

    def energy(self, atoms: Atoms) -> float:
        energy = super().energy(atoms)
        if atoms.calc.converged is False:
            raise LabellingFailure(
                f"SCF not converged within NELM={self.settings.get('nelm')} (see OUTCAR); raise "
                "label.vasp.nelm or add safer settings to label.retry.vasp",
                kind="scf",
            )
        return energy
