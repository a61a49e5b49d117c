"""Every benchmark property with a calculator factory, and the model's side compared with the reference.

Every property has a *reference* side (the configured labeller, once for
all cycles, or the user's reference files) and a *model* side (each cycle's
committee). The functions here take calculator factories
(``(name, atoms) -> calculator``: a fresh calculator per benchmark), so the
tests run them with EAM/GPAW and the workflow stages
(:mod:`nestdb.bench.stage`) with the labeller and the committee.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from nestdb.bench import plots
from nestdb.bench.alloy import compare_alloy, compute_alloy
from nestdb.bench.bain import bain_path
from nestdb.bench.elastic import elastic_constants
from nestdb.bench.enthalpy import enthalpy_curve, transition_pressures
from nestdb.bench.eos import ev_curve, fit_eos
from nestdb.bench.phonons import phonon_dispersion
from nestdb.errors import ConfigError
from nestdb.io import jsonable, write_json
from nestdb.structures.crystals import build_structure

#: matscipy symmetry of each structure's elastic tensor.
ELASTIC_SYMMETRY = {"hcp": "hexagonal", "dhcp": "hexagonal", "bcc": "cubic", "fcc": "cubic"}
#: Properties with a reference and a model side (one rule pair each); ``alloy``: formation energies and hull.
PROPERTIES = ("enthalpy", "bain", "phonons", "alloy")

CalculatorFor = Callable[[str, Atoms], object]


def elastic_structures(bench: dict) -> list[str]:
    """``bench.elastic.structure`` as a list (a single name or a list of names)."""
    names = bench["elastic"]["structure"]
    return [names] if isinstance(names, str) else list(names)


# --------------------------------------------------------------------------- E-V and elastic
def _ev_scales(bench: dict) -> np.ndarray:
    low, high = bench["ev_range"]
    return np.linspace(low, high, bench["ev_points"])


def run_benchmarks(
    calculator_for: CalculatorFor,
    bench: dict,
    element: str,
    skip_ev: tuple[str, ...] = (),
    ev_volumes: dict | None = None,
) -> tuple[list[dict], dict]:
    """E–V curves of the configured structures and the elastic tensors.

    Cost: ``ev_points`` calls per structure (isotropic scaling, no
    relaxation) plus, per elastic structure, a relaxation and
    ``n_patterns * n_steps`` strained cells (see
    :func:`nestdb.bench.elastic.elastic_constants`).

    Parameters
    ----------
    calculator_for
        ``(name, atoms) -> calculator``: a fresh calculator per benchmark
        (``"hcp"``, ..., ``"elastic_hcp"``).
    bench
        The ``bench`` config block.
    element
        Chemical element of the structures.
    skip_ev
        Structures whose E–V curve comes from elsewhere (reference files).
    ev_volumes
        ``{structure: volumes per atom}`` to evaluate instead of the
        configured scan (the model side follows the reference's points).

    Returns
    -------
    (list of dict, dict)
        E–V rows (``structure``, ``volume_scale``, ``volume_per_atom``,
        ``energy_per_atom``) and ``{structure: elastic result}``.
    """
    rows = []
    for name in bench["structures"]:
        if name in skip_ev:
            continue
        atoms = build_structure(name, element=element)
        scales = _ev_scales(bench)
        if ev_volumes and name in ev_volumes:  # scales of the element's starting volume
            scales = np.asarray(ev_volumes[name], dtype=float) / (atoms.get_volume() / len(atoms))
        curve = ev_curve(atoms, calculator_for(name, atoms), volume_scales=scales)
        rows += [{"structure": name, **row} for row in curve.to_dict("records")]
    elastic_cfg = bench["elastic"]
    elastic = {}
    for name in elastic_structures(bench):
        structure = build_structure(name, element=element)
        result = elastic_constants(
            structure,
            calculator_for(f"elastic_{name}", structure),
            symmetry=ELASTIC_SYMMETRY[name],
            delta=elastic_cfg["delta"],
            n_steps=elastic_cfg["n_steps"],
            fmax=elastic_cfg["relax_fmax"],
            max_steps=elastic_cfg["relax_max_steps"],
        )
        result["structure"] = name
        elastic[name] = result
    return rows, elastic


def _relaxed(elastic: dict) -> bool:
    """Whether the cell and all internal relaxations of an elastic calculation converged."""
    cell = (elastic.get("relaxation") or {}).get("converged", True)
    internal = (elastic.get("internal_relaxation") or {}).get("all_converged", True)
    return bool(cell and internal)


def _ev_shape_rmse_mev(model: pd.DataFrame, reference: pd.DataFrame) -> float:
    """RMSE of two E–V curves on the same volumes, each relative to its own minimum (meV/atom)."""
    m = model.sort_values("volume_per_atom").energy_per_atom.to_numpy()
    r = reference.sort_values("volume_per_atom").energy_per_atom.to_numpy()
    return float(np.sqrt(np.mean((m - m.min() - (r - r.min())) ** 2)) * 1000)


def compare_ev_elastic(
    calculator,
    bench: dict,
    element: str,
    reference_ev_path: str | Path,
    reference_elastic_path: str | Path,
    ev_path: str | Path,
    ev_plot_path: str | Path,
    elastic_path: str | Path,
    summary_path: str | Path,
) -> dict:
    """Model E–V curves and elastic constants with one calculator, compared with the reference.

    Cost: as :func:`run_benchmarks` with the model calculator. The model's
    E–V points are the reference's volumes (which may come from files).
    """
    reference = pd.read_csv(reference_ev_path)
    volumes = {name: reference[reference.structure == name].volume_per_atom.to_numpy() for name in bench["structures"]}
    rows, elastic = run_benchmarks(lambda name, atoms: calculator, bench, element, ev_volumes=volumes)
    model_ev = pd.DataFrame(rows)
    model_ev.to_csv(ev_path, index=False)
    curves = {"model": {}, "reference": {}}
    eos, ev_rmse = {}, {}
    for name in bench["structures"]:
        curves["model"][name] = model_ev[model_ev.structure == name]
        curves["reference"][name] = reference[reference.structure == name]
        eos[name] = {side: fit_eos(curves[side][name]) for side in ("model", "reference")}
        # Energy differences between volumes are what the model can get right.
        ev_rmse[name] = _ev_shape_rmse_mev(curves["model"][name], curves["reference"][name])
    plots.plot_ev(curves, ev_plot_path)
    ref_elastic = json.loads(Path(reference_elastic_path).read_text())
    with open(elastic_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        # Unconverged relaxations and non-positive-definite tensors are shown next to the numbers.
        writer.writerow(
            [
                "structure",
                "constant",
                "model_GPa",
                "reference_GPa",
                "difference_GPa",
                "model_relaxed",
                "reference_relaxed",
                "model_positive_definite",
                "reference_positive_definite",
            ]
        )
        for name, result in elastic.items():
            ref = ref_elastic[name]
            for key in (k for k in ref if k.startswith("C") and len(k) == 3):
                writer.writerow(
                    [
                        name,
                        key,
                        result[key],
                        ref[key],
                        result[key] - ref[key],
                        _relaxed(result),
                        _relaxed(ref),
                        result["positive_definite"],
                        ref["positive_definite"],
                    ]
                )
    summary = {
        "eos": eos,
        "ev_shape_rmse_meV_per_atom": ev_rmse,
        "elastic_model": elastic,
        "elastic_reference": ref_elastic,
    }
    write_json(summary_path, summary)
    return jsonable(summary)


# --------------------------------------------------------------------------- enthalpy, Bain, phonons
def _elements(element: str | list[str]) -> list[str]:
    """The campaign's elements from ``element`` (one symbol or the list); single-element properties use the first."""
    return [element] if isinstance(element, str) else list(element)


def compute_property(kind: str, calculator_for: CalculatorFor, bench: dict, element: str | list[str]) -> dict:
    """One benchmark property with one calculator factory.

    ``element``: a symbol or the campaign's ``elements``; enthalpy, Bain
    path and phonons use the first, ``alloy`` all of them.

    Cost: ``enthalpy`` about ``n_structures * n_pressures * 4`` calls,
    ``bain`` about ``n_pressures * n_points * 3`` one-atom calls,
    ``phonons`` a relaxation plus one supercell call per displacement for
    each structure (see the functions in ``nestdb.bench``).

    Returns
    -------
    dict
        ``enthalpy``: ``{"table": rows, "transitions": [...]}``; ``bain``:
        ``{"table": rows}``; ``phonons``: ``{structure: dispersion}``;
        ``alloy``: see :func:`nestdb.bench.alloy.compute_alloy`.
    """
    if kind == "alloy":
        return compute_alloy(calculator_for, bench, _elements(element))
    element = _elements(element)[0]
    if kind == "enthalpy":
        cfg = bench["enthalpy"]
        table = pd.concat(
            [
                enthalpy_curve(
                    name,
                    calculator_for,
                    cfg["pressures"],
                    element=element,
                    relax_c_over_a=cfg["relax_c_over_a"],
                    fmax=cfg["fmax"],
                    max_steps=cfg["max_steps"],
                )
                for name in cfg["structures"]
            ],
            ignore_index=True,
        )
        return {
            "table": table.to_dict("records"),
            "transitions": transition_pressures(table),
            "relax_c_over_a": cfg["relax_c_over_a"],
        }
    if kind == "bain":
        cfg = bench["bain"]
        table = bain_path(
            calculator_for,
            cfg["pressures"],
            n_points=cfg["n_points"],
            element=element,
            fmax=cfg["fmax"],
            max_steps=cfg["max_steps"],
        )
        return {"table": table.to_dict("records")}
    if kind == "phonons":
        cfg = bench["phonons"]
        supercells = cfg.get("supercell") or {}
        return {
            name: phonon_dispersion(
                name,
                calculator_for,
                element=element,
                supercell=supercells.get(name),
                displacement=cfg["displacement"],
                npoints=cfg["npoints"],
                pressure_gpa=cfg["pressure"],
                fmax=cfg["fmax"],
            )
            for name in cfg["structures"]
        }
    raise ConfigError(f"unknown benchmark property {kind!r}; choose from {', '.join(PROPERTIES)}")


def compare_property(
    kind: str,
    calculator,
    bench: dict,
    element: str | list[str],
    reference_json: str | Path,
    json_path: str | Path,
    csv_path: str | Path,
    plot_path: str | Path,
    title: str = "",
) -> dict:
    """Model side of one property and its comparison with the reference.

    Cost: as :func:`compute_property` with the model calculator.

    Writes the model's results and the comparison (``json_path``), a table
    model against reference (``csv_path``, with ``converged`` columns) and a
    figure (``plot_path``).
    """
    reference = json.loads(Path(reference_json).read_text())
    model = jsonable(compute_property(kind, lambda name, atoms: calculator, bench, element))
    if kind == "alloy":
        comparison = compare_alloy(model, reference, csv_path, plot_path, title)
    elif kind == "enthalpy":
        comparison, _ = plots.compare_enthalpy(model, reference, csv_path, plot_path, title)
    elif kind == "bain":
        comparison, _ = plots.compare_bain(model, reference, csv_path, plot_path, title)
    else:
        comparison, _ = plots.compare_phonons(model, reference, csv_path, plot_path, title)
    result = {"model": model, "comparison": comparison}
    write_json(json_path, result)
    return result
