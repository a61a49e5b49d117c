"""The selection stages of the workflow (checkpoint ``select``): one NS run or exploration pool in, chosen files out.

Every chosen configuration gets the info keys ``q4``, ``q6``, ``w6``
(Steinhardt, :mod:`nestdb.structures.steinhardt`) and ``phase``
(fcc/hcp/bcc/liquid), is written to the run's candidates file and to one
file of its own (``configs/<config_id>.extxyz``, what the label rule takes),
and the choice is plotted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.io import read, write
from matplotlib.figure import Figure

from nestdb.errors import DataError
from nestdb.io import read_frames, read_sample_temperatures
from nestdb.plotting import save, subplots
from nestdb.select.pool import score_committee_std, select_pool
from nestdb.select.rules import frame_temperatures, select_configurations
from nestdb.structures.steinhardt import order_parameters
from nestdb.thermo.plots import plot_order_parameters, plot_selection

log = logging.getLogger(__name__)


def select_run(
    traj_path: str | Path,
    summary_path: str | Path,
    temperatures_path: str | Path,
    rule: dict,
    cycle: int,
    pressure_gpa: float,
    weight_alpha: float,
    candidates_path: str | Path,
    configs_dir: str | Path,
    plot_path: str | Path,
    final_path: str | Path | None = None,
    weight_rescale: str = "none",
    order_plot_path: str | Path | None = None,
    model_dir: str | Path | None = None,
    id_tag: str = "",
) -> list[Atoms]:
    """Apply the cycle's selection rule to one NS run; one file per chosen configuration.

    ``order_plot_path`` receives the Q6-W6 scatter of the chosen
    configurations coloured by temperature.

    A run the committee stopped before its first cull has no culled samples;
    its final configuration is then the lowest-enthalpy walker of the final
    live set (``final_path``), for rules that ask for the final configuration.

    ``model_dir`` (the previous cycle's committee) scores the samples that
    carry no ``committee_std`` for a ``trust_window`` rule
    (:func:`nestdb.select.pool.score_committee_std`).

    ``id_tag`` (the composition tag of a cycle with several compositions,
    e.g. ``Cu3Au1``) prefixes every ``config_id``: runs of two compositions
    at one pressure would otherwise give the same ids.
    """
    summary = json.loads(Path(summary_path).read_text())
    stopped_early = summary.get("stop_reason") == "committee"
    frames = read_frames(traj_path)
    wants_final = rule["kind"] == "final" or (stopped_early and rule.get("if_stopped_early") == "final")
    if frames:
        samples = read_sample_temperatures(temperatures_path)
        frame_t = frame_temperatures(
            frames, samples["iter"].astype(int), samples["enthalpy"], samples["temp"], source=str(traj_path)
        )
    elif wants_final and final_path is not None:
        live = read(final_path, index=":")
        frames = [min(live, key=lambda atoms: atoms.info["ns_energy"])]
        # No culled sample resolves any temperature; the study's database writes -inf there.
        frame_t = np.array([-np.inf])
        log.warning(
            "%s: no culled samples (%s after %s iterations); using the lowest-enthalpy final walker",
            traj_path,
            summary.get("stop_reason"),
            summary.get("n_iter"),
        )
    else:
        raise DataError(
            f"{traj_path}: the run has no culled configurations (stopped: {summary.get('stop_reason')} after "
            f"{summary.get('n_iter')} iterations), so rule {rule['kind']!r} has nothing to choose from; "
            "use `select: {kind: final}` for such runs or loosen the committee limits."
        )
    if rule["kind"] == "trust_window" and model_dir is not None:
        score_committee_std(frames, model_dir)
    chosen = select_configurations(
        frames,
        frame_t,
        rule,
        stopped_early=stopped_early,
        cycle=cycle,
        pressure_gpa=pressure_gpa,
        weight_alpha=weight_alpha,
        weight_rescale=weight_rescale,
        source=str(traj_path),
    )
    for atoms in chosen:
        atoms.info.update(order_parameters(atoms))
        if id_tag:
            atoms.info["config_id"] = f"{id_tag.rstrip('/')}_{atoms.info['config_id']}"
    _write_chosen(chosen, candidates_path, configs_dir)
    if order_plot_path:
        plot_order_parameters(
            [a.info["q6"] for a in chosen],
            [a.info["w6"] for a in chosen],
            [a.info["temp"] for a in chosen],
            order_plot_path,
            title=f"cycle {cycle}, {pressure_gpa:g} GPa: selected configurations",
        )
    _plot_selection(frames, frame_t, chosen, plot_path, f"cycle {cycle}, {pressure_gpa:g} GPa")
    log.info(
        "selected %d of %d configurations (%s; stopped early: %s)",
        len(chosen),
        len(frames),
        rule["kind"],
        stopped_early,
    )
    return chosen


def select_pool_run(
    pool_path: str | Path,
    rule: dict,
    cycle: int,
    pressure_gpa: float,
    candidates_path: str | Path,
    configs_dir: str | Path,
    plot_path: str | Path,
    order_plot_path: str | Path | None = None,
) -> list[Atoms]:
    """Apply a pool rule to one pressure's exploration pool (:mod:`nestdb.explore`); the outputs of :func:`select_run`.

    The label rules take them unchanged. An empty trust window writes empty outputs.
    """
    frames = read_frames(pool_path)
    chosen = select_pool(frames, rule, source=str(pool_path))
    for atoms in chosen:
        atoms.info.update(order_parameters(atoms))
    _write_chosen(chosen, candidates_path, configs_dir)
    plot_pool(frames, chosen, rule, plot_path, f"cycle {cycle}, {pressure_gpa:g} GPa: {rule['kind']}")
    if order_plot_path:
        plot_order_parameters(
            [a.info["q6"] for a in chosen],
            [a.info["w6"] for a in chosen],
            [a.info.get("temp", 0.0) for a in chosen],
            order_plot_path,
            title=f"cycle {cycle}, {pressure_gpa:g} GPa: selected configurations",
        )
    log.info("selected %d of %d pool configurations (%s)", len(chosen), len(frames), rule["kind"])
    return chosen


def _write_chosen(chosen: list[Atoms], candidates_path: str | Path, configs_dir: str | Path) -> None:
    """The candidates file and one ``<config_id>.extxyz`` per chosen configuration."""
    configs_dir = Path(configs_dir)
    configs_dir.mkdir(parents=True, exist_ok=True)
    write(candidates_path, chosen, format="extxyz")
    for atoms in chosen:
        write(configs_dir / f"{atoms.info['config_id']}.extxyz", atoms, format="extxyz")


def _plot_selection(
    frames: list[Atoms], temperatures: np.ndarray, chosen: list[Atoms], path: str | Path, title: str
) -> Figure:
    """Enthalpy per atom against iteration and temperature, selected samples marked (study Fig. 2)."""
    n_atoms = len(frames[0])
    marked = pd.DataFrame(
        {
            "iter": [a.info["iter"] for a in chosen],
            "enthalpy": [a.info["enthalpy"] / n_atoms for a in chosen],
            "temp": [a.info["temp"] for a in chosen],
        }
    )
    return plot_selection(
        np.array([f.info["iter"] for f in frames]),
        np.array([f.info["ns_energy"] for f in frames]) / n_atoms,
        np.asarray(temperatures, dtype=float),
        marked,
        path,
        title,
    )


def plot_pool(frames: list[Atoms], chosen: list[Atoms], rule: dict, path: str | Path, title: str) -> Figure:
    """Committee STD (or enthalpy) of every pool member in pool order, the chosen ones and the window marked."""
    fig, ax = subplots(figsize=(6.5, 3.5))
    with_std = bool(frames) and all("committee_std" in a.info for a in frames)
    key, label = (
        ("committee_std", "committee energy STD (meV/atom)") if with_std else ("enthalpy", "model enthalpy (eV/atom)")
    )

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
    return save(fig, path, dpi=100)
