"""The benchmark stages of the workflow (rules ``bench_*``): file paths in, files out.

E–V curves and elastic constants (``bench_reference``, ``bench_model``), the
other properties (``bench_property_reference``, ``bench_property_model``;
the computations are in :mod:`nestdb.bench.properties`), XRD of an NS run's
samples (``bench_xrd``), the phase diagram (``bench_phase_diagram``) and the
alloy observables of NS samples (``bench_sro``, ``bench_mixing``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.io import read

from nestdb.bench.alloy_samples import mixing_enthalpy, plot_mixing, plot_sro, sro_table
from nestdb.bench.enthalpy import transition_pressures
from nestdb.bench.phase_diagram import melting_line, plot_phase_diagram
from nestdb.bench.properties import (
    CalculatorFor,
    compare_ev_elastic,
    compare_property,
    compute_property,
    run_benchmarks,
)
from nestdb.bench.reference_files import enthalpy_from_ev, read_reference_ev
from nestdb.bench.xrd import patterns_by_temperature, plot_patterns, powder_pattern, two_theta_grid
from nestdb.errors import DataError
from nestdb.io import read_frames, read_sample_temperatures, write_json
from nestdb.kpoints import monkhorst_pack_grid
from nestdb.label.labellers import make_labeller
from nestdb.models.ace_committee import CommitteeACECalculator
from nestdb.select.rules import frame_temperatures
from nestdb.structures.crystals import build_structure
from nestdb.thermo.energies import read_energies

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- E-V, elastic and the properties
def _fixed_grid_gpaw(spec: dict, atoms: Atoms, kpt_density: float, directory: Path):
    """A GPAW calculator whose k-point grid stays that of ``atoms`` under strain.

    Stresses of a soft metal at 1-2 % strain are ~1 GPa, the size of the
    k-point noise of demo settings: the elastic fit needs a denser grid that
    does not change between the strained cells (measured in
    benchmarks/gpaw_elastic_settings.py).
    """
    size = list(monkhorst_pack_grid(atoms, density=kpt_density, even=True))
    settings = dict(spec.get("gpaw") or {}, kpts={"size": size, "gamma": True})
    log.info("elastic reference: fixed GPAW k-point grid %s (density %s)", size, kpt_density)
    return make_labeller({"code": "gpaw", "gpaw": settings}, base_dir=Path.cwd()).calculator(directory)


def reference_calculators(spec: dict, raw_dir: str | Path, bench: dict | None = None) -> CalculatorFor:
    """Calculator factory of the reference labeller: one fresh calculator (and folder) per label."""
    labeller = make_labeller(spec, base_dir=Path.cwd())
    raw_dir = Path(raw_dir)

    def calculator_for(name: str, atoms: Atoms):
        directory = raw_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        if bench is not None and name.startswith("elastic_") and spec["code"] == "gpaw":
            return _fixed_grid_gpaw(spec, atoms, bench["elastic"]["kpt_density"], directory)
        return labeller.calculator(directory)

    return calculator_for


def bench_reference(
    spec: dict, bench: dict, element: str, ev_path: str | Path, elastic_path: str | Path, raw_dir: str | Path
) -> None:
    """Reference E–V curves and elastic constants (labeller, or reference files for E–V).

    Cost: see :func:`run_benchmarks`; structures in ``bench.reference_files``
    cost nothing (read from the files).
    """
    files = bench.get("reference_files") or {}
    rows, elastic = run_benchmarks(reference_calculators(spec, raw_dir, bench), bench, element, skip_ev=tuple(files))
    ev = pd.DataFrame(rows)
    if files:
        ev = pd.concat([ev, read_reference_ev(files, base_dir=Path.cwd())], ignore_index=True)
    ev.to_csv(ev_path, index=False)
    write_json(elastic_path, elastic)


def bench_model(
    model_dir: str | Path,
    bench: dict,
    element: str,
    reference_ev_path: str | Path,
    reference_elastic_path: str | Path,
    ev_path: str | Path,
    ev_plot_path: str | Path,
    elastic_path: str | Path,
    summary_path: str | Path,
) -> dict:
    """Model side of E–V and elastic benchmarks with a cycle's committee (see :func:`compare_ev_elastic`)."""
    return compare_ev_elastic(
        CommitteeACECalculator(model_dir),
        bench,
        element,
        reference_ev_path,
        reference_elastic_path,
        ev_path,
        ev_plot_path,
        elastic_path,
        summary_path,
    )


def bench_property_reference(
    kind: str, spec: dict, bench: dict, element: str | list[str], json_path: str | Path, raw_dir: str | Path
) -> dict:
    """Reference side of one property with the reference labeller (one folder per calculation).

    With ``bench.reference_files`` the enthalpy curves of those structures
    come from an EOS fit of the files' E–V points instead (relaxations at
    fixed ratios are exactly the minima of that fixed-shape E–V curve).
    """
    files = bench.get("reference_files") or {}
    if kind == "enthalpy" and files:
        cfg = bench["enthalpy"]
        from_files = [name for name in cfg["structures"] if name in files]
        computed = dict(bench, enthalpy=dict(cfg, structures=[n for n in cfg["structures"] if n not in files]))
        rows = []
        if computed["enthalpy"]["structures"]:
            rows = compute_property(kind, reference_calculators(spec, raw_dir), computed, element)["table"]
        ev = read_reference_ev({name: files[name] for name in from_files}, base_dir=Path.cwd())
        for name in from_files:
            rows += enthalpy_from_ev(ev[ev.structure == name], cfg["pressures"]).to_dict("records")
        table = pd.DataFrame(rows)
        result = {
            "table": rows,
            "transitions": transition_pressures(table),
            "relax_c_over_a": cfg["relax_c_over_a"],
            "from_files": from_files,
        }
    else:
        result = compute_property(kind, reference_calculators(spec, raw_dir), bench, element)
    write_json(json_path, result)
    return result


def bench_property_model(
    kind: str,
    model_dir: str | Path,
    bench: dict,
    element: str | list[str],
    reference_json: str | Path,
    json_path: str | Path,
    csv_path: str | Path,
    plot_path: str | Path,
    title: str = "",
) -> dict:
    """:func:`compare_property` with a cycle's committee."""
    return compare_property(
        kind, CommitteeACECalculator(model_dir), bench, element, reference_json, json_path, csv_path, plot_path, title
    )


# --------------------------------------------------------------------------- NS samples: XRD, phase diagram
def bench_xrd(
    traj_path: str | Path,
    temperatures_path: str | Path,
    cfg: dict,
    csv_path: str | Path,
    plot_path: str | Path,
    title: str = "",
    *,
    element: str,
) -> dict:
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
    two_theta = two_theta_grid(cfg)
    frames = read_frames(traj_path)
    binned = []
    if frames:
        samples = read_sample_temperatures(temperatures_path)
        temps = frame_temperatures(
            frames, samples["iter"].astype(int), samples["enthalpy"], samples["temp"], source=str(traj_path)
        )
        binned = patterns_by_temperature(
            frames,
            temps,
            cfg["temperature_bins"],
            two_theta,
            wavelength=cfg["wavelength"],
            fwhm=cfg["fwhm"],
            max_per_bin=cfg["max_per_bin"],
        )
    else:
        log.warning("%s has no culled samples: empty XRD table", traj_path)
    table = pd.DataFrame({"two_theta": two_theta})
    for b in binned:
        table[f"T{b['t_low']:g}-{b['t_high']:g}K"] = b["intensity"]
    table.to_csv(csv_path, index=False)
    ideal = {}
    if binned:
        coldest = [f for f, t in zip(frames, temps, strict=True) if binned[0]["t_low"] <= t < binned[0]["t_high"]]
        volume = float(np.mean([f.get_volume() / len(f) for f in coldest]))
        ideal = {
            name: powder_pattern(
                build_structure(name, element=element, volume_per_atom=volume),
                two_theta,
                cfg["wavelength"],
                cfg["fwhm"],
            )
            for name in ("bcc", "fcc", "hcp")
        }
    plot_patterns(two_theta, binned, plot_path, title=f"{title} (λ = {cfg['wavelength']:g} Å)", references=ideal)
    return {"wavelength": cfg["wavelength"], "bins": [{k: v for k, v in b.items() if k != "intensity"} for b in binned]}


def bench_phase_diagram(
    tables: dict[float, str | Path],
    n_atoms: int,
    csv_path: str | Path,
    plot_path: str | Path,
    json_path: str | Path | None = None,
    finals: dict[float, str | Path] | None = None,
) -> pd.DataFrame:
    """The melting line and P–T plot of the phase-diagram NS runs (:func:`nestdb.bench.phase_diagram.melting_line`).

    Parameters
    ----------
    tables
        ``{pressure_gpa: thermo.csv}`` of :func:`nestdb.thermo.stage.analyse_run`.
    n_atoms
        Atoms per NS cell.
    csv_path
        The melting line, one row per pressure.
    plot_path
        The P–T diagram.
    json_path
        The melting line and all C_p peaks per pressure (optional).
    finals
        ``{pressure_gpa: .final.extxyz}``: the solid phase of each pressure's lowest-enthalpy walker.
    """
    line, others = melting_line(
        {p: pd.read_csv(path) for p, path in tables.items()},
        n_atoms,
        {p: read(path, index=":") for p, path in finals.items()} if finals else None,
    )
    line.to_csv(csv_path, index=False)
    if json_path is not None:
        write_json(json_path, {"melting": line.to_dict("records"), "transitions": others})
    plot_phase_diagram(line, others, n_atoms, plot_path)
    return line


# --------------------------------------------------------------------------- NS samples of alloys
def bench_sro(
    traj_path: str | Path,
    energies_path: str | Path,
    elements: list[str],
    grid: dict,
    csv_path: str | Path,
    plot_path: str | Path,
    title: str = "",
    neighbours: str | int | float = "sann",
) -> dict:
    """First-shell Warren–Cowley parameters of one run's samples against temperature.

    The table is :func:`~nestdb.bench.alloy_samples.sro_table`'s.

    Parameters
    ----------
    traj_path, energies_path
        The run's ``.traj.extxyz`` and ``.energies``.
    elements
        The campaign's elements (pair order of the columns).
    grid
        The ``analyse`` block (``t_min``, ``t_max``, ``t_step``).
    csv_path, plot_path
        The table and alpha(T) of each pair.

    Returns
    -------
    dict
        ``pairs``, ``n_samples``, and alpha of each pair at the lowest and
        highest temperature of the grid.
    """
    frames = read_frames(traj_path)
    temperatures = np.arange(grid["t_min"], grid["t_max"] + 0.5 * grid["t_step"], grid["t_step"])
    table, pairs = sro_table(
        frames, read_energies(energies_path) if frames else None, elements, temperatures, neighbours
    )
    if not (frames and pairs):
        log.warning("%s: no culled samples with two species; empty short-range-order table", traj_path)
    table.to_csv(csv_path, index=False)
    plot_sro(table, pairs, plot_path, title)
    return {
        "pairs": pairs,
        "n_samples": len(frames),
        "alpha_low_T": {p: float(table[p].iloc[0]) for p in pairs if p in table},
        "alpha_high_T": {p: float(table[p].iloc[-1]) for p in pairs if p in table},
    }


def bench_mixing(
    thermo_paths: list[str | Path],
    tags: list[str],
    compositions: list[dict[str, int]],
    elements: list[str],
    csv_path: str | Path,
    plot_path: str | Path,
    title: str = "",
    plot_temperatures: list[float] | None = None,
) -> dict:
    """Mixing enthalpy of the NS runs at one pressure: table and figure (see :func:`mixing_enthalpy`).

    Cost: no calculator calls.

    Returns
    -------
    dict
        ``compositions`` and the lowest and highest mixing enthalpy (eV/atom) of each.
    """
    tables = {tag: pd.read_csv(path) for tag, path in zip(tags, thermo_paths, strict=True)}
    empty = [tag for tag, table in tables.items() if table.empty]
    if empty:
        raise DataError(f"mixing enthalpy: the runs {empty} have no samples (empty thermo tables)")
    table = mixing_enthalpy(tables, dict(zip(tags, compositions, strict=True)), elements)
    table.to_csv(csv_path, index=False)
    plot_mixing(table, elements, plot_path, title, plot_temperatures)
    return {
        "compositions": tags,
        "range_eV_per_atom": {
            tag: [float(g.mixing_enthalpy.min()), float(g.mixing_enthalpy.max())]
            for tag, g in table.groupby("composition")
        },
    }
