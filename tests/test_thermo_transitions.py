"""Tests of nestdb.thermo transitions, bootstrap error bars, huge files and the analyse CLI."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nestdb.cli import main as cli_main
from nestdb.errors import ConfigError, DataError
from nestdb.thermo import (
    NSEnergies,
    Transition,
    analyse,
    bootstrap,
    combine_runs,
    detect_transitions,
    melting_transition,
    read_energies,
    sample_temperatures,
)
from nestdb.units import KB_EV_PER_K

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "data" / "mg" / "pymatnest" / "samples"
MG_1GPA = SAMPLES / "mg16_1GPa_fasteam" / "mg16_1GPa_fasteam.energies"


def _need_samples() -> None:
    require_shared(SAMPLES)


def _table(temps: np.ndarray, cp_per_atom: np.ndarray, v_per_atom: np.ndarray, n_atoms: int = 16) -> pd.DataFrame:
    """A table shaped like analyse()'s output (whole-cell C_p in eV/K and V in A^3)."""
    table = pd.DataFrame({"T": temps, "Cp": cp_per_atom * n_atoms * KB_EV_PER_K, "V": v_per_atom * n_atoms})
    table.attrs["kB"] = KB_EV_PER_K
    return table


def _gauss(temps, centre, sigma, height):
    return height * np.exp(-0.5 * ((temps - centre) / sigma) ** 2)


def _step(temps, centre, width, size):
    return size / (1.0 + np.exp(-(temps - centre) / width))


# --------------------------------------------------------------------------- peaks on synthetic curves


def test_single_peak_fwhm_and_volume_jump():
    temps = np.arange(100.0, 2000.0, 2.0)
    sigma = 40.0
    table = _table(temps, 3.0 + _gauss(temps, 800.0, sigma, 2.0), 22.0 + _step(temps, 800.0, 10.0, 0.6))
    (peak,) = detect_transitions(table, 16)
    assert isinstance(peak, Transition)
    assert peak.temperature == pytest.approx(800.0, abs=0.5)
    assert peak.fwhm == pytest.approx(2 * math.sqrt(2 * math.log(2)) * sigma, rel=2e-3)
    assert peak.low == pytest.approx(800 - peak.fwhm / 2, abs=0.5) and peak.high == pytest.approx(
        800 + peak.fwhm / 2, abs=0.5
    )
    assert peak.cp_peak == pytest.approx(5.0, rel=1e-4) and peak.prominence == pytest.approx(2.0, rel=1e-3)
    expected_jump = np.interp(peak.high, temps, table["V"] / 16) - np.interp(peak.low, temps, table["V"] / 16)
    assert peak.volume_jump == pytest.approx(expected_jump) and 0.5 < peak.volume_jump < 0.6
    assert peak.kind == "melting"


def test_fwhm_is_measured_from_the_lower_prominence_tail():
    # A small peak on the shoulder of a big one: its baseline is the saddle towards the big peak,
    # not the flat tail on its other side.
    temps = np.arange(100.0, 2000.0, 1.0)
    cp = 3.0 + _gauss(temps, 600.0, 60.0, 1.0) + _gauss(temps, 850.0, 80.0, 3.0)
    table = _table(temps, cp, np.full(temps.size, 22.0))
    small = min(detect_transitions(table, 16), key=lambda t: t.temperature)
    between = (temps > 600) & (temps < 850)
    saddle = cp[between].min()
    assert saddle > 3.2  # the saddle is well above the left tail
    assert small.prominence == pytest.approx(cp.max(where=temps < 700, initial=0) - saddle, rel=1e-3)
    level = small.cp_peak - small.prominence / 2
    # Brute-force crossings of the half-prominence level on each side of the peak.
    left = temps[(temps < 600) & (cp < level)].max()
    right = temps[(temps > 600) & (cp < level)].min()
    assert small.low == pytest.approx(left, abs=1.0) and small.high == pytest.approx(right, abs=1.0)
    assert small.fwhm < 2.3548 * 60.0  # narrower than the symmetric width from the far tail


def test_melting_fluid_and_solid_solid_by_volume_jump():
    temps = np.arange(100.0, 3000.0, 5.0)
    cp = 3.0 + _gauss(temps, 400, 30, 0.8) + _gauss(temps, 900, 60, 1.5) + _gauss(temps, 1600, 200, 3.0)
    volume = 22.0 + _step(temps, 900, 15, 0.7) + _step(temps, 1600, 100, 8.0)
    kinds = [(round(t.temperature), t.kind) for t in detect_transitions(_table(temps, cp, volume), 16)]
    assert kinds == [(400, "solid-solid"), (900, "melting"), (1600, "fluid")]
    melt = melting_transition(_table(temps, cp, volume), 16)
    assert melt.temperature == pytest.approx(900, abs=1) and 0.5 < melt.volume_jump < 0.7
    # Without a volume jump nothing can be called melting.
    flat = detect_transitions(_table(temps, cp, np.full(temps.size, 22.0)), 16)
    assert [t.kind for t in flat] == ["unknown"] * 3
    assert melting_transition(_table(temps, cp, np.full(temps.size, 22.0)), 16) is None


def test_detect_transitions_bad_input():
    temps = np.arange(100.0, 200.0, 10.0)
    table = _table(temps, np.ones(temps.size), np.ones(temps.size))
    with pytest.raises(DataError, match="Cp"):
        detect_transitions(table.drop(columns="Cp"), 16)
    with pytest.raises(ConfigError, match="n_atoms"):
        detect_transitions(table, 0)
    with pytest.raises(DataError, match="increasing"):
        detect_transitions(table.iloc[::-1], 16)
    assert detect_transitions(table, 16) == []  # flat: no peak


# --------------------------------------------------------------------------- real pymatnest runs


def test_mg_1gpa_melting_near_835_k_and_fluid_expansion_at_1470_k():
    _need_samples()
    table = analyse(read_energies(MG_1GPA), np.arange(100.0, 4000.0, 5.0))
    transitions = detect_transitions(table, 16)
    melt = melting_transition(table, 16)
    # pymatnest-format.md §6: melting is the local C_p maximum at ~835 K (<V>/atom 22.9 -> 23.7),
    # the global maximum at 1470 K is the expansion of the fluid (24.4 -> 28.4).
    assert melt.temperature == pytest.approx(835, abs=10)
    assert melt.cp_peak == pytest.approx(5.0, abs=0.1)
    assert 100 < melt.fwhm < 400 and melt.low < 835 < melt.high
    assert 0.3 < melt.volume_jump < 1.0
    global_max = max(transitions, key=lambda t: t.cp_peak)
    assert global_max.kind == "fluid" and global_max.temperature == pytest.approx(1470, abs=15)
    assert global_max.volume_jump > 3.0
    assert all(t.kind == "solid-solid" for t in transitions if t.temperature < melt.temperature)


def test_lj_melting_below_condensation():
    _need_samples()
    table = analyse(read_energies(SAMPLES / "lj16_fastlj" / "lj16_fastlj.energies"), np.arange(50.0, 3000.0, 5.0))
    melt = melting_transition(table, 16)
    assert melt.temperature == pytest.approx(890, abs=15)  # §6: T* ~ 0.77
    condensation = max(detect_transitions(table, 16), key=lambda t: t.cp_peak)
    assert condensation.kind == "fluid" and condensation.temperature == pytest.approx(1000, abs=15)


def test_runs_stopped_in_the_gas_report_no_transition():
    _need_samples()
    # Their ns_analyse "peaks" (2010 K, 4160 K) are truncation artefacts (§6).
    for path in (
        SAMPLES / "lj16_aselj_partial" / "lj16.energies",
        SAMPLES / "mg16_1GPa_aseeam_partial" / "mg16_1GPa_aseeam.energies",
    ):
        table = analyse(read_energies(path), np.arange(50.0, 5000.0, 10.0))
        assert detect_transitions(table, 16) == []
        # The same from a table read back from CSV (no attrs): the cut-off run is still recognised.
        from_csv = pd.read_csv(io.StringIO(table.to_csv(index=False)))
        assert detect_transitions(from_csv, 16) == []
    converged = analyse(read_energies(MG_1GPA), np.arange(100.0, 4000.0, 10.0))
    from_csv = pd.read_csv(io.StringIO(converged.to_csv(index=False)))
    again, direct = detect_transitions(from_csv, 16), detect_transitions(converged, 16)
    assert [t.kind for t in again] == [t.kind for t in direct] and "melting" in [t.kind for t in direct]
    np.testing.assert_allclose([t.temperature for t in again], [t.temperature for t in direct], rtol=1e-9)


# --------------------------------------------------------------------------- error bars


def _harmonic(n_walkers: int, n_iter_per_walker: int = 60, dof: int = 12) -> NSEnergies:
    n = n_walkers * n_iter_per_walker
    log_x = (np.arange(n) + 1) * math.log(n_walkers / (n_walkers + 1))
    h = 100.0 * np.exp(log_x * 2.0 / dof)
    return NSEnergies(n_walkers, 1, 0, False, dof // 3, np.arange(n), h, 20.0 + h)


def test_bootstrap_errors_shrink_as_one_over_sqrt_walkers():
    temps = np.array([300.0, 1000.0, 3000.0])
    small = bootstrap(_harmonic(50), temps, n_boot=60, seed=1)
    large = bootstrap(_harmonic(800), temps, n_boot=60, seed=1)
    assert list(small.columns) == ["T", "U", "U_err", "Cp", "Cp_err", "V", "V_err"]
    ratio = small["Cp_err"] / large["Cp_err"]
    assert np.all((ratio > 4 * 0.7) & (ratio < 4 * 1.3))  # sqrt(800/50) = 4
    assert np.all(large["V_err"] > 0) and np.all(np.isfinite(small.to_numpy()))
    # The exact C_p (equipartition, 6 kB) lies within a few error bars of the estimate.
    assert np.all(np.abs(small["Cp"] - 6 * KB_EV_PER_K) < 4 * small["Cp_err"] + 0.01 * 6 * KB_EV_PER_K)
    again = bootstrap(_harmonic(50), temps, n_boot=60, seed=1)
    pd.testing.assert_frame_equal(small, again)
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap(_harmonic(50), temps, n_boot=1)


def test_bootstrap_n_cull_and_flat_prior_are_finite():
    base = _harmonic(30, 30)
    cull = NSEnergies(30, 3, 0, True, 4, base.iters // 3, base.enthalpy, base.volume)
    errors = bootstrap(cull, np.array([200.0, 2000.0]), n_boot=5)
    assert np.all(np.isfinite(errors.to_numpy())) and np.all(errors["Cp_err"] > 0)


def test_combine_runs_mean_and_standard_error():
    temps = np.array([500.0, 1500.0])
    tables = [analyse(_harmonic(40 + 10 * k), temps) for k in range(3)]
    combined = combine_runs(tables)
    stack = np.stack([t["Cp"] for t in tables])
    np.testing.assert_allclose(combined["Cp"], stack.mean(axis=0))
    np.testing.assert_allclose(combined["Cp_err"], stack.std(axis=0, ddof=1) / math.sqrt(3))
    with pytest.raises(ConfigError):
        combine_runs(tables[:1])
    with pytest.raises(DataError, match="grid"):
        combine_runs([tables[0], analyse(_harmonic(40), np.array([1.0, 2.0, 3.0]))])


# --------------------------------------------------------------------------- 10^6 samples


def test_million_line_file_is_finite(tmp_path):
    n, n_walkers = 1_000_000, 2000
    log_x = (np.arange(n) + 1) * math.log(n_walkers / (n_walkers + 1))  # down to ln X = -500
    enthalpy = 5e3 * np.exp(log_x / 24) - 20.0 - 0.5 * (log_x < -250)
    volume = 20.0 + 1e3 * np.exp(log_x / 24)
    path = tmp_path / "big.energies"
    body = np.column_stack((np.arange(n), enthalpy, volume))
    with open(path, "w") as handle:
        handle.write(f"{n_walkers} 1 0 False 16\n")
        np.savetxt(handle, body, fmt=["%d", "%.10e", "%.8e"])
    energies = read_energies(path)
    assert energies.n_samples == n
    table = analyse(energies, np.array([1.0, 50.0, 300.0, 1000.0, 1e4, 1e7]))
    assert np.all(np.isfinite(table[["log_Z", "F", "U", "Cp", "V", "thermal_exp", "Z_fract"]].to_numpy()))
    assert table["U"].is_monotonic_increasing
    temps = sample_temperatures(energies, n_grid=64)
    assert np.all(np.isfinite(temps)) and temps[0] > temps[-1]


def test_million_line_file_with_a_corrupt_line_names_it(tmp_path):
    lines = [f"{i} {1e3 - i * 1e-3:.6f} 20.0" for i in range(1_000_000)]
    lines[765_432] = "765432 1.2.3 20.0"
    path = tmp_path / "corrupt.energies"
    path.write_text("2000 1 0 False 16\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"corrupt\.energies: line 765434 is not numeric"):
        read_energies(path)


# --------------------------------------------------------------------------- CLI


def test_cli_analyse_tmax_transitions_and_bootstrap(tmp_path, capsys):
    _need_samples()
    csv_path = tmp_path / "t.csv"
    argv = [
        "analyse",
        str(MG_1GPA),
        "--Tmin",
        "600",
        "--Tmax",
        "1000",
        "--dT",
        "5",
        "--transitions",
        "--bootstrap",
        "5",
        "--csv",
        str(csv_path),
        "--plot",
        str(tmp_path / "cp.png"),
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out if not line.startswith("#")]
    assert len(rows) == 81 and float(rows[0][0]) == 600 and float(rows[-1][0]) == 1000
    melting = [line for line in out if line.startswith("# melting")]
    assert len(melting) == 1 and 820 < float(melting[0].split()[2]) < 850
    table = pd.read_csv(csv_path)
    assert {"Cp_err", "V_err"} <= set(table.columns) and (table["Cp_err"] > 0).all()
    assert (tmp_path / "cp.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_analyse_bad_input(tmp_path, capsys):
    bad = tmp_path / "cut.energies"
    bad.write_text("10 1 0 False 2\n0 1.0 5.0\n1 0.5")
    assert cli_main(["analyse", str(bad), "--Tmin", "100", "--dT", "10", "--nT", "3"]) == 2
    assert "cut.energies: line 3" in capsys.readouterr().err
    good = tmp_path / "ok.energies"
    good.write_text("10 1 0 False 2\n0 1.0 5.0\n1 0.5 5.0\n")
    assert cli_main(["analyse", str(good), "--Tmin", "100", "--dT", "10", "--Tmax", "50"]) == 2
    assert "--Tmax" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: one of --nT/--Tmax is required
        cli_main(["analyse", str(good), "--Tmin", "100", "--dT", "10"])
