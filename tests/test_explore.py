"""Exploration kinds besides NS (nestdb.explore): settings, random crystals (pyxtal), MD pools, the pool stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from nestdb.errors import ConfigError
from nestdb.explore.md import md_pool, seed_crystal
from nestdb.explore.random_crystals import random_crystal_pool
from nestdb.explore.settings import (
    EXPLORE_DEFAULTS,
    check_composition,
    compatible_space_groups,
    explore_settings,
    incompatible_space_groups,
)
from nestdb.explore.stage import explore_pool
from nestdb.explore.volume import model_volume_per_atom
from nestdb.models.calculators import make_calculator
from nestdb.select.stage import plot_pool, select_pool_run

LJ = {"type": "lj"}


def test_settings_fill_defaults_and_default_to_ns():
    assert explore_settings(None) == {"kind": "ns"}
    settings = explore_settings({"kind": "md", "steps": 50, "interval": 5})
    assert settings["temperatures"] == EXPLORE_DEFAULTS["md"]["temperatures"] and settings["steps"] == 50


@pytest.mark.parametrize(
    "explore, message",
    [
        ({"kind": "mc"}, "unknown exploration 'mc'"),
        ({"kind": "md", "count": 3}, "count are not settings of exploration kind 'md'"),
        ({"kind": "md", "structures": ["diamond"]}, "unknown seed crystal"),
        ({"kind": "md", "steps": 10, "interval": 20}, "no frame would be recorded"),
        ({"kind": "md", "temperatures": [300, -5]}, "temperatures"),
        ({"kind": "random_crystals", "space_groups": [0, 300]}, "1-230"),
        ({"kind": "random_crystals", "volume_range": [1.2, 0.9]}, "volume_range"),
        ({"kind": "random_crystals", "strain": 0.7}, "not a small strain"),
    ],
)
def test_bad_settings_are_named(explore, message):
    with pytest.raises(ConfigError, match=message):
        explore_settings(explore, "cycles[2].explore")


def test_space_groups_that_cannot_hold_the_composition_are_named():
    # Fm-3m has Wyckoff multiplicities 4, 8, 24, ... in its conventional cell: no 6-atom crystal
    assert incompatible_space_groups([194, 225, 229], {"Mg": 6}) == [225]
    assert 225 in compatible_space_groups({"Mg": 16}) and 225 not in compatible_space_groups({"Mg": 6})
    settings = explore_settings({"kind": "random_crystals", "space_groups": [194, 225, 230]})
    with pytest.raises(ConfigError, match=r"space group\(s\) 225, 230 cannot hold Mg6"):
        check_composition(settings, {"Mg": 6}, "cycles[0].explore")


def test_md_seed_crystals_must_tile_the_cell():
    assert len(seed_crystal("hcp", "Mg", 16, 20.0)) == 16
    with pytest.raises(ConfigError, match="hcp has 2 atoms per primitive cell.*7 atoms"):
        check_composition(explore_settings({"kind": "md", "structures": ["fcc", "hcp"]}), {"Mg": 7}, "x")
    with pytest.raises(ConfigError, match="several elements"):
        check_composition(explore_settings({"kind": "md"}), {"Cu": 3, "Au": 1}, "x")


def test_random_crystals_are_symmetric_at_the_density_and_relaxed_with_the_model():
    import spglib
    from pyxtal.symmetry import Group

    calc = make_calculator(LJ)
    settings = explore_settings(
        {"kind": "random_crystals", "count": 4, "relax_steps": 3, "perturbations": 1, "volume_range": [1.0, 1.0]}
    )
    pool, records = random_crystal_pool(calc, settings, {"Mg": 8}, 5.0, 21.0, [191, 194, 225], seed=5)
    assert len(pool) == 8 and len(records) == 4
    crystals = [a for a in pool if not a.info["perturbed"]]
    for atoms, record in zip(crystals, records, strict=True):
        assert len(atoms) == 8 and atoms.info["space_group"] == record["space_group"]
        assert 1 <= record["relax_steps"] <= 3
        dataset = spglib.get_symmetry_dataset(
            (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=1e-3
        )
        # FixSymmetry kept every operation of the group (the cell may have more: a supergroup)
        assert len(dataset.rotations) >= Group(record["space_group"])[0].multiplicity
        # a few steps at 5 GPa move the volume only a little from the requested density
        assert 0.7 < atoms.get_volume() / len(atoms) / 21.0 < 1.3
        assert np.isfinite(atoms.info["energy"]) and "committee_std" not in atoms.info
    perturbed = [a for a in pool if a.info["perturbed"]]
    assert all(not np.allclose(p.positions, c.positions) for p, c in zip(perturbed, crystals, strict=True))


def test_md_pool_frames_temperatures_and_volume_guard():
    calc = make_calculator(LJ)
    settings = explore_settings(
        {"kind": "md", "structures": ["fcc", "bcc"], "temperatures": [300, 1500], "steps": 30, "interval": 10}
    )
    frames, records = md_pool(calc, settings, "Mg", 8, 2.0, 21.0, (5.0, 60.0))
    assert len(records) == 4 and all(r["end"] == "steps" for r in records)
    assert len(frames) == 4 * 3
    assert sorted({a.info["temp"] for a in frames}) == [300.0, 1500.0]
    assert {a.info["md_structure"] for a in frames} == {"fcc", "bcc"}
    assert [a.info["md_step"] for a in frames[:3]] == [10, 20, 30]
    # a volume window the cells cannot stay in ends every trajectory at once
    frames, records = md_pool(calc, settings, "Mg", 8, 2.0, 21.0, (5.0, 6.0))
    assert frames == [] and all("left" in r["end"] for r in records)


def test_model_density_follows_pressure():
    calc = make_calculator(LJ)
    low = model_volume_per_atom(calc, "Mg", 0.0, (5.0, 60.0))
    high = model_volume_per_atom(calc, "Mg", 30.0, (5.0, 60.0))
    assert 5.0 < high < low < 60.0


def test_pool_stage_writes_provenance_and_selects_like_ns(tmp_path):
    block = {"composition": {"Mg": 8}, "calculator": LJ, "min_volume_per_atom": 5.0, "max_volume_per_atom": 60.0}
    settings = explore_settings(
        {"kind": "random_crystals", "count": 3, "space_groups": [191, 194], "relax_steps": 0, "perturbations": 1}
    )
    summary = explore_pool(block, settings, 10.0, 0, tmp_path / "pool.extxyz", tmp_path / "summary.json")
    assert summary["n_frames"] == 6 and json.loads((tmp_path / "summary.json").read_text())["kind"] == "random_crystals"
    pool = read(tmp_path / "pool.extxyz", index=":")
    assert [a.info["config_id"] for a in pool] == [f"c0_P10_rc{k:05d}" for k in range(6)]
    assert all(a.info["cycle"] == 0 and a.info["pressure"] == 10.0 for a in pool)
    chosen = select_pool_run(
        tmp_path / "pool.extxyz",
        {"kind": "random", "count": 4, "seed": 1},
        0,
        10.0,
        tmp_path / "candidates.extxyz",
        tmp_path / "configs",
        tmp_path / "selection.png",
        tmp_path / "order.png",
    )
    assert len(chosen) == 4 and all("phase" in a.info and "q6" in a.info for a in chosen)
    assert sorted(p.stem for p in (tmp_path / "configs").iterdir()) == sorted(a.info["config_id"] for a in chosen)
    assert (tmp_path / "selection.png").is_file()
    # the figure: every pool member's model enthalpy per atom (no committee here) by pool index, the chosen marked
    ax = plot_pool(pool, chosen, {"kind": "random"}, tmp_path / "again.png", "t").axes[0]
    assert ax.get_ylabel() == "model enthalpy (eV/atom)" and ax.get_xlabel() == "pool index"
    explored, selected = ax.lines
    for line, frames in ((explored, pool), (selected, chosen)):
        assert line.get_label() == ("explored" if frames is pool else "selected")
        np.testing.assert_array_equal(line.get_xdata(), [a.info["iter"] for a in frames])
        np.testing.assert_allclose(line.get_ydata(), [a.info["enthalpy"] / len(a) for a in frames], rtol=1e-12)
    assert set(selected.get_xdata()) < set(explored.get_xdata())
