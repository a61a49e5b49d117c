"""Enthalpy-pressure, Bain path, phonons, XRD, reference files and the phase diagram
(nestdb.bench), with the study's real Mg EAM and real NS/CASTEP files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from nestdb.bench.bain import bain_path, bct_cell
from nestdb.bench.enthalpy import enthalpy_curve, relative_enthalpies, stable_structure, transition_pressures
from nestdb.bench.phase_diagram import plot_phase_diagram
from nestdb.bench.phonons import frequency_rmse, phonon_dispersion
from nestdb.bench.plots import compare_bain, compare_enthalpy, compare_phonons
from nestdb.bench.reference_files import enthalpy_from_ev, read_reference_ev
from nestdb.bench.xrd import patterns_by_temperature, plot_patterns, powder_pattern
from nestdb.errors import ConfigError, DataError
from nestdb.structures.crystals import build_structure

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MG = SHARED / "data" / "mg"
NS_RUN = MG / "pymatnest" / "samples" / "mg16_1GPa_fasteam"


@pytest.fixture(scope="module")
def eam():
    require_shared(MG / "Mg1.eam.fs")
    from nestdb.models.calculators import make_calculator

    return make_calculator({"type": "eam", "file": str(MG / "Mg1.eam.fs"), "kind": "eam/fs"})


@pytest.fixture(scope="module")
def eam_enthalpies(eam):
    calls = []

    def calculator_for(label, atoms):
        calls.append(label)
        return eam

    table = pd.concat(
        [enthalpy_curve(name, calculator_for, [0, 5, 10], "Mg") for name in ("hcp", "fcc", "bcc", "dhcp")],
        ignore_index=True,
    )
    return table, calls


def test_enthalpy_curves_eam(eam_enthalpies, eam):
    table, calls = eam_enthalpies
    assert len(table) == 12 and len(calls) == 12 and "hcp_P5" in calls
    assert table.converged.all() and table.enthalpy_per_atom.notna().all()
    # Fixed ratios: the hexagonal cells keep their ideal c/a.
    assert np.allclose(table[table.structure == "hcp"].c_over_a, 1.624)
    # Volumes shrink with pressure; H = E + PV, and dH/dP = V (finite difference, first-order).
    hcp = table[table.structure == "hcp"].sort_values("pressure_gpa")
    assert np.all(np.diff(hcp.volume_per_atom) < 0)
    dh_dp = (hcp.enthalpy_per_atom.iloc[1] - hcp.enthalpy_per_atom.iloc[0]) / (5 * 0.006241509)
    assert hcp.volume_per_atom.iloc[1] < dh_dp < hcp.volume_per_atom.iloc[0]
    # Relaxed at the right pressure: the stress of the relaxed cell is -P.
    atoms = build_structure("hcp", "Mg", volume_per_atom=hcp.volume_per_atom.iloc[2])
    atoms.calc = eam
    assert -atoms.get_stress()[:3].mean() / 0.006241509 == pytest.approx(10.0, abs=0.1)


def test_transitions_eam_hcp_to_fcc(eam_enthalpies):
    table, _ = eam_enthalpies
    # This EAM's known flaw (method.md): fcc below hcp a few GPa up (see test_bench.py).
    assert stable_structure(table, 0.0) == "hcp"
    assert stable_structure(table, 10.0) == "fcc"
    transitions = transition_pressures(table)
    assert transitions[0]["from"] == "hcp" and transitions[0]["to"] == "fcc"
    assert 0.0 < transitions[0]["pressure_gpa"] < 10.0 and transitions[0]["converged"]
    relative = relative_enthalpies(table)
    assert np.allclose(relative[relative.structure == "hcp"].delta_enthalpy_per_atom, 0.0)


def test_transition_pressure_is_the_crossing_of_straight_lines():
    # H_a = 1 + 0.1 P, H_b = 2 + 0.05 P cross at P = 20 exactly.
    pressures = np.array([0.0, 15.0, 25.0, 40.0])
    table = pd.DataFrame(
        {
            "structure": ["a"] * 4 + ["b"] * 4,
            "pressure_gpa": np.concatenate([pressures, pressures]),
            "enthalpy_per_atom": np.concatenate([1 + 0.1 * pressures, 2 + 0.05 * pressures]),
            "converged": [True] * 7 + [False],
        }
    )
    (transition,) = transition_pressures(table)
    assert transition["from"] == "a" and transition["to"] == "b"
    assert transition["pressure_gpa"] == pytest.approx(20.0)
    assert transition["bracket_gpa"] == [15.0, 25.0] and transition["converged"]


def test_relaxed_c_over_a_keeps_hexagonal_symmetry(eam):
    table = enthalpy_curve("hcp", lambda label, atoms: eam, [0.0, 10.0], "Mg", relax_c_over_a=True)
    assert table.converged.all()
    assert not np.allclose(table.c_over_a, 1.624, atol=1e-3)  # c/a relaxed
    assert 1.5 < table.c_over_a.min() and table.c_over_a.max() < 1.75


def test_unconverged_relaxation_is_reported_not_dropped(eam):
    table = enthalpy_curve("bcc", lambda label, atoms: eam, [0.0, 20.0], "Mg", fmax=1e-9, max_steps=1)
    assert len(table) == 2 and not table.converged.any()
    with pytest.raises(ConfigError, match="hcp, bcc, fcc, dhcp"):
        enthalpy_curve("bct", lambda label, atoms: eam, [0.0], "Mg")


def test_bain_path_ends_are_bcc_and_fcc(eam, eam_enthalpies):
    cell = bct_cell(np.sqrt(2.0), 20.0, "Mg")
    assert cell.get_volume() == pytest.approx(20.0)
    path = bain_path(lambda label, atoms: eam, [0.0, 10.0], "Mg", n_points=3)
    assert len(path) == 6 and path.converged.all()
    assert path.c_over_a.iloc[0] == pytest.approx(1.0) and path.c_over_a.iloc[2] == pytest.approx(np.sqrt(2))
    table, _ = eam_enthalpies
    for pressure in (0.0, 10.0):
        rows = path[path.pressure_gpa == pressure]
        for name, index in (("bcc", 0), ("fcc", 2)):
            expected = table[(table.structure == name) & (table.pressure_gpa == pressure)].enthalpy_per_atom.iloc[0]
            assert rows.enthalpy_per_atom.iloc[index] == pytest.approx(expected, abs=2e-4)


def test_phonons_eam_hcp(eam):
    result = phonon_dispersion("hcp", lambda label, atoms: eam, "Mg", supercell=(3, 3, 2), npoints=40)
    frequencies = np.array(result["frequencies_thz"])
    assert frequencies.shape == (len(result["qpoints"]), 6)  # 2 atoms: 6 branches
    assert result["path"].startswith("G") and result["special_labels"][0] == "G"
    # Acoustic modes vanish at Gamma (acoustic sum rule of the symmetrised force constants).
    assert max(result["gamma_acoustic_thz"]) < 0.05
    assert not result["imaginary"]
    assert 5.0 < frequencies.max() < 12.0  # Mg: ~7.5 THz measured; EAMs stiffer
    assert frequency_rmse(result, result) == 0.0
    softer = dict(result, frequencies_thz=(0.9 * frequencies).tolist())
    assert frequency_rmse(softer, result) > 0.1


def test_xrd_bragg_peaks_of_fcc():
    two_theta = np.linspace(5, 30, 2501)
    fcc = build_structure("fcc", "Mg", volume_per_atom=23.0)
    pattern = powder_pattern(fcc, two_theta, wavelength=0.62, fwhm=0.1)
    a = (4 * 23.0) ** (1 / 3)
    # Strongest low-angle peak: (111) at 2 theta = 2 asin(lambda / 2d), d = a / sqrt(3).
    expected_111 = 2 * np.degrees(np.arcsin(0.62 * np.sqrt(3) / (2 * a)))
    low = two_theta < 16.5
    assert two_theta[low][np.argmax(pattern[low])] == pytest.approx(expected_111, abs=0.02)
    # (100) is forbidden in fcc: no intensity there.
    forbidden = 2 * np.degrees(np.arcsin(0.62 / (2 * a)))
    assert pattern[np.argmin(abs(two_theta - forbidden))] < 1e-3 * pattern.max()
    # A supercell is the same crystal.
    np.testing.assert_allclose(
        powder_pattern(fcc.repeat((2, 2, 2)), two_theta, 0.62, 0.1), pattern, atol=1e-8 * pattern.max()
    )
    with pytest.raises(ConfigError):
        patterns_by_temperature([fcc], [100.0], [300, 100], two_theta)


def test_xrd_of_real_ns_run_by_temperature(tmp_path):
    require_shared(NS_RUN)
    from nestdb.bench.stage import bench_xrd
    from nestdb.thermo.stage import analyse_run

    energies = NS_RUN / "mg16_1GPa_fasteam.energies"
    traj = next(NS_RUN.glob("*.traj*.extxyz"))
    analyse_run(
        energies,
        tmp_path / "thermo.csv",
        tmp_path / "temps.csv",
        tmp_path / "thermo.png",
        {"t_min": 100, "t_max": 3000, "t_step": 20},
    )
    cfg = {
        "wavelength": 0.62,
        "two_theta_range": [5.0, 25.0],
        "two_theta_step": 0.05,
        "fwhm": 0.3,
        "temperature_bins": [0, 600, 1200, 5000],
        "max_per_bin": 5,
    }
    summary = bench_xrd(
        traj, tmp_path / "temps.csv", cfg, tmp_path / "xrd.csv", tmp_path / "xrd.png", "1 GPa", element="Mg"
    )
    table = pd.read_csv(tmp_path / "xrd.csv")
    assert len(summary["bins"]) >= 2 and table.shape[1] == 1 + len(summary["bins"])
    assert (tmp_path / "xrd.png").is_file()
    # the figure stacks the CSV's patterns, each normalised to 1 and offset by 1.1, labelled with its bin
    binned = [
        {**b, "intensity": table[column].to_numpy()}
        for b, column in zip(summary["bins"], table.columns[1:], strict=True)
    ]
    ax = plot_patterns(table.two_theta.to_numpy(), binned, tmp_path / "again.png").axes[0]
    assert ax.get_xlabel() == "2θ (degrees)" and len(ax.lines) == len(binned)
    for k, (line, column) in enumerate(zip(ax.lines, table.columns[1:], strict=True)):
        np.testing.assert_array_equal(line.get_xdata(), table.two_theta)
        np.testing.assert_allclose(line.get_ydata(), table[column] / table[column].max() + 1.1 * k, rtol=1e-12)
    b = summary["bins"][0]
    assert ax.texts[0].get_text() == f"{b['t_low']:g}–{b['t_high']:g} K (n={b['n_samples']})"
    cold, hot = table.iloc[:, 1].to_numpy(), table.iloc[:, -1].to_numpy()
    # The crystal (cold) has sharp Bragg peaks; the hot fluid/gas a diffuse pattern.
    assert cold.max() / np.median(cold) > 3 * hot.max() / np.median(hot)


def test_reference_files_real_castep_and_errors(tmp_path):
    castep = MG / "castep_single_points"
    require_shared(castep)
    ev = read_reference_ev({"hcp": str(castep / "mg_000[0-3].castep")})
    assert len(ev) == 4 and set(ev.structure) == {"hcp"}
    assert np.all((-1690 < ev.energy_per_atom) & (ev.energy_per_atom < -1688))  # CASTEP Mg, eV/atom
    first = read(castep / "mg_0000.castep")
    assert ev.volume_per_atom.iloc[0] == pytest.approx(
        sorted(read(p).get_volume() / 16 for p in sorted(castep.glob("mg_000[0-3].castep")))[0]
    )
    # The force-consistent (free) energy, as for the model side.
    assert first.get_potential_energy(force_consistent=True) / 16 in set(ev.energy_per_atom)
    with pytest.raises(ConfigError, match="matches no file"):
        read_reference_ev({"hcp": str(tmp_path / "none*.castep")})
    with pytest.raises(ConfigError, match="hcp, bcc, fcc, dhcp"):
        read_reference_ev({"hex": str(castep / "*.castep")})
    (tmp_path / "broken.castep").write_text("not a castep file\n")
    with pytest.raises(DataError, match="broken.castep"):
        read_reference_ev({"fcc": str(tmp_path / "broken.castep")})


def test_enthalpy_from_files_matches_relaxation(eam, tmp_path, eam_enthalpies):
    # Reference "outputs" written by ASE at fixed-ratio volumes; H(P) from their EOS
    # must equal the relaxed enthalpies.
    for k, scale in enumerate(np.linspace(0.78, 1.04, 8)):
        atoms = build_structure("hcp", "Mg", volume_per_atom=23.0 * scale)
        atoms.calc = eam
        energy = atoms.get_potential_energy()
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        write(tmp_path / f"hcp_{k}.extxyz", atoms)
    ev = read_reference_ev({"hcp": str(tmp_path / "hcp_*.extxyz")})
    h = enthalpy_from_ev(ev, [0.0, 5.0, 10.0, 200.0])
    table, _ = eam_enthalpies
    relaxed = table[table.structure == "hcp"].enthalpy_per_atom.to_numpy()
    np.testing.assert_allclose(h.enthalpy_per_atom.iloc[:3], relaxed, atol=1e-3)
    assert h.converged.iloc[:3].all() and not h.converged.iloc[3]  # 200 GPa is outside the sampled volumes


def _check_figure(kind: str, model: dict, reference: dict, table: pd.DataFrame, tmp_path: Path) -> None:
    """The comparison figure of ``kind`` draws the numbers of its CSV (``table``) and of the model's results."""
    compare = {"enthalpy": compare_enthalpy, "bain": compare_bain, "phonons": compare_phonons}[kind]
    _, fig = compare(model, reference, tmp_path / "again.csv", tmp_path / "again.png")
    if kind == "enthalpy":  # left: H(P) per side and structure
        lines = {line.get_label(): line for line in fig.axes[0].lines}
        for (structure, side), rows in table.melt(
            id_vars=["structure", "pressure_gpa"], value_vars=["enthalpy_per_atom_model", "enthalpy_per_atom_reference"]
        ).groupby(["structure", "variable"]):
            rows = rows.sort_values("pressure_gpa")
            np.testing.assert_allclose(
                lines[f"{side.rsplit('_', 1)[1]} {structure}"].get_data(), [rows.pressure_gpa, rows.value]
            )
    elif kind == "bain":  # H - H(bcc) against c/a, model and reference at each pressure
        lines = {line.get_label(): line for line in fig.axes[0].lines}
        assert fig.axes[0].get_xlabel() == "c/a (1: bcc, √2: fcc)"
        for side in ("model", "reference"):
            np.testing.assert_allclose(
                lines[f"{side} 0 GPa"].get_data(), [table.c_over_a, table[f"relative_enthalpy_meV_{side}"]]
            )
    else:  # one branch per line, breaks as NaN; the title carries the CSV's RMSE
        ax = fig.axes[0]
        assert (
            ax.get_title().startswith(f"fcc: RMSE {table.rmse_thz.iloc[0]:.2f} THz")
            and ax.get_ylabel() == "frequency (THz)"
        )
        frequencies = np.asarray(model["fcc"]["frequencies_thz"])
        branches = [line for line in ax.lines if line.get_color() == "C3"]  # the model's
        assert len(branches) == frequencies.shape[1]
        for j, line in enumerate(branches):
            y = np.asarray(line.get_ydata(), dtype=float)
            np.testing.assert_allclose(y[np.isfinite(y)], frequencies[:, j])


def test_property_stages_model_against_reference(eam, tmp_path):
    """The reference stage with the `potential` labeller (EAM) and the model stage with
    a different model (EMT-free: the EAM scaled) write tables, figures and summaries."""
    from nestdb.bench.properties import compare_property
    from nestdb.bench.stage import bench_property_reference

    bench = {
        "enthalpy": {
            "structures": ["hcp", "fcc"],
            "pressures": [0, 10],
            "relax_c_over_a": False,
            "fmax": 0.005,
            "max_steps": 40,
        },
        "bain": {"pressures": [0], "n_points": 4, "fmax": 0.005, "max_steps": 40},
        "phonons": {
            "structures": ["fcc"],
            "supercell": {"fcc": [2, 2, 2]},
            "displacement": 0.05,
            "npoints": 30,
            "pressure": 0.0,
            "fmax": 0.005,
        },
    }
    spec = {"code": "potential", "potential": {"type": "eam", "file": str(MG / "Mg1.eam.fs"), "kind": "eam/fs"}}
    for kind in ("enthalpy", "bain", "phonons"):
        reference = bench_property_reference(
            kind, spec, bench, "Mg", tmp_path / f"ref_{kind}.json", tmp_path / f"raw_{kind}"
        )
        result = compare_property(
            kind,
            eam,
            bench,
            "Mg",
            tmp_path / f"ref_{kind}.json",
            tmp_path / f"{kind}.json",
            tmp_path / f"{kind}.csv",
            tmp_path / f"{kind}.png",
        )
        assert (tmp_path / f"{kind}.png").is_file()
        table = pd.read_csv(tmp_path / f"{kind}.csv")
        saved = json.loads((tmp_path / f"{kind}.json").read_text())
        assert saved["comparison"] == json.loads(json.dumps(result["comparison"]))
        _check_figure(kind, saved["model"], json.loads((tmp_path / f"ref_{kind}.json").read_text()), table, tmp_path)
        # Same model on both sides: zero differences.
        if kind == "enthalpy":
            assert {"converged_model", "converged_reference"} <= set(table.columns)
            assert result["comparison"]["delta_h_rmse_meV_per_atom"] == pytest.approx(0.0, abs=1e-6)
            assert result["comparison"]["transitions_model"] == reference["transitions"]
        elif kind == "bain":
            assert result["comparison"]["rmse_meV_per_atom"] == pytest.approx(0.0, abs=1e-6)
        else:
            assert result["comparison"]["fcc"]["rmse_thz"] == pytest.approx(0.0, abs=1e-9)
            assert table.max_gamma_acoustic_model_thz.iloc[0] < 0.05


def test_melting_line_from_real_ns_run(tmp_path):
    require_shared(NS_RUN)
    from nestdb.bench.stage import bench_phase_diagram
    from nestdb.thermo import analyse, read_energies

    table = analyse(read_energies(NS_RUN / "mg16_1GPa_fasteam.energies"), np.arange(300, 2500, 5.0))
    table.to_csv(tmp_path / "thermo.csv", index=False)
    final = next(NS_RUN.glob("*.snapshot.19999*.extxyz"), None)
    line = bench_phase_diagram(
        {1.0: tmp_path / "thermo.csv"},
        16,
        tmp_path / "melting.csv",
        tmp_path / "pd.png",
        json_path=tmp_path / "transitions.json",
        finals={1.0: final} if final else None,
    )
    row = line.iloc[0]
    if final:  # the EAM's low-temperature solid at 1 GPa, from the final walkers' order parameters
        assert row.solid_phase in ("hcp", "fcc")
    # EAM Mg, 16 atoms, 1 GPa: melting C_p peak near 835 K (reference/pymatnest-format.md).
    assert row.found and 700 < row.melting_T < 1000
    assert row.low < row.melting_T < row.high
    assert (tmp_path / "pd.png").is_file()
    written = json.loads((tmp_path / "transitions.json").read_text())
    assert written["transitions"]["1"]
    # the figure: the melting point of the CSV with its FWHM as error bar, the other C_p peaks of the JSON
    melting = pd.read_csv(tmp_path / "melting.csv")
    ax = plot_phase_diagram(melting, written["transitions"], 16, tmp_path / "again.png").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "pressure (GPa)",
        "temperature (K)",
        "NS phase diagram, 16 atoms",
    )
    np.testing.assert_allclose(ax.lines[0].get_data(), [[1.0], [melting.melting_T.iloc[0]]])
    (segments,) = [c.get_segments() for c in ax.collections]  # the error bar
    np.testing.assert_allclose(segments[0], [[1.0, melting.low.iloc[0]], [1.0, melting.high.iloc[0]]])
    others = sorted(t["temperature"] for t in written["transitions"]["1"] if t["kind"] != "melting")
    assert sorted(float(line.get_ydata()[0]) for line in ax.lines if line.get_marker() == "s") == pytest.approx(others)


def test_ev_elastic_stages_with_reference_files(eam, tmp_path):
    """E-V reference partly from files, elastic constants of two lattices with their symmetry."""
    from nestdb.bench.properties import compare_ev_elastic
    from nestdb.bench.stage import bench_reference

    for k, scale in enumerate((0.9, 0.95, 1.0, 1.05, 1.1)):
        atoms = build_structure("fcc", "Mg", volume_per_atom=23.0 * scale)
        atoms.calc = eam
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy())
        write(tmp_path / f"fcc_{k}.extxyz", atoms)
    bench = {
        "structures": ["hcp", "fcc"],
        "ev_points": 5,
        "ev_range": [0.9, 1.1],
        "elastic": {
            "structure": ["fcc", "hcp"],
            "delta": 0.01,
            "n_steps": 3,
            "relax_fmax": 0.005,
            "relax_max_steps": 30,
            "kpt_density": 6.0,
        },
        "reference_files": {"fcc": str(tmp_path / "fcc_*.extxyz")},
    }
    spec = {"code": "potential", "potential": {"type": "eam", "file": str(MG / "Mg1.eam.fs"), "kind": "eam/fs"}}
    bench_reference(spec, bench, "Mg", tmp_path / "ev.csv", tmp_path / "elastic.json", tmp_path / "raw")
    reference = pd.read_csv(tmp_path / "ev.csv")
    assert reference[reference.structure == "fcc"].source.str.endswith(".extxyz").all()
    assert len(reference[reference.structure == "hcp"]) == 5
    summary = compare_ev_elastic(
        eam,
        bench,
        "Mg",
        tmp_path / "ev.csv",
        tmp_path / "elastic.json",
        tmp_path / "model_ev.csv",
        tmp_path / "ev.png",
        tmp_path / "elastic.csv",
        tmp_path / "summary.json",
    )
    # Same EAM on both sides, at the files' volumes: identical curves.
    assert summary["ev_shape_rmse_meV_per_atom"]["fcc"] == pytest.approx(0.0, abs=1e-9)
    elastic = pd.read_csv(tmp_path / "elastic.csv")
    assert set(elastic[elastic.structure == "fcc"].constant) == {"C11", "C12", "C44"}
    assert set(elastic[elastic.structure == "hcp"].constant) == {"C11", "C12", "C13", "C33", "C44", "C66"}
    assert elastic.model_positive_definite.all() and elastic.model_relaxed.all()
    np.testing.assert_allclose(elastic.difference_GPa, 0.0, atol=1e-6)


def test_phase_diagram_block_uses_final_model_and_overrides():
    from nestdb.config import phase_diagram_block

    config = {
        "elements": ["Mg"],
        "ns": {
            "composition": {"Mg": 8},
            "n_walkers": 24,
            "committee_std_max": 60.0,
            "committee_stop_std": 50.0,
            "calculator": {"type": "lj"},
        },
        "bench": {"phase_diagram": {"n_atoms": 64, "ns": {"n_walkers": 640}}},
    }
    block = phase_diagram_block(config)
    assert block["composition"] == {"Mg": 64} and block["n_walkers"] == 640
    assert block["calculator"] == {"type": "ace_committee"}
    assert "committee_std_max" not in block and "committee_stop_std" not in block
    assert config["ns"]["n_walkers"] == 24  # the config itself is untouched
