"""The hand-built baseline database: what a person who knows the material's phases would label.

At each pressure: hcp, fcc and bcc at the oracle's density, strained and
rattled, plus MD snapshots from 300 K to twice the melting temperature
(NPT with the oracle, as an ab-initio MD would be run with DFT). The melting
line is the user's prior knowledge (for the study's EAM: 1051 K at 1 GPa and
1623 K at 45 GPa, method.md), interpolated linearly in pressure. Half of the
budget goes to crystals, half to MD snapshots, spread evenly over pressures,
structures and temperatures. The peer strategies that run inside the
workflow (random crystals, MD with a trust window) are exploration kinds of
:mod:`nestdb.explore`.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

from nestdb.explore.md import run_md, seed_crystal
from nestdb.explore.random_crystals import perturbed_copy
from nestdb.explore.volume import model_volume_per_atom
from nestdb.select import pressure_tag

log = logging.getLogger(__name__)

#: The oracle's melting line as a user would take it from the literature (K at GPa; method.md).
EAM_MELTING_LINE = ((1.0, 1051.0), (45.0, 1623.0))


def melting_temperature(pressure_gpa: float, line=EAM_MELTING_LINE) -> float:
    """Melting temperature (K) at a pressure, linear through the two points of ``line``."""
    (p0, t0), (p1, t1) = line
    return float(t0 + (t1 - t0) * (pressure_gpa - p0) / (p1 - p0))


def hand_built_database(
    oracle,
    element: str,
    n_atoms: int,
    pressures: list[float],
    budget: int,
    seed: int = 0,
    strain: float = 0.04,
    rattle: float = 0.1,
    md_steps: int = 600,
    volume_bounds: tuple[float, float] = (5.0, 60.0),
) -> list[Atoms]:
    """Strained and rattled crystals plus oracle-MD snapshots, ``budget`` configurations in all (unlabelled).

    Parameters
    ----------
    oracle
        The reference calculator (density at each pressure, MD).
    element, n_atoms
        Composition of the cells.
    pressures
        GPa.
    budget
        Number of configurations (the NS campaign's label count).
    seed
        Random seed.
    strain, rattle
        Largest strain component and Gaussian displacement (Å) of the crystals.
    md_steps
        Steps per MD trajectory; snapshots are spaced evenly over its second half.

    Returns
    -------
    list of Atoms
        Info ``cycle`` 0, ``pressure``, ``temp``, ``config_id``, ``config_type``.
    """
    rng = np.random.default_rng(seed)
    structures = ("hcp", "fcc", "bcc")
    n_crystal = budget // 2
    n_md = budget - n_crystal
    crystal_slots = _spread(n_crystal, len(pressures) * len(structures))
    md_slots = _spread(n_md, len(pressures))
    frames: list[Atoms] = []
    for p_index, pressure in enumerate(pressures):
        volume = model_volume_per_atom(oracle, element, float(pressure), volume_bounds)
        for s_index, name in enumerate(structures):
            crystal = seed_crystal(name, element, n_atoms, volume)
            for _ in range(crystal_slots[p_index * len(structures) + s_index]):
                atoms = perturbed_copy(crystal, rattle * rng.uniform(0.2, 1.0), strain, rng)
                atoms.info.update(temp=0.0, hand_built="crystal", crystal=name)
                _tag(atoms, pressure, len(frames))
                frames.append(atoms)
        count = md_slots[p_index]
        if count == 0:
            continue
        t_melt = melting_temperature(float(pressure))
        temperatures = np.linspace(300.0, 2.0 * t_melt, max(1, min(count, 6)))
        per_temperature = _spread(count, len(temperatures))
        for t_index, temperature in enumerate(temperatures):
            wanted = per_temperature[t_index]
            if wanted == 0:
                continue
            start = seed_crystal(structures[t_index % len(structures)], element, n_atoms, volume)
            interval = max(1, (md_steps // 2) // wanted)
            trajectory, _ = run_md(
                start,
                oracle,
                float(temperature),
                float(pressure),
                md_steps,
                interval,
                2.0,
                int(rng.integers(2**31 - 1)),
                volume_bounds,
            )
            for atoms in trajectory[-wanted:]:
                atoms.info.update(hand_built="md")
                _tag(atoms, pressure, len(frames))
                frames.append(atoms)
    log.info(
        "hand-built database: %d configurations (%d crystals, %d MD snapshots)",
        len(frames),
        sum(a.info["hand_built"] == "crystal" for a in frames),
        sum(a.info["hand_built"] == "md" for a in frames),
    )
    return frames


def _spread(total: int, slots: int) -> list[int]:
    """``total`` split into ``slots`` counts differing by at most one."""
    base, extra = divmod(int(total), int(slots))
    return [base + (1 if k < extra else 0) for k in range(slots)]


def _tag(atoms: Atoms, pressure: float, index: int) -> None:
    ptag = pressure_tag(float(pressure))
    atoms.info.update(
        cycle=0,
        pressure=float(pressure),
        config_id=f"hand_P{ptag}_{index:05d}",
        config_type=f"hand_P{ptag}GPa",
        weight=1.0,
    )
