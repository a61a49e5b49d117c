"""The workflow config: read and checked, and the per-cycle views the rules and stages take.

The JSON schema shipped in the package (:data:`SCHEMA`,
``src/nestdb/schemas/config.schema.yaml``) checks types and fills defaults
(:func:`load_config`); this module merges the top-level ``ns`` defaults with a
cycle's overrides (:func:`ns_block`, :func:`phase_diagram_block`), lists the
workflow's targets (:func:`bench_targets`), and checks every section and the
cross-key rules (cycle 0 needs a classical calculator, every element needs a
reference energy, files exist, fit/label/calculator settings, committee
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
from typing import Any

import yaml

from nestdb.bench.properties import PROPERTIES
from nestdb.campaign.testset import DEFAULT_TEST_SET
from nestdb.errors import ConfigError
from nestdb.explore.settings import check_composition, explore_settings
from nestdb.fit.settings import ISOLATED_ATOM, validate_fit_settings, validate_hyperopt_settings
from nestdb.label.driver import LabelPolicy
from nestdb.label.elements import check_calculator_elements, check_label_elements
from nestdb.label.labellers import make_labeller
from nestdb.models.calculators import COMMITTEE_TYPES, check_calculator_spec
from nestdb.ns.settings import check_ns_block
from nestdb.potentials.lj import LJ_DEFAULTS
from nestdb.schemas import SCHEMA_PATH
from nestdb.select.rules import POOL_RULES, validate_rule

#: The workflow's config schema (types and every default), shipped in the package.
SCHEMA = SCHEMA_PATH
#: NS settings of the phase-diagram runs that are not taken from the top-level ``ns`` block.
_COMMITTEE_KEYS = ("committee_std_max", "committee_stop_std")


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


def _check_compositions(config: dict) -> None:
    """Every composition of every cycle uses only listed elements, and every element appears in one.

    Also: the same composition twice would give two runs the same folder.
    """
    elements = list(config["elements"])
    used: set[str] = set()
    for cycle in range(n_cycles(config)):
        where = f"cycles[{cycle}].ns.composition"
        compositions = run_compositions(config, cycle)
        if not compositions:
            raise ConfigError(
                f"{where} is missing: give the atoms per NS cell, e.g. `composition: {{Cu: 4}}` or "
                "a list of such mappings, one NS run per composition and pressure."
            )
        tags = [composition_tag(c, elements) for c in compositions]
        if len(set(tags)) < len(tags):
            raise ConfigError(f"{where} lists the same composition twice ({', '.join(tags)}); remove the repeat.")
        for composition in compositions:
            unknown = sorted(set(composition) - set(elements))
            if unknown:
                raise ConfigError(
                    f"{where}: {composition_tag(composition)} has element(s) {unknown} not listed in "
                    f"`elements` {elements}; add them to `elements` (with their fit.reference_energies "
                    "and labelling settings) or remove them from the composition."
                )
            used.update(e for e, n in composition.items() if n > 0)
    unused = [e for e in elements if e not in used]
    if unused:
        raise ConfigError(
            f"`elements` lists {unused}, which no ns.composition of any cycle contains; remove them "
            "from `elements` or add a composition with them (an element never sampled cannot be "
            "fitted)."
        )


def _check_element_data(config: dict) -> None:
    """Labellers (setups, pseudopotentials) and classical potentials cover every element they meet."""
    elements = list(config["elements"])
    check_label_elements(labeller_spec(config), elements, "label")
    reference = (config.get("bench") or {}).get("reference")
    if isinstance(reference, dict) and "code" in reference:
        check_label_elements(reference, elements, "bench.reference")
    for cycle in range(n_cycles(config)):
        present = sorted({e for c in run_compositions(config, cycle) for e in c})
        check_calculator_elements(ns_block(config, cycle)["calculator"], present, f"cycles[{cycle}].ns.calculator")


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


def check_config(config: dict, base_dir: str | Path = ".") -> None:
    """Check every section and the cross-key rules after schema validation; raise :class:`ConfigError`.

    Run by the Snakefile before any job and by the CLI (:func:`load_config`):
    the ``ns`` block of every cycle (top level merged with the cycle's
    overrides: settings, calculator type and keys, files, committee limits, a
    committee calculator in cycle 0), the selection rule and exploration, the
    compositions against ``elements``, the ``fit`` settings (linear,
    ``pacemaker``, ``hyperopt``), the labelling code's settings and its
    ``retry`` overrides, the benchmark reference, the analysis grid and the
    phase-diagram runs. Each message names the key, the value and the fix.

    Parameters
    ----------
    config
        Schema-validated config with defaults filled in.
    base_dir
        Directory relative paths in the config are resolved against.
    """
    base_dir = Path(base_dir)
    _check_required(config)
    elements = set(config["elements"])
    for cycle in range(n_cycles(config)):
        where = f"cycles[{cycle}]"
        if not run_compositions(config, cycle):
            raise ConfigError(
                f"{where}.ns.composition is missing (it has no default): give the atoms per NS cell of your "
                "material, e.g. `ns: {composition: {Cu: 4}}`, or a list of such mappings."
            )
        block = ns_block(config, cycle)
        unknown = set(block["composition"]) - elements
        if unknown:
            raise ConfigError(
                f"{where}: ns.composition has element(s) {sorted(unknown)} not listed in `elements` "
                f"{sorted(elements)}; add them to `elements`."
            )
        check_calculator_spec(block["calculator"], f"{where}.ns.calculator", base_dir, committee_model=cycle > 0)
        check_ns_block(block, [float(p) for p in cycle_pressures(config, cycle)], f"{where}.ns")
        rule = select_rule(config, cycle)
        if rule["kind"] == "temperature_window":
            for key in ("t_min", "t_max", "count"):
                if key not in rule:
                    raise ConfigError(f"{where}.select: kind temperature_window needs `{key}`.")
            if rule["t_min"] >= rule["t_max"]:
                raise ConfigError(f"{where}.select: t_min ({rule['t_min']} K) must be below t_max ({rule['t_max']} K).")
        if rule["kind"] == "last" and "count" not in rule:
            raise ConfigError(f"{where}.select: kind last needs `count`.")
        _check_exploration(config, cycle, block, rule, where)
    missing = elements - set(config["fit"].get("reference_energies") or {})
    if missing:
        raise ConfigError(
            f"fit.reference_energies has no entry for {sorted(missing)}: give the isolated-atom "
            "energy (eV) of every element, e.g. `reference_energies: {Mg: 0.0}` for GPAW energies, "
            "or `{Cu: isolated_atom}` to compute it with the labelling settings."
        )
    _check_fit(config)
    _check_learning_curve(config)
    _check_compositions(config)
    _check_element_data(config)
    _check_labelling(config, base_dir)
    _check_analyse(config)
    _check_phase_diagram(config)
    spec = labeller_spec(config)
    if spec["code"] == "potential":
        _check_calculator_files(spec["potential"], "label.potential", base_dir)
        explorer = ns_block(config, 0)["calculator"]  # the oracle must not be the cycle-0 explorer
        if same_model(spec["potential"], explorer, base_dir):
            raise ConfigError(
                f"label.potential {spec['potential']} (the oracle that labels) is the same model as "
                f"cycles[0].ns.calculator {explorer} (the cycle-0 explorer): the loop would start on the ground "
                "truth's own configurations and the campaign would measure nothing. Explore cycle 0 with a "
                "different cheap model, e.g. `calculator: {type: lj}`."
            )


def _check_required(config: dict) -> None:
    """The keys without a default: ``elements`` and ``cycles``."""
    if not config.get("elements"):
        raise ConfigError(
            "the config has no `elements` (there is no default material): list the chemical elements of the "
            "campaign, e.g. `elements: [Cu]` or `elements: [Cu, Au]`."
        )
    if not config.get("cycles"):
        raise ConfigError(
            "the config has no `cycles`: list one entry per active-learning cycle, each with its selection "
            "rule, e.g. `cycles: [{ns: {calculator: {type: lj}}, select: {kind: temperature_window, t_min: 200, "
            "t_max: 2500, count: 4}}, {select: {kind: final}}]` (config/README.md, `cycles[i]`)."
        )


def _check_fit(config: dict) -> None:
    """The ``fit`` section as the fit will read it (linear, pacemaker and hyperopt settings)."""
    fit = dict(config["fit"], elements=list(config["elements"]))
    # E0 computed by the workflow (rule label_isolated_atom) is a number only later: check a stand-in
    fit["reference_energies"] = {
        element: 0.0 if value == ISOLATED_ATOM else value for element, value in fit["reference_energies"].items()
    }
    settings = validate_fit_settings(fit)
    if settings["hyperopt"]["enabled"]:  # the search space against the fit's basis, as the study reads it
        validate_hyperopt_settings(fit.get("hyperopt"), settings)


def _check_labelling(config: dict, base_dir: Path) -> None:
    """The labelling code's settings, its ``retry`` overrides and limits, and the benchmark reference's code."""
    make_labeller(labeller_spec(config), base_dir=base_dir)
    LabelPolicy.from_config(config["label"])
    label = config["label"]
    if label["code"] == "potential":
        check_calculator_spec(label["potential"], "label.potential", base_dir)
    reference = config["bench"].get("reference")
    if isinstance(reference, dict):
        spec = bench_reference_spec(config)
        try:
            make_labeller(spec, base_dir=base_dir)
        except ConfigError as err:
            raise ConfigError(f"bench.reference: {err}") from None
        if spec.get("code") == "potential":
            check_calculator_spec(spec.get("potential"), "bench.reference.potential", base_dir)


def _check_analyse(config: dict) -> None:
    """The temperature grid of the thermodynamic tables."""
    grid = config["analyse"]
    if grid["t_min"] >= grid["t_max"]:
        raise ConfigError(
            f"analyse.t_min ({grid['t_min']} K) must be below analyse.t_max ({grid['t_max']} K); "
            "e.g. `analyse: {t_min: 50, t_max: 4000}`."
        )
    if grid["t_step"] > grid["t_max"] - grid["t_min"]:
        raise ConfigError(
            f"analyse.t_step ({grid['t_step']} K) is wider than the grid t_min..t_max "
            f"({grid['t_min']}..{grid['t_max']} K); use a smaller step."
        )


def _check_phase_diagram(config: dict) -> None:
    """The phase-diagram NS runs (top-level ``ns`` with ``bench.phase_diagram.ns`` overrides), when enabled."""
    phase_diagram = config["bench"]["phase_diagram"]
    if phase_diagram.get("enabled"):
        pressures = [float(p) for p in phase_diagram["pressures"]]
        check_ns_block(phase_diagram_block(config), pressures, "bench.phase_diagram.ns")


def _check_learning_curve(config: dict) -> None:
    """``bench.learning_curve`` needs an oracle it can sample."""
    learning_curve = (config.get("bench") or {}).get("learning_curve") or {}
    if learning_curve.get("enabled"):
        oracle_spec(config)
        unknown = sorted(set(learning_curve.get("test_set") or {}) - set(DEFAULT_TEST_SET))
        if unknown:
            raise ConfigError(
                f"bench.learning_curve.test_set: unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(DEFAULT_TEST_SET)}"
            )


def _check_exploration(config: dict, cycle: int, block: dict, rule: dict, where: str) -> None:
    """The cycle's exploration kind and its selection rule fit together."""
    validate_rule(rule, f"{where}.select")
    explore = explore_block(config, cycle)
    check_composition(explore, block["composition"], f"{where}.explore")
    if explore["kind"] != "ns" and rule["kind"] not in POOL_RULES:
        raise ConfigError(
            f"{where}.select: rule {rule['kind']!r} needs nested-sampling thermodynamics, but the cycle explores "
            f"with {explore['kind']!r}; select its pool with one of {', '.join(POOL_RULES)}."
        )
    committee = block["calculator"]["type"] in COMMITTEE_TYPES
    if rule["kind"] == "trust_window" and not committee:
        raise ConfigError(
            f"{where}.select: the trust window selects by the committee's energy STD, but this cycle explores "
            f"with {block['calculator']['type']!r}, which has no committee (cycle 0 uses a classical potential); "
            "use `select: {kind: random, count: ...}` or a temperature window here."
        )


def same_model(a: dict, b: dict, base_dir: str | Path = ".") -> bool:
    """Whether two calculator specs name the same model (same type, same file, same parameters).

    Files are compared by content, so two paths to one EAM file are the same
    model; keys that only pick an implementation (``implementation``) or a
    format (``kind``) do not make another model.
    """
    if a.get("type") != b.get("type"):
        return False
    if a["type"] == "lj":
        return all(float(a.get(k, v)) == float(b.get(k, v)) for k, v in LJ_DEFAULTS.items())
    if "file" in a or "file" in b:
        paths = []
        for spec in (a, b):
            path = Path(spec.get("file", ""))
            paths.append(path if path.is_absolute() else Path(base_dir) / path)
        if not all(p.is_file() for p in paths):
            return str(paths[0]) == str(paths[1])
        return paths[0].read_bytes() == paths[1].read_bytes()
    ignored = {"implementation", "kind"}
    return {k: v for k, v in a.items() if k not in ignored} == {k: v for k, v in b.items() if k not in ignored}


def _check_calculator_files(spec: dict, where: str, base_dir: Path) -> None:
    """A calculator spec that names a file must name an existing one."""
    for key in ("file",):
        if key in spec:
            path = Path(spec[key])
            if not path.is_absolute():
                path = base_dir / path
            if not path.exists():
                raise ConfigError(f"{where}.{key}: file not found: {path}")


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
