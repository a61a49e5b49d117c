"""Benchmarks built on nested sampling: XRD of NS samples by temperature, the P–T phase diagram."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from ase.io import read

from nestdb.errors import DataError

log = logging.getLogger("nestdb")

#: NS settings of the phase-diagram runs that are not taken from the top-level ``ns`` block.
_COMMITTEE_KEYS = ("committee_std_max", "committee_stop_std")


def _two_theta(cfg: dict) -> np.ndarray:
    low, high = cfg["two_theta_range"]
    return np.arange(low, high + 0.5 * cfg["two_theta_step"], cfg["two_theta_step"])


def bench_xrd(traj_path: str | Path, temperatures_path: str | Path, cfg: dict, csv_path: str | Path,
              plot_path: str | Path, title: str = "", *, element: str) -> dict:
    """Powder XRD of one NS run's culled samples, averaged in temperature bins.

    Cost: no calculator calls; ``max_per_bin`` patterns per bin (seconds for
    8–64-atom cells). Ideal hcp, fcc and bcc at the volume per atom of the
    coldest bin are drawn on top for reference.

    Parameters
    ----------
    traj_path, temperatures_path
        The run's ``.traj.extxyz`` and ``sample_temperatures.csv``.
    cfg
        ``bench.xrd``: ``wavelength`` (Å), ``two_theta_range``, ``two_theta_step``,
        ``fwhm`` (degrees), ``temperature_bins`` (K), ``max_per_bin``.
    csv_path
        ``two_theta`` and one intensity column per non-empty bin (``T<low>-<high>K``).
    plot_path
        Stacked patterns.

    Returns
    -------
    dict
        ``{"bins": [{t_low, t_high, n_samples, n_used}], "wavelength": ...}``.
    """
    from nestdb.bench.structures import build_structure
    from nestdb.bench.xrd import patterns_by_temperature, plot_patterns, powder_pattern
    from nestdb.select import frame_temperatures
    from nestdb.stages import read_sample_temperatures

    two_theta = _two_theta(cfg)
    frames = read(traj_path, index=":") if Path(traj_path).stat().st_size > 0 else []
    binned = []
    if frames:
        samples = read_sample_temperatures(temperatures_path)
        temps = frame_temperatures(frames, samples["iter"].astype(int), samples["enthalpy"], samples["temp"],
                                   source=str(traj_path))
        binned = patterns_by_temperature(frames, temps, cfg["temperature_bins"], two_theta,
                                         wavelength=cfg["wavelength"], fwhm=cfg["fwhm"],
                                         max_per_bin=cfg["max_per_bin"])
    else:
        log.warning("%s has no culled samples: empty XRD table", traj_path)
    table = pd.DataFrame({"two_theta": two_theta})
    for b in binned:
        table[f"T{b['t_low']:g}-{b['t_high']:g}K"] = b["intensity"]
    table.to_csv(csv_path, index=False)
    ideal = {}
    if binned:
        coldest = [f for f, t in zip(frames, temps) if binned[0]["t_low"] <= t < binned[0]["t_high"]]
        volume = float(np.mean([f.get_volume() / len(f) for f in coldest]))
        ideal = {name: powder_pattern(build_structure(name, element=element, volume_per_atom=volume), two_theta,
                                      cfg["wavelength"], cfg["fwhm"]) for name in ("bcc", "fcc", "hcp")}
    plot_patterns(two_theta, binned, plot_path, title=f"{title} (λ = {cfg['wavelength']:g} Å)", references=ideal)
    return {"wavelength": cfg["wavelength"],
            "bins": [{k: v for k, v in b.items() if k != "intensity"} for b in binned]}


def phase_diagram_block(config: dict) -> dict:
    """The ``ns`` block of the phase-diagram runs: the top-level ``ns`` settings,
    ``bench.phase_diagram.n_atoms`` atoms of the first element, its ``ns``
    overrides, sampled freely with the final committee (no committee limits)."""
    cfg = config["bench"]["phase_diagram"]
    block = copy.deepcopy(config.get("ns", {}))
    for key in _COMMITTEE_KEYS:
        block.pop(key, None)
    block.update(copy.deepcopy(cfg.get("ns") or {}))
    block["composition"] = {config["elements"][0]: int(cfg["n_atoms"])}
    block["calculator"] = {"type": "ace_committee"}
    return block


def melting_line(tables: dict[float, str | Path], n_atoms: int, csv_path: str | Path, plot_path: str | Path,
                 json_path: str | Path | None = None, finals: dict[float, str | Path] | None = None) -> pd.DataFrame:
    """Melting temperature at each pressure from the C_p peaks of NS runs, and the P–T plot.

    Uses :func:`nestdb.thermo.melting_transition` (the highest-temperature
    C_p peak with its full width at half maximum) and
    :func:`nestdb.thermo.detect_transitions` for the solid–solid peaks below
    it. Cost: no calculator calls.

    Parameters
    ----------
    tables
        ``{pressure_gpa: thermo.csv path}`` of :func:`nestdb.stages.analyse_run`.
    n_atoms
        Atoms per NS cell.
    csv_path
        One row per pressure: ``pressure_gpa``, ``melting_T``, ``fwhm``,
        ``low``, ``high``, ``cp_peak``, ``volume_jump``, ``found``.
    plot_path
        P–T diagram: the melting line with the FWHM as error bars, other
        transitions as open markers.
    json_path
        All transitions per pressure (optional).
    finals
        ``{pressure_gpa: .final.extxyz}``: the solid phase at the lowest
        temperature is the Steinhardt classification
        (:func:`nestdb.order.order_parameters`) of the lowest-enthalpy
        final walker, in the column ``solid_phase``.
    """
    from nestdb import thermo

    if not hasattr(thermo, "melting_transition"):
        raise DataError("nestdb.thermo.melting_transition is not available in this version of nestdb; "
                        "the phase diagram needs the C_p peak detection of nestdb.thermo")
    rows, others = [], {}
    for pressure, path in sorted(tables.items()):
        table = pd.read_csv(path)
        melting = thermo.melting_transition(table, n_atoms) if len(table) else None
        found = melting is not None
        rows.append({"pressure_gpa": float(pressure), "found": found,
                     **{key: (float(getattr(melting, key)) if found and getattr(melting, key) is not None
                              else float("nan"))
                        for key in ("temperature", "fwhm", "low", "high", "cp_peak", "volume_jump")}})
        transitions = thermo.detect_transitions(table, n_atoms) if len(table) else []
        others[f"{pressure:g}"] = [{"temperature": float(t.temperature), "fwhm": float(t.fwhm),
                                    "kind": str(t.kind), "cp_peak": float(t.cp_peak)} for t in transitions]
    line = pd.DataFrame(rows).rename(columns={"temperature": "melting_T"})
    if finals:
        from nestdb.order import order_parameters

        phases = {}
        for pressure, path in finals.items():
            walkers = read(path, index=":")
            lowest = min(walkers, key=lambda atoms: atoms.info.get("ns_energy", np.inf))
            phases[float(pressure)] = order_parameters(lowest)["phase"]
        line["solid_phase"] = line.pressure_gpa.map(phases)
    line.to_csv(csv_path, index=False)
    if json_path is not None:
        Path(json_path).write_text(json.dumps({"melting": line.to_dict("records"), "transitions": others}, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ok = line[line.found]
    ax.errorbar(ok.pressure_gpa.to_numpy(), ok.melting_T.to_numpy(),
                yerr=[(ok.melting_T - ok.low).to_numpy(), (ok.high - ok.melting_T).to_numpy()], fmt="-o",
                color="C3", capsize=3, label="melting (C_p peak, FWHM)")
    labelled = False
    for pressure, transitions in others.items():
        for t in transitions:
            if t["kind"] != "melting":
                ax.plot(float(pressure), t["temperature"], "s", mfc="none", color="C0",
                        label=None if labelled else "other C_p peaks")
                labelled = True
    if "solid_phase" in line:
        for pressure, phase in zip(line.pressure_gpa, line.solid_phase):
            ax.annotate(str(phase), (pressure, 0), textcoords="offset points", xytext=(0, 5), ha="center",
                        fontsize=8, xycoords=("data", "axes fraction"))
    ax.set_xlabel("pressure (GPa)")
    ax.set_ylabel("temperature (K)")
    ax.set_title(f"NS phase diagram, {n_atoms} atoms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=130)
    plt.close(fig)
    return line
