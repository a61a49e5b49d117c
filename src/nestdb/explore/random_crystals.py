"""ASSYST-style exploration: random crystals of chosen space groups at each pressure's density.

Poul et al. (PRB 2023) build Mg training sets from random crystals over the
space groups (generated with pyxtal), relaxed and then strained/rattled. Here
each crystal gets a space group drawn from ``space_groups``, the
composition's atoms on random Wyckoff positions of its conventional cell
(pyxtal), a volume per atom drawn from ``volume_range`` times the model's
density at the run's pressure, then ``relax_steps`` FIRE steps of cell and
positions at that pressure with the cycle's model (space group kept), and
``perturbations`` strained and rattled copies. Cost: about
``count * (relax_steps + 1)`` model calls per pressure plus pyxtal's
generation (~10-80 ms per 16-atom crystal).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from ase import Atoms, units

from nestdb.errors import DataError
from nestdb.relax import relax_cell

log = logging.getLogger(__name__)

#: Attempts per crystal before a space group is given up (pyxtal fails for unlucky draws).
_ATTEMPTS = 20


def random_crystal(
    composition: dict[str, int], space_group: int, volume_per_atom: float, rng: np.random.Generator
) -> Atoms:
    """One random crystal of ``composition`` in ``space_group`` at ``volume_per_atom`` (pyxtal).

    Raises
    ------
    DataError
        pyxtal could not place the atoms in ``_ATTEMPTS`` tries.
    """
    from pyxtal import pyxtal  # optional: only random-crystal explorations need pyxtal

    species = list(composition)
    counts = [int(composition[s]) for s in species]
    error = None
    for _ in range(_ATTEMPTS):
        crystal = pyxtal()
        try:
            crystal.from_random(3, int(space_group), species, counts, random_state=int(rng.integers(2**31 - 1)))
        except Exception as err:  # pyxtal raises several types for an unlucky draw
            error = err
            continue
        if not crystal.valid:
            continue
        atoms = crystal.to_ase()
        atoms.set_cell(atoms.cell * (volume_per_atom * len(atoms) / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
        atoms.pbc = True
        return atoms
    raise DataError(
        f"pyxtal could not build {composition} in space group {space_group} in {_ATTEMPTS} attempts ({error})"
    )


def perturbed_copy(atoms: Atoms, rattle: float, strain: float, rng: np.random.Generator) -> Atoms:
    """A copy under a random symmetric strain (components up to ``strain``) and Gaussian rattle (Å)."""
    copy = atoms.copy()
    eps = rng.uniform(-strain, strain, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    copy.set_cell(copy.cell @ (np.eye(3) + eps), scale_atoms=True)
    copy.positions += rng.normal(scale=rattle, size=copy.positions.shape)
    copy.wrap()
    return copy


def random_crystal_pool(
    calculator,
    settings: dict,
    composition: dict[str, int],
    pressure_gpa: float,
    volume_per_atom: float,
    space_groups: list[int],
    seed: int,
) -> tuple[list[Atoms], list[dict]]:
    """Random crystals at one pressure, relaxed a few steps with the model, plus perturbed copies.

    Parameters
    ----------
    calculator
        The cycle's model (needs stress for the cell relaxation).
    settings
        The ``random_crystals`` exploration settings.
    composition
        Atoms per cell by element.
    pressure_gpa
        Pressure of the relaxation.
    volume_per_atom
        The model's density at the pressure (Å³/atom); each crystal starts
        at this times a factor drawn from ``volume_range``.
    space_groups
        Space groups to draw from (compatible with the composition).
    seed
        Random seed of this pressure's pool.

    Returns
    -------
    (list of Atoms, list of dict)
        The pool (info ``space_group``, ``perturbed``, ``energy``,
        ``enthalpy`` with the model, ``committee_std`` in eV/atom where the
        model has a committee) and one record per crystal.
    """
    rng = np.random.default_rng(seed)
    low, high = settings["volume_range"]
    pool, records = [], []
    for k in range(int(settings["count"])):
        group = int(rng.choice(space_groups))
        start = random_crystal(composition, group, volume_per_atom * rng.uniform(low, high), rng)
        record = {"index": k, "space_group": group, "relax_steps": 0, "kept": True}
        crystal = start
        if settings["relax_steps"] > 0:
            try:
                crystal, info = relax_cell(
                    start,
                    calculator,
                    fmax=0.01,
                    pressure_gpa=pressure_gpa,
                    keep_symmetry=True,
                    max_steps=int(settings["relax_steps"]),
                    optimizer="FIRE",
                )
                record.update(relax_steps=info["steps"], abandoned=info["abandoned"])
                if info["abandoned"]:
                    crystal = start  # a model that blows the cell up: keep the unrelaxed crystal
            except Exception as err:  # the model failed on this crystal: keep it unrelaxed
                record["relax_error"] = str(err)
                crystal = start
        members = [crystal] + [
            perturbed_copy(crystal, float(settings["rattle"]), float(settings["strain"]), rng)
            for _ in range(int(settings["perturbations"]))
        ]
        for j, atoms in enumerate(members):
            atoms.calc = calculator
            try:
                energy = float(atoms.get_potential_energy())
            except Exception:  # noqa: BLE001 - a failed call leaves the structure unscored, not the pool
                energy = math.nan
            std = calculator.results.get("energy_std_per_atom") if math.isfinite(energy) else None
            atoms.calc = None
            atoms.info.update(
                space_group=group,
                perturbed=int(j > 0),
                temp=0.0,
                energy=energy,
                enthalpy=energy + pressure_gpa * units.GPa * atoms.get_volume(),
            )
            if std is not None and math.isfinite(std):
                atoms.info["committee_std"] = float(std)
            pool.append(atoms)
        records.append(record)
    log.info(
        "random crystals at %g GPa: %d structures from %d crystals (space groups %s)",
        pressure_gpa,
        len(pool),
        len(records),
        sorted({r["space_group"] for r in records}),
    )
    return pool, records
