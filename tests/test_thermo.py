"""Tests of nestdb.thermo: .energies reading, NS quadrature, per-sample temperatures, CLI."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nestdb.cli import main as cli_main
from nestdb.cli.analyse import main
from nestdb.errors import ConfigError, DataError
from nestdb.thermo import (
    NSEnergies,
    analyse,
    log_phase_volume,
    plot_analysis,
    read_energies,
    resolved_temperature,
    sample_temperatures,
)
from nestdb.units import KB_EV_PER_K

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "data" / "mg" / "pymatnest" / "samples"
# (directory, prefix) of every pymatnest sample run with an ns_analyse output
SAMPLE_RUNS = [
    ("lj16_aselj_partial", "lj16"),
    ("lj16_fastlj", "lj16_fastlj"),
    ("mg16_1GPa_aseeam_partial", "mg16_1GPa_aseeam"),
    ("mg16_1GPa_fasteam", "mg16_1GPa_fasteam"),
    ("mg16_1GPa_fasteam_mar065", "mg16_1GPa_fasteam_mar065"),
]
ANALYSIS_COLUMNS = [
    "T",
    "log_Z",
    "F",
    "U",
    "Cp",
    "low_pct_i",
    "mode_i",
    "high_pct_i",
    "low_pct_iter",
    "mode_iter",
    "high_pct_iter",
    "Z_fract",
    "V",
    "thermal_exp",
]


def _need_samples() -> None:
    require_shared(SAMPLES)


def _write_energies(path: Path, header: str, enthalpy, volume, n_cull: int = 1) -> Path:
    lines = [header]
    for i, (h, v) in enumerate(zip(enthalpy, volume, strict=True)):
        lines.append(f"{i // n_cull} {h:.17g} {v:.17g}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _harmonic_run(n_walkers: int, n_samples: int, dof: int, h_top: float) -> NSEnergies:
    """Noise-free NS run of a system with density of states g(H) ∝ H^(dof/2 - 1).

    Its cumulative phase volume is X(H) = (H/h_top)^(dof/2), so the i-th cull
    sits at H_i = h_top X_i^(2/dof); the exact canonical results are
    <H> = (dof/2) kB T and C_p = (dof/2) kB (equipartition).
    """
    log_x = (np.arange(n_samples) + 1) * math.log(n_walkers / (n_walkers + 1))
    enthalpy = h_top * np.exp(log_x * 2.0 / dof)
    return NSEnergies(
        n_walkers=n_walkers,
        n_cull=1,
        n_extra_dof=0,
        flat_v_prior=False,
        n_atoms=dof // 3,
        iters=np.arange(n_samples),
        enthalpy=enthalpy,
        volume=np.full(n_samples, 50.0),
    )


def _printed_tolerance(reference: np.ndarray) -> np.ndarray:
    """Half a unit in the 6th significant digit (ns_analyse prints with '{:g}')."""
    exponent = np.floor(np.log10(np.maximum(np.abs(reference), 1e-300)))
    return 0.5 * 10.0 ** (exponent - 5) * 1.001


# --------------------------------------------------------------------------- synthetic (no shared data)


def test_log_phase_volume_n_cull_1_closed_form():
    log_x, log_a = log_phase_volume(50, 9, 1)
    i = np.arange(50)
    np.testing.assert_allclose(np.exp(log_x), (9 / 10) ** (i + 1), rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_a), np.exp(log_x) / 10, rtol=1e-12)


def test_log_phase_volume_n_cull_3_exact_rationals():
    n_walkers, n_cull, n_samples = 7, 3, 12
    log_x, log_a = log_phase_volume(n_samples, n_walkers, n_cull)
    # After each full iteration the volume shrinks by (K - P + 1)/(K + 1) (method.md).
    per_iteration = Fraction(n_walkers - n_cull + 1, n_walkers + 1)
    for j in range(n_samples // n_cull):
        assert log_x[j * n_cull + n_cull - 1] == pytest.approx(math.log(per_iteration ** (j + 1)), rel=1e-12)
    # Within an iteration the k-th cull leaves a live set K - k out of K + 1 - k.
    x, xs = Fraction(1), []
    for i in range(n_samples + 1):
        x *= Fraction(n_walkers - i % n_cull, n_walkers + 1 - i % n_cull)
        xs.append(x)
    mass = [xs[i] - xs[i + 1] for i in range(n_samples)]
    np.testing.assert_allclose(log_a, [math.log(m) for m in mass], rtol=1e-12)


def test_analyse_n_cull_gt_1_matches_direct_quadrature(tmp_path):
    rng = np.random.default_rng(3)
    n_walkers, n_cull, n_samples = 12, 3, 90
    enthalpy = np.sort(rng.uniform(-5.0, 5.0, n_samples))[::-1]
    volume = rng.uniform(10.0, 30.0, n_samples)
    path = _write_energies(tmp_path / "pc3.energies", f"{n_walkers} {n_cull} 0 False 4", enthalpy, volume, n_cull)
    energies = read_energies(path)
    assert (energies.n_walkers, energies.n_cull, energies.n_atoms) == (n_walkers, n_cull, 4)
    assert energies.iters[-1] == (n_samples - 1) // n_cull

    # Independent evaluation: exact rational prior masses, plain Python sums.
    x, xs = Fraction(1), []
    for i in range(n_samples + 1):
        x *= Fraction(n_walkers - i % n_cull, n_walkers + 1 - i % n_cull)
        xs.append(x)
    mass = [float(xs[i] - xs[i + 1]) for i in range(n_samples)]
    temps = np.array([300.0, 3000.0, 30000.0])
    table = analyse(energies, temps)
    for row, temp in zip(table.itertuples(), temps, strict=True):
        beta = 1.0 / (KB_EV_PER_K * temp)
        w = [m * math.exp(-beta * h) for m, h in zip(mass, enthalpy, strict=True)]
        z = math.fsum(w)
        mean_h = math.fsum(wi * h for wi, h in zip(w, enthalpy, strict=True)) / z
        mean_h2 = math.fsum(wi * h * h for wi, h in zip(w, enthalpy, strict=True)) / z
        mean_v = math.fsum(wi * v for wi, v in zip(w, volume, strict=True)) / z
        mean_vh = math.fsum(wi * v * h for wi, v, h in zip(w, volume, enthalpy, strict=True)) / z
        h_min = enthalpy.min()
        assert row.log_Z - beta * h_min == pytest.approx(math.log(z), rel=1e-10)
        assert row.U == pytest.approx(mean_h, rel=1e-10, abs=1e-10)
        assert row.Cp == pytest.approx(KB_EV_PER_K * beta**2 * (mean_h2 - mean_h**2), rel=1e-7)
        assert row.V == pytest.approx(mean_v, rel=1e-12)
        assert row.thermal_exp == pytest.approx(
            KB_EV_PER_K * beta**2 * (mean_vh - mean_v * mean_h) / mean_v, rel=1e-6, abs=1e-14
        )
        assert row.F == pytest.approx(-math.log(z) / beta, rel=1e-10, abs=1e-10)
        assert row.mode_i == int(np.argmax(w))


def test_analyse_recovers_equipartition_for_harmonic_dos():
    dof = 12
    energies = _harmonic_run(n_walkers=400, n_samples=400 * 70, dof=dof, h_top=100.0)
    temps = np.array([50.0, 300.0, 1000.0, 5000.0])
    table = analyse(energies, temps)
    np.testing.assert_allclose(table["U"], dof / 2 * KB_EV_PER_K * temps, rtol=5e-3)
    np.testing.assert_allclose(table["Cp"], dof / 2 * KB_EV_PER_K, rtol=1e-2)
    assert list(table.columns[:7]) == ["T", "log_Z", "F", "U", "Cp", "V", "thermal_exp"]
    assert table.attrs["n_walkers"] == 400


def test_sample_temperatures_harmonic_dos_analytic():
    dof = 12
    energies = _harmonic_run(n_walkers=400, n_samples=400 * 70, dof=dof, h_top=100.0)
    temps = sample_temperatures(energies)
    # Most probable at <H>(T) = H_i, i.e. T_i = 2 H_i / (dof kB).
    expected = 2 * energies.enthalpy / (dof * KB_EV_PER_K)
    inside = (expected > 30) & (expected < 20000)
    assert inside.sum() > 10000
    np.testing.assert_allclose(temps[inside], expected[inside], rtol=5e-3)
    assert np.all(np.diff(temps) <= 0)
    # Without the live-set floor the lowest sample is most probable as T -> 0.
    assert sample_temperatures(energies, live_set_ratio=None)[-1] == 1.0


def test_resolved_temperature_harmonic_dos_analytic():
    from scipy.optimize import brentq

    dof = 12
    energies = _harmonic_run(n_walkers=400, n_samples=400 * 70, dof=dof, h_top=100.0)
    h_last = energies.enthalpy[-1]

    # Live set: X <= X_M below h_last; recorded part: X(H) = X_M (H/h_last)^6 above it. Their weight
    # ratio at beta is 1/(6 I(c)), I(c) = int_0^inf (1+u)^5 e^(-c u) du, c = beta h_last.
    def six_i_minus_1(c):
        return 6 * sum(math.comb(5, k) * math.factorial(k) / c ** (k + 1) for k in range(6)) - 1.0

    expected = h_last / (KB_EV_PER_K * brentq(six_i_minus_1, 1.0, 100.0))
    floor = resolved_temperature(energies, t_min=0.01)
    assert floor == pytest.approx(expected, rel=0.03)
    assert sample_temperatures(energies, t_min=0.01)[-1] == pytest.approx(floor)


def _two_phase_run(n_walkers: int = 100, n_samples: int = 8000) -> NSEnergies:
    """Synthetic run with a sharp drop in H (a first-order-like transition)."""
    log_x = (np.arange(n_samples) + 1) * math.log(n_walkers / (n_walkers + 1))
    enthalpy = 10.0 * np.exp(log_x / 8) - 1.5 * (log_x < -35) + 0.0005 * log_x
    return NSEnergies(n_walkers, 1, 0, False, 16, np.arange(n_samples), enthalpy, np.full(n_samples, 20.0))


def test_sample_temperatures_match_bruteforce_argmax():
    energies = _two_phase_run()
    temps = sample_temperatures(energies, live_set_ratio=None)
    _, log_a = log_phase_volume(energies.n_samples, energies.n_walkers, 1)
    h = energies.enthalpy - energies.enthalpy.min()
    grid = np.exp(np.linspace(0.0, math.log(1e5), 8001))
    betas = 1.0 / (KB_EV_PER_K * grid)
    log_z = np.array([np.logaddexp.reduce(log_a - b * h) for b in betas])
    subset = np.linspace(0, energies.n_samples - 1, 120).astype(int)
    log_w = log_a[subset, None] - betas[None, :] * h[subset, None] - log_z[None, :]
    brute = grid[np.argmax(log_w, axis=1)]
    grid_step = grid[1] / grid[0] - 1
    np.testing.assert_allclose(temps[subset], brute, rtol=2 * grid_step)


def test_sample_temperatures_short_run_never_nan():
    energies = _two_phase_run()
    short = NSEnergies(100, 1, 0, False, 16, energies.iters[:300], energies.enthalpy[:300], energies.volume[:300])
    temps = sample_temperatures(short, t_min=5.0, t_max=5e4)
    assert np.all(np.isfinite(temps))
    assert np.all((temps >= 5.0) & (temps <= 5e4))
    # The run stopped hot: nothing it recorded may be called cold.
    floor = resolved_temperature(short, t_min=5.0, t_max=5e4)
    full_floor = resolved_temperature(energies, t_min=5.0, t_max=5e4)
    assert temps.min() == pytest.approx(floor) and floor > 10 * full_floor
    assert temps[0] > temps[-1]
    raw = sample_temperatures(short, t_min=5.0, t_max=5e4, live_set_ratio=None)
    assert raw[-1] == 5.0 and np.all(np.isfinite(raw))
    single = NSEnergies(100, 1, 0, False, 16, np.arange(1), np.array([1.0]), np.array([10.0]))
    assert np.all(np.isfinite(sample_temperatures(single)))


def test_resolved_temperature_criterion():
    energies = _two_phase_run()
    floor = resolved_temperature(energies, live_set_ratio=0.1)
    log_x, log_a = log_phase_volume(energies.n_samples, energies.n_walkers, 1)
    h = energies.enthalpy - energies.enthalpy.min()

    def live_ratio(temp):  # live-set weight lower bound / recorded weight, computed directly
        beta = 1.0 / (KB_EV_PER_K * temp)
        return math.exp(log_x[-1] - beta * h[-1] - np.logaddexp.reduce(log_a - beta * h))

    assert live_ratio(floor * 0.97) > 0.1 > live_ratio(floor * 1.03)
    assert resolved_temperature(energies, live_set_ratio=10.0) < floor
    with pytest.raises(ConfigError):
        resolved_temperature(energies, live_set_ratio=0.0)


def test_analyse_is_stable_for_huge_runs_and_enthalpy_range():
    n = 200_000
    log_x = (np.arange(n) + 1) * math.log(1000 / 1001)
    enthalpy = 1e7 * np.exp(log_x / 2) + 1e-3 * np.exp(log_x / 30)  # spans 10 orders of magnitude
    energies = NSEnergies(1000, 1, 0, False, 16, np.arange(n), enthalpy, np.ones(n))
    table = analyse(energies, np.array([0.1, 10.0, 1e4, 1e8]))
    assert np.all(np.isfinite(table[["log_Z", "F", "U", "Cp", "V"]].to_numpy()))
    assert np.all(np.isfinite(sample_temperatures(energies)))


def test_flat_v_prior_reweights_by_volume_power(tmp_path):
    enthalpy = np.array([3.0, 2.0, 1.0])
    volume = np.array([10.0, 20.0, 40.0])
    flat = read_energies(_write_energies(tmp_path / "f.energies", "4 1 0 True 2", enthalpy, volume))
    table = analyse(flat, np.array([1e13]))  # beta -> 0: weights are a_i V_i^2
    a = np.array([(4 / 5) ** (i + 1) / 5 for i in range(3)]) * volume**2
    assert table["V"].iloc[0] == pytest.approx(np.sum(a * volume) / np.sum(a), rel=1e-6)


def test_extra_dof_adds_kinetic_terms(tmp_path):
    enthalpy, volume = np.linspace(5, 1, 40), np.full(40, 10.0)
    e0 = read_energies(_write_energies(tmp_path / "a.energies", "10 1 0 False 2", enthalpy, volume))
    e6 = read_energies(_write_energies(tmp_path / "b.energies", "10 1 6 False 2", enthalpy, volume))
    t = np.array([100.0, 1000.0])
    t0, t6 = analyse(e0, t), analyse(e6, t)
    np.testing.assert_allclose(t6["U"] - t0["U"], 3 * KB_EV_PER_K * t, rtol=1e-10)
    np.testing.assert_allclose(t6["Cp"] - t0["Cp"], 3 * KB_EV_PER_K, rtol=1e-10)


@pytest.mark.parametrize(
    "content, line",
    [
        ("10 1 0 False 2\n0 1.0 5.0\n1 0.5 5", 3),  # truncated last write
        ("10 1 0 False 2\n0 1.0 5.0\n1 abc 5.0\n2 0.1 5.0\n", 3),
        ("10 1 0 False 2\n0 1.0 5.0\n1 0.5 5.0 7.0\n", 3),
        ("10 1 0 False 2\n0 1.0 5.0\n\n2 0.1 5.0\n", 3),
        ("10 1 0 False 2\n0 1.0 5.0\n1 nan 5.0\n", 3),
    ],
)
def test_read_energies_reports_file_and_line(tmp_path, content, line):
    path = tmp_path / "bad.energies"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"bad\.energies: line {line}\b"):
        read_energies(path)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty"),
        ("10 1 0 False 2\n", "no samples"),
        ("10 1\n0 1 1\n", "line 1"),
        ("10 1 0 Maybe 2\n0 1 1\n", "line 1"),
        ("10 20 0 False 2\n0 1 1\n", "impossible"),
    ],
)
def test_read_energies_bad_header(tmp_path, content, match):
    path = tmp_path / "h.energies"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_energies(path)


def test_read_energies_old_formats(tmp_path):
    path = tmp_path / "old.energies"
    path.write_text("8 1 48\n0 3.5\n1 2.5\n2 1.5\n")
    energies = read_energies(path)
    assert (energies.n_extra_dof, energies.n_atoms, energies.flat_v_prior) == (48, 0, False)
    assert np.isnan(energies.volume).all()
    assert np.isfinite(analyse(energies, np.array([500.0]))["Cp"]).all()
    with pytest.raises(DataError, match="cannot read"):
        read_energies(tmp_path / "missing.energies")


def test_analyse_rejects_bad_temperatures():
    energies = _two_phase_run(10, 50)
    with pytest.raises(ConfigError):
        analyse(energies, np.array([100.0, -5.0]))
    with pytest.raises(ConfigError):
        sample_temperatures(energies, t_min=100.0, t_max=10.0)


def test_cli_prints_table_and_plots(tmp_path, capsys):
    energies = _two_phase_run(50, 2000)
    path = _write_energies(tmp_path / "run.energies", "50 1 0 False 16", energies.enthalpy, energies.volume)
    png = tmp_path / "cp.png"
    assert main([str(path), "--tmin", "100", "--dt", "50", "--nt", "20", "--plot", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# n_walkers  50  n_cull  1")
    rows = np.array([line.split() for line in out[2:]], dtype=float)
    assert rows.shape == (20, 14)  # ns_analyse's columns, *_iter included
    expected = analyse(read_energies(path), 100 + 50 * np.arange(20))
    np.testing.assert_allclose(rows[:, 4], expected["Cp"], rtol=1e-5)
    np.testing.assert_allclose(rows[:, 12], expected["V"], rtol=1e-5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.energies"
    bad.write_text("50 1 0 False 16\n0 1.0")
    assert main([str(bad), "-M", "100", "-D", "10", "-n", "3"]) == 2
    assert "bad.energies" in capsys.readouterr().err


def test_plot_analysis_without_atom_count(tmp_path):
    table = analyse(_two_phase_run(20, 400), np.linspace(100, 2000, 30))
    table.attrs.clear()
    ax_cp, ax_v = plot_analysis(table, tmp_path / "p.png", title="x").axes
    assert (tmp_path / "p.png").is_file()
    # without an atom count: whole-system C_p (eV/K) and <V>, the table's numbers unscaled
    assert (ax_cp.get_ylabel(), ax_v.get_ylabel()) == (r"$C_p$ (eV/K)", r"$\langle V\rangle$ (Å$^3$)")
    np.testing.assert_array_equal(ax_cp.lines[0].get_ydata(), table["Cp"])
    np.testing.assert_array_equal(ax_v.lines[0].get_ydata(), table["V"])
    np.testing.assert_array_equal(ax_v.lines[0].get_xdata(), table["T"])
    with pytest.raises(DataError):
        plot_analysis(pd.DataFrame({"T": [1.0]}), tmp_path / "q.png")


# --------------------------------------------------------------------------- real pymatnest outputs


@pytest.mark.parametrize("directory, prefix", SAMPLE_RUNS)
def test_analyse_reproduces_ns_analyse(directory, prefix):
    _need_samples()
    base = SAMPLES / directory / prefix
    reference = pd.read_csv(f"{base}.analysis", sep=r"\s+", comment="#", header=None, names=ANALYSIS_COLUMNS, dtype=str)
    first_line = Path(f"{base}.analysis").read_text().splitlines()[0].split()
    energies = read_energies(f"{base}.energies")
    assert energies.n_walkers == int(first_line[2]) and energies.n_cull == int(first_line[4])
    table = analyse(energies, reference["T"].to_numpy(dtype=float))
    # ns_analyse prints 6 significant digits ('{:g}', ~5e-6 relative): 1e-6 relative cannot be checked
    # from its output, so every printed digit of ours must be the same (ties at a rounding edge would fail).
    for column in ("log_Z", "F", "U", "Cp", "V", "thermal_exp", "Z_fract"):
        ours = [f"{value:g}" for value in table[column]]
        differ = [(t, a, b) for t, a, b in zip(reference["T"], ours, reference[column], strict=True) if a != b]
        assert not differ, f"{prefix} {column}: (T, ours, ns_analyse) {differ[:3]}"
        ref = reference[column].to_numpy(dtype=float)
        assert np.all(np.abs(table[column].to_numpy() - ref) <= _printed_tolerance(ref))
    for column in ("low_pct_i", "mode_i", "high_pct_i"):
        np.testing.assert_array_equal(table[column].to_numpy(), reference[column].to_numpy(dtype=int))


@pytest.mark.parametrize("directory, prefix", SAMPLE_RUNS)
def test_cli_output_is_byte_identical_to_ns_analyse(directory, prefix, capsys):
    _need_samples()
    base = SAMPLES / directory / prefix
    expected = Path(f"{base}.analysis").read_text()
    temps = [float(line.split()[0]) for line in expected.splitlines() if not line.startswith("#")]
    argv = [f"{base}.energies", "-M", f"{temps[0]:g}", "-D", f"{temps[1] - temps[0]:g}", "-n", str(len(temps))]
    assert cli_main(["analyse", *argv]) == 0
    assert capsys.readouterr().out == expected


def test_sample_temperatures_real_run_monotone_and_span():
    _need_samples()
    energies = read_energies(SAMPLES / "mg16_1GPa_fasteam" / "mg16_1GPa_fasteam.energies")
    temps = sample_temperatures(energies)
    assert np.all(np.isfinite(temps))
    # Where the enthalpy decreases (every cull of a converged run) T must not rise.
    falling = np.diff(energies.enthalpy) < 0
    assert falling.mean() > 0.99
    assert np.all(np.diff(temps)[falling] <= 1e-9 * temps[1:][falling])
    # The run converged into the solid: it spans the gas down to low temperature.
    assert temps[0] == 1e5 and 100.0 < temps[-1] < 300.0 and temps[-1] == resolved_temperature(energies)
    # Samples at the C_p peak are most probable near that temperature.
    table = analyse(energies, np.arange(200.0, 3000.0, 10.0))
    peak_t = table["T"][table["Cp"].idxmax()]
    peak_sample = table["mode_i"][table["Cp"].idxmax()]
    assert temps[peak_sample] == pytest.approx(peak_t, rel=0.1)


def test_truncated_copy_of_real_file(tmp_path):
    _need_samples()
    text = (SAMPLES / "lj16_aselj_partial" / "lj16.energies").read_text()
    cut = text[: len(text) // 2]
    cut = cut[: cut.rindex("\n") + 40]  # stop inside a line, as a killed writer would
    path = tmp_path / "lj16.energies"
    path.write_text(cut)
    n_lines = cut.count("\n") + 1
    with pytest.raises(DataError, match=rf"lj16\.energies: line {n_lines}\b.*truncated"):
        read_energies(path)


# --------------------------------------------------------------------------- files that are not one run in order
# issue 13.4: reversed or doubled files printed a different, wrong table; a binary file a UnicodeDecodeError.


def _decreasing_run(tmp_path: Path, n: int = 40) -> tuple[Path, list[str]]:
    path = _write_energies(tmp_path / "run.energies", "10 1 0 False 2", np.linspace(5.0, 1.0, n), np.full(n, 10.0))
    return path, path.read_text().splitlines()


def test_reversed_or_doubled_energies_are_refused_with_the_line(tmp_path):
    path, lines = _decreasing_run(tmp_path)
    path.write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")  # samples in reverse
    with pytest.raises(
        DataError,
        match=r"run\.energies: line 3: the enthalpy rises from 1\.0 \(line 2\) to "
        r"1\.10256",
    ):
        read_energies(path)
    path.write_text("\n".join([*lines, *lines[1:]]) + "\n")  # the samples appended a second time
    with pytest.raises(DataError, match=rf"line {len(lines) + 1}: the enthalpy rises .*1 rise\(s\)"):
        read_energies(path)
    assert main([str(path), "-M", "100", "-D", "10", "-n", "3"]) == 2


def test_round_off_and_ties_in_the_enthalpy_are_accepted(tmp_path):
    enthalpy = np.array([5.0, 4.0, 4.0, 4.0 * (1 + 1e-12), 3.0, -2.0, -2.0 * (1 - 1e-12), -3.0])
    path = _write_energies(tmp_path / "ties.energies", "10 1 0 False 2", enthalpy, np.full(enthalpy.size, 10.0))
    assert read_energies(path).n_samples == enthalpy.size
    enthalpy[3] = 4.0 * (1 + 1e-7)  # beyond round-off
    path = _write_energies(tmp_path / "rise.energies", "10 1 0 False 2", enthalpy, np.full(enthalpy.size, 10.0))
    with pytest.raises(DataError, match="line 5: the enthalpy rises"):
        read_energies(path)


def test_doubled_real_pymatnest_file_is_refused(tmp_path):
    source = require_shared(SAMPLES / "mg16_1GPa_aseeam_partial" / "mg16_1GPa_aseeam.energies")
    lines = source.read_text().splitlines()
    assert read_energies(source).n_samples == len(lines) - 1  # the real file itself is fine
    doubled = tmp_path / "doubled.energies"
    doubled.write_text("\n".join([*lines, *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=rf"doubled\.energies: line {len(lines) + 1}: the enthalpy rises"):
        read_energies(doubled)


def test_binary_energies_file_is_a_clear_error(tmp_path, capsys):
    import subprocess
    import sys

    for name, content in (
        ("nul.energies", b"10 1 0 False 2\n0 1.0 5.0\x00\x00\n"),
        ("latin.energies", b"\x89PNG\r\n\x1a\n\xff\xfe binary"),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=rf"{name} is not a text file \(binary data at byte \d+\)"):
            read_energies(path)
        assert main([str(path), "-M", "100", "-D", "10", "-n", "3"]) == 2
        assert f"{name} is not a text file" in capsys.readouterr().err
    result = subprocess.run(
        [sys.executable, "-m", "nestdb.cli", "analyse", str(path), "-M", "100", "-D", "10", "-n", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "is not a text file" in result.stderr and "Traceback" not in result.stderr


def test_count_samples_of_header_only_and_binary_files(tmp_path):
    from nestdb.thermo.energies import count_samples

    path, lines = _decreasing_run(tmp_path, n=7)
    assert count_samples(path) == 7
    path.write_text(lines[0] + "\n")
    assert count_samples(path) == 0
    path.write_bytes(b"10 1 0 False 2\n0 1.0 5.0\n\xff\xfe\n")
    with pytest.raises(DataError, match="not a text file"):
        count_samples(path)
