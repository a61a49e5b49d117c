"""Tests of nestdb.select: selection rules, provenance, weights, merging."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from nestdb.errors import ConfigError, DataError
from nestdb.select import (
    KNOWN_RULES,
    frame_temperatures,
    merge_databases,
    pressure_tag,
    select_configurations,
    validate_rule,
)
from nestdb.structures.fingerprint import structure_hash
from nestdb.thermo import read_energies, sample_temperatures
from nestdb.units import gpa_to_ev_per_a3

from conftest import require_shared

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "data" / "mg" / "pymatnest" / "samples"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _need_samples() -> None:
    require_shared(SAMPLES)


def _synthetic_run(n_frames: int = 200, interval: int = 10, pressure_gpa: float = 10.0, n_atoms: int = 8):
    """Culled frames every `interval` iterations with falling H and T (linear in the frame index)."""
    rng = np.random.default_rng(0)
    frames = []
    for j in range(n_frames):
        cell = np.diag([6.0, 6.0, 7.0]) * (1.3 - 0.3 * j / n_frames)
        atoms = Atoms("Mg" * n_atoms, scaled_positions=rng.random((n_atoms, 3)) + 1.0, cell=cell, pbc=True)
        atoms.set_momenta(rng.normal(size=(n_atoms, 3)))
        atoms.info.update(
            ns_energy=100.0 - 0.5 * j,
            volume=atoms.get_volume(),
            iter=interval * j + interval - 1,
            ns_P=gpa_to_ev_per_a3(pressure_gpa),
            config_type="run_x",
            ns_KE=1.0,
        )
        frames.append(atoms)
    temperatures = np.linspace(5000.0, 100.0, n_frames)
    return frames, temperatures


def _select(frames, temps, rule, **kw):
    args = dict(stopped_early=False, cycle=0, pressure_gpa=10.0, source="mg8_P10")
    args.update(kw)
    return select_configurations(frames, temps, rule, **args)


# --------------------------------------------------------------------------- rules


def test_temperature_window_count_spacing_and_window():
    frames, temps = _synthetic_run()
    rule = {"kind": "temperature_window", "t_min": 200.0, "t_max": 3000.0, "count": 10}
    selected = _select(frames, temps, rule)
    assert len(selected) == 10
    got_t = np.array([a.info["temp"] for a in selected])
    assert np.all((got_t >= 200.0) & (got_t <= 3000.0))
    eligible_iters = [f.info["iter"] for f, t in zip(frames, temps, strict=True) if 200.0 <= t <= 3000.0]
    iters = np.array([a.info["iter"] for a in selected])
    assert iters[0] == eligible_iters[0] and iters[-1] == eligible_iters[-1]
    steps = np.diff(iters)
    assert steps.min() > 0 and steps.max() - steps.min() <= 10  # equal up to one traj interval


def test_temperature_window_fewer_than_count_warns_and_takes_all():
    frames, temps = _synthetic_run()
    rule = {"kind": "temperature_window", "t_min": 1000.0, "t_max": 1200.0, "count": 50}
    n_eligible = int(np.sum((temps >= 1000.0) & (temps <= 1200.0)))
    with pytest.warns(UserWarning, match=rf"only {n_eligible} frames lie in 1000-1200 K.*if_fewer: min"):
        selected = _select(frames, temps, rule)
    assert len(selected) == n_eligible > 0
    with pytest.raises(DataError, match=rf"mg8_P10: only {n_eligible} frames.*if_fewer: fail"):
        _select(frames, temps, {**rule, "if_fewer": "fail"})
    with pytest.raises(DataError, match="if_fewer: fail"):
        _select(frames, temps, rule, min_policy="fail")
    with pytest.raises(DataError, match="rule 'last' asks for 500 frames but the run has 200"):
        _select(frames, temps, {"kind": "last", "count": 500, "if_fewer": "fail"})


def test_empty_window_names_window_run_and_range():
    frames, temps = _synthetic_run()
    rule = {"kind": "temperature_window", "t_min": 10.0, "t_max": 50.0, "count": 5}
    with pytest.raises(DataError, match=r"mg8_P10.*10-50 K.*100\.0-5000\.0 K"):
        _select(frames, temps, rule)


def test_stopped_early_gives_final_or_window():
    frames, temps = _synthetic_run()
    rule = {"kind": "temperature_window", "t_min": 200.0, "t_max": 3000.0, "count": 10, "if_stopped_early": "final"}
    final = _select(frames, temps, rule, stopped_early=True)
    assert [a.info["iter"] for a in final] == [frames[-1].info["iter"]]
    assert len(_select(frames, temps, rule, stopped_early=False)) == 10
    default = dict(rule)
    del default["if_stopped_early"]
    assert len(_select(frames, temps, default, stopped_early=True)) == 10


def test_last_and_final_rules():
    frames, temps = _synthetic_run(n_frames=30)
    last = _select(frames, temps, {"kind": "last", "count": 7})
    assert [a.info["iter"] for a in last] == [f.info["iter"] for f in frames[-7:]]
    with pytest.warns(UserWarning, match="taking all"):
        assert len(_select(frames, temps, {"kind": "last", "count": 100})) == 30
    final = _select(frames, temps, {"kind": "final"})
    assert len(final) == 1 and final[0].info["ns_energy"] == frames[-1].info["ns_energy"]


def test_unsorted_frames_are_ordered_by_iteration():
    frames, temps = _synthetic_run(n_frames=20)
    perm = np.random.default_rng(1).permutation(20)
    final = _select([frames[k] for k in perm], temps[perm], {"kind": "final"})
    assert final[0].info["iter"] == frames[-1].info["iter"]


def test_weights_follow_enthalpy_above_final():
    frames, temps = _synthetic_run()
    rule = {"kind": "last", "count": 20}
    alpha = 0.1
    selected = _select(frames, temps, rule, weight_alpha=alpha)
    h_final = frames[-1].info["ns_energy"]
    for atoms in selected:
        assert atoms.info["weight"] == pytest.approx(math.exp(-alpha * (atoms.info["enthalpy"] - h_final)))
    assert selected[-1].info["weight"] == 1.0 and selected[0].info["weight"] < 1.0
    assert all(a.info["weight"] == 1.0 for a in _select(frames, temps, rule, weight_alpha=0.0))
    rescaled = _select(frames, temps, rule, weight_alpha=alpha, weight_rescale="mean")
    raw = np.array([a.info["weight"] for a in selected])
    np.testing.assert_allclose([a.info["weight"] for a in rescaled], raw / raw.mean(), rtol=1e-12)
    assert np.mean([a.info["weight"] for a in rescaled]) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="weight_rescale"):
        _select(frames, temps, rule, weight_rescale="sum")
    # A hot window far above the final enthalpy: raw weights underflow, rescaled ones stay finite.
    hot = _select(
        frames,
        temps,
        {"kind": "temperature_window", "t_min": 4000, "t_max": 5000, "count": 5},
        weight_alpha=20.0,
        weight_rescale="mean",
    )
    hot_w = np.array([a.info["weight"] for a in hot])
    assert np.all(np.isfinite(hot_w)) and hot_w.mean() == pytest.approx(1.0) and hot_w.max() > 1.0
    with pytest.raises(ConfigError, match="weight_alpha"):
        _select(frames, temps, rule, weight_alpha=-1.0)


def test_provenance_and_plain_copies():
    frames, temps = _synthetic_run(pressure_gpa=2.5)
    frames[-1].info["committee_std"] = 0.0123
    selected = _select(frames, temps, {"kind": "last", "count": 3}, cycle=2, pressure_gpa=2.5)
    atoms = selected[-1]
    source = frames[-1]
    assert atoms.calc is None and "momenta" not in atoms.arrays and "masses" not in atoms.arrays
    assert atoms.get_masses()[0] == pytest.approx(24.305, abs=0.01)  # element mass, not NS's 1 amu
    assert atoms.info["config_id"] == f"c2_P2p5_i{source.info['iter']:06d}"
    assert atoms.info["config_type"] == "mg8_P2p5GPa_c2"
    assert atoms.info["ns_config_type"] == "run_x"
    assert atoms.info["cycle"] == 2 and atoms.info["pressure"] == 2.5
    assert atoms.info["enthalpy"] == source.info["ns_energy"] and atoms.info["temp"] == temps[-1]
    assert atoms.info["volume"] == pytest.approx(source.get_volume())
    assert atoms.info["ns_P"] == source.info["ns_P"] and atoms.info["committee_std"] == 0.0123
    assert "committee_std" not in selected[0].info
    # wrapped into the cell, same structure
    frac = atoms.get_scaled_positions(wrap=False)
    assert np.all((frac >= 0) & (frac < 1))
    np.testing.assert_allclose(frac, source.get_scaled_positions(wrap=True), atol=1e-10)
    atoms.positions += 1.0
    assert not np.allclose(source.get_scaled_positions(wrap=True), atoms.get_scaled_positions(wrap=True))


def test_config_ids_unique_across_cycles_pressures_and_culls():
    ids = set()
    for cycle in (0, 1):
        for pressure in (0.0, 2.5, 10.0, 600.0):
            frames, temps = _synthetic_run(n_frames=40, pressure_gpa=pressure)
            frames[-2].info["iter"] = frames[-1].info["iter"]  # n_cull > 1: two culls in one iteration
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                sel = _select(frames, temps, {"kind": "last", "count": 5}, cycle=cycle, pressure_gpa=pressure)
            for atoms in sel:
                assert SAFE_NAME.match(atoms.info["config_id"]), atoms.info["config_id"]
                ids.add(atoms.info["config_id"])
    assert len(ids) == 2 * 4 * 5


def test_pressure_tag():
    assert [pressure_tag(p) for p in (10, 2.5, 0, -1.25, 0.1)] == ["10", "2p5", "0", "m1p25", "0p1"]


def test_pressure_mismatch_warns():
    frames, temps = _synthetic_run(pressure_gpa=10.0)
    with pytest.warns(UserWarning, match="ns_P"):
        _select(frames, temps, {"kind": "final"}, pressure_gpa=20.0)


def test_bad_inputs_raise_data_errors():
    frames, temps = _synthetic_run(n_frames=10)
    with pytest.raises(DataError, match="10 frames but 9"):
        _select(frames, temps[:-1], {"kind": "final"})
    with pytest.raises(DataError, match="empty"):
        _select([], np.array([]), {"kind": "final"})
    del frames[3].info["ns_energy"]
    with pytest.raises(DataError, match="frame 3.*ns_energy"):
        _select(frames, temps, {"kind": "final"})


@pytest.mark.parametrize(
    "rule, match",
    [
        ({"kind": "window"}, r"select\.rules\[1\]\.kind"),
        ({"kind": "last"}, r"select\.rules\[1\].*'count'"),
        ({"kind": "last", "count": 0}, r"select\.rules\[1\]\.count"),
        ({"kind": "last", "count": True}, r"select\.rules\[1\]\.count"),
        ({"kind": "final", "count": 3}, r"select\.rules\[1\]\.count.*allowed"),
        ({"kind": "temperature_window", "t_min": 300, "t_max": 200, "count": 3}, r"select\.rules\[1\].*t_min"),
        ({"kind": "temperature_window", "t_min": "a", "t_max": 200, "count": 3}, r"select\.rules\[1\]\.t_min"),
        (
            {"kind": "temperature_window", "t_min": 1, "t_max": 200, "count": 3, "if_stopped_early": "skip"},
            r"select\.rules\[1\]\.if_stopped_early",
        ),
        ({"kind": "last", "count": 3, "if_fewer": "max"}, r"select\.rules\[1\]\.if_fewer.*min, fail"),
        ({"kind": "final", "if_fewer": "min"}, r"select\.rules\[1\]\.if_fewer.*allowed"),
        ("final", r"select\.rules\[1\].*mapping"),
    ],
)
def test_validate_rule_errors(rule, match):
    with pytest.raises(ConfigError, match=match):
        validate_rule(rule, "select.rules[1]")


def test_validate_rule_accepts_study_rules():
    assert KNOWN_RULES[:3] == ("temperature_window", "last", "final")  # the study's; trust_window, random follow
    for rule in (
        {"kind": "temperature_window", "t_min": 200, "t_max": 3000, "count": 100},
        {"kind": "temperature_window", "t_min": 200, "t_max": 8000, "count": 100, "if_stopped_early": "final"},
        {"kind": "last", "count": 100},
        {"kind": "final"},
    ):
        validate_rule(rule, "select")


def test_frame_temperatures_matches_by_iter_and_energy():
    iters = np.array([0, 0, 1, 1, 2, 2])
    enthalpy = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    temps = np.array([60.0, 50.0, 40.0, 30.0, 20.0, 10.0])
    frames = []
    for it, energy in [(0, 5.0), (1, 4.0), (2, 1.0)]:
        atoms = Atoms("Mg", cell=[3, 3, 3], pbc=True)
        atoms.info.update(iter=it, ns_energy=energy)
        frames.append(atoms)
    np.testing.assert_array_equal(frame_temperatures(frames, iters, enthalpy, temps), [50.0, 40.0, 10.0])
    frames[1].info["iter"] = 7
    with pytest.raises(DataError, match="iter=7"):
        frame_temperatures(frames, iters, enthalpy, temps, source="runA")


# --------------------------------------------------------------------------- merging


def test_merge_databases_drops_duplicates_keeps_first(tmp_path):
    frames, temps = _synthetic_run(n_frames=30)
    first = _select(frames, temps, {"kind": "last", "count": 10})
    second = _select(frames, temps, {"kind": "last", "count": 15}, weight_alpha=0.5)
    for atoms in second:
        atoms.info["dft_energy"] = -1.0
    other_cycle = _select(frames, temps, {"kind": "final"}, cycle=1)
    paths = [tmp_path / "a.xyz", tmp_path / "b.xyz", tmp_path / "c.xyz"]
    for path, db in zip(paths, (first, second, other_cycle), strict=True):
        write(path, db, format="extxyz")
    # The cycle-1 frame is the same structure as the last cycle-0 one: dropped by structure.
    summary = merge_databases(paths, tmp_path / "out" / "merged.xyz")
    assert summary["n_read"] == 26 and summary["n_written"] == 15 and summary["n_duplicates"] == 11
    assert summary["n_duplicate_ids"] == 10 and summary["n_duplicate_structures"] == 1
    by_id_only = merge_databases(paths, tmp_path / "out" / "ids.xyz", by_structure=False)
    assert by_id_only["n_written"] == 16
    ids = [a.info["config_id"] for a in read(tmp_path / "out" / "ids.xyz", index=":")]
    assert len(set(ids)) == 16 and ids[-1].startswith("c1_")
    merged = read(tmp_path / "out" / "merged.xyz", index=":")
    by_id = {a.info["config_id"]: a for a in merged}
    kept = by_id[first[0].info["config_id"]]
    assert kept.info["weight"] == 1.0 and "dft_energy" not in kept.info  # the first file's copy
    assert by_id[second[0].info["config_id"]].info["dft_energy"] == -1.0
    assert {"temp", "enthalpy", "cycle", "pressure", "config_type", "ns_P", "volume"} <= set(kept.info)


def test_merge_databases_errors(tmp_path):
    with pytest.raises(DataError, match="missing.xyz"):
        merge_databases([tmp_path / "missing.xyz"], tmp_path / "m.xyz")
    write(tmp_path / "noid.xyz", Atoms("Mg", cell=[3, 3, 3], pbc=True), format="extxyz")
    with pytest.raises(DataError, match="config_id"):
        merge_databases([tmp_path / "noid.xyz"], tmp_path / "m.xyz")
    (tmp_path / "empty.xyz").write_text("")
    assert merge_databases([tmp_path / "empty.xyz"], tmp_path / "m.xyz")["n_written"] == 0


# --------------------------------------------------------------------------- real pymatnest outputs


def _real_run(directory: str, prefix: str, traj: str):
    _need_samples()
    energies = read_energies(SAMPLES / directory / f"{prefix}.energies")
    frames = read(SAMPLES / directory / traj, index=":")
    temps = frame_temperatures(frames, energies.iters, energies.enthalpy, sample_temperatures(energies), source=prefix)
    return energies, frames, temps


def test_real_converged_run_study_cycle0_rule():
    energies, frames, temps = _real_run(
        "mg16_1GPa_fasteam", "mg16_1GPa_fasteam", "mg16_1GPa_fasteam.traj.0.every3rdframe.extxyz"
    )
    rule = {"kind": "temperature_window", "t_min": 200, "t_max": 3000, "count": 100}
    selected = select_configurations(
        frames, temps, rule, stopped_early=False, cycle=0, pressure_gpa=1.0, weight_alpha=0.1, source="mg16_1GPa"
    )
    assert len(selected) == 100
    got = np.array([a.info["temp"] for a in selected])
    assert np.all((got >= 200) & (got <= 3000))
    assert np.all(np.diff(got) <= 0)  # later iterations are colder in a converged run
    iters = np.array([a.info["iter"] for a in selected])
    assert np.ptp(np.diff(iters)) <= 2 * 30  # every 3rd frame of traj_interval 10
    assert all(0 < a.info["weight"] <= 1.0 + 1e-12 for a in selected)
    assert len({a.info["config_id"] for a in selected}) == 100
    # the energies file and trajectory agree on the recorded enthalpy
    row = np.searchsorted(energies.iters, iters[0])
    assert energies.enthalpy[row] == pytest.approx(selected[0].info["enthalpy"], rel=1e-12)


def test_real_short_run_has_no_low_temperature_frames():
    _, frames, temps = _real_run("mg16_1GPa_aseeam_partial", "mg16_1GPa_aseeam", "mg16_1GPa_aseeam.traj.0.extxyz")
    assert np.all(np.isfinite(temps))
    rule = {"kind": "temperature_window", "t_min": 200, "t_max": 3000, "count": 100}
    with pytest.raises(DataError, match=r"mg16_1GPa_aseeam.*200-3000 K.*cover"):
        select_configurations(
            frames, temps, rule, stopped_early=False, cycle=0, pressure_gpa=1.0, source="mg16_1GPa_aseeam"
        )
    final = select_configurations(
        frames, temps, {"kind": "final"}, stopped_early=True, cycle=1, pressure_gpa=1.0, source="mg16_1GPa_aseeam"
    )
    assert final[0].info["iter"] == 266


def test_structure_key_identifies_same_structure_only():
    frames, _ = _synthetic_run(n_frames=3)
    atoms = frames[0]
    shifted = atoms.copy()
    shifted.positions += atoms.cell[0]  # a lattice translation of one atom set: same structure
    assert structure_hash(atoms) == structure_hash(shifted)
    moved = atoms.copy()
    moved.positions[0] += [0.01, 0.0, 0.0]
    assert structure_hash(atoms) != structure_hash(moved)
    assert structure_hash(atoms) != structure_hash(frames[1])


def test_merge_across_pressures_and_cycles_keeps_provenance(tmp_path):
    paths = []
    for cycle in (0, 1):
        for pressure in (0.0, 10.0):
            frames, temps = _synthetic_run(n_frames=20, pressure_gpa=pressure)
            for atoms in frames:  # a different structure for every run
                atoms.positions += 0.1 * cycle + 0.003 * pressure
            chosen = _select(
                frames,
                temps,
                {"kind": "last", "count": 4},
                cycle=cycle,
                pressure_gpa=pressure,
                weight_alpha=0.1,
                weight_rescale="mean",
            )
            paths.append(tmp_path / f"c{cycle}_p{pressure:g}.xyz")
            write(paths[-1], chosen, format="extxyz")
    summary = merge_databases(paths + paths[:1], tmp_path / "all.xyz")
    assert summary["n_written"] == 16 and summary["n_duplicates"] == 4
    merged = read(tmp_path / "all.xyz", index=":")
    keys = {"cycle", "pressure", "iter", "temp", "enthalpy", "weight", "config_type", "config_id"}
    assert all(keys <= set(a.info) for a in merged)
    assert {(a.info["cycle"], a.info["pressure"]) for a in merged} == {(0, 0.0), (0, 10.0), (1, 0.0), (1, 10.0)}
    for cycle in (0, 1):
        for pressure in (0.0, 10.0):
            weights = [a.info["weight"] for a in merged if a.info["cycle"] == cycle and a.info["pressure"] == pressure]
            assert np.mean(weights) == pytest.approx(1.0)  # rescaled per pressure
