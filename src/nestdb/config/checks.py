"""The checks of a workflow config before any job (:func:`check_config`): every section and the cross-key rules.

Each message names the key, the value and the fix. The schema has checked
types and filled defaults before (:func:`nestdb.config.load_config`, the
Snakefile's ``validate``).
"""

from __future__ import annotations

from pathlib import Path

from nestdb.campaign.testset import DEFAULT_TEST_SET
from nestdb.config.views import (
    bench_reference_spec,
    composition_tag,
    cycle_pressures,
    explore_block,
    labeller_spec,
    n_cycles,
    ns_block,
    oracle_spec,
    phase_diagram_block,
    run_compositions,
    select_rule,
)
from nestdb.errors import ConfigError
from nestdb.explore.settings import check_composition
from nestdb.fit.settings import ISOLATED_ATOM, validate_fit_settings, validate_hyperopt_settings
from nestdb.label.driver import LabelPolicy
from nestdb.label.elements import check_calculator_elements, check_label_elements
from nestdb.label.labellers import make_labeller
from nestdb.models.calculators import COMMITTEE_TYPES, check_calculator_spec
from nestdb.ns.settings import check_ns_block
from nestdb.potentials.lj import LJ_DEFAULTS
from nestdb.select.rules import POOL_RULES, validate_rule


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
    _check_bench(config)
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


def _check_bench(config: dict) -> None:
    """Ranges and bins of the benchmarks, which the schema checks only element by element."""
    bench = config["bench"]
    ranges = (
        ("bench.ev_range", bench["ev_range"], "[0.85, 1.15]"),
        ("bench.xrd.two_theta_range", bench["xrd"]["two_theta_range"], "[5.0, 30.0]"),
    )
    for key, (low, high), example in ranges:
        if not low < high:
            raise ConfigError(f"{key} {[low, high]}: the first entry must be the smaller, e.g. {example}.")
    bins = list(bench["xrd"]["temperature_bins"])
    if any(b >= a for a, b in zip(bins[1:], bins[:-1], strict=True)):
        raise ConfigError(
            f"bench.xrd.temperature_bins {bins}: bin edges (K) must increase, e.g. [0, 300, 600, 900, 1200]."
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
