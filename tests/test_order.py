"""Tests of nestdb.structures.steinhardt: Wigner 3j symbols, Steinhardt Q/W, neighbours, phase labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read

from nestdb.errors import ConfigError, DataError
from nestdb.structures.steinhardt import classify_phase, order_parameters, rdf_first_minimum, steinhardt, wigner_3j

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SNAPSHOT = (
    SHARED / "data" / "mg" / "pymatnest" / "samples" / "mg16_1GPa_fasteam" / "mg16_1GPa_fasteam.snapshot.19999.0.extxyz"
)


def _crystal(name: str) -> Atoms:
    if name == "fcc":
        return bulk("Mg", "fcc", a=4.52, cubic=True) * (2, 2, 1)
    if name == "hcp":
        return bulk("Mg", "hcp", a=3.21, c=3.21 * math.sqrt(8 / 3)) * (2, 2, 2)  # ideal c/a
    return bulk("Mg", "bcc", a=3.58, cubic=True) * (2, 2, 2)


# --------------------------------------------------------------------------- 3j symbols


def test_wigner_3j_known_values_and_orthogonality():
    assert wigner_3j(1, 1, 0, 0, 0, 0) == pytest.approx(-1 / math.sqrt(3), rel=1e-14)
    assert wigner_3j(2, 2, 2, 0, 0, 0) == pytest.approx(-math.sqrt(2 / 35), rel=1e-14)
    assert wigner_3j(6, 6, 6, 0, 0, 0) == pytest.approx(-0.09305950021129, rel=1e-12)
    assert wigner_3j(1, 1, 1, 0, 0, 0) == 0.0  # odd sum of j with all m = 0
    assert wigner_3j(2, 2, 2, 1, 1, 0) == 0.0  # m's do not add to zero
    assert wigner_3j(1, 1, 3, 0, 0, 0) == 0.0  # triangle condition
    # sum over m1, m2 of (j1 j2 j3; m1 m2 m3)^2 = 1/(2 j3 + 1) for every m3
    for m3 in range(-6, 7):
        total = sum(wigner_3j(6, 6, 6, m1, -m1 - m3, m3) ** 2 for m1 in range(-6, 7) if abs(m1 + m3) <= 6)
        assert total == pytest.approx(1 / 13, rel=1e-12)
    # symmetry under an odd permutation: factor (-1)^(j1+j2+j3)
    assert wigner_3j(2, 3, 4, 1, -2, 1) == pytest.approx(-wigner_3j(3, 2, 4, -2, 1, 1), rel=1e-12)


# --------------------------------------------------------------------------- ideal crystals


@pytest.mark.parametrize(
    "name, q6, w6, q4",
    [
        ("fcc", 0.5745, -0.0131, 0.1909),
        ("hcp", 0.4848, -0.0124, 0.0972),
        ("bcc", 0.5107, 0.0131, 0.0364),  # 8 + 6 neighbours (SANN)
    ],
)
def test_ideal_crystals(name, q6, w6, q4):
    values = order_parameters(_crystal(name))
    assert values["q6"] == pytest.approx(q6, abs=2e-3)
    assert values["w6"] == pytest.approx(w6, abs=1e-3)
    assert values["q4"] == pytest.approx(q4, abs=2e-3)
    assert values["phase"] == name


def test_neighbour_conventions_for_bcc_and_fcc():
    bcc = _crystal("bcc")
    assert steinhardt(bcc, 6, neighbours=8)[0] == pytest.approx(0.6285, abs=1e-3)  # first shell only
    assert steinhardt(bcc, 6, neighbours=14)[0] == pytest.approx(0.5107, abs=1e-3)
    fcc = _crystal("fcc")
    # 12 nearest = the cutoff between the first and second shell = SANN
    assert steinhardt(fcc, 6, neighbours=12) == pytest.approx(steinhardt(fcc, 6, neighbours=3.9), abs=1e-12)
    assert steinhardt(fcc) == pytest.approx(steinhardt(fcc, 6, neighbours=12), abs=1e-12)
    cutoff = rdf_first_minimum([fcc], smoothing=0.05)
    assert 3.2 < cutoff < 4.5  # between the shells at 3.20 and 4.52 Å


def test_rotation_and_supercell_invariance():
    hcp = _crystal("hcp")
    rotated = hcp.copy()
    rotated.rotate(37, (1, 2, 3), rotate_cell=True)
    np.testing.assert_allclose(steinhardt(rotated), steinhardt(hcp), atol=1e-10)
    np.testing.assert_allclose(steinhardt(hcp * (2, 1, 1)), steinhardt(hcp), atol=1e-10)


def test_thermal_crystals_keep_their_label_and_random_is_liquid():
    for name in ("fcc", "hcp", "bcc"):
        hot = _crystal(name) * (1, 1, 2)
        hot.rattle(0.12, seed=3)
        values = order_parameters(hot)
        assert values["phase"] == name
        assert values["q6"] < order_parameters(_crystal(name))["q6"]
    rng = np.random.default_rng(5)
    gas = Atoms("Mg16", scaled_positions=rng.random((16, 3)), cell=np.eye(3) * 6.5, pbc=True)
    values = order_parameters(gas)
    assert values["phase"] == "liquid" and values["q6"] < 0.25


def test_classify_phase_rules():
    assert classify_phase(0.19, 0.57, -0.013) == "fcc"
    assert classify_phase(0.10, 0.48, -0.012) == "hcp"
    assert classify_phase(0.04, 0.51, 0.013) == "bcc"
    assert classify_phase(0.1, 0.1, -0.05) == "liquid"
    assert classify_phase(0.1, 0.3, -0.01, q6_liquid=0.35) == "liquid"
    # W6 > 0 with a Q4/Q6 far from bcc's: the short-range order of a small liquid cell, not bcc
    assert classify_phase(0.12, 0.35, 0.01) == "liquid"


def test_bad_arguments():
    with pytest.raises(ConfigError, match="neighbours"):
        steinhardt(_crystal("fcc"), 6, neighbours="voronoi")
    with pytest.raises(ConfigError, match="l must"):
        steinhardt(_crystal("fcc"), 0)
    with pytest.raises(DataError, match="cutoff"):
        steinhardt(_crystal("fcc"), 6, neighbours=1.0)


def test_real_ns_final_walkers_are_hcp():
    require_shared(SNAPSHOT)
    walkers = sorted(read(SNAPSHOT, index=":"), key=lambda a: a.info["ns_energy"])[:5]
    # pymatnest-format.md §6: the lowest walkers of this run quench to ideal hcp.
    for atoms in walkers:
        values = order_parameters(atoms)
        assert values["phase"] == "hcp" and 0.43 < values["q6"] < 0.49


def test_study_cycle0_database_cold_hcp_hot_liquid():
    database = SHARED / "data" / "mg" / "cycle_0.edb.extxyz"
    require_shared(database)
    frames = [a for a in read(database, index=":") if a.info["config_type"] == "mg16_0GPa_EAM"]
    cold = [order_parameters(a)["phase"] for a in frames if a.info["temp"] < 500]
    hot = [order_parameters(a)["phase"] for a in frames if a.info["temp"] > 2000]
    # Mg (this EAM) is hcp at 0 GPa; above 2000 K the 0 GPa samples are fluid.
    assert len(cold) >= 10 and cold.count("hcp") >= 2 / 3 * len(cold)
    assert not {"fcc", "bcc"} & set(cold)
    assert len(hot) >= 5 and set(hot) == {"liquid"}
