"""The ``fit:`` settings: defaults and checks (one place for every key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nestdb.errors import ConfigError

#: Defaults of the ``fit:`` section.  The default basis (body order 4,
#: nradmax_by_orders [8, 4, 2], lmax_by_orders [0, 3, 2]) has 74 functions
#: per element: it fits ~20 eight-atom configurations in about a second.
#: The study's settings (config/mg-study.yaml) are larger; see config/README.md.
DEFAULT_FIT_SETTINGS: dict[str, Any] = {
    "elements": ["Mg"],
    "reference_energies": {"Mg": 0.0},
    "fit_reference_energies": False,
    "cutoff": 6.0,
    "nradmax_by_orders": [8, 4, 2],
    "lmax_by_orders": [0, 3, 2],
    "number_of_functions_per_element": None,
    "smoothness_prior": 3.0,
    "smoothness_l_weight": 2.0,
    "energy_weight": 9.0,
    "force_weight": 1.0,
    "virial_weight": 0.3,
    "use_sample_weights": False,
    "committee_size": 10,
    "committee_method": "jackknife",
    "calibration_fraction": 0.1,
    "test_fraction": 0.2,
    "refit_on_all_data": False,
    "seed": 0,
    "feature_cache": None,
    "n_jobs": 1,
    "pacemaker": {},
    "hyperopt": {},
}

COMMITTEE_METHODS = ("posterior", "bootstrap", "jackknife")
#: ``fit.reference_energies`` value: E0 from the isolated-atom calculation with the labelling settings
#: (rule ``label_isolated_atom``, ``results/label/e0/<element>.json``).
ISOLATED_ATOM = "isolated_atom"


def isolated_atom_elements(reference_energies: dict) -> list[str]:
    """Elements whose ``fit.reference_energies`` entry is :data:`ISOLATED_ATOM`."""
    return [element for element, value in (reference_energies or {}).items() if value == ISOLATED_ATOM]


def resolve_reference_energies(settings: dict, e0_paths: list[str | Path]) -> dict:
    """``settings`` with every :data:`ISOLATED_ATOM` reference energy replaced by its E0 file's energy.

    Parameters
    ----------
    settings
        ``fit:`` settings.
    e0_paths
        JSON files of :func:`nestdb.label.workflow.isolated_atom_energy`
        (keys ``element``, ``energy``).

    Raises
    ------
    ConfigError
        An element asks for its isolated-atom energy but no file gives it.
    DataError
        A file that is not such a result.
    """
    import json

    from nestdb.errors import DataError

    energies = {}
    for path in e0_paths:
        try:
            record = json.loads(Path(path).read_text())
            energies[str(record["element"])] = float(record["energy"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}: not an isolated-atom energy file (JSON with element and energy): {err}") from err
    resolved = dict(settings.get("reference_energies") or {})
    for element in isolated_atom_elements(resolved):
        if element not in energies:
            raise ConfigError(f"fit.reference_energies.{element} is {ISOLATED_ATOM!r} but no isolated-atom energy of "
                              f"{element} was given (results/label/e0/{element}.json, rule label_isolated_atom)")
        resolved[element] = energies[element]
    return dict(settings, reference_energies=resolved)


def merged_with_defaults(settings: dict | None, defaults: dict, section: str) -> dict:
    """``defaults`` updated by ``settings``; unknown keys raise a :class:`ConfigError` naming ``section.key``."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown settings {[f'{section}.{k}' for k in unknown]}; "
                          f"accepted keys: {sorted(defaults)}")
    return {**defaults, **settings}


def check_flags(settings: dict, keys: tuple[str, ...], section: str) -> None:
    """Raise a :class:`ConfigError` naming ``section.key`` when a flag is not true/false."""
    for key in keys:
        if not isinstance(settings[key], bool):
            raise ConfigError(f"{section}.{key} must be true or false, got {settings[key]!r}")


def _int_list(settings: dict, key: str) -> list[int]:
    value = settings[key]
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"fit.{key} must be a non-empty list of integers (one per rank), got {value!r}")
    return [int(v) for v in value]


def _number(settings: dict, key: str, minimum: float, *, strict: bool = False) -> float:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        raise ConfigError(f"fit.{key} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ConfigError(f"fit.{key} must be {relation} {minimum}, got {value!r}")
    return float(value)


def validate_fit_settings(settings: dict | None) -> dict:
    """Merge ``settings`` with :data:`DEFAULT_FIT_SETTINGS` and check every value.

    Raises
    ------
    ConfigError
        Naming the offending ``fit.<key>`` and what is expected.
    """
    merged = merged_with_defaults(settings, DEFAULT_FIT_SETTINGS, "fit")
    check_flags(merged, ("use_sample_weights", "refit_on_all_data", "fit_reference_energies"), "fit")

    elements = merged["elements"]
    if isinstance(elements, str):
        elements = [elements]
    if not isinstance(elements, (list, tuple)) or not elements:
        raise ConfigError(f"fit.elements must be a non-empty list of chemical symbols, got {elements!r}")
    from ase.data import atomic_numbers
    for symbol in elements:
        if symbol not in atomic_numbers:
            raise ConfigError(f"fit.elements: {symbol!r} is not a chemical symbol")
    merged["elements"] = sorted(set(elements))

    e0 = merged["reference_energies"]
    if not isinstance(e0, dict):
        raise ConfigError(f"fit.reference_energies must map element -> E0 in eV, got {e0!r}")
    for symbol in merged["elements"]:
        if symbol not in e0:
            raise ConfigError(f"fit.reference_energies has no E0 for element {symbol!r}; add "
                              f"'{symbol}: <isolated-atom energy in eV>' (e.g. Mg: -1688.821 for the study's CASTEP)")
        value = e0[symbol]
        if value == ISOLATED_ATOM:
            raise ConfigError(f"fit.reference_energies.{symbol} is {ISOLATED_ATOM!r}: resolve it from the "
                              "isolated-atom calculation first (resolve_reference_energies with "
                              f"results/label/e0/{symbol}.json; the workflow does this) or give the energy in eV")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise ConfigError(f"fit.reference_energies.{symbol} must be a number (eV), got {value!r}")
    merged["reference_energies"] = {s: float(e0[s]) for s in merged["elements"]}

    merged["cutoff"] = _number(merged, "cutoff", 0.0, strict=True)
    nradmax = _int_list(merged, "nradmax_by_orders")
    lmax = _int_list(merged, "lmax_by_orders")
    if len(nradmax) != len(lmax):
        raise ConfigError(f"fit.nradmax_by_orders ({nradmax}) and fit.lmax_by_orders ({lmax}) need one entry "
                          "per rank (body order - 1) each")
    if len(nradmax) > 5:
        raise ConfigError(f"fit.nradmax_by_orders has {len(nradmax)} ranks: body order > 6 is not supported")
    if min(nradmax) < 1 or min(lmax) < 0 or lmax[0] != 0:
        raise ConfigError("fit.nradmax_by_orders entries must be >= 1 and fit.lmax_by_orders entries >= 0 "
                          f"with 0 for rank 1; got {nradmax} and {lmax}")
    merged["nradmax_by_orders"], merged["lmax_by_orders"] = nradmax, lmax
    if merged["number_of_functions_per_element"] is not None:
        merged["number_of_functions_per_element"] = int(
            _number(merged, "number_of_functions_per_element", 1))

    merged["smoothness_prior"] = _number(merged, "smoothness_prior", 0.0)
    merged["smoothness_l_weight"] = _number(merged, "smoothness_l_weight", 0.0)
    merged["energy_weight"] = _number(merged, "energy_weight", 0.0)
    merged["force_weight"] = _number(merged, "force_weight", 0.0)
    if merged["energy_weight"] == 0 and merged["force_weight"] == 0:
        raise ConfigError("fit.energy_weight and fit.force_weight are both 0: nothing to fit")
    committee_size = merged["committee_size"]
    if isinstance(committee_size, bool) or not isinstance(committee_size, (int, np.integer)) or committee_size < 2:
        raise ConfigError(f"fit.committee_size must be an integer >= 2, got {committee_size!r}")
    merged["committee_size"] = int(committee_size)
    test_fraction = _number(merged, "test_fraction", 0.0)
    if test_fraction >= 1:
        raise ConfigError(f"fit.test_fraction must be in [0, 1), got {test_fraction}")
    merged["test_fraction"] = test_fraction
    seed = merged["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"fit.seed must be a non-negative integer, got {seed!r}")
    merged["seed"] = int(seed)
    merged["virial_weight"] = _number(merged, "virial_weight", 0.0)
    if merged["committee_method"] not in COMMITTEE_METHODS:
        raise ConfigError(f"fit.committee_method must be one of {list(COMMITTEE_METHODS)}, "
                          f"got {merged['committee_method']!r}")
    calibration_fraction = _number(merged, "calibration_fraction", 0.0)
    if calibration_fraction >= 0.5:
        raise ConfigError(f"fit.calibration_fraction must be in [0, 0.5), got {calibration_fraction}")
    merged["calibration_fraction"] = calibration_fraction
    cache = merged["feature_cache"]
    if cache is not None and (not isinstance(cache, str) or not cache.strip()):
        raise ConfigError(f"fit.feature_cache must be a folder path or null, got {cache!r}")
    n_jobs = merged["n_jobs"]
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ConfigError(f"fit.n_jobs must be an integer >= 1, got {n_jobs!r}")
    merged["n_jobs"] = int(n_jobs)
    from nestdb.fit.pacemaker import validate_pacemaker_settings

    merged["pacemaker"] = validate_pacemaker_settings(merged["pacemaker"])
    from nestdb.fit.hyperopt import validate_hyperopt_settings

    merged["hyperopt"] = validate_hyperopt_settings(merged["hyperopt"])
    return merged
