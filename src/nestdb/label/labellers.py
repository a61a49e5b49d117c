"""The labelling codes a config can name (``label: {code: <name>, <name>: settings}``): a registry.

Each code is a :class:`~nestdb.label.core.Labeller` subclass in its own
module, registered here under its :attr:`~nestdb.label.core.Labeller.name`
in :data:`LABELLERS` (the :class:`~nestdb.models.registry.Registry` the energy
models use too). The code modules import their DFT packages only when a
calculation starts, so a code whose program or Python package is missing
fails only when it is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nestdb.errors import ConfigError
from nestdb.label.castep import CastepLabeller
from nestdb.label.core import Labeller
from nestdb.label.espresso import EspressoLabeller
from nestdb.label.gpaw import GpawLabeller
from nestdb.label.potential import PotentialLabeller
from nestdb.label.vasp import VaspLabeller
from nestdb.models.registry import Registry, Spec

#: The labelling codes by ``label.code``; each settings section is checked by its class.
LABELLERS = Registry("labeller", "code")
for _labeller in (GpawLabeller, CastepLabeller, VaspLabeller, EspressoLabeller, PotentialLabeller):
    LABELLERS.register(_labeller.name, _labeller)
KNOWN_LABELLERS: tuple[str, ...] = LABELLERS.names


def parse_labeller_spec(spec: Any) -> Spec:
    """The :class:`~nestdb.models.registry.Spec` of a ``label`` section: ``code`` + the section named after it.

    Raises
    ------
    ConfigError
        Not a mapping, an unknown code (the message lists :data:`KNOWN_LABELLERS`),
        keys besides ``code`` and code sections, or settings that are not a mapping.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"label: expected a mapping with a 'code' key, got {spec!r}")
    code = spec.get("code")
    LABELLERS.entry(code)
    extra = set(spec) - {"code", *KNOWN_LABELLERS}
    if extra:
        raise ConfigError(
            f"label: unknown key(s) {sorted(extra)}; allowed: 'code' and one settings "
            f"section named after the code ({', '.join(KNOWN_LABELLERS)})"
        )
    settings = spec.get(code) or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"label.{code}: expected a mapping of settings, got {settings!r}")
    return Spec(code, settings)


def make_labeller(spec: dict[str, Any], base_dir: str | Path = ".") -> Labeller:
    """Build the labeller described by a ``label`` config section.

    Parameters
    ----------
    spec
        ``{"code": "gpaw", "gpaw": {...settings}}`` or
        ``{"code": "potential", "potential": {calculator spec}}``. The settings
        sub-dictionary is optional for codes with defaults.
    base_dir
        Folder that relative paths in the settings (potential files) refer to.

    Returns
    -------
    Labeller

    Raises
    ------
    ConfigError
        Unknown code (the message lists :data:`KNOWN_LABELLERS`), or settings
        the code rejects.
    """
    return LABELLERS.build(parse_labeller_spec(spec), base_dir=base_dir)
