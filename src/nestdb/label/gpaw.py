"""GPAW plane-wave labeller, the free embedded default.

Defaults are the "fast" settings of ``reference/toolchain.md`` (about
4 meV/atom and 1 GPa from converged PBE up to ~20 GPa) with GPAW's standard
PAW setup of every element (``setups: null``); cheaper ones are chosen per
element, e.g. ``setups: {Mg: "2"}`` (2-electron Mg, wrong at high pressure).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ase import Atoms

from nestdb.errors import ConfigError
from nestdb.label.core import Labeller

#: Settings with their defaults; ``None`` means "GPAW's own default".
GPAW_DEFAULTS: dict[str, Any] = {
    "mode": {"name": "pw", "ecut": 400},
    "xc": "PBE",
    "setups": None,  # GPAW's standard setups; per element e.g. {Mg: "2"}
    "kpts": {"density": 4, "gamma": True},
    "occupations": {"name": "marzari-vanderbilt", "width": 0.1},
    "convergence": None,
    "maxiter": None,
    "mixer": None,
    "eigensolver": None,
    "symmetry": None,
    "parallel": None,
    # Cost guard, not a GPAW parameter: PW cost grows with the cell volume and
    # gas-like NS samples (hundreds of Å^3/atom) would take hours.
    "max_volume_per_atom": 100.0,
}
_NOT_GPAW_PARAMETERS = ("max_volume_per_atom",)


def _validate(settings: dict[str, Any]) -> None:
    mode = settings["mode"]
    if not isinstance(mode, dict) or mode.get("name") != "pw":
        raise ConfigError(
            f"label.gpaw.mode: {mode!r} is not supported; use a plane-wave mode such as "
            "{name: pw, ecut: 400} (GPAW computes stress only in PW mode)"
        )
    ecut = mode.get("ecut", 340)
    if not isinstance(ecut, (int, float)) or ecut <= 0:
        raise ConfigError(f"label.gpaw.mode.ecut: expected a positive cutoff in eV, got {ecut!r}")
    kpts = settings["kpts"]
    if isinstance(kpts, dict):
        unknown = set(kpts) - {"density", "gamma", "size", "even"}
        if unknown:
            raise ConfigError(f"label.gpaw.kpts: unknown key(s) {sorted(unknown)}; use density/gamma/size/even")
    elif not (isinstance(kpts, (list, tuple)) and len(kpts) == 3):
        raise ConfigError(
            f"label.gpaw.kpts: expected {{density: 4, gamma: true}} or a list of 3 integers, got {kpts!r}"
        )
    setups = settings["setups"]
    if setups is not None and not isinstance(setups, (str, dict)):
        raise ConfigError(
            f"label.gpaw.setups: expected a mapping such as {{Mg: '2'}}, a string, or null, got {setups!r}"
        )
    limit = settings["max_volume_per_atom"]
    if limit is not None and (not isinstance(limit, (int, float)) or limit <= 0):
        raise ConfigError(
            f"label.gpaw.max_volume_per_atom: expected a positive number (Å^3/atom) or null, got {limit!r}"
        )


class GpawLabeller(Labeller):
    """Single points with GPAW in plane-wave mode.

    Parameters
    ----------
    settings
        Any of the keys of :data:`GPAW_DEFAULTS`; missing keys take the
        defaults, a ``None`` value leaves the parameter to GPAW.
    base_dir
        Unused (GPAW setups come from the ``gpaw-data`` package).

    Raises
    ------
    ConfigError
        Unknown keys (the message lists the allowed ones) or malformed values.
    """

    name = "gpaw"

    def shares_mpi_ranks(self) -> bool:
        """True when this GPAW was built with MPI and runs over more than one rank."""
        from gpaw.mpi import world  # optional: GPAW is built by install.sh, not a package dependency

        return world.size > 1

    def __init__(self, settings: dict[str, Any] | None = None, base_dir: str | Path = "."):
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(GPAW_DEFAULTS))
        if unknown:
            raise ConfigError(f"label.gpaw: unknown setting(s) {unknown}; allowed: {', '.join(GPAW_DEFAULTS)}")
        resolved = copy.deepcopy(GPAW_DEFAULTS)
        resolved.update(copy.deepcopy(settings))
        _validate(resolved)
        super().__init__(resolved)

    def gpaw_parameters(self) -> dict[str, Any]:
        """Keyword arguments passed to ``gpaw.GPAW`` (settings minus guards and ``None`` values)."""
        return {
            key: copy.deepcopy(value)
            for key, value in self.settings.items()
            if value is not None and key not in _NOT_GPAW_PARAMETERS
        }

    def precheck(self, atoms: Atoms) -> str | None:
        limit = self.settings["max_volume_per_atom"]
        if limit is None or not atoms.pbc.all():
            return None
        volume_per_atom = atoms.get_volume() / len(atoms)
        if volume_per_atom > limit:
            return (
                f"volume {volume_per_atom:.1f} A^3/atom exceeds label.gpaw.max_volume_per_atom="
                f"{limit:g} (gas-like cell, too expensive in PW mode; raise the limit to label it)"
            )
        return None

    def isolated_atom_overrides(self, magnetic: bool) -> dict[str, Any]:
        """Γ point only and no volume guard; GPAW spin-polarises from the atoms' initial moments."""
        return {"kpts": [1, 1, 1], "max_volume_per_atom": None}

    def explain(self, error: Exception) -> str | None:
        # GPAW raises KohnShamConvergenceError without a message.
        if type(error).__name__ in ("KohnShamConvergenceError", "TooFewBandsError"):
            maxiter = self.settings["maxiter"] or "GPAW's default"
            return (
                f"SCF not converged within maxiter={maxiter} iterations (see gpaw.txt; "
                "raise label.gpaw.maxiter or loosen label.gpaw.convergence)"
            )
        return None

    def calculator(self, directory: Path):
        """Fresh GPAW calculator logging to ``directory/gpaw.txt``.

        GPAW raises ``KohnShamConvergenceError`` when the SCF does not
        converge in ``maxiter`` steps; :func:`label_configuration` records it
        as a failure.
        """
        from gpaw import GPAW  # heavy import, only when GPAW labels

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return GPAW(txt=str(directory / "gpaw.txt"), **self.gpaw_parameters())
