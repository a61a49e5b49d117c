"""Workflow stages of the exploration kinds other than NS: build a pool, select from it.

``explore_pool`` runs a cycle's ``random_crystals`` or ``md`` exploration at
one pressure with the cycle's model and writes the pool (extended XYZ, with
provenance) and a JSON summary; ``select_pool_run`` applies the cycle's pool
rule (``trust_window`` or ``random``) and writes the same outputs as the NS
selection (candidates, one file per configuration, plots), so labelling and
fitting do not see a difference.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from nestdb.errors import DataError

log = logging.getLogger("nestdb")

#: Short tags of the kinds in configuration ids.
_ID_TAG = {"random_crystals": "rc", "md": "md"}


def model_volume_per_atom(calculator, element: str, pressure_gpa: float,
                          bounds: tuple[float, float]) -> float:
    """The model's volume per atom of fcc at the pressure (a symmetric cell relaxation).

    The density of each pressure comes from the cycle's own model, never the
    reference: cycle 0 knows only its classical potential.

    Raises
    ------
    DataError
        The relaxed volume leaves ``bounds`` (Å³/atom) or is not finite.
    """
    from nestdb.bench.elastic import relax_cell
    from nestdb.bench.structures import build_structure

    start = build_structure("fcc", element=element, volume_per_atom=0.5 * (bounds[0] + min(bounds[1], 40.0)))
    relaxed, info = relax_cell(start, calculator, fmax=0.005, pressure_gpa=pressure_gpa, keep_symmetry=True,
                               max_steps=200, optimizer="BFGS", hydrostatic_strain=True)
    volume = info["volume_per_atom"]
    if not np.isfinite(volume) or not bounds[0] <= volume <= bounds[1]:
        raise DataError(f"the model's fcc volume at {pressure_gpa:g} GPa is {volume:.3g} A^3/atom, outside "
                        f"ns.min/max_volume_per_atom {bounds}; the model cannot set the exploration's density")
    return float(volume)


def _provenance(atoms: Atoms, kind: str, index: int, cycle: int, pressure_gpa: float, source: str) -> Atoms:
    from nestdb.select import pressure_tag

    ptag = pressure_tag(pressure_gpa)
    formula = atoms.get_chemical_formula(mode="hill").lower()
    atoms.info.update(config_id=f"c{int(cycle)}_P{ptag}_{_ID_TAG[kind]}{index:05d}",
                      config_type=f"{formula}_P{ptag}GPa_c{int(cycle)}", cycle=int(cycle),
                      pressure=float(pressure_gpa), iter=int(index), weight=1.0, explore_kind=kind,
                      volume=float(atoms.get_volume()), source=source)
    return atoms


def explore_pool(block: dict, explore: dict, pressure_gpa: float, cycle: int, pool_path: str | Path,
                 summary_path: str | Path, model_dir: str | Path | None = None) -> dict:
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
    from nestdb.calculators import make_calculator
    from nestdb.explore.md import md_pool
    from nestdb.explore.random_crystals import random_crystal_pool
    from nestdb.explore.settings import compatible_space_groups

    start = time.perf_counter()
    kind = explore["kind"]
    spec = dict(block["calculator"])
    if spec["type"] in ("ace_committee", "pacemaker_committee") and "model" not in spec:
        if model_dir is None:
            raise DataError(f"cycle {cycle}: a {spec['type']} calculator needs the previous cycle's model")
        spec["model"] = str(model_dir)
    calculator = make_calculator(spec, base_dir=Path.cwd())
    composition = {e: int(n) for e, n in block["composition"].items()}
    bounds = (float(block.get("min_volume_per_atom", 1.0)), float(block.get("max_volume_per_atom", 40.0)))
    element = next(iter(composition))
    volume = model_volume_per_atom(calculator, element, pressure_gpa, bounds)
    log.info("%s exploration at %g GPa, cycle %d: model fcc volume %.3f A^3/atom", kind, pressure_gpa, cycle, volume)
    seed = int(np.random.SeedSequence([int(explore["seed"]), int(cycle), int(round(pressure_gpa * 1000))])
               .generate_state(1)[0])
    if kind == "random_crystals":
        groups = explore["space_groups"] or compatible_space_groups(composition)
        frames, records = random_crystal_pool(calculator, explore, composition, pressure_gpa, volume, groups, seed)
    elif kind == "md":
        frames, records = md_pool(calculator, dict(explore, seed=seed), element, sum(composition.values()),
                                  pressure_gpa, volume, bounds)
    else:
        raise DataError(f"cycle {cycle}: exploration kind {kind!r} has no pool (nested sampling runs in rule ns)")
    source = str(pool_path)
    frames = [_provenance(atoms, kind, k, cycle, pressure_gpa, source) for k, atoms in enumerate(frames)]
    Path(pool_path).parent.mkdir(parents=True, exist_ok=True)
    write(pool_path, frames, format="extxyz")
    stds = [1000.0 * a.info["committee_std"] for a in frames if "committee_std" in a.info]
    summary = {"kind": kind, "cycle": int(cycle), "pressure_gpa": float(pressure_gpa), "n_frames": len(frames),
               "model_volume_per_atom": volume, "calculator": spec, "records": records,
               "committee_std_mev": ({"min": float(np.min(stds)), "median": float(np.median(stds)),
                                      "max": float(np.max(stds))} if stds else None),
               "wall_s": time.perf_counter() - start}
    Path(summary_path).write_text(json.dumps(summary, indent=2, default=str))
    log.info("wrote %d configurations to %s in %.1f s", len(frames), pool_path, summary["wall_s"])
    return summary


def score_committee_std(frames: list[Atoms], model_dir: str | Path) -> int:
    """Give every frame without ``committee_std`` (eV/atom) the committee STD of the model in ``model_dir``.

    NS records the STD only where the run limits it (``committee_std_max``);
    a trust window on the other samples needs it. Returns how many frames were scored.
    """
    from nestdb.fit.committee import predict_frames

    missing = [a for a in frames if "committee_std" not in a.info]
    if missing:
        stds = predict_frames(model_dir, missing)["energy_std_per_atom"]
        for atoms, std in zip(missing, stds, strict=True):
            atoms.info["committee_std"] = float(std)
        log.info("scored %d samples with the committee of %s", len(missing), model_dir)
    return len(missing)


def select_pool_run(pool_path: str | Path, rule: dict, cycle: int, pressure_gpa: float,
                    candidates_path: str | Path, configs_dir: str | Path, plot_path: str | Path,
                    order_plot_path: str | Path | None = None) -> list[Atoms]:
    """Apply a pool rule to one pressure's pool; write candidates, one file per configuration, plots.

    The outputs are those of :func:`nestdb.stages.select_run` (Steinhardt
    order parameters and phase on every chosen configuration), so the label
    rules take them unchanged. An empty trust window writes empty outputs.
    """
    from nestdb.order import order_parameters
    from nestdb.select import select_pool
    from nestdb.thermo.plots import plot_order_parameters

    frames = read(pool_path, index=":") if Path(pool_path).stat().st_size > 0 else []
    chosen = select_pool(frames, rule, source=str(pool_path))
    for atoms in chosen:
        atoms.info.update(order_parameters(atoms))
    configs_dir = Path(configs_dir)
    configs_dir.mkdir(parents=True, exist_ok=True)
    write(candidates_path, chosen, format="extxyz")
    for atoms in chosen:
        write(configs_dir / f"{atoms.info['config_id']}.extxyz", atoms, format="extxyz")
    _plot_pool(frames, chosen, rule, plot_path, f"cycle {cycle}, {pressure_gpa:g} GPa: {rule['kind']}")
    if order_plot_path:
        plot_order_parameters([a.info["q6"] for a in chosen], [a.info["w6"] for a in chosen],
                              [a.info.get("temp", 0.0) for a in chosen], order_plot_path,
                              title=f"cycle {cycle}, {pressure_gpa:g} GPa: selected configurations")
    log.info("selected %d of %d pool configurations (%s)", len(chosen), len(frames), rule["kind"])
    return chosen


def _plot_pool(frames: list[Atoms], chosen: list[Atoms], rule: dict, path: str | Path, title: str) -> None:
    """Committee STD (or enthalpy) of every pool member in pool order, the chosen ones and the window marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    with_std = bool(frames) and all("committee_std" in a.info for a in frames)
    key, label = ("committee_std", "committee energy STD (meV/atom)") if with_std else \
        ("enthalpy", "model enthalpy (eV/atom)")

    def values(atoms_list):
        scale = 1000.0 if with_std else 1.0
        return [scale * float(a.info.get(key, np.nan)) / (1 if with_std else len(a)) for a in atoms_list]

    ax.plot([a.info["iter"] for a in frames], values(frames), ".", color="0.6", ms=3, label="explored")
    ax.plot([a.info["iter"] for a in chosen], values(chosen), "o", mfc="none", color="C3", label="selected")
    if rule["kind"] == "trust_window" and with_std:
        ax.axhspan(rule["sigma_lo"], rule["sigma_hi"], color="C2", alpha=0.15, label="trust window")
        ax.set_yscale("log")
    ax.set_xlabel("pool index")
    ax.set_ylabel(label)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
