"""Labelling with an interatomic potential instead of DFT (cheap tests, synthetic campaigns)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nestdb.errors import ConfigError
from nestdb.label.core import Labeller
from nestdb.models.calculators import make_calculator


class PotentialLabeller(Labeller):
    """Labels from any calculator that :func:`nestdb.models.calculators.make_calculator` builds.

    Parameters
    ----------
    settings
        Calculator spec, e.g. ``{"type": "eam", "file": "Mg1.eam.fs"}``.
    base_dir
        Folder that relative files in the spec refer to.
    calculator_factory
        Optional callable returning a fresh calculator; replaces
        ``make_calculator`` (used by tests and by callers holding a
        calculator class already). The spec is still what gets hashed.

    Raises
    ------
    ConfigError
        The spec is not a mapping with a ``type`` key.
    """

    name = "potential"

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        base_dir: str | Path = ".",
        calculator_factory: Callable[[], Any] | None = None,
    ):
        if not isinstance(settings, dict) or "type" not in settings:
            raise ConfigError(
                f"label.potential: expected a calculator spec with a 'type' key, "
                f"e.g. {{type: eam, file: Mg1.eam.fs}}; got {settings!r}"
            )
        super().__init__(dict(settings))
        self.base_dir = Path(base_dir)
        self._factory = calculator_factory

    def with_overrides(self, overrides: dict[str, Any]) -> PotentialLabeller:
        """Same calculator factory, spec with ``overrides`` merged in."""
        clone = PotentialLabeller({**self.settings, **overrides}, self.base_dir, self._factory)
        clone.set_launcher(self.launch_prefix())
        return clone

    def calculator(self, directory: Path):
        """Fresh calculator (``directory`` is unused: potentials write no raw output)."""
        if self._factory is not None:
            return self._factory()
        return make_calculator(dict(self.settings), base_dir=self.base_dir)
