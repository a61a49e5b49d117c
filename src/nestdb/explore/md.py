"""DP-GEN-style exploration: constant-pressure MD from seed crystals on a temperature grid.

One NPT trajectory (ASE's ``Inhomogeneous_NPTBerendsen``: Berendsen thermostat, each cell length coupled
to the pressure) per
seed crystal and temperature at the run's pressure, with the cycle's model
(cycle 0: the classical potential; later: the previous cycle's committee); a
frame every ``interval`` steps goes into the pool with the committee's energy
STD when the model has one. DP-GEN then labels the frames whose committee
deviation lies in a trust window (:mod:`nestdb.select`, ``trust_window``).
Cost: ``len(structures) * len(temperatures) * steps`` model calls (with
forces and stress) per pressure.
"""

from __future__ import annotations

import logging
import math
from itertools import product

import numpy as np
from ase import Atoms, units
from ase.md.nptberendsen import Inhomogeneous_NPTBerendsen
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from nestdb.errors import ConfigError
from nestdb.structures.crystals import build_structure

log = logging.getLogger(__name__)

#: Bulk modulus (GPa) that sets the barostat's coupling (a metal's order of magnitude; Mg ~35-40).
_BULK_MODULUS_GPA = 40.0


def _repeats(n_cells: int) -> tuple[int, int, int]:
    """The most cubic (a, b, c) with a * b * c = n_cells."""
    best = None
    for a in range(1, n_cells + 1):
        for b in range(1, n_cells // a + 1):
            if n_cells % (a * b):
                continue
            c = n_cells // (a * b)
            spread = max(a, b, c) / min(a, b, c)
            if best is None or spread < best[0]:
                best = (spread, (a, b, c))
    return best[1]


def seed_crystal(name: str, element: str, n_atoms: int, volume_per_atom: float, where: str = "md") -> Atoms:
    """A supercell of ``n_atoms`` atoms of a seed crystal at a volume per atom.

    Raises
    ------
    ConfigError
        ``n_atoms`` is not a multiple of the structure's primitive cell.
    """
    primitive = build_structure(name, element=element, volume_per_atom=volume_per_atom)
    if n_atoms % len(primitive):
        raise ConfigError(
            f"{where}: {name} has {len(primitive)} atoms per primitive cell, which does not tile "
            f"{n_atoms} atoms; drop {name} or change ns.composition"
        )
    return primitive.repeat(_repeats(n_atoms // len(primitive)))


def run_md(
    atoms: Atoms,
    calculator,
    temperature: float,
    pressure_gpa: float,
    steps: int,
    interval: int,
    timestep_fs: float,
    seed: int,
    volume_bounds: tuple[float, float],
    max_std: float | None = None,
) -> tuple[list[Atoms], str]:
    """One NPT trajectory; returns its frames (every ``interval`` steps) and why it ended.

    A trajectory ends early when the energy is not finite, the volume per
    atom leaves ``volume_bounds`` (Å³/atom; a model with a hole collapses the
    cell, a hot gas expands it), or the committee STD exceeds ``max_std``
    (meV/atom). Frames carry ``temp`` (the thermostat's), ``md_step``,
    ``energy`` and ``enthalpy`` (eV, the model's), and ``committee_std``
    (eV/atom) when the calculator reports ``energy_std_per_atom``.
    """
    work = atoms.copy()
    work.calc = calculator
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature, rng=rng)
    pressure = pressure_gpa * units.GPa
    # Berendsen coupling of the temperature and of each cell length: cheap, robust, enough to explore
    # (LangevinBAOAB's exact NPT spends most of a 16-atom step in scipy's expm)
    dynamics = Inhomogeneous_NPTBerendsen(
        work,
        timestep_fs * units.fs,
        temperature_K=temperature,
        pressure_au=pressure,
        taut=100 * units.fs,
        taup=500 * units.fs,
        compressibility_au=1.0 / (_BULK_MODULUS_GPA * units.GPa),
    )
    frames: list[Atoms] = []
    reason = "steps"
    n_atoms = len(work)
    for step in range(1, steps + 1):
        try:
            dynamics.run(1)
            energy = float(work.get_potential_energy())
        except Exception as err:  # a model that fails mid-trajectory ends only this trajectory
            reason = f"model call failed: {err}"
            break
        volume = work.get_volume() / n_atoms
        std = calculator.results.get("energy_std_per_atom")
        if not math.isfinite(energy):
            reason = "energy not finite"
            break
        if not volume_bounds[0] <= volume <= volume_bounds[1]:
            reason = f"volume {volume:.1f} A^3/atom left [{volume_bounds[0]:g}, {volume_bounds[1]:g}]"
            break
        if max_std is not None and std is not None and 1000.0 * std > max_std:
            reason = f"committee STD {1000.0 * std:.0f} meV/atom above max_std"
            break
        if step % interval == 0:
            frame = Atoms(work.numbers, positions=work.positions, cell=work.cell, pbc=True)
            frame.wrap()
            frame.info.update(
                temp=float(temperature), md_step=step, energy=energy, enthalpy=energy + pressure * work.get_volume()
            )
            if std is not None:
                frame.info["committee_std"] = float(std)
            frames.append(frame)
    work.calc = None
    return frames, reason


def md_pool(
    calculator,
    settings: dict,
    element: str,
    n_atoms: int,
    pressure_gpa: float,
    volume_per_atom: float,
    volume_bounds: tuple[float, float],
) -> tuple[list[Atoms], list[dict]]:
    """Frames of every (seed crystal, temperature) trajectory at one pressure.

    Parameters
    ----------
    calculator
        The cycle's model.
    settings
        The ``md`` exploration settings (:mod:`nestdb.explore.settings`).
    element, n_atoms
        The cycle's (one-element) composition.
    pressure_gpa
        Pressure of the run.
    volume_per_atom
        Starting volume of the seed crystals (the model's density at the pressure).
    volume_bounds
        Å³/atom; a trajectory leaving them ends (``ns.min/max_volume_per_atom``).

    Returns
    -------
    (list of Atoms, list of dict)
        The frames (with ``md_structure``) and one record per trajectory
        (structure, temperature, frames, end reason).
    """
    frames, records = [], []
    for k, (name, temperature) in enumerate(product(settings["structures"], settings["temperatures"])):
        seed = int(
            np.random.SeedSequence([int(settings["seed"]), k, int(round(pressure_gpa * 1000))]).generate_state(1)[0]
        )
        start = seed_crystal(name, element, n_atoms, volume_per_atom)
        trajectory, reason = run_md(
            start,
            calculator,
            float(temperature),
            pressure_gpa,
            int(settings["steps"]),
            int(settings["interval"]),
            float(settings["timestep"]),
            seed,
            volume_bounds,
            settings["max_std"],
        )
        for frame in trajectory:
            frame.info["md_structure"] = name
        frames += trajectory
        records.append({"structure": name, "temperature": float(temperature), "frames": len(trajectory), "end": reason})
        log.info("md %s at %g K, %g GPa: %d frames (%s)", name, temperature, pressure_gpa, len(trajectory), reason)
    return frames, records
