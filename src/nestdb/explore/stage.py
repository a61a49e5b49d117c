"""The exploration stage of the workflow (rule ``explore``) for the kinds other than NS.

``explore_pool`` runs a cycle's ``random_crystals`` or ``md`` exploration at
one pressure with the cycle's model and writes the pool (extended XYZ, with
provenance) and a JSON summary; :func:`nestdb.select.stage.select_pool_run`
then chooses from it and writes the outputs of the NS selection, so
labelling and fitting do not see a difference.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from nestdb.errors import DataError
from nestdb.explore.md import md_pool
from nestdb.explore.random_crystals import random_crystal_pool
from nestdb.explore.settings import compatible_space_groups
from nestdb.explore.volume import model_volume_per_atom
from nestdb.io import write_json
from nestdb.models.calculators import COMMITTEE_TYPES, make_calculator
from nestdb.select.rules import pressure_tag

log = logging.getLogger(__name__)

#: Short tags of the kinds in configuration ids.
_ID_TAG = {"random_crystals": "rc", "md": "md"}


def _provenance(atoms: Atoms, kind: str, index: int, cycle: int, pressure_gpa: float, source: str) -> Atoms:
    ptag = pressure_tag(pressure_gpa)
    formula = atoms.get_chemical_formula(mode="hill").lower()
    atoms.info.update(
        config_id=f"c{int(cycle)}_P{ptag}_{_ID_TAG[kind]}{index:05d}",
        config_type=f"{formula}_P{ptag}GPa_c{int(cycle)}",
        cycle=int(cycle),
        pressure=float(pressure_gpa),
        iter=int(index),
        weight=1.0,
        explore_kind=kind,
        volume=float(atoms.get_volume()),
        source=source,
    )
    return atoms


def explore_pool(
    block: dict,
    explore: dict,
    pressure_gpa: float,
    cycle: int,
    pool_path: str | Path,
    summary_path: str | Path,
    model_dir: str | Path | None = None,
) -> dict:
    """Explore one pressure of a cycle with ``random_crystals`` or ``md``; write the pool.

    Parameters
    ----------
    block
        The cycle's merged ``ns`` block (:func:`nestdb.config.ns_block`): its
        ``calculator``, ``composition``, ``min/max_volume_per_atom`` are used.
    explore
        The cycle's exploration settings (:func:`nestdb.explore.settings.explore_settings`).
    pressure_gpa, cycle
        The run.
    pool_path, summary_path
        Outputs: the pool (extended XYZ) and a JSON summary (counts, the
        model's volume at the pressure, per-crystal or per-trajectory records, timing).
    model_dir
        The previous cycle's model folder for committee calculators.

    Returns
    -------
    dict
        The summary.
    """
    start = time.perf_counter()
    kind = explore["kind"]
    spec = dict(block["calculator"])
    if spec["type"] in COMMITTEE_TYPES and "model" not in spec:
        if model_dir is None:
            raise DataError(f"cycle {cycle}: a {spec['type']} calculator needs the previous cycle's model")
        spec["model"] = str(model_dir)
    calculator = make_calculator(spec, base_dir=Path.cwd())
    composition = {e: int(n) for e, n in block["composition"].items()}
    bounds = (float(block.get("min_volume_per_atom", 1.0)), float(block.get("max_volume_per_atom", 40.0)))
    element = next(iter(composition))
    volume = model_volume_per_atom(calculator, element, pressure_gpa, bounds)
    log.info("%s exploration at %g GPa, cycle %d: model fcc volume %.3f A^3/atom", kind, pressure_gpa, cycle, volume)
    seed = int(
        np.random.SeedSequence([int(explore["seed"]), int(cycle), int(round(pressure_gpa * 1000))]).generate_state(1)[0]
    )
    if kind == "random_crystals":
        groups = explore["space_groups"] or compatible_space_groups(composition)
        frames, records = random_crystal_pool(calculator, explore, composition, pressure_gpa, volume, groups, seed)
    elif kind == "md":
        frames, records = md_pool(
            calculator, dict(explore, seed=seed), element, sum(composition.values()), pressure_gpa, volume, bounds
        )
    else:
        raise DataError(f"cycle {cycle}: exploration kind {kind!r} has no pool (nested sampling runs in rule ns)")
    source = str(pool_path)
    frames = [_provenance(atoms, kind, k, cycle, pressure_gpa, source) for k, atoms in enumerate(frames)]
    Path(pool_path).parent.mkdir(parents=True, exist_ok=True)
    write(pool_path, frames, format="extxyz")
    stds = [1000.0 * a.info["committee_std"] for a in frames if "committee_std" in a.info]
    summary = {
        "kind": kind,
        "cycle": int(cycle),
        "pressure_gpa": float(pressure_gpa),
        "n_frames": len(frames),
        "model_volume_per_atom": volume,
        "calculator": spec,
        "records": records,
        "committee_std_mev": (
            {"min": float(np.min(stds)), "median": float(np.median(stds)), "max": float(np.max(stds))} if stds else None
        ),
        "wall_s": time.perf_counter() - start,
    }
    write_json(summary_path, summary)
    log.info("wrote %d configurations to %s in %.1f s", len(frames), pool_path, summary["wall_s"])
    return summary
