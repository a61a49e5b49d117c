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
    load_config,
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


# --------------------------------------------------------------------------- bad input at parse time (issue 15)
def _set(path: str, value):
    """A mutation of the config: set the dotted ``path`` (``cycles.1.ns.committee_std_max``) to ``value``."""

    def mutate(config: dict) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[keys[-1]] = value

    return mutate


def _drop(key: str):
    return lambda config: config.pop(key)


#: (case, mutation of config/fast.yaml, what the message must name: key, value, fix)
BAD_INPUT = [
    (
        "nradmax/lmax lengths",
        _set("fit.lmax_by_orders", [0, 3]),
        ["fit.nradmax_by_orders", "fit.lmax_by_orders", "[0, 3]", "one entry per rank"],
    ),
    ("kappa high", _set("fit.pacemaker", {"kappa": "high"}), ["fit.pacemaker.kappa", "'high'", "'auto' or a number"]),
    ("gpaw typo", _set("label.gpaw.ecutt", 300), ["label.gpaw", "ecutt", "allowed: mode"]),
    (
        "calculator typo",
        _set("cycles.0.ns.calculator", {"type": "lj", "epsilonn": 0.1}),
        ["cycles[0].ns.calculator", "epsilonn", "allowed keys: epsilon, sigma, cutoff"],
    ),
    (
        "calculator typo in a later cycle's override",
        _set("cycles.1.ns.calculator", {"type": "lj", "sigmaa": 2.0}),
        ["cycles[1].ns.calculator", "sigmaa", "allowed keys"],
    ),
    ("analyse grid", _set("analyse", {"t_min": 5000, "t_max": 100}), ["analyse.t_min", "5000", "below analyse.t_max"]),
    (
        "committee in cycle 0",
        _set("cycles.0.ns.calculator", {"type": "ace_committee"}),
        ["cycles[0].ns.calculator", "'ace_committee'", "classical potential"],
    ),
    (
        "EAM path is a folder",
        _set("cycles.0.ns.calculator", {"type": "eam", "file": "config"}),
        ["cycles[0].ns.calculator.file", "'config'", "is a folder", "give the potential file"],
    ),
    (
        "committee_std_max below committee_stop_std",
        _set("cycles.1.ns.committee_std_max", 100.0),
        ["cycles[1].ns", "committee_stop_std=150.0", "committee_std_max=100.0", "0.97 * committee_std_max"],
    ),
    ("no cycles", _drop("cycles"), ["no `cycles`", "cycles: [{ns:"]),
    (
        "per-cycle override like the top level",
        _set("cycles.1.ns.n_cull", 16),
        ["cycles[1].ns", "n_cull=16", "smaller than n_walkers=16"],
    ),
    (
        "castep typo",
        _set("label", {"code": "castep", "castep": {"cut_off_energyy": 300}}),
        ["cut_off_energyy", "allowed"],
    ),
    (
        "benchmark reference typo",
        _set("bench.reference", {"code": "gpaw", "gpaw": {"kpt": {"density": 3}}}),
        ["bench.reference", "label.gpaw", "kpt"],
    ),
    ("label retry override", _set("label.retry", {"gpaw": [{"mixr": 0.1}]}), ["label.gpaw", "mixr"]),
    (
        "hyperopt search space",
        _set("fit.hyperopt", {"enabled": True, "min_nradmax_by_orders": [9, 1, 1]}),
        ["fit.hyperopt.min_nradmax_by_orders", "[9, 1, 1]", "exceeds"],
    ),
    (
        "phase-diagram ns overrides",
        _set("bench.phase_diagram", {"enabled": True, "ns": {"n_cull": 20}}),
        ["bench.phase_diagram.ns", "n_cull=20"],
    ),
    ("E-V range reversed", _set("bench.ev_range", [1.1, 0.9]), ["bench.ev_range", "[1.1, 0.9]", "the smaller"]),
    (
        "XRD bins not increasing",
        _set("bench.xrd.temperature_bins", [0, 5000, 1000]),
        ["bench.xrd.temperature_bins", "[0, 5000, 1000]", "must increase"],
    ),
    ("composition without its element", _set("ns.composition", {"Al": 4}), ["'Al'", "not listed in `elements`", "add"]),
    (
        "missing composition",
        _set("ns.composition", None),
        ["cycles[0].ns.composition is missing", "composition: {Cu: 4}"],
    ),
]


@pytest.mark.parametrize(("case", "mutate", "named"), BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_input_is_named_at_parse_time(repo, tmp_path, monkeypatch, case, mutate, named):
    # load_config is the CLI's route and the workflow's checks (schema, then check_config), no job run
    config = yaml.safe_load((repo / "config" / "fast.yaml").read_text())
    mutate(config)
    config = {key: value for key, value in config.items() if value is not None}
    config["ns"] = {key: value for key, value in config["ns"].items() if value is not None}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(repo)  # relative paths (the EAM "file: config") from the checkout
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    for part in named:
        assert part in message, (case, message)


def test_shipped_configs_pass_the_checks(repo, monkeypatch):
    monkeypatch.chdir(repo)
    for path in sorted((repo / "config").glob("*.yaml")):
        if path.name == "mg-study.yaml" or path.name.startswith("oracle"):
            continue  # name EAM files under ../shared (their dry runs: tests/test_workflow.py)
        config = load_config(path)
        assert config["elements"] and config["cycles"], path


# --------------------------------------------------------------------------- one defaults table (issue 15)
def test_library_defaults_are_the_schemas():
    from nestdb.fit.settings import DEFAULT_FIT_SETTINGS, DEFAULT_HYPEROPT_SETTINGS, DEFAULT_PACEMAKER_SETTINGS
    from nestdb.schemas import schema_defaults

    fit = schema_defaults("fit")
    assert fit["cutoff"] == 5.5 and fit["refit_on_all_data"] is True  # what the workflow has always fitted
    library = {k: v for k, v in DEFAULT_FIT_SETTINGS.items() if k not in ("pacemaker", "hyperopt", "feature_cache")}
    assert {k: v for k, v in library.items() if k in fit} == {k: v for k, v in fit.items() if k in library}
    assert set(fit) - set(DEFAULT_FIT_SETTINGS) == set()  # every schema key has its library default
    assert DEFAULT_PACEMAKER_SETTINGS == schema_defaults("fit", "pacemaker")
    assert DEFAULT_HYPEROPT_SETTINGS == schema_defaults("fit", "hyperopt")


def test_schema_has_no_material_defaults():
    from nestdb.schemas import schema_defaults

    assert "elements" not in schema_defaults()
    assert "composition" not in schema_defaults("ns")
    assert "reference_energies" not in schema_defaults("fit")


def test_workflow_ns_blocks_give_every_engine_field(config):
    # the schema gives every field of a cycle's block: a workflow run never depends on the dataclass
    from dataclasses import fields

    from nestdb.ns.settings import NSSettings
    from nestdb.schemas import schema_defaults

    engine = {f.name for f in fields(NSSettings)} - {"pressure_gpa", "config_type"}
    assert engine <= set(schema_defaults("ns")), engine - set(schema_defaults("ns"))
    for cycle in range(len(config["cycles"])):
        assert engine <= set(ns_engine_settings(ns_block(config, cycle), 0.0))


def test_library_ns_defaults_are_the_schemas():
    # a library call NSSettings(n_walkers, walk_length, pressure_gpa) samples what the workflow samples
    from dataclasses import MISSING, fields

    from nestdb.ns.settings import NSSettings
    from nestdb.schemas import schema_defaults

    schema = schema_defaults("ns")
    library = NSSettings(n_walkers=schema["n_walkers"], walk_length=schema["walk_length"], pressure_gpa=0.0)
    for f in fields(NSSettings):
        if f.default is MISSING and f.default_factory is MISSING:
            assert f.name in ("n_walkers", "walk_length", "pressure_gpa"), f.name  # the call names its run
        elif f.name != "config_type":  # not a config key: the workflow sets it per run
            assert getattr(library, f.name) == schema[f.name], f.name
    # a mapping default is not shared between instances
    library.move_fractions["md"] = 1.0
    assert NSSettings(n_walkers=8, walk_length=8, pressure_gpa=0.0).move_fractions == schema["move_fractions"]
