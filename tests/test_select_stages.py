"""The analyse and select stages with transitions, error bars, weights and order parameters."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.io import read

from nestdb.ns import NSSettings, run_nested_sampling
from nestdb.potentials.lj import FastLennardJones
from nestdb.select.stage import select_run
from nestdb.thermo.stage import analyse_run
from nestdb.units import KB_EV_PER_K

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MG_1GPA = SHARED / "data" / "mg" / "pymatnest" / "samples" / "mg16_1GPa_fasteam" / "mg16_1GPa_fasteam.energies"


def test_analyse_run_writes_transitions_and_error_bars(tmp_path):
    require_shared(MG_1GPA)
    out = {k: tmp_path / k for k in ("thermo.csv", "temps.csv", "thermo.png", "transitions.csv")}
    grid = {"t_min": 300, "t_max": 2500, "t_step": 20, "bootstrap": 3}
    fig = analyse_run(
        MG_1GPA,
        out["thermo.csv"],
        out["temps.csv"],
        out["thermo.png"],
        grid,
        title="Mg 1 GPa",
        transitions_path=out["transitions.csv"],
    )
    table = pd.read_csv(out["thermo.csv"])
    assert {"Cp", "V", "Cp_err", "V_err"} <= set(table.columns) and (table["Cp_err"] > 0).all()
    transitions = pd.read_csv(out["transitions.csv"])
    melting = transitions[transitions["kind"] == "melting"]
    assert len(melting) == 1 and abs(melting["temperature"].iloc[0] - 835) < 10
    assert {"fwhm", "low", "high", "cp_peak", "volume_jump"} <= set(transitions.columns)
    assert out["thermo.png"].is_file()
    # the figure: C_p (kB/atom) and V per atom of the CSV, its bootstrap band, the melting peak of transitions.csv
    ax_cp, ax_v = fig.axes
    assert ax_cp.get_title() == "Mg 1 GPa"
    assert ax_v.get_xlabel() == "T (K)" and ax_cp.get_ylabel() == r"$C_p$ ($k_B$/atom)"
    np.testing.assert_allclose(
        np.array(ax_cp.lines[0].get_data(), dtype=float), [table["T"], table.Cp / (16 * KB_EV_PER_K)]
    )
    np.testing.assert_allclose(np.array(ax_v.lines[0].get_data(), dtype=float), [table["T"], table.V / 16])
    peak = melting.iloc[0]
    (marker,) = [c for c in ax_cp.containers if c.get_label().startswith("melting")]  # the errorbar
    np.testing.assert_allclose(np.array(marker.lines[0].get_data(), dtype=float), [[peak.temperature], [peak.cp_peak]])
    legend = [text.get_text() for text in ax_cp.get_legend().get_texts()]
    assert "bootstrap ±1σ" in legend and f"melting {peak.temperature:.0f} K" in legend


def test_select_run_adds_order_parameters_and_rescaled_weights(tmp_path):
    settings = NSSettings(
        n_walkers=8, walk_length=8, pressure_gpa=5.0, max_iter=200, max_volume_per_atom=40.0, kemax_max_T=3000.0, seed=2
    )
    prefix = tmp_path / "ns"
    run_nested_sampling({"Mg": 4}, FastLennardJones(), settings, prefix)
    out = {k: tmp_path / k for k in ("thermo.csv", "temps.csv", "thermo.png", "transitions.csv")}
    analyse_run(
        f"{prefix}.energies",
        out["thermo.csv"],
        out["temps.csv"],
        out["thermo.png"],
        {"t_min": 100, "t_max": 3000, "t_step": 50},
        transitions_path=out["transitions.csv"],
    )
    assert list(pd.read_csv(out["transitions.csv"]).columns)[:7] == [
        "temperature",
        "fwhm",
        "low",
        "high",
        "cp_peak",
        "volume_jump",
        "kind",
    ]
    chosen = select_run(
        f"{prefix}.traj.extxyz",
        f"{prefix}.summary.json",
        out["temps.csv"],
        {"kind": "last", "count": 5},
        0,
        5.0,
        0.1,
        tmp_path / "cand.extxyz",
        tmp_path / "configs",
        tmp_path / "sel.png",
        final_path=f"{prefix}.final.extxyz",
        weight_rescale="mean",
        order_plot_path=tmp_path / "order.png",
    )
    written = read(tmp_path / "cand.extxyz", index=":")
    assert len(written) == 5
    for atoms in written:
        assert {"q4", "q6", "w6", "phase"} <= set(atoms.info)
        assert atoms.info["phase"] in ("fcc", "hcp", "bcc", "liquid") and 0 <= atoms.info["q6"] <= 1
    assert np.mean([a.info["weight"] for a in written]) == pytest.approx(1.0)
    temps = [float(r["temp"]) for r in csv.DictReader(open(out["temps.csv"]))]
    assert [a.info["temp"] for a in chosen] == pytest.approx(temps[-5:])
    assert (tmp_path / "order.png").read_bytes()[:4] == b"\x89PNG"


def test_analyse_run_refuses_a_binary_energies_file_by_name(tmp_path):
    # the stage counted lines as text before the reader's checks, which gave a
    # UnicodeDecodeError traceback instead of the reader's message
    from nestdb.errors import DataError

    energies = tmp_path / "ns.energies"
    energies.write_bytes(b"\x00\xff\xfe\x81 not a text file")
    with pytest.raises(DataError, match="ns.energies is not a text file"):
        analyse_run(
            energies,
            tmp_path / "t.csv",
            tmp_path / "s.csv",
            tmp_path / "p.png",
            {"t_min": 100.0, "t_max": 200.0, "t_step": 50.0},
        )
