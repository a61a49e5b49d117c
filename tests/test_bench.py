"""Tests of nestdb.bench with EMT and the study's real Mg EAM."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase.calculators.emt import EMT

from nestdb.bench import elastic_constants, ev_curve, fit_eos, plot_ev
from nestdb.errors import ConfigError, DataError
from nestdb.relax import relax_cell
from nestdb.structures.crystals import KNOWN_STRUCTURES, build_structure
from nestdb.units import GPA

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EAM_FILE = SHARED / "data" / "mg" / "Mg1.eam.fs"


@pytest.fixture(scope="module")
def eam():
    require_shared(EAM_FILE)
    from matscipy.calculators.eam import EAM

    return EAM(str(EAM_FILE), kind="eam/fs")


@pytest.fixture(scope="module")
def eam_curves(eam):
    return {name: ev_curve(build_structure(name, "Mg"), eam) for name in ("hcp", "bcc", "fcc", "dhcp")}


@pytest.mark.parametrize("name, natoms", [("hcp", 2), ("bcc", 1), ("fcc", 1), ("dhcp", 4)])
def test_build_structure_volume_and_shape(name, natoms):
    atoms = build_structure(name, "Mg", volume_per_atom=20.0)
    assert len(atoms) == natoms and atoms.pbc.all()
    assert atoms.get_volume() / natoms == pytest.approx(20.0)
    distances = atoms.repeat(2).get_all_distances(mic=True)
    nearest = distances[distances > 1e-6].min()
    # Close-packed (hcp/fcc/dhcp at ideal ratio) and bcc nearest-neighbour distances at 20 A^3/atom.
    expected = (np.sqrt(3) / 2) * (2 * 20.0) ** (1 / 3) if name == "bcc" else (np.sqrt(2) * 20.0) ** (1 / 3)
    assert nearest == pytest.approx(expected, rel=0.01)


def test_build_structure_unknown_lists_known():
    with pytest.raises(ConfigError) as excinfo:
        build_structure("hpc", "Mg")
    for name in KNOWN_STRUCTURES:
        assert name in str(excinfo.value)


def test_ev_curve_columns_and_volumes():
    atoms = build_structure("fcc", element="Cu", volume_per_atom=11.8)
    df = ev_curve(atoms, EMT(), volume_scales=[1.1, 0.9, 1.0, 0.95, 1.05])
    assert list(df.columns[:3]) == ["volume_scale", "volume_per_atom", "energy_per_atom"]
    np.testing.assert_allclose(df["volume_per_atom"], 11.8 * np.array([0.9, 0.95, 1.0, 1.05, 1.1]))
    assert df["volume_per_atom"].is_monotonic_increasing


def test_fit_eos_recovers_known_birch_murnaghan():
    # Synthetic E(V) from a known Birch-Murnaghan curve: the fit must give back its parameters.
    v0, e0, b0_ev, bp = 20.0, -1.5, 0.25, 4.0
    volumes = np.linspace(17, 23, 7)
    eta = (v0 / volumes) ** (2 / 3)
    energies = e0 + 9 * v0 * b0_ev / 16 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))
    fit = fit_eos(pd.DataFrame({"volume_per_atom": volumes, "energy_per_atom": energies}))
    assert fit["fit_ok"] and fit["minimum_in_range"]
    assert fit["V0"] == pytest.approx(v0, rel=1e-4)
    assert fit["E0"] == pytest.approx(e0, abs=1e-6)
    assert fit["B0"] == pytest.approx(b0_ev / GPA, rel=1e-3)


def test_fit_eos_flags_minimum_off_range():
    volumes = np.linspace(10, 14, 6)
    energies = 0.05 * (volumes - 20.0) ** 2  # minimum far above the scan
    fit = fit_eos(pd.DataFrame({"volume_per_atom": volumes, "energy_per_atom": energies}))
    assert fit["minimum_in_range"] is False
    assert fit["message"]
    with pytest.raises(DataError):
        fit_eos(pd.DataFrame({"volume_per_atom": [1.0, 2.0], "energy_per_atom": [0.0, 1.0]}))


def test_eam_ev_minima_inside_range_and_ordering(eam_curves):
    fits = {name: fit_eos(df) for name, df in eam_curves.items()}
    for name, fit in fits.items():
        assert fit["fit_ok"] and fit["minimum_in_range"], (name, fit)
        assert 20.0 < fit["V0"] < 26.0  # Mg: ~23 A^3/atom
        assert 20.0 < fit["B0"] < 80.0  # Mg: ~35-45 GPa
    # This EAM's ordering at its E-V minima: hcp < dhcp < fcc < bcc, fcc only
    # ~13 meV/atom above hcp (its spurious fcc phase appears under compression,
    # see test_eam_fcc_below_hcp_under_pressure).
    order = sorted(fits, key=lambda name: fits[name]["E0"])
    assert order == ["hcp", "dhcp", "fcc", "bcc"]
    assert fits["fcc"]["E0"] - fits["hcp"]["E0"] < 0.03


def test_eam_fcc_below_hcp_under_pressure(eam):
    # method.md: this EAM wrongly predicts fcc at low pressure (DFT: hcp up to ~53 GPa).
    # Measured here: the relaxed 0 K enthalpies of hcp and fcc cross near 5 GPa.
    def enthalpy(name, pressure_gpa):
        _, info = relax_cell(build_structure(name, "Mg"), eam, pressure_gpa=pressure_gpa, fmax=5e-3)
        assert info["converged"]
        return info["energy_per_atom"] + pressure_gpa * GPA * info["volume_per_atom"]

    assert enthalpy("hcp", 0.0) < enthalpy("fcc", 0.0)
    assert enthalpy("fcc", 10.0) < enthalpy("hcp", 10.0)


def test_relax_cell_reaches_zero_pressure_and_keeps_hexagonal(eam):
    start = build_structure("hcp", "Mg", volume_per_atom=21.0, c_over_a=1.58)
    relaxed, info = relax_cell(start, eam, fmax=1e-3)
    assert info["converged"] and info["steps"] > 0 and info["final_fmax"] < 1e-3
    a, b, c, alpha, beta, gamma = relaxed.cell.cellpar()
    assert a == pytest.approx(b, rel=1e-6) and gamma == pytest.approx(120.0, abs=1e-4)
    assert alpha == pytest.approx(90.0, abs=1e-4) and beta == pytest.approx(90.0, abs=1e-4)
    relaxed.calc = eam
    # fmax 1e-3 eV/A on the cell degrees of freedom means residual stress of order 1e-3/V.
    assert np.abs(relaxed.get_stress()).max() / GPA < 0.02
    assert relaxed.constraints == []
    # Under pressure the cell must shrink.
    squeezed, _ = relax_cell(start, eam, pressure_gpa=10.0)
    assert squeezed.get_volume() < relaxed.get_volume()


def test_relax_cell_reports_non_convergence(eam):
    start = build_structure("hcp", "Mg", volume_per_atom=19.0, c_over_a=1.5)
    _, info = relax_cell(start, eam, fmax=1e-6, max_steps=2)
    assert info["converged"] is False and info["steps"] == 2


def test_eam_hcp_elastic_constants(eam):
    hexagonal = elastic_constants(build_structure("hcp", "Mg"), eam, symmetry="hexagonal")
    assert hexagonal["relaxation"]["converged"]
    assert hexagonal["internal_relaxation"]["count"] == 20
    assert hexagonal["internal_relaxation"]["all_converged"]
    assert hexagonal["positive_definite"]
    for name in ("C11", "C12", "C13", "C33", "C44"):
        assert 5.0 < hexagonal[name] < 150.0, (name, hexagonal[name])
    # A fit without assumed symmetry must find the hexagonal relations itself.
    full = np.array(elastic_constants(build_structure("hcp", "Mg"), eam, symmetry="triclinic")["C_gpa"])
    assert full[0, 0] == pytest.approx(full[1, 1], rel=0.02)  # C11 = C22
    assert full[3, 3] == pytest.approx(full[4, 4], rel=0.02)  # C44 = C55
    assert full[5, 5] == pytest.approx((full[0, 0] - full[0, 1]) / 2, rel=0.05)  # C66
    assert full[0, 0] == pytest.approx(hexagonal["C11"], rel=0.02)
    assert full[2, 2] == pytest.approx(hexagonal["C33"], rel=0.05)
    # Voigt bulk modulus agrees with the E-V curvature of the relaxed cell.
    fit = fit_eos(
        ev_curve(
            build_structure("hcp", "Mg", volume_per_atom=hexagonal["volume_per_atom"]),
            eam,
            volume_scales=np.linspace(0.98, 1.02, 5),
        )
    )
    assert hexagonal["bulk_modulus_voigt_gpa"] == pytest.approx(fit["B0"], rel=0.1)


def test_emt_cubic_elastic_constants():
    result = elastic_constants(build_structure("fcc", element="Cu", volume_per_atom=11.6), EMT(), symmetry="cubic")
    assert result["positive_definite"]
    assert set(result) >= {"C11", "C12", "C44"}
    # EMT Cu: C11 > C12 > 0 and bulk modulus (C11 + 2 C12)/3 near 135 GPa.
    assert result["C11"] > result["C12"] > 0
    assert (result["C11"] + 2 * result["C12"]) / 3 == pytest.approx(135.0, rel=0.15)


def test_elastic_unknown_symmetry():
    with pytest.raises(ConfigError, match="hexagonal"):
        elastic_constants(build_structure("hcp", "Mg"), EMT(), symmetry="hexagnal")


def test_plot_ev_draws_each_curve_relative_to_its_model_minimum(tmp_path, eam_curves):
    shifted = {name: df.assign(energy_per_atom=df["energy_per_atom"] + 100.0) for name, df in eam_curves.items()}
    path = tmp_path / "plots" / "ev.png"
    ax = plot_ev({"eam": eam_curves, "reference": shifted}, path).axes[0]
    assert path.is_file()
    assert ax.get_xlabel() == "volume (Å$^3$/atom)" and ax.get_ylabel() == "energy (eV/atom), relative to model minimum"
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {f"{model} {name}" for model in ("eam", "reference") for name in eam_curves}
    lowest = min(float(df["energy_per_atom"].min()) for df in eam_curves.values())
    for name, df in eam_curves.items():
        np.testing.assert_array_equal(lines[f"eam {name}"].get_xdata(), df["volume_per_atom"])
        np.testing.assert_allclose(lines[f"eam {name}"].get_ydata(), df["energy_per_atom"] - lowest, atol=1e-12)
        # the reference's 100 eV offset is its own zero: relative curves coincide
        np.testing.assert_allclose(lines[f"reference {name}"].get_ydata(), lines[f"eam {name}"].get_ydata(), atol=1e-9)
    absolute = plot_ev({"eam": eam_curves, "reference": shifted}, tmp_path / "abs.png", relative=False).axes[0]
    offsets = [
        b.get_ydata() - a.get_ydata()
        for a, b in zip(absolute.lines[: len(eam_curves)], absolute.lines[len(eam_curves) :], strict=True)
    ]
    np.testing.assert_allclose(offsets, 100.0, atol=1e-9)
    with pytest.raises(DataError):
        plot_ev({}, tmp_path / "empty.png")


def test_collapsing_relaxation_is_abandoned_and_reported():
    """A model that collapses the cell must not hang the benchmark: the
    relaxation stops once the volume leaves the sane range and says why."""
    from nestdb.potentials.lj import FastLennardJones

    # sigma far below the Mg bond length: the cell wants to shrink a lot.
    calc = FastLennardJones(epsilon=0.5, sigma=1.2, cutoff=4.0)
    start = build_structure("fcc", "Mg")
    relaxed, info = relax_cell(start, calc, fmax=1e-3, max_steps=200)
    assert not info["converged"]
    assert "volume changed" in info["abandoned"]
    assert info["steps"] < 200
    result = elastic_constants(start, calc, symmetry="cubic", delta=0.01, n_steps=3, max_steps=50)
    assert result["relaxation"]["abandoned"]
    assert result["volume_per_atom"] == pytest.approx(start.get_volume() / len(start))
