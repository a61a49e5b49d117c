"""Per-cycle views of a workflow config that the rules and stages take, and the targets of ``rule all``.

:func:`ns_block` merges the top-level ``ns`` defaults with a cycle's
overrides for one composition, :func:`phase_diagram_block` gives the
phase-diagram runs' block, :func:`cycle_runs` the ``(comp, pressure)`` runs of
a cycle, :func:`labeller_spec` and :func:`bench_reference_spec` the labellers,
and :func:`bench_targets` the benchmark targets.
"""

from __future__ import annotations

import copy
from typing import Any

from nestdb.bench.properties import PROPERTIES
from nestdb.errors import ConfigError
from nestdb.explore.settings import explore_settings

#: NS settings of the phase-diagram runs that are not taken from the top-level ``ns`` block.
_COMMITTEE_KEYS = ("committee_std_max", "committee_stop_std")


def format_pressure(pressure_gpa: float) -> str:
    """Wildcard form of a pressure in GPa: ``10`` for 10.0, ``2.5`` for 2.5.

    Parameters
    ----------
    pressure_gpa
        Pressure in GPa.

    Returns
    -------
    str
        A short, file-name-safe representation used in ``P{pressure}GPa`` paths.
    """
    return f"{float(pressure_gpa):g}"


def n_cycles(config: dict) -> int:
    """Number of configured cycles."""
    return len(config["cycles"])


def cycle_pressures(config: dict, cycle: int) -> list[str]:
    """Pressures (wildcard strings, GPa) of the NS runs of ``cycle``."""
    entry = config["cycles"][cycle]
    pressures = entry.get("pressures") or config["pressures"]
    return [format_pressure(p) for p in pressures]


def ns_block(config: dict, cycle: int, composition: str | dict | None = None) -> dict[str, Any]:
    """Top-level ``ns`` defaults merged with ``cycles[cycle].ns`` overrides, for one composition.

    Later cycles without their own ``calculator`` sample with the previous
    cycle's committee (``{"type": "ace_committee"}``, or
    ``{"type": "pacemaker_committee"}`` with ``fit.pacemaker.feeds_ns``; the
    workflow fills in the model path).

    ``composition`` picks one of the cycle's compositions (``ns.composition``
    may list several, :func:`run_compositions`): its run tag (the ``{comp}``
    wildcard, ``""`` or ``"Cu3Au1/"``) or the mapping itself; ``None`` gives
    the first. A composition with two or more elements gets swap moves
    (:data:`DEFAULT_SWAP_FRACTION`) unless ``move_fractions`` names ``swap``;
    a one-element composition drops ``swap``.
    """
    # A top-level calculator is the cycle-0 potential; later cycles use the committee.
    merged = _merged_ns(config, config["cycles"][cycle].get("ns"), drop=("calculator",) if cycle > 0 else ())
    _resolve_composition(config, cycle, merged, composition)
    if "calculator" not in merged:
        if cycle == 0:
            raise ConfigError(
                "cycles[0].ns.calculator is missing: cycle 0 samples with a classical "
                "potential, e.g. `calculator: {type: lj}` or "
                "`calculator: {type: eam, file: path/to/Mg.eam.fs}`."
            )
        pacemaker = (config.get("fit") or {}).get("pacemaker") or {}
        feeds_ns = pacemaker.get("enabled", False) and pacemaker.get("feeds_ns", False)
        merged["calculator"] = {"type": "pacemaker_committee" if feeds_ns else "ace_committee"}
    return merged


def phase_diagram_block(config: dict) -> dict:
    """The ``ns`` block of the phase-diagram runs: the top-level ``ns`` settings,
    ``bench.phase_diagram.n_atoms`` atoms of the first element, its ``ns``
    overrides, sampled freely with the final committee (no committee limits)."""
    cfg = config["bench"]["phase_diagram"]
    block = _merged_ns(config, cfg.get("ns"), drop=_COMMITTEE_KEYS)
    block["composition"] = {config["elements"][0]: int(cfg["n_atoms"])}
    block["calculator"] = {"type": "ace_committee"}
    return block


def _merged_ns(config: dict, overrides: dict | None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of the top-level ``ns`` block without the keys ``drop``, updated by ``overrides``."""
    merged = copy.deepcopy(config.get("ns", {}))
    for key in drop:
        merged.pop(key, None)
    merged.update(copy.deepcopy(overrides or {}))
    return merged


# --------------------------------------------------------------------------- compositions (issue 15)
#: Share of swap moves (before normalisation, the other moves summing to 1) that
#: a composition with several elements gets when ``move_fractions`` has no ``swap``.
DEFAULT_SWAP_FRACTION = 0.1


def _compositions(block: dict) -> list[dict[str, int]]:
    value = block.get("composition")
    if value is None:
        return []
    return [dict(c) for c in value] if isinstance(value, list) else [dict(value)]


def run_compositions(config: dict, cycle: int) -> list[dict[str, int]]:
    """The compositions of ``cycle``'s runs: ``ns.composition`` (one mapping or a list), cycle overrides applied."""
    block = dict(config.get("ns", {}), **(config["cycles"][cycle].get("ns") or {}))
    return _compositions(block)


def composition_tag(composition: dict[str, int], elements: list[str] | None = None) -> str:
    """Name of a composition in paths and ids: ``Cu3Au1``, elements in ``elements`` order (else as given)."""
    order = [e for e in (elements or []) if e in composition] + [e for e in composition if e not in (elements or [])]
    return "".join(f"{element}{int(composition[element])}" for element in order)


def composition_dirs(config: dict, cycle: int) -> list[str]:
    """The ``{comp}`` wildcard of each run of ``cycle``: ``""`` for one composition, else ``"<tag>/"`` each.

    One composition keeps the single-element paths (``results/ns/cycle0/P0GPa/``);
    several put each in its own folder (``results/ns/cycle0/Cu3Au1/P0GPa/``).
    """
    compositions = run_compositions(config, cycle)
    if len(compositions) <= 1:
        return [""]
    return [composition_tag(c, config.get("elements")) + "/" for c in compositions]


def cycle_runs(config: dict, cycle: int) -> list[tuple[str, str]]:
    """``(comp, pressure)`` wildcards of every NS run of ``cycle`` (compositions x pressures)."""
    return [(comp, pressure) for comp in composition_dirs(config, cycle) for pressure in cycle_pressures(config, cycle)]


def _resolve_composition(config: dict, cycle: int, block: dict, composition: str | dict | None) -> None:
    """Replace ``block["composition"]`` by the chosen single composition; default swap moves for alloys."""
    compositions = _compositions(block)
    if not compositions:
        return
    chosen = compositions[0]
    if isinstance(composition, dict):
        chosen = dict(composition)
    elif composition:
        by_tag = {composition_tag(c, config.get("elements")): c for c in compositions}
        tag = composition.rstrip("/")
        if tag not in by_tag:
            raise ConfigError(f"cycles[{cycle}]: no composition {tag!r} in ns.composition (tags: {', '.join(by_tag)})")
        chosen = by_tag[tag]
    block["composition"] = chosen
    fractions = block.get("move_fractions")
    if not isinstance(fractions, dict):
        return
    if sum(1 for n in chosen.values() if n > 0) >= 2:
        if "swap" not in fractions:
            block["move_fractions"] = dict(fractions, swap=DEFAULT_SWAP_FRACTION)
    elif "swap" in fractions:  # one list of moves for all compositions: the one-element runs cannot swap
        block["move_fractions"] = {move: f for move, f in fractions.items() if move != "swap"}


def select_rule(config: dict, cycle: int) -> dict:
    """The selection rule of ``cycle``."""
    return dict(config["cycles"][cycle]["select"])


def explore_block(config: dict, cycle: int) -> dict[str, Any]:
    """The exploration of ``cycle`` (``cycles[i].explore``) with its kind's defaults; ``{kind: ns}`` if absent."""
    return explore_settings(config["cycles"][cycle].get("explore"), f"cycles[{cycle}].explore")


def explore_kind(config: dict, cycle: int) -> str:
    """``ns``, ``random_crystals`` or ``md``: how ``cycle`` explores."""
    return str((config["cycles"][cycle].get("explore") or {}).get("kind", "ns"))


def labeller_spec(config: dict) -> dict:
    """The labeller spec (``{"code": ..., <code>: settings}``) of ``label``."""
    label = config["label"]
    code = label["code"]
    spec = {"code": code, code: label.get(code) or {}}
    if code == "potential" and "potential" not in label:
        raise ConfigError("label.code is 'potential' but label.potential (a calculator spec) is missing.")
    return spec


def bench_reference_spec(config: dict) -> dict:
    """The benchmark reference labeller: ``bench.reference`` or, if null, ``label``."""
    reference = config["bench"].get("reference")
    if reference is None:
        return labeller_spec(config)
    if "code" not in reference:
        raise ConfigError("bench.reference needs a `code` key (gpaw or potential), like `label`.")
    return dict(reference)


def oracle_spec(config: dict) -> dict:
    """The calculator spec of the campaign's oracle for ``bench.learning_curve``.

    The benchmark reference when it is a potential (``bench.reference: {code:
    potential, potential: ...}``), else the labeller when ``label.code`` is
    ``potential``.

    Raises
    ------
    ConfigError
        Neither is a potential: the test set needs a ground truth cheap enough to sample.
    """
    reference = bench_reference_spec(config)
    if reference.get("code") == "potential" and isinstance(reference.get("potential"), dict):
        return dict(reference["potential"])
    raise ConfigError(
        "bench.learning_curve needs an oracle that nested sampling can run: `label: {code: potential, potential: "
        "{type: eam, file: ...}}` or `bench.reference: {code: potential, potential: ...}`; "
        f"the reference here is {reference.get('code')!r}."
    )


# --------------------------------------------------------------------------- targets of `rule all`
def property_enabled(config: dict, kind: str) -> bool:
    """Whether a property runs: its ``enabled`` key; ``bench.alloy.enabled: null`` is on with two or more elements."""
    enabled = (config["bench"].get(kind) or {}).get("enabled")
    if kind == "alloy" and enabled is None:
        return len(config["elements"]) >= 2
    return bool(enabled)


def bench_targets(config: dict, cycles: list[int]) -> list[str]:
    """Workflow targets of the enabled properties, XRD and the phase diagram (``rule all``)."""
    bench = config["bench"]
    targets = []
    for cycle in cycles:
        targets += [f"results/bench/cycle{cycle}/{kind}.json" for kind in PROPERTIES if property_enabled(config, kind)]
        if bench["xrd"]["enabled"] and explore_kind(config, cycle) == "ns":  # XRD of NS samples only
            targets += [
                f"results/bench/cycle{cycle}/xrd/{comp}P{pressure}GPa/xrd.csv"
                for comp, pressure in cycle_runs(config, cycle)
            ]
        if explore_kind(config, cycle) == "ns":
            targets += sample_targets(config, cycle)
    if bench["phase_diagram"]["enabled"]:
        targets.append("results/bench/phase_diagram/melting.csv")
    if (bench.get("learning_curve") or {}).get("enabled"):
        targets.append("results/bench/learning_curve/learning_curve.csv")
    return targets


def _alloy_runs(config: dict, cycle: int) -> list[tuple[str, str, dict]]:
    return [
        (comp, pressure, composition)
        for comp, composition in zip(composition_dirs(config, cycle), run_compositions(config, cycle), strict=True)
        for pressure in cycle_pressures(config, cycle)
    ]


def mixing_pressures(config: dict, cycle: int) -> list[str]:
    """Pressures of ``cycle`` at which a mixing enthalpy can be formed (several compositions, every element pure)."""
    compositions = run_compositions(config, cycle)
    pure = {next(iter(c)) for c in compositions if len([n for n in c.values() if n]) == 1}
    mixed = [c for c in compositions if len([n for n in c.values() if n]) >= 2]
    if not mixed or not set(config["elements"]) <= pure:
        return []
    return cycle_pressures(config, cycle)


def sample_targets(config: dict, cycle: int) -> list[str]:
    """SRO tables of the runs with two or more elements, mixing tables where pure runs exist (``rule all``)."""
    if len(config["elements"]) < 2:
        return []
    targets = [
        f"results/bench/cycle{cycle}/sro/{comp}P{pressure}GPa/sro.csv"
        for comp, pressure, composition in _alloy_runs(config, cycle)
        if len([n for n in composition.values() if n]) >= 2
    ]
    targets += [
        f"results/bench/cycle{cycle}/mixing/P{pressure}GPa/mixing.csv" for pressure in mixing_pressures(config, cycle)
    ]
    return targets
