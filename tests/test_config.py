"""Per-cycle config resolution and the cross-key checks of nestdb.config."""

import copy

import pytest
import yaml

from nestdb.config import (
    SCHEMA,
    bench_reference_spec,
    check_config,
    cycle_pressures,
    format_pressure,
    labeller_spec,
    ns_block,
)
from nestdb.errors import ConfigError
from nestdb.ns.settings import ns_engine_settings


@pytest.fixture
def config(repo):
    """The embedded default with the schema defaults the tests rely on."""
    from snakemake.utils import validate

    data = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    validate(data, str(SCHEMA))
    return data


def test_format_pressure_is_short_and_file_safe():
    assert format_pressure(10) == "10"
    assert format_pressure(10.0) == "10"
    assert format_pressure(2.5) == "2.5"


def test_schema_fills_defaults(config):
    assert config["ns"]["n_cull"] == 1
    assert config["ns"]["move_fractions"] == {"md": 0.21, "volume": 0.31, "shear": 0.24, "stretch": 0.24}
    assert config["label"]["max_failed_fraction"] == 0.5
    assert config["bench"]["elastic"]["relax_max_steps"] == 30
    assert config["analyse"]["t_step"] == 10


def test_cycle_overrides_merge_over_defaults(config):
    block0 = ns_block(config, 0)
    block1 = ns_block(config, 1)
    assert block0["calculator"] == {"type": "lj"}
    # Later cycles sample with the previous committee, not the cycle-0 potential.
    assert block1["calculator"] == {"type": "ace_committee"}
    assert block1["committee_std_max"] == 62.5
    assert block0["committee_std_max"] is None
    assert block1["n_walkers"] == config["ns"]["n_walkers"]
    settings = ns_engine_settings(block1, 10.0)
    assert settings["pressure_gpa"] == 10.0
    assert "composition" not in settings and "calculator" not in settings


def test_pacemaker_committee_feeds_later_cycles_when_asked(config):
    config = copy.deepcopy(config)
    config["fit"]["pacemaker"] = {"enabled": True, "feeds_ns": True}
    assert ns_block(config, 1)["calculator"] == {"type": "pacemaker_committee"}
    assert ns_block(config, 0)["calculator"] == {"type": "lj"}
    config["fit"]["pacemaker"]["enabled"] = False  # feeds_ns alone does not switch (and fails validation)
    assert ns_block(config, 1)["calculator"] == {"type": "ace_committee"}


def test_cycle_pressures_default_and_override(config):
    config = copy.deepcopy(config)
    assert cycle_pressures(config, 0) == ["0", "10"]
    config["cycles"][1]["pressures"] = [5, 2.5]
    assert cycle_pressures(config, 1) == ["5", "2.5"]


def test_cycle0_without_calculator_is_named(config):
    config = copy.deepcopy(config)
    del config["cycles"][0]["ns"]["calculator"]
    with pytest.raises(ConfigError, match=r"cycles\[0\]\.ns\.calculator"):
        check_config(config)


def test_missing_potential_file_names_the_path(config, tmp_path):
    config = copy.deepcopy(config)
    config["cycles"][0]["ns"]["calculator"] = {"type": "eam", "file": "no/such/Mg.eam.fs"}
    with pytest.raises(ConfigError, match=r"cycles\[0\]\.ns\.calculator\.file.*no/such/Mg\.eam\.fs"):
        check_config(config, base_dir=tmp_path)


def test_unknown_element_and_missing_reference_energy(config):
    bad = copy.deepcopy(config)
    bad["ns"]["composition"] = {"Mg": 4, "Al": 4}
    with pytest.raises(ConfigError, match="Al"):
        check_config(bad)
    bad = copy.deepcopy(config)
    bad["elements"] = ["Mg", "Al"]
    with pytest.raises(ConfigError, match=r"fit\.reference_energies.*Al"):
        check_config(bad)


def test_window_rule_needs_ordered_bounds(config):
    bad = copy.deepcopy(config)
    bad["cycles"][0]["select"] = {"kind": "temperature_window", "t_min": 3000, "t_max": 200, "count": 3}
    with pytest.raises(ConfigError, match=r"cycles\[0\]\.select.*t_min"):
        check_config(bad)


def test_labeller_and_reference_specs(config):
    spec = labeller_spec(config)
    assert spec["code"] == "gpaw"
    assert spec["gpaw"]["mode"] == {"name": "pw", "ecut": 400}
    assert bench_reference_spec(config) == spec
    config = copy.deepcopy(config)
    config["bench"]["reference"] = {"code": "potential", "potential": {"type": "emt"}}
    assert bench_reference_spec(config)["code"] == "potential"
