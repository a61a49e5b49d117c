"""The workflow config: read and checked, and the per-cycle views the rules and stages take.

The JSON schema shipped in the package (:data:`SCHEMA`,
``src/nestdb/schemas/config.schema.yaml``) checks types and fills defaults
(:func:`load_config`). :mod:`nestdb.config.views` merges the top-level ``ns``
defaults with a cycle's overrides (:func:`ns_block`,
:func:`phase_diagram_block`) and lists the workflow's targets
(:func:`bench_targets`); :mod:`nestdb.config.checks` checks every section and
the cross-key rules (cycle 0 needs a classical calculator, every element needs
a reference energy, files exist, fit/label/calculator settings, committee
limits) with messages that name the key, the value and the fix
(:func:`check_config`), before any job.

A campaign is exactly the file it is read from: the workflow reads the
default ``config/config.yaml`` only when no ``--configfile`` is given
(:func:`use_default_config`), and the CLI reads the file it is given.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import yaml

from nestdb.config.checks import check_config, same_model
from nestdb.config.views import (
    DEFAULT_SWAP_FRACTION,
    bench_reference_spec,
    bench_targets,
    composition_dirs,
    composition_tag,
    cycle_pressures,
    cycle_runs,
    explore_block,
    explore_kind,
    format_pressure,
    labeller_spec,
    mixing_pressures,
    n_cycles,
    ns_block,
    oracle_spec,
    phase_diagram_block,
    property_enabled,
    run_compositions,
    sample_targets,
    select_rule,
)
from nestdb.errors import ConfigError
from nestdb.schemas import SCHEMA_PATH

__all__ = [
    "DEFAULT_SWAP_FRACTION",
    "SCHEMA",
    "bench_reference_spec",
    "bench_targets",
    "check_config",
    "composition_dirs",
    "composition_tag",
    "cycle_pressures",
    "cycle_runs",
    "explore_block",
    "explore_kind",
    "format_pressure",
    "labeller_spec",
    "load_config",
    "mixing_pressures",
    "n_cycles",
    "ns_block",
    "oracle_spec",
    "phase_diagram_block",
    "property_enabled",
    "run_compositions",
    "same_model",
    "sample_targets",
    "schema_path",
    "select_rule",
    "use_default_config",
]

#: The workflow's config schema (types and every default), shipped in the package.
SCHEMA = SCHEMA_PATH


def schema_path() -> Path:
    """The config schema (:data:`SCHEMA`)."""
    return SCHEMA


def _deep_update(target: dict, overrides: dict) -> None:
    """Update ``target`` by ``overrides`` key by key, mappings recursively (as Snakemake's ``--config``)."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def use_default_config(config: dict, configfiles: Sequence, default: str | Path) -> None:
    """Make ``config`` the default campaign when no config file was given (the Snakefile's mechanism).

    Snakemake's ``configfile:`` directive would deep-merge a user's
    ``--configfile`` onto the default, so that keys the user left out came
    from the magnesium default. The Snakefile has no such directive and calls
    this instead: with ``--configfile`` the campaign is exactly those files
    (``config`` is left alone); without, it is ``default`` with the
    ``--config KEY=VALUE`` overrides already in ``config`` on top.

    Parameters
    ----------
    config
        Snakemake's ``config`` (updated in place).
    configfiles
        The ``--configfile`` paths (``workflow.config_settings.configfiles``).
    default
        The default config file (``config/config.yaml`` beside the Snakefile).
    """
    if configfiles:
        return
    default = Path(default)
    if not default.is_file():
        raise ConfigError(f"no --configfile given and the default config {default} does not exist; give one")
    overrides = copy.deepcopy(config)
    config.clear()
    config.update(yaml.safe_load(default.read_text()) or {})
    _deep_update(config, overrides)


def load_config(path: str | Path) -> dict:
    """Read a workflow config file, fill in the schema's defaults and check it (:func:`check_config`).

    The same file gives the same campaign as ``snakemake --configfile path``
    (no keys from ``config/config.yaml``).
    """
    # Snakemake is the `workflow` extra: only commands that read a workflow config import it.
    from snakemake.utils import validate

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys (elements, ns, cycles, ...), got {config!r}")
    try:
        validate(config, str(SCHEMA), set_default=True)
    except Exception as err:  # snakemake wraps jsonschema's errors in its own type
        raise ConfigError(f"{path}: {err}") from None
    check_config(config, base_dir=Path.cwd())
    return config
