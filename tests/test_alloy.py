"""Alloy benchmarks: formation energies and convex hull, Warren-Cowley order, mixing enthalpy of NS runs."""

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from nestdb.bench.alloy import (
    alloy_structures,
    compare_alloy,
    formation_table,
    formula,
    hull_energies,
    ordered_cell,
    plot_alloy,
)
from nestdb.bench.alloy_samples import mixing_enthalpy, plot_sro, weighted_by_temperature
from nestdb.bench.properties import compute_property
from nestdb.errors import ConfigError, DataError
from nestdb.structures.crystals import build_structure, reference_c_over_a, reference_volume_per_atom
from nestdb.structures.warren_cowley import neighbour_pairs, warren_cowley


# ---------------------------------------------------------------- structures per element
def test_reference_volumes_come_from_each_element():
    # fcc a^3/4, hcp sqrt(3)/4 a^3 c/a (ASE's experimental lattice constants)
    assert reference_volume_per_atom("Cu") == pytest.approx(3.61**3 / 4)
    assert reference_volume_per_atom("Mg") == pytest.approx(np.sqrt(3) / 4 * 3.21**3 * 1.624)
    assert reference_volume_per_atom("Fe") == pytest.approx(2.87**3 / 2)
    assert reference_c_over_a("Mg") == pytest.approx(1.624)
    assert reference_c_over_a("Cu") == pytest.approx(np.sqrt(8 / 3))
    fcc = build_structure("fcc", "Al")
    assert fcc.get_volume() == pytest.approx(4.05**3 / 4)
    with pytest.raises(ConfigError, match="Xq"):
        build_structure("fcc", "Xq")


def test_ordered_cells_match_ase_prototypes():
    from ase.lattice.compounds import B2, L1_0, L1_2

    a = 3.75
    for ours, theirs in (
        (ordered_cell("L1_2", "Cu", "Au", a**3 / 4, (3, 1)), L1_2(("Au", "Cu"), latticeconstant=a)),
        (ordered_cell("B2", "Cu", "Au", a**3 / 2), B2(("Cu", "Au"), latticeconstant=a)),
    ):
        assert ours.get_chemical_formula() == theirs.get_chemical_formula()
        assert ours.get_volume() / len(ours) == pytest.approx(theirs.get_volume() / len(theirs))
        assert warren_cowley(ours) == pytest.approx(warren_cowley(theirs))
    l10 = ordered_cell("L1_0", "Cu", "Au", a**3 / 4)
    reference = L1_0(("Cu", "Au"), latticeconstant=(a, a))
    assert l10.get_volume() / 2 == pytest.approx(reference.get_volume() / len(reference))
    assert warren_cowley(l10) == pytest.approx(warren_cowley(reference))


def test_structure_list_of_a_pair_and_a_ternary():
    names = [s["name"] for s in alloy_structures(["Cu", "Au"])]
    assert names == ["Cu_fcc", "Au_fcc", "Cu3Au_L1_2", "CuAu3_L1_2", "CuAu_L1_0", "CuAu_B2"]
    ternary = alloy_structures(["Cu", "Au", "Fe"], {"structures": ["B2"], "pure": {"Fe": ["bcc", "fcc"]}})
    assert [s["name"] for s in ternary] == ["Cu_fcc", "Au_fcc", "Fe_bcc", "Fe_fcc", "CuAu_B2", "CuFe_B2", "AuFe_B2"]
    # Vegard's law for the starting volume
    cu3au = alloy_structures(["Cu", "Au"])[2]["atoms"]
    expected = (3 * reference_volume_per_atom("Cu") + reference_volume_per_atom("Au")) / 4
    assert cu3au.get_volume() / 4 == pytest.approx(expected)
    assert formula({"Cu": 2, "Au": 2}) == "CuAu" and formula({"Cu": 3, "Au": 1}) == "Cu3Au"


# ---------------------------------------------------------------- hull
def test_binary_hull_by_hand():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    energy = np.array([0.0, -0.10, -0.12, 0.02, 0.0])
    hull = hull_energies(np.c_[1 - x, x], energy)
    # vertices (0, 0), (0.25, -0.10), (0.5, -0.12), (1, 0); at 0.75 the line from 0.5 to 1 gives -0.06
    np.testing.assert_allclose(hull, [0.0, -0.10, -0.12, -0.06, 0.0], atol=1e-9)


def test_ternary_hull_by_hand():
    fractions = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0], [0.5, 0.25, 0.25]])
    energy = np.array([0.0, 0.0, 0.0, -0.3, -0.05, -0.1])
    hull = hull_energies(fractions, energy)
    # A2BC = 1/4 A + 3/4 ABC: -0.225; AB has no C, so only A, B and itself reach it
    np.testing.assert_allclose(hull, [0, 0, 0, -0.3, -0.05, -0.225], atol=1e-9)


def test_formation_table_needs_every_pure_element():
    results = [
        {"name": "Cu_fcc", "prototype": "fcc", "counts": {"Cu": 1}, "energy_per_atom": -1.0},
        {"name": "CuAu_B2", "prototype": "B2", "counts": {"Cu": 1, "Au": 1}, "energy_per_atom": -1.0},
    ]
    with pytest.raises(DataError, match="no pure Au"):
        formation_table(results, ["Cu", "Au"])


def test_emt_formation_energies_and_hull_by_hand(tmp_path):
    result = compute_property("alloy", lambda name, atoms: EMT(), {"alloy": {"fmax": 0.005}}, ["Cu", "Au"])
    table = pd.DataFrame(result["table"]).set_index("name")
    assert table.converged.all()

    def emt_energy(atoms, volume):  # EMT energy per atom of a cell scaled to a volume per atom
        atoms = atoms.copy()
        atoms.set_cell(atoms.cell * (volume * len(atoms) / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
        atoms.calc = EMT()
        return atoms.get_potential_energy() / len(atoms)

    from ase.lattice.compounds import B2, L1_2

    cells = {
        "Cu_fcc": bulk("Cu", "fcc", a=3.6),
        "Au_fcc": bulk("Au", "fcc", a=4.1),
        "Cu3Au_L1_2": L1_2(("Au", "Cu"), latticeconstant=3.8),
        "CuAu_B2": B2(("Cu", "Au"), latticeconstant=3.2),
    }
    energies = {name: emt_energy(cell, table.loc[name, "volume_per_atom"]) for name, cell in cells.items()}
    mu_cu, mu_au = energies["Cu_fcc"], energies["Au_fcc"]
    assert table.loc["Cu3Au_L1_2", "formation_energy"] == pytest.approx(
        energies["Cu3Au_L1_2"] - 0.75 * mu_cu - 0.25 * mu_au, abs=1e-8
    )
    assert table.loc["CuAu_B2", "formation_energy"] == pytest.approx(
        energies["CuAu_B2"] - 0.5 * mu_cu - 0.5 * mu_au, abs=1e-8
    )
    # relaxed: 1 % more or less volume costs energy
    for name, cell in cells.items():
        volume = table.loc[name, "volume_per_atom"]
        assert min(emt_energy(cell, 0.99 * volume), emt_energy(cell, 1.01 * volume)) > energies[name]
    # EMT orders Cu3Au below the tie line of the elements; the hull is Cu, Cu3Au, Au
    assert table.loc["Cu3Au_L1_2", "formation_energy"] < 0
    assert sorted(table.index[table.on_hull]) == ["Au_fcc", "Cu3Au_L1_2", "Cu_fcc"]
    cu3au, au = table.loc["Cu3Au_L1_2", "formation_energy"], 0.0
    tie = cu3au + (0.5 - 0.25) / (1.0 - 0.25) * (au - cu3au)  # hull at x(Au) = 0.5
    assert table.loc["CuAu_B2", "e_above_hull"] == pytest.approx(table.loc["CuAu_B2", "formation_energy"] - tie)

    # model vs reference: a shifted model energy per element changes no formation energy
    shifted = {**result, "table": [dict(row) for row in result["table"]]}
    comparison = compare_alloy(shifted, result, tmp_path / "alloy.csv", tmp_path / "alloy.png", "EMT vs EMT")
    assert comparison["formation_mae_meV_per_atom"] == 0.0 and comparison["same_hull"]
    assert (tmp_path / "alloy.png").is_file()
    written = pd.read_csv(tmp_path / "alloy.csv")
    assert set(written.name) == set(table.index) and {"formation_error_meV", "x_Au"} <= set(written.columns)

    # The figure shows the numbers of the CSV: the Cu-Au hull's points and each structure's parity point.
    fig = plot_alloy(pd.DataFrame(result["table"]), pd.DataFrame(result["table"]), ["Cu", "Au"], tmp_path / "a.png")
    hull_ax, parity_ax = fig.axes
    assert hull_ax.get_xlabel().startswith("x(Au)") and "formation energy (meV/atom)" == hull_ax.get_ylabel()
    points = sorted(zip(*hull_ax.lines[0].get_data(), strict=True))
    expected = sorted(zip(written.x_Au, 1000 * written.formation_energy_model, strict=True))
    np.testing.assert_allclose(points, expected, atol=1e-9)
    parity = {text.get_text(): text.xy for text in parity_ax.texts}
    assert set(parity) == set(written.name)
    for row in written.itertuples():
        expected = (1000 * row.formation_energy_reference, 1000 * row.formation_energy_model)
        np.testing.assert_allclose(parity[row.name], expected, atol=1e-9)


def test_compare_alloy_reports_errors_per_structure(tmp_path):
    reference = {
        "elements": ["Cu", "Au"],
        "table": formation_table(
            [
                {"name": "Cu_fcc", "prototype": "fcc", "counts": {"Cu": 1}, "energy_per_atom": -3.0},
                {"name": "Au_fcc", "prototype": "fcc", "counts": {"Au": 1}, "energy_per_atom": -3.2},
                {"name": "CuAu_B2", "prototype": "B2", "counts": {"Cu": 1, "Au": 1}, "energy_per_atom": -3.15},
            ],
            ["Cu", "Au"],
        ).to_dict("records"),
    }
    model = {
        "elements": ["Cu", "Au"],
        "table": formation_table(
            [
                {"name": "Cu_fcc", "prototype": "fcc", "counts": {"Cu": 1}, "energy_per_atom": -3.0},
                {"name": "Au_fcc", "prototype": "fcc", "counts": {"Au": 1}, "energy_per_atom": -3.2},
                {"name": "CuAu_B2", "prototype": "B2", "counts": {"Cu": 1, "Au": 1}, "energy_per_atom": -3.05},
            ],
            ["Cu", "Au"],
        ).to_dict("records"),
    }
    summary = compare_alloy(model, reference, tmp_path / "a.csv", tmp_path / "a.png")
    # reference E_f(B2) = -3.15 + 3.1 = -0.05 eV (on the hull), model +0.05 (above): 100 meV/atom too high
    assert summary["errors_meV_per_atom"]["CuAu_B2"] == pytest.approx(100.0)
    assert summary["formation_mae_meV_per_atom"] == pytest.approx(100.0)
    assert summary["hull_reference"] == ["Au_fcc", "CuAu_B2", "Cu_fcc"] and not summary["same_hull"]


# ---------------------------------------------------------------- Warren-Cowley
def test_warren_cowley_of_ordered_structures():
    from ase.lattice.compounds import L1_2

    cu3au = L1_2(("Au", "Cu"), latticeconstant=3.75)
    # each Au has 12 Cu neighbours, each Cu 8 Cu and 4 Au: alpha = 1 - (4/12)/(1/4) = -1/3
    assert warren_cowley(cu3au, elements=["Cu", "Au"])["alpha_Cu-Au"] == pytest.approx(-1 / 3)
    assert warren_cowley(cu3au.repeat((2, 2, 2)), 12)["alpha_Au-Cu"] == pytest.approx(-1 / 3)
    b2 = ordered_cell("B2", "Cu", "Au", 13.0)
    assert warren_cowley(b2, 8)["alpha_Cu-Au"] == pytest.approx(-1.0)  # 8 nearest: all unlike
    assert warren_cowley(b2)["alpha_Cu-Au"] == pytest.approx(1 - (8 / 14) / 0.5)  # SANN: 8 unlike + 6 like
    assert np.isnan(warren_cowley(bulk("Cu", "fcc", a=3.6), elements=["Cu", "Au"])["alpha_Cu-Au"])
    i, j = neighbour_pairs(bulk("Cu", "fcc", a=3.6, cubic=True))
    assert np.bincount(i).tolist() == [12] * 4


def test_warren_cowley_of_random_and_separated_cells():
    rng = np.random.default_rng(5)
    lattice = bulk("Cu", "fcc", a=3.8, cubic=True).repeat(6)  # 864 sites
    alphas = []
    for _ in range(5):
        symbols = np.array(["Cu"] * len(lattice))
        symbols[rng.choice(len(lattice), len(lattice) // 4, replace=False)] = "Au"
        cell = lattice.copy()
        cell.set_chemical_symbols(symbols)
        alphas.append(warren_cowley(cell, elements=["Cu", "Au"])["alpha_Cu-Au"])
    assert abs(np.mean(alphas)) < 0.03  # random: 0 up to ~0.02 per draw, ~0.009 for the mean of 5
    separated = lattice.copy()
    separated.set_chemical_symbols(np.where(separated.positions[:, 0] < separated.cell[0, 0] / 2, "Cu", "Au"))
    # 12 (002) layers, 6 Cu then 6 Au: the 2 Cu layers at the interfaces have 4 of 12 neighbours Au,
    # p(Au|Cu) = 2/6 * 4/12 = 1/9, alpha = 1 - (1/9)/(1/2) = 7/9 (clustering)
    assert warren_cowley(separated, elements=["Cu", "Au"])["alpha_Cu-Au"] == pytest.approx(7 / 9)


def test_random_reference_is_the_zero_of_order_of_the_cell():
    from ase.lattice.compounds import L1_2

    from nestdb.structures.warren_cowley import random_reference

    # 4-atom fcc cell: every site neighbours every other through the images, any arrangement gives -1/3
    small = bulk("Cu", "fcc", a=3.8, cubic=True)
    small.set_chemical_symbols(["Cu", "Au", "Cu", "Cu"])
    assert random_reference(small, elements=["Cu", "Au"])["alpha_Cu-Au"] == pytest.approx(-1 / 3)
    # a large L1_2 supercell is ordered (-1/3), its shuffled arrangements are not (~0)
    large = L1_2(("Au", "Cu"), latticeconstant=3.75).repeat(5)
    assert warren_cowley(large, elements=["Cu", "Au"])["alpha_Cu-Au"] == pytest.approx(-1 / 3)
    assert abs(random_reference(large, elements=["Cu", "Au"], n_shuffles=5)["alpha_Cu-Au"]) < 0.03


def test_warren_cowley_rejects_bad_neighbour_rules():
    with pytest.raises(ConfigError, match="neighbours"):
        warren_cowley(bulk("Cu", "fcc", a=3.6), neighbours="twelve")
    with pytest.raises(DataError, match="cutoff"):
        warren_cowley(bulk("Cu", "fcc", a=3.6), neighbours=0.5)


# ---------------------------------------------------------------- NS samples
def test_weighted_averages_follow_the_ns_weights():
    from nestdb.thermo.analysis import log_prior
    from nestdb.thermo.energies import NSEnergies
    from nestdb.units import KB_EV_PER_K

    n = 200
    enthalpy = np.linspace(2.0, 0.0, n)
    energies = NSEnergies(
        n_walkers=10,
        n_cull=1,
        n_extra_dof=0,
        flat_v_prior=False,
        n_atoms=4,
        iters=np.arange(n),
        enthalpy=enthalpy,
        volume=np.full(n, 50.0),
    )
    values = np.c_[enthalpy**2]
    lines = np.arange(0, n, 2)  # every second sample in the trajectory
    averages, n_eff = weighted_by_temperature(energies, lines, values[lines], np.array([300.0, 3000.0]))
    for k, temperature in enumerate((300.0, 3000.0)):
        w = np.exp(log_prior(energies)[lines] - (enthalpy[lines] - enthalpy.min()) / (KB_EV_PER_K * temperature))
        assert averages[k, 0] == pytest.approx(np.sum(w * values[lines, 0]) / w.sum())
        assert n_eff[k] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert n_eff[1] > n_eff[0]  # hot: many samples count


def test_mixing_enthalpy_by_hand():
    temperatures = np.array([300.0, 600.0])
    # per atom: Cu -3.0 + 1e-4 T, Au -3.5 + 2e-4 T, Cu3Au -3.2 + 1.5e-4 T (cells of 4 atoms)
    tables = {
        "Cu4": pd.DataFrame({"T": temperatures, "U": 4 * (-3.0 + 1e-4 * temperatures)}),
        "Au4": pd.DataFrame({"T": temperatures, "U": 4 * (-3.5 + 2e-4 * temperatures)}),
        "Cu3Au1": pd.DataFrame({"T": temperatures, "U": 4 * (-3.2 + 1.5e-4 * temperatures)}),
    }
    compositions = {"Cu4": {"Cu": 4}, "Au4": {"Au": 4}, "Cu3Au1": {"Cu": 3, "Au": 1}}
    table = mixing_enthalpy(tables, compositions, ["Cu", "Au"])
    mixed = table[table.composition == "Cu3Au1"].set_index("T")["mixing_enthalpy"]
    for temperature in temperatures:
        expected = (
            (-3.2 + 1.5e-4 * temperature) - 0.75 * (-3.0 + 1e-4 * temperature) - 0.25 * (-3.5 + 2e-4 * temperature)
        )
        assert mixed[temperature] == pytest.approx(expected)
    assert (table[table.composition != "Cu3Au1"].mixing_enthalpy.abs() < 1e-12).all()
    with pytest.raises(DataError, match="no pure Au"):
        mixing_enthalpy({k: v for k, v in tables.items() if k != "Au4"}, compositions, ["Cu", "Au"])


def test_sro_of_an_ns_run(tmp_path):
    from nestdb.bench.stage import bench_sro
    from nestdb.models.calculators import make_calculator
    from nestdb.ns import NSSettings, run_nested_sampling

    settings = NSSettings(
        n_walkers=8,
        walk_length=8,
        pressure_gpa=1.0,
        max_iter=150,
        converge_down_to_T=None,
        max_volume_per_atom=30.0,
        kemax_max_T=3000,
        seed=4,
        snapshot_seconds=None,
        move_fractions={"md": 0.2, "volume": 0.3, "shear": 0.2, "stretch": 0.2, "swap": 0.1},
    )
    lj = make_calculator({"type": "lj", "epsilon": 0.3, "sigma": 2.35})  # fast; the files are what is tested
    run_nested_sampling({"Cu": 2, "Au": 2}, lj, settings, tmp_path / "ns")
    summary = bench_sro(
        tmp_path / "ns.traj.extxyz",
        tmp_path / "ns.energies",
        ["Cu", "Au"],
        {"t_min": 200, "t_max": 20000, "t_step": 200},
        tmp_path / "sro.csv",
        tmp_path / "sro.png",
    )
    table = pd.read_csv(tmp_path / "sro.csv")
    assert summary["pairs"] == ["alpha_Cu-Au"] and summary["n_samples"] == 150
    assert table["alpha_Cu-Au"].between(-1.0, 1.0).all() and (table.n_eff >= 1).all()
    assert table["alpha_random_Cu-Au"].between(-1.0, 1.0).all()
    assert (tmp_path / "sro.png").is_file()
    # the figure: alpha(T) and its random-arrangement line, the CSV's columns
    ax = plot_sro(table, summary["pairs"], tmp_path / "again.png").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("temperature (K)", "Warren–Cowley α, first shell")
    assert [line.get_label() for line in ax.lines[:2]] == ["α Cu-Au", "random arrangement Cu-Au"]
    for line, column in zip(ax.lines[:2], ("alpha_Cu-Au", "alpha_random_Cu-Au"), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), table["T"])
        np.testing.assert_array_equal(line.get_ydata(), table[column])


def test_bench_targets_of_an_alloy_campaign():
    from nestdb.config import bench_targets

    config = {
        "elements": ["Cu", "Au"],
        "pressures": [0, 5],
        "ns": {"composition": [{"Cu": 4}, {"Cu": 2, "Au": 2}, {"Au": 4}]},
        "cycles": [{"select": {"kind": "final"}}],
        "bench": {
            "enthalpy": {"enabled": False},
            "bain": {"enabled": False},
            "phonons": {"enabled": False},
            "xrd": {"enabled": True},
            "alloy": {"enabled": None},
            "phase_diagram": {"enabled": False},
        },
    }
    targets = bench_targets(config, [0])
    assert "results/bench/cycle0/alloy.json" in targets
    assert "results/bench/cycle0/xrd/Cu2Au2/P5GPa/xrd.csv" in targets
    assert [t for t in targets if "/sro/" in t] == [
        "results/bench/cycle0/sro/Cu2Au2/P0GPa/sro.csv",
        "results/bench/cycle0/sro/Cu2Au2/P5GPa/sro.csv",
    ]
    assert "results/bench/cycle0/mixing/P5GPa/mixing.csv" in targets
    # without the pure Au runs there is no mixing enthalpy; one element has no alloy benchmark
    config["ns"]["composition"] = [{"Cu": 4}, {"Cu": 2, "Au": 2}]
    assert not [t for t in bench_targets(config, [0]) if "mixing" in t]
    single = dict(config, elements=["Cu"], ns={"composition": {"Cu": 4}})
    assert not [t for t in bench_targets(single, [0]) if "alloy" in t or "sro" in t]
