"""The one way nestdb builds something a config names: a :class:`Registry` of kinds.

Energy models (:data:`nestdb.models.calculators.CALCULATORS`) and labellers
(:data:`nestdb.label.labellers.LABELLERS`) are both registries: a kind name
maps to a factory that takes the kind's settings, and each registry turns
its config section into the same :class:`Spec` shape (``kind`` + ``settings``).
The config keys stay what users write: ``calculator: {type: lj, sigma: ...}``
(settings beside the kind) and ``label: {code: gpaw, gpaw: {...}}`` (settings
under the kind's name); the registry is internal.

A new energy model or DFT code is one ``register`` call next to its class
(CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nestdb.errors import ConfigError


@dataclass(frozen=True)
class Spec:
    """What a config section asks a registry for: a kind and its settings."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A registered kind: its factory and the settings keys it accepts (None: the factory checks them)."""

    factory: Callable[..., Any]
    keys: tuple[str, ...] | None = None


class Registry:
    """Kinds of one sort of object (``what``), each built by a factory from a :class:`Spec`.

    Parameters
    ----------
    what
        What the kinds are, for messages: ``"calculator"``, ``"labeller"``.
    key
        The config key that names the kind (``"type"``, ``"code"``), for messages.
    """

    def __init__(self, what: str, key: str) -> None:
        self.what, self.key = what, key
        self._entries: dict[str, Entry] = {}

    def register(self, kind: str, factory: Callable[..., Any], keys: tuple[str, ...] | None = None) -> None:
        """Add ``kind``, built by ``factory(settings, **options)``; ``keys``: the settings it accepts."""
        if kind in self._entries:
            raise ValueError(f"{self.what} {kind!r} is registered twice")
        self._entries[kind] = Entry(factory, keys)

    @property
    def names(self) -> tuple[str, ...]:
        """The registered kinds, in registration order."""
        return tuple(self._entries)

    def entry(self, kind: Any) -> Entry:
        """The entry of ``kind``; ConfigError listing the known kinds when there is none."""
        if kind not in self._entries:
            raise ConfigError(
                f"{self.what} {self.key} {kind!r} is unknown; set {self.key!r} to one of {', '.join(self._entries)}"
            )
        return self._entries[kind]

    def check_keys(self, spec: Spec, where: str | None = None) -> Entry:
        """The entry of ``spec.kind`` after checking its settings keys; ConfigError naming an unknown one.

        ``where`` (e.g. ``cycles[0].ns.calculator``) prefixes the message.
        """
        try:
            entry = self.entry(spec.kind)
            if entry.keys is not None:
                extra = sorted(set(spec.settings) - set(entry.keys))
                if extra:
                    allowed = ", ".join(entry.keys) or "none"
                    raise ConfigError(
                        f"{self.what} {spec.kind!r}: unknown key(s) {', '.join(map(repr, extra))}; "
                        f"allowed keys: {allowed}"
                    )
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}" if where else str(err)) from None
        return entry

    def build(self, spec: Spec, **options: Any) -> Any:
        """Build ``spec.kind`` from ``spec.settings`` (unknown settings keys are a ConfigError)."""
        return self.check_keys(spec).factory(spec.settings, **options)
