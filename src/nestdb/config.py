"""Resolve the per-cycle view of a campaign config and check what a schema cannot.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types and
fills defaults; this module merges the top-level ``ns`` defaults with a
cycle's overrides, and checks cross-key rules (cycle 0 needs a classical
calculator, every element needs a reference energy, files exist) with
messages that name the key and the fix.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from nestdb.errors import ConfigError

#: Keys of an NS settings block that are not NSSettings fields.
_NS_NON_ENGINE_KEYS = ("composition", "calculator", "engine", "pymatnest")


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


def ns_block(config: dict, cycle: int) -> dict[str, Any]:
    """Top-level ``ns`` defaults merged with ``cycles[cycle].ns`` overrides.

    Later cycles without their own ``calculator`` sample with the previous
    cycle's committee (``{"type": "ace_committee"}``, or
    ``{"type": "pacemaker_committee"}`` with ``fit.pacemaker.feeds_ns``; the
    workflow fills in the model path).
    """
    merged = copy.deepcopy(config.get("ns", {}))
    if cycle > 0:
        # A top-level calculator is the cycle-0 potential; later cycles use the committee.
        merged.pop("calculator", None)
    overrides = config["cycles"][cycle].get("ns") or {}
    merged.update(copy.deepcopy(overrides))
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


def ns_engine_settings(block: dict, pressure_gpa: float) -> dict[str, Any]:
    """The keyword arguments of :class:`nestdb.ns.NSSettings` from an ``ns`` block."""
    settings = {k: v for k, v in block.items() if k not in _NS_NON_ENGINE_KEYS}
    settings["pressure_gpa"] = float(pressure_gpa)
    return settings


def select_rule(config: dict, cycle: int) -> dict:
    """The selection rule of ``cycle``."""
    return dict(config["cycles"][cycle]["select"])


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


def check_config(config: dict, base_dir: str | Path = ".") -> None:
    """Cross-key checks after schema validation; raise :class:`ConfigError`.

    Parameters
    ----------
    config
        Schema-validated config with defaults filled in.
    base_dir
        Directory relative paths in the config are resolved against.
    """
    base_dir = Path(base_dir)
    elements = set(config["elements"])
    for cycle in range(n_cycles(config)):
        where = f"cycles[{cycle}]"
        block = ns_block(config, cycle)
        unknown = set(block["composition"]) - elements
        if unknown:
            raise ConfigError(
                f"{where}: ns.composition has element(s) {sorted(unknown)} not listed in `elements` "
                f"{sorted(elements)}; add them to `elements`."
            )
        _check_calculator_files(block["calculator"], f"{where}.ns.calculator", base_dir)
        from nestdb.ns.settings import check_ns_block  # NS settings fail here, before any job

        check_ns_block(block, [float(p) for p in cycle_pressures(config, cycle)], f"{where}.ns")
        rule = select_rule(config, cycle)
        if rule["kind"] == "temperature_window":
            for key in ("t_min", "t_max", "count"):
                if key not in rule:
                    raise ConfigError(f"{where}.select: kind temperature_window needs `{key}`.")
            if rule["t_min"] >= rule["t_max"]:
                raise ConfigError(
                    f"{where}.select: t_min ({rule['t_min']} K) must be below t_max ({rule['t_max']} K)."
                )
        if rule["kind"] == "last" and "count" not in rule:
            raise ConfigError(f"{where}.select: kind last needs `count`.")
    missing = elements - set(config["fit"]["reference_energies"])
    if missing:
        raise ConfigError(
            f"fit.reference_energies has no entry for {sorted(missing)}: give the isolated-atom "
            "energy (eV) of every element, e.g. `reference_energies: {Mg: 0.0}` for GPAW energies."
        )
    spec = labeller_spec(config)
    if spec["code"] == "potential":
        _check_calculator_files(spec["potential"], "label.potential", base_dir)


def _check_calculator_files(spec: dict, where: str, base_dir: Path) -> None:
    """A calculator spec that names a file must name an existing one."""
    for key in ("file",):
        if key in spec:
            path = Path(spec[key])
            if not path.is_absolute():
                path = base_dir / path
            if not path.exists():
                raise ConfigError(f"{where}.{key}: file not found: {path}")
