"""The workflow config's JSON schema, shipped inside the package: every key's type and default.

``config.schema.yaml`` here is the one table of defaults. The workflow
validates its config against it (``Snakefile``), the CLI through
:func:`nestdb.config.load_config`, and the library reads its own defaults from
it (:func:`schema_defaults`, e.g. :data:`nestdb.fit.settings.DEFAULT_FIT_SETTINGS`),
so that a library call, the CLI and the workflow start from the same values.
``workflow/schemas/config.schema.yaml`` is a link to this file (the path the
Snakemake workflow template expects).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

#: The config schema (JSON schema draft 2020-12, in YAML).
SCHEMA_PATH = Path(__file__).resolve().with_name("config.schema.yaml")


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_schema() -> dict[str, Any]:
    """A copy of the config schema."""
    return copy.deepcopy(_schema())


def _properties(node: dict[str, Any]) -> dict[str, Any]:
    """The ``properties`` of an object node, including those of its ``allOf`` parts (``$ref`` parts skipped)."""
    properties = dict(node.get("properties") or {})
    for part in node.get("allOf") or ():
        for key, value in (part.get("properties") or {}).items():
            properties[key] = {**properties.get(key, {}), **value}
    return properties


def schema_defaults(*section: str) -> dict[str, Any]:
    """The defaults of one object section of the schema: ``schema_defaults("fit", "pacemaker")``.

    Parameters
    ----------
    section
        Keys from the top level down to the section; none gives the top level's defaults.

    Returns
    -------
    dict
        ``{key: default}`` for every key of the section that has one (deep copies).

    Raises
    ------
    KeyError
        ``section`` names no object section of the schema.
    """
    node = _schema()
    for key in section:
        node = _properties(node)[key]
    return {key: copy.deepcopy(value["default"]) for key, value in _properties(node).items() if "default" in value}
