"""Settings of the exploration kinds other than nested sampling (``cycles[i].explore``).

A cycle explores with nested sampling by default (``explore: {kind: ns}``, the
``ns`` block). Two peer strategies are configurable as well, with the cycle's
``ns.calculator`` (cycle 0: the classical potential; later cycles: the previous
cycle's committee) and ``ns.composition``:

* ``random_crystals`` (ASSYST, Poul et al. 2023): random crystals of given
  space groups at the current model's density of each pressure, relaxed a few
  steps with that model;
* ``md`` (DP-GEN, Zhang et al. 2019): constant-pressure MD from seed crystals
  on a temperature grid at each pressure, frames every ``interval`` steps.

Their pools are selected with the pool rules of :mod:`nestdb.select`
(``trust_window``, ``random``).
"""

from __future__ import annotations

import copy
from typing import Any

from nestdb.errors import ConfigError
from nestdb.explore.md import seed_crystal
from nestdb.structures.crystals import KNOWN_STRUCTURES

#: Exploration kinds of a cycle.
EXPLORE_KINDS: tuple[str, ...] = ("ns", "random_crystals", "md")

#: Defaults of each kind (``ns`` takes its settings from the ``ns`` block).
EXPLORE_DEFAULTS: dict[str, dict[str, Any]] = {
    "ns": {},
    "random_crystals": {
        "count": 20,  # random crystals per pressure
        "space_groups": None,  # None: every space group that can hold the composition
        "volume_range": [0.9, 1.1],  # volume scale drawn around the model's density at the pressure
        "relax_steps": 5,  # FIRE steps with the model (cell + positions, symmetry kept) at the pressure
        "perturbations": 0,  # extra perturbed copies of each relaxed crystal (ASSYST makes 5)
        "rattle": 0.1,  # Å, Gaussian displacement of the perturbed copies
        "strain": 0.05,  # largest strain component of the perturbed copies
        "seed": 0,
    },
    "md": {
        "structures": ["fcc", "hcp", "bcc"],  # seed crystals (nestdb.structures.crystals)
        "temperatures": [300, 600, 1200, 2400],  # K, one trajectory per structure and temperature
        "steps": 400,  # MD steps per trajectory
        "interval": 20,  # a frame every this many steps
        "timestep": 2.0,  # fs
        "max_std": None,  # meV/atom: stop a trajectory whose committee STD exceeds it
        "seed": 0,
    },
}


def explore_settings(explore: dict | None, where: str = "explore") -> dict[str, Any]:
    """The exploration block with the defaults of its kind filled in, checked.

    Parameters
    ----------
    explore
        ``cycles[i].explore`` (None or missing ``kind``: nested sampling).
    where
        Location in the config, used in messages.

    Returns
    -------
    dict
        ``{"kind": ..., <the kind's keys>}``.

    Raises
    ------
    ConfigError
        Unknown kind, a key of another kind, or a value out of range, naming
        ``where`` and the key.
    """
    explore = dict(explore or {})
    kind = explore.pop("kind", "ns")
    if kind not in EXPLORE_KINDS:
        raise ConfigError(f"{where}.kind: unknown exploration {kind!r}; use one of {', '.join(EXPLORE_KINDS)}")
    defaults = EXPLORE_DEFAULTS[kind]
    unknown = sorted(set(explore) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none (ns takes its settings from the ns block)"
        raise ConfigError(
            f"{where}: key(s) {', '.join(unknown)} are not settings of exploration kind {kind!r}; allowed: {allowed}"
        )
    settings = {"kind": kind, **copy.deepcopy(defaults), **copy.deepcopy(explore)}
    if kind == "random_crystals":
        _check_random_crystals(settings, where)
    elif kind == "md":
        _check_md(settings, where)
    return settings


def _positive_int(settings: dict, key: str, where: str, minimum: int = 1) -> None:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key}: must be an integer >= {minimum}, got {value!r}")


def _number(settings: dict, key: str, where: str, minimum: float = 0.0, strict: bool = False) -> None:
    value = settings[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ConfigError(f"{where}.{key}: must be a number {relation} {minimum:g}, got {value!r}")


def _check_random_crystals(settings: dict, where: str) -> None:
    _positive_int(settings, "count", where)
    _positive_int(settings, "relax_steps", where, minimum=0)
    _positive_int(settings, "perturbations", where, minimum=0)
    _positive_int(settings, "seed", where, minimum=0)
    _number(settings, "rattle", where)
    _number(settings, "strain", where)
    if settings["strain"] >= 0.5:
        raise ConfigError(f"{where}.strain: {settings['strain']} is not a small strain; use a value below 0.5")
    volume_range = settings["volume_range"]
    if (
        not isinstance(volume_range, (list, tuple))
        or len(volume_range) != 2
        or not all(isinstance(v, (int, float)) and v > 0 for v in volume_range)
        or volume_range[0] > volume_range[1]
    ):
        raise ConfigError(
            f"{where}.volume_range: must be [low, high] volume scales with 0 < low <= high, got {volume_range!r}"
        )
    groups = settings["space_groups"]
    if groups is not None:
        if (
            not isinstance(groups, (list, tuple))
            or not groups
            or not all(isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= 230 for g in groups)
        ):
            raise ConfigError(
                f"{where}.space_groups: must be a non-empty list of space-group numbers 1-230 "
                f"(or null for all that fit the composition), got {groups!r}"
            )
        settings["space_groups"] = sorted(set(groups))


def _check_md(settings: dict, where: str) -> None:
    structures = settings["structures"]
    if not isinstance(structures, (list, tuple)) or not structures:
        raise ConfigError(
            f"{where}.structures: must be a non-empty list of seed crystals "
            f"({', '.join(KNOWN_STRUCTURES)}), got {structures!r}"
        )
    unknown = [s for s in structures if s not in KNOWN_STRUCTURES]
    if unknown:
        raise ConfigError(
            f"{where}.structures: unknown seed crystal(s) {unknown}; choose from {', '.join(KNOWN_STRUCTURES)}"
        )
    temperatures = settings["temperatures"]
    if (
        not isinstance(temperatures, (list, tuple))
        or not temperatures
        or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in temperatures)
    ):
        raise ConfigError(
            f"{where}.temperatures: must be a non-empty list of temperatures in K (> 0), got {temperatures!r}"
        )
    _positive_int(settings, "steps", where)
    _positive_int(settings, "interval", where)
    _positive_int(settings, "seed", where, minimum=0)
    _number(settings, "timestep", where, strict=True)
    if settings["interval"] > settings["steps"]:
        raise ConfigError(
            f"{where}.interval ({settings['interval']}) is longer than steps ({settings['steps']}): "
            "no frame would be recorded"
        )
    if settings["max_std"] is not None:
        _number(settings, "max_std", where, strict=True)


def check_composition(settings: dict, composition: dict[str, int], where: str) -> None:
    """Check an exploration against the cycle's composition.

    ``random_crystals``: every configured space group must have Wyckoff
    positions that add up to the composition in its conventional cell
    (pyxtal's compatibility check); ``md``: one element (its seed crystals
    are elemental) and an atom count that the seed crystals' primitive cells
    tile.

    Raises
    ------
    ConfigError
        Naming the space groups that cannot hold the composition, or the
        seed crystal that does not tile the atom count.
    """
    if settings["kind"] == "random_crystals":
        groups = settings["space_groups"]
        if groups is None:
            return
        bad = incompatible_space_groups(groups, composition)
        if bad:
            counts = ", ".join(f"{e}{n}" for e, n in composition.items())
            raise ConfigError(
                f"{where}.space_groups: space group(s) {', '.join(map(str, bad))} cannot hold "
                f"{counts} in their conventional cell (no combination of Wyckoff positions adds up "
                "to it); remove them, or set space_groups: null for every group that can"
            )
    elif settings["kind"] == "md":
        if len(composition) != 1:
            raise ConfigError(
                f"{where}: md exploration starts from elemental seed crystals; composition "
                f"{composition} has several elements"
            )

        n_atoms = int(sum(composition.values()))
        for name in settings["structures"]:
            seed_crystal(name, next(iter(composition)), n_atoms, 20.0, where=f"{where}.structures")


def compatible_space_groups(composition: dict[str, int]) -> list[int]:
    """Space groups (1-230) whose Wyckoff positions can hold ``composition`` in the conventional cell."""
    from pyxtal.symmetry import Group  # optional: only random-crystal explorations need pyxtal

    counts = [int(n) for n in composition.values()]
    return [g for g in range(1, 231) if Group(g).check_compatible(counts)[0]]


def incompatible_space_groups(groups, composition: dict[str, int]) -> list[int]:
    """The space groups of ``groups`` that cannot hold ``composition`` (pyxtal's Wyckoff check)."""
    from pyxtal.symmetry import Group  # optional: only random-crystal explorations need pyxtal

    counts = [int(n) for n in composition.values()]
    return [g for g in groups if not Group(int(g)).check_compatible(counts)[0]]
