"""Energy models for nested sampling and benchmarks, built from a small config dict.

``make_calculator({"type": "lj"})`` and friends return a ready ASE calculator.
The built-in Lennard-Jones is vectorised (matscipy neighbour list) because the
nested-sampling engine calls it millions of times; ASE's own ``LennardJones``
is 5-20x slower for the 8-16 atom cells used here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from matscipy.neighbours import neighbour_list

from nestdb.errors import ConfigError

KNOWN_CALCULATORS: tuple[str, ...] = ("lj", "eam", "emt", "ace_committee")

#: Mg-like Lennard-Jones defaults. With the energy shifted to zero at the
#: cutoff (2.5 sigma), static ideal hcp has its minimum at a nearest-neighbour
#: distance of 3.20 A (fcc 3.197 A) with a cohesive energy of 1.500 eV/atom
#: (fcc 1.498); real Mg: 3.20 A and 1.51 eV/atom. Checked in
#: tests/test_calculators.py.
LJ_DEFAULTS: dict[str, float] = {"epsilon": 0.2007, "sigma": 2.918, "cutoff": 7.295}

#: Keys each calculator type accepts besides "type".
_ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "lj": ("epsilon", "sigma", "cutoff"),
    "eam": ("file", "kind"),
    "emt": (),
    "ace_committee": ("model",),
}


class FastLennardJones(Calculator):
    """Pairwise Lennard-Jones, energy shifted to zero at the cutoff, vectorised.

    E = sum_{i<j, r<rc} 4 eps [(s/r)^12 - (s/r)^6] - e_shift, with forces and
    the (Voigt, ASE sign convention) stress for periodic cells.

    Parameters
    ----------
    epsilon : float
        Well depth in eV.
    sigma : float
        Zero-crossing distance in Angstrom.
    cutoff : float
        Interaction cutoff in Angstrom; the pair energy is shifted so it is
        continuous (not smooth) there.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, epsilon: float = LJ_DEFAULTS["epsilon"], sigma: float = LJ_DEFAULTS["sigma"],
                 cutoff: float = LJ_DEFAULTS["cutoff"], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value in (("epsilon", epsilon), ("sigma", sigma), ("cutoff", cutoff)):
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"calculator key {name!r} must be a positive number, got {value!r}")
        self.epsilon = float(epsilon)
        self.sigma = float(sigma)
        self.cutoff = float(cutoff)
        sr6 = (self.sigma / self.cutoff) ** 6
        self.energy_shift = 4.0 * self.epsilon * (sr6 * sr6 - sr6)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n_atoms = len(atoms)
        # Full (i, j) list: every pair appears twice, hence the factors 1/2 below.
        i, j, dist, vec = neighbour_list("ijdD", atoms, self.cutoff)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            # coinciding atoms (random gas walkers) give inf/nan, which callers reject
            sr6 = (self.sigma / dist) ** 6
            pair_energy = 4.0 * self.epsilon * (sr6 * sr6 - sr6) - self.energy_shift
            # dE/dr divided by r: the force on i from the pair is (dE/dr / r) * D
            de_dr_over_r = 4.0 * self.epsilon * (-12.0 * sr6 * sr6 + 6.0 * sr6) / (dist * dist)
        pair_force = de_dr_over_r[:, None] * vec  # force on i from j is +this (D = r_j - r_i)

        energies = 0.5 * np.bincount(i, weights=pair_energy, minlength=n_atoms)
        forces = np.zeros((n_atoms, 3))
        for axis in range(3):
            forces[:, axis] = np.bincount(i, weights=pair_force[:, axis], minlength=n_atoms)
        energy = float(energies.sum())
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = energies
        self.results["forces"] = forces
        if atoms.cell.rank == 3:
            # stress = (1/V) dE/d(strain) = (1/2V) sum_full_list (dE/dr / r) D (x) D (ASE sign)
            stress = 0.5 * vec.T @ (de_dr_over_r[:, None] * vec) / atoms.get_volume()
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]].copy()


def _resolve_file(value: Any, key: str, calc_type: str, base_dir: Path, must_be_dir: bool = False) -> Path:
    """Return an existing path for ``spec[key]``, relative paths taken from base_dir."""
    if not isinstance(value, (str, Path)) or str(value) == "":
        raise ConfigError(f"calculator {calc_type!r}: key {key!r} must be a path, got {value!r}")
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise ConfigError(
            f"calculator {calc_type!r}: {key}={str(value)!r} does not exist (looked for {path}); "
            f"give an absolute path or one relative to {base_dir}"
        )
    if must_be_dir and not path.is_dir():
        raise ConfigError(f"calculator {calc_type!r}: {key}={str(value)!r} must be a directory ({path})")
    return path


def make_calculator(spec: dict, base_dir: str | Path = ".") -> Calculator:
    """Build an ASE calculator from a config dict.

    Parameters
    ----------
    spec : dict
        ``{"type": <one of KNOWN_CALCULATORS>, ...}``. Keys per type:

        - ``lj``: ``epsilon`` (eV), ``sigma`` (A), ``cutoff`` (A); defaults in
          :data:`LJ_DEFAULTS` are Mg-like (nn distance 3.2 A, 1.5 eV/atom).
        - ``eam``: ``file`` (LAMMPS potential file), ``kind`` (default
          ``"eam/fs"``; also ``"eam"``, ``"eam/alloy"``); matscipy's EAM.
        - ``emt``: no keys; ASE's EMT.
        - ``ace_committee``: ``model`` (a fitted committee model directory).
    base_dir : str or Path
        Directory that relative ``file``/``model`` paths are taken from.

    Returns
    -------
    ase.calculators.calculator.Calculator

    Raises
    ------
    ConfigError
        Unknown type, unknown keys, or a missing file.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"calculator spec must be a mapping with a 'type' key, got {spec!r}")
    calc_type = spec.get("type")
    if calc_type not in KNOWN_CALCULATORS:
        raise ConfigError(
            f"calculator type {calc_type!r} is unknown; set 'type' to one of {', '.join(KNOWN_CALCULATORS)}"
        )
    extra = sorted(set(spec) - {"type"} - set(_ALLOWED_KEYS[calc_type]))
    if extra:
        allowed = ", ".join(_ALLOWED_KEYS[calc_type]) or "none"
        raise ConfigError(
            f"calculator {calc_type!r}: unknown key(s) {', '.join(map(repr, extra))}; allowed keys: {allowed}"
        )
    base = Path(base_dir)

    if calc_type == "lj":
        params = {key: spec.get(key, default) for key, default in LJ_DEFAULTS.items()}
        try:
            params = {key: float(value) for key, value in params.items()}
        except (TypeError, ValueError) as err:
            raise ConfigError(f"calculator 'lj': epsilon/sigma/cutoff must be numbers ({err})") from None
        return FastLennardJones(**params)

    if calc_type == "eam":
        if "file" not in spec:
            raise ConfigError("calculator 'eam' needs key 'file' (a LAMMPS eam/eam.fs/eam.alloy potential file)")
        path = _resolve_file(spec["file"], "file", calc_type, base)
        kind = spec.get("kind", "eam/fs")
        if kind not in ("eam", "eam/fs", "eam/alloy"):
            raise ConfigError(f"calculator 'eam': kind={kind!r} unknown; use 'eam', 'eam/fs' or 'eam/alloy'")
        from matscipy.calculators.eam import EAM

        try:
            return EAM(str(path), kind=kind)
        except Exception as err:  # the parser fails with bare IndexError/ValueError on a wrong kind
            raise ConfigError(f"calculator 'eam': could not read file={str(path)!r} as {kind!r}: {err}") from err

    if calc_type == "emt":
        from ase.calculators.emt import EMT

        return EMT()

    # ace_committee
    if "model" not in spec:
        raise ConfigError("calculator 'ace_committee' needs key 'model' (a fitted committee model directory)")
    model_dir = _resolve_file(spec["model"], "model", calc_type, base, must_be_dir=True)
    from nestdb.fit.committee import CommitteeACECalculator

    return CommitteeACECalculator(model_dir)
