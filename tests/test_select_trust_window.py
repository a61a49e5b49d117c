"""The pool selection rules of nestdb.select: DP-GEN's trust window on the committee STD and a random draw."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.select import committee_stds, select_configurations, select_pool, validate_rule
from nestdb.units import gpa_to_ev_per_a3


def _pool(stds_mev, with_std=True):
    rng = np.random.default_rng(1)
    frames = []
    for k, std in enumerate(stds_mev):
        atoms = Atoms("Mg4", scaled_positions=rng.random((4, 3)), cell=np.eye(3) * 5.0, pbc=True)
        atoms.info.update(config_id=f"c1_P0_md{k:05d}", iter=k, ns_energy=-float(k), ns_P=gpa_to_ev_per_a3(0.0))
        if with_std:
            atoms.info["committee_std"] = std / 1000.0
        frames.append(atoms)
    return frames


def test_trust_window_keeps_sigma_lo_inclusive_and_sigma_hi_exclusive():
    stds = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 99.9, 100.0, 300.0]
    rule = {"kind": "trust_window", "sigma_lo": 2.0, "sigma_hi": 100.0, "count": 100}
    with pytest.warns(UserWarning, match="6 of 9 configurations"):
        chosen = select_pool(_pool(stds), rule, source="pool")
    got = [round(1000 * a.info["committee_std"], 1) for a in chosen]
    assert got == [2.0, 5.0, 10.0, 20.0, 50.0, 99.9]


def test_trust_window_spreads_count_over_the_pool_and_copies():
    stds = [10.0] * 20
    frames = _pool(stds)
    chosen = select_pool(frames, {"kind": "trust_window", "sigma_lo": 1, "sigma_hi": 50, "count": 5})
    assert [a.info["iter"] for a in chosen] == [0, 5, 10, 14, 19]
    chosen[0].info["iter"] = 999
    assert frames[0].info["iter"] == 0


def test_empty_trust_window_selects_nothing_or_fails_on_request():
    frames = _pool([0.5, 0.7, 400.0])
    with pytest.warns(UserWarning, match="0 of 3"):
        assert select_pool(frames, {"kind": "trust_window", "sigma_lo": 1, "sigma_hi": 100, "count": 2}) == []
    with pytest.raises(DataError, match=r"1 below.*\b1 above|2 below: already accurate, 1 above"):
        select_pool(frames, {"kind": "trust_window", "sigma_lo": 1, "sigma_hi": 100, "count": 2, "if_fewer": "fail"})


def test_trust_window_needs_committee_std():
    with pytest.raises(DataError, match="no committee STD.*cycle 0"):
        select_pool(
            _pool([1.0, 2.0], with_std=False), {"kind": "trust_window", "sigma_lo": 0, "sigma_hi": 5, "count": 1}
        )
    assert committee_stds(_pool([3.0]))[0] == pytest.approx(3.0)


def test_random_rule_is_reproducible_and_distinct():
    frames = _pool(np.arange(30.0))
    rule = {"kind": "random", "count": 7, "seed": 3}
    first = [a.info["iter"] for a in select_pool(frames, rule)]
    assert first == [a.info["iter"] for a in select_pool(frames, rule)]
    assert len(set(first)) == 7 and first == sorted(first)
    assert first != [a.info["iter"] for a in select_pool(frames, dict(rule, seed=4))]


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"kind": "trust_window", "sigma_lo": 5, "sigma_hi": 5, "count": 1}, r"sigma_lo \(5 meV/atom\) must be below"),
        ({"kind": "trust_window", "sigma_lo": 50, "sigma_hi": 10, "count": 1}, "sigma_hi"),
        ({"kind": "trust_window", "sigma_lo": -1, "sigma_hi": 10, "count": 1}, "sigma_lo"),
        ({"kind": "trust_window", "sigma_hi": 10, "count": 1}, "needs key 'sigma_lo'"),
        ({"kind": "random", "count": 2, "seed": -1}, "seed"),
        ({"kind": "random", "count": 2, "t_min": 100}, "not a key of rule kind 'random'"),
    ],
)
def test_bad_pool_rules_are_named(rule, message):
    with pytest.raises(ConfigError, match=message):
        validate_rule(rule, "cycles[1].select")


def test_pool_refuses_rules_that_need_ns_thermodynamics():
    with pytest.raises(ConfigError, match="needs nested-sampling thermodynamics"):
        select_pool(_pool([1.0]), {"kind": "final"})


def test_trust_window_on_ns_samples_keeps_provenance():
    frames = _pool([0.5, 3.0, 8.0, 30.0, 200.0])
    temps = np.linspace(3000.0, 300.0, len(frames))
    with pytest.warns(UserWarning, match="3 of 5"):
        chosen = select_configurations(
            frames,
            temps,
            {"kind": "trust_window", "sigma_lo": 1, "sigma_hi": 100, "count": 10},
            stopped_early=False,
            cycle=2,
            pressure_gpa=0.0,
            source="run",
        )
    assert [a.info["iter"] for a in chosen] == [1, 2, 3]
    assert all(a.info["cycle"] == 2 and "temp" in a.info and "committee_std" in a.info for a in chosen)
