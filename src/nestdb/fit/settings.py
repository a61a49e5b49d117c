"""The ``fit:`` settings: defaults (read from the config schema, the one table) and checks of every key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from nestdb.errors import ConfigError, DataError
from nestdb.fit.pacemaker_member import command_argv
from nestdb.schemas import schema_defaults

#: Keys of the library's fit settings that the workflow fills from elsewhere in the config.
_LIBRARY_ONLY_SETTINGS: dict[str, Any] = {
    # the material's keys have no default (as in the schema): the workflow passes the config's
    # `elements` and `fit.reference_energies`, a library call names them
    "elements": None,
    "reference_energies": None,
    "n_jobs": 1,  # the workflow passes the rule's threads
}

#: Defaults of the ``fit:`` section: the config schema's (``nestdb/schemas/config.schema.yaml``,
#: the one table of defaults), so a library call fits the model the workflow fits. The material's
#: keys, ``elements`` and ``reference_energies``, have none (None here: a call must name them). The
#: default basis (body order 4, nradmax_by_orders [8, 4, 2], lmax_by_orders [0, 3, 2]) has 74
#: functions per element: it fits ~20 eight-atom configurations in about a second. The study's
#: settings (config/mg-study.yaml) are larger; see config/README.md.
DEFAULT_FIT_SETTINGS: dict[str, Any] = {
    **schema_defaults("fit"),
    **_LIBRARY_ONLY_SETTINGS,
    # The workflow's cache path is relative to its working directory; a library call writes no cache unasked.
    "feature_cache": None,
    "pacemaker": {},
    "hyperopt": {},
}

#: Defaults of ``fit.pacemaker`` (the schema's).
DEFAULT_PACEMAKER_SETTINGS: dict[str, Any] = schema_defaults("fit", "pacemaker")

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
        JSON files of :func:`nestdb.label.stage.isolated_atom_energy`
        (keys ``element``, ``energy``).

    Raises
    ------
    ConfigError
        An element asks for its isolated-atom energy but no file gives it.
    DataError
        A file that is not such a result.
    """
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
            raise ConfigError(
                f"fit.reference_energies.{element} is {ISOLATED_ATOM!r} but no isolated-atom energy of "
                f"{element} was given (results/label/e0/{element}.json, rule label_isolated_atom)"
            )
        resolved[element] = energies[element]
    return dict(settings, reference_energies=resolved)


def merged_with_defaults(settings: dict | None, defaults: dict, section: str) -> dict:
    """``defaults`` updated by ``settings``; unknown keys raise a :class:`ConfigError` naming ``section.key``."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown settings {[f'{section}.{k}' for k in unknown]}; accepted keys: {sorted(defaults)}")
    return {**defaults, **settings}


def check_flags(settings: dict, keys: tuple[str, ...], section: str) -> None:
    """Raise a :class:`ConfigError` naming ``section.key`` when a flag is not true/false."""
    for key in keys:
        if not isinstance(settings[key], bool):
            raise ConfigError(f"{section}.{key} must be true or false, got {settings[key]!r}")


def _int_list(settings: dict, key: str) -> list[int]:
    value = settings[key]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
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
    if elements is None:
        raise ConfigError(
            "fit.elements is missing (there is no default material): list the chemical elements of the fit, "
            "e.g. {'elements': ['Mg'], 'reference_energies': {'Mg': 0.0}} (the workflow passes the config's "
            "`elements`)"
        )
    if isinstance(elements, str):
        elements = [elements]
    if not isinstance(elements, (list, tuple)) or not elements:
        raise ConfigError(f"fit.elements must be a non-empty list of chemical symbols, got {elements!r}")

    for symbol in elements:
        if symbol not in atomic_numbers:
            raise ConfigError(f"fit.elements: {symbol!r} is not a chemical symbol")
    merged["elements"] = sorted(set(elements))

    e0 = merged["reference_energies"]
    if e0 is None:
        example = ", ".join(f"{symbol!r}: 0.0" for symbol in merged["elements"])
        raise ConfigError(
            "fit.reference_energies is missing (it has no default): give the isolated-atom energy (eV) of every "
            f"element, e.g. {{'reference_energies': {{{example}}}}} for GPAW energies (relative to its atomic "
            "setups), {'Mg': -1688.821} for the study's CASTEP, or 'isolated_atom' in a workflow config"
        )
    if not isinstance(e0, dict):
        raise ConfigError(f"fit.reference_energies must map element -> E0 in eV, got {e0!r}")
    for symbol in merged["elements"]:
        if symbol not in e0:
            raise ConfigError(
                f"fit.reference_energies has no E0 for element {symbol!r}; add "
                f"'{symbol}: <isolated-atom energy in eV>' (e.g. Mg: -1688.821 for the study's CASTEP)"
            )
        value = e0[symbol]
        if value == ISOLATED_ATOM:
            raise ConfigError(
                f"fit.reference_energies.{symbol} is {ISOLATED_ATOM!r}: resolve it from the "
                "isolated-atom calculation first (resolve_reference_energies with "
                f"results/label/e0/{symbol}.json; the workflow does this) or give the energy in eV"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise ConfigError(f"fit.reference_energies.{symbol} must be a number (eV), got {value!r}")
    merged["reference_energies"] = {s: float(e0[s]) for s in merged["elements"]}

    merged["cutoff"] = _number(merged, "cutoff", 0.0, strict=True)
    nradmax = _int_list(merged, "nradmax_by_orders")
    lmax = _int_list(merged, "lmax_by_orders")
    if len(nradmax) != len(lmax):
        raise ConfigError(
            f"fit.nradmax_by_orders ({nradmax}) and fit.lmax_by_orders ({lmax}) need one entry "
            "per rank (body order - 1) each"
        )
    if len(nradmax) > 5:
        raise ConfigError(f"fit.nradmax_by_orders has {len(nradmax)} ranks: body order > 6 is not supported")
    if min(nradmax) < 1 or min(lmax) < 0 or lmax[0] != 0:
        raise ConfigError(
            "fit.nradmax_by_orders entries must be >= 1 and fit.lmax_by_orders entries >= 0 "
            f"with 0 for rank 1; got {nradmax} and {lmax}"
        )
    merged["nradmax_by_orders"], merged["lmax_by_orders"] = nradmax, lmax
    if merged["number_of_functions_per_element"] is not None:
        merged["number_of_functions_per_element"] = int(_number(merged, "number_of_functions_per_element", 1))

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
        raise ConfigError(
            f"fit.committee_method must be one of {list(COMMITTEE_METHODS)}, got {merged['committee_method']!r}"
        )
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

    merged["pacemaker"] = validate_pacemaker_settings(merged["pacemaker"])

    merged["hyperopt"] = validate_hyperopt_settings(merged["hyperopt"])
    return merged


def validate_pacemaker_settings(settings: dict | None) -> dict:
    """Merge ``fit.pacemaker`` with :data:`DEFAULT_PACEMAKER_SETTINGS` and check it."""
    merged = merged_with_defaults(settings, DEFAULT_PACEMAKER_SETTINGS, "fit.pacemaker")
    check_flags(merged, ("enabled", "gpu", "feeds_ns"), "fit.pacemaker")
    for key in (
        "committee_size",
        "ndensity",
        "number_of_functions_per_element",
        "maxiter",
        "batch_size",
        "refit_maxiter",
    ):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"fit.pacemaker.{key} must be a positive integer, got {value!r}")
    if merged["ladder_step"] is not None and (not isinstance(merged["ladder_step"], int) or merged["ladder_step"] < 1):
        raise ConfigError(
            f"fit.pacemaker.ladder_step must be a positive integer or null, got {merged['ladder_step']!r}"
        )
    kappa = merged["kappa"]
    if kappa != "auto" and (isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not 0 <= kappa <= 1):
        raise ConfigError(f"fit.pacemaker.kappa must be 'auto' or a number in [0, 1], got {kappa!r}")
    if merged["feeds_ns"] and not merged["enabled"]:
        raise ConfigError(
            "fit.pacemaker.feeds_ns is true but fit.pacemaker.enabled is false: enable the "
            "pacemaker route or let the linear committee feed NS (feeds_ns: false)"
        )
    refit = merged["refit_kappa"]
    if refit is not None and (isinstance(refit, bool) or not isinstance(refit, (int, float)) or not 0 <= refit <= 1):
        raise ConfigError(f"fit.pacemaker.refit_kappa must be null or a number in [0, 1], got {refit!r}")
    for key in ("command", "activeset_command"):
        if not isinstance(merged[key], str) or not merged[key].strip():
            raise ConfigError(f"fit.pacemaker.{key} must be a command line, got {merged[key]!r}")
        command_argv(merged[key], key)  # split like a shell would (never run by one): refuse unbalanced quotes
    return merged


# --------------------------------------------------------------------------- fit.hyperopt
#: Searched float keys of fit.hyperopt, in table order.
FLOAT_KEYS = ("energy_weight", "virial_weight", "smoothness_prior", "smoothness_l_weight")
#: Defaults of ``fit.hyperopt`` (the schema's; config/README.md describes every key). ``None``:
#: ``cutoffs`` [fit.cutoff], ``max_*`` the fit's basis (the largest, rows once per cutoff), ``min_*``
#: 1 radial function and l = 0 per rank.
DEFAULT_HYPEROPT_SETTINGS: dict[str, Any] = schema_defaults("fit", "hyperopt")
SELECT_RULES = ("best", "knee", "within")
LOG_SCALE = ("energy_weight", "virial_weight")


def _hyperopt_fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"fit.hyperopt.{key} {message}")


def _hyperopt_integer(settings: dict, key: str, minimum: int) -> int:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _hyperopt_fail(key, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _hyperopt_positive_number(value: Any, key: str, minimum: float = 0.0) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not np.isfinite(value)
        or value < minimum
    ):
        raise _hyperopt_fail(key, f"must be a number >= {minimum}, got {value!r}")
    return float(value)


def _hyperopt_int_list(value: Any, key: str, ranks: int, minimum: int) -> list[int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != ranks
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        raise _hyperopt_fail(
            key,
            f"must be a list of {ranks} integers >= {minimum} (one per rank, as fit.nradmax_by_orders), got {value!r}",
        )
    return [int(v) for v in value]


def validate_hyperopt_settings(settings: dict | None, fit_settings: dict | None = None) -> dict:
    """Merge ``fit.hyperopt`` with :data:`DEFAULT_HYPEROPT_SETTINGS` and check every value.

    Parameters
    ----------
    settings
        The ``fit.hyperopt`` section.
    fit_settings
        The validated ``fit:`` settings; when given, the defaults that follow
        the fit (cutoff grid, largest basis) are filled in and the basis
        sizes are checked against each other.

    Raises
    ------
    ConfigError
        Naming the offending ``fit.hyperopt.<key>``.
    """
    merged = merged_with_defaults(settings, DEFAULT_HYPEROPT_SETTINGS, "fit.hyperopt")
    check_flags(merged, ("enabled", "cost_objective", "enqueue_fit_settings"), "fit.hyperopt")
    for key, minimum in (
        ("n_trials", 1),
        ("n_workers", 1),
        ("cv_folds", 2),
        ("cv_repeats", 1),
        ("n_startup_trials", 0),
        ("seed", 0),
    ):
        merged[key] = _hyperopt_integer(merged, key, minimum)
    if merged["timeout_minutes"] is not None:
        merged["timeout_minutes"] = _hyperopt_positive_number(merged["timeout_minutes"], "timeout_minutes")
    if merged["max_functions"] is not None:
        merged["max_functions"] = _hyperopt_integer(merged, "max_functions", 1)
    for key in FLOAT_KEYS:
        value = merged[key]
        pair = list(value) if isinstance(value, (list, tuple)) else [value, value]
        if len(pair) != 2:
            raise _hyperopt_fail(key, f"must be a number (fixed) or a [low, high] range, got {value!r}")
        low, high = (_hyperopt_positive_number(v, key) for v in pair)
        if low > high or (key in LOG_SCALE and low == 0 < high):
            raise _hyperopt_fail(
                key, f"range {value!r} needs low <= high" + (" and low > 0 (log scale)" if key in LOG_SCALE else "")
            )
        merged[key] = [low, high]
    objective = merged["objective"]
    if not isinstance(objective, dict) or set(objective) - {"energy", "force", "virial"}:
        raise _hyperopt_fail("objective", f"must map energy/force/virial to weights, got {objective!r}")
    objective = {
        k: _hyperopt_positive_number(objective.get(k, 0.0), f"objective.{k}") for k in ("energy", "force", "virial")
    }
    if sum(objective.values()) == 0:
        raise _hyperopt_fail("objective", "has all weights 0: nothing to minimise")
    merged["objective"] = objective
    if merged["select"] not in SELECT_RULES:
        raise _hyperopt_fail("select", f"must be one of {list(SELECT_RULES)}, got {merged['select']!r}")
    merged["tolerance"] = _hyperopt_positive_number(merged["tolerance"], "tolerance")
    if fit_settings is not None:
        _fill_from_fit(merged, fit_settings)
    return merged


def _fill_from_fit(merged: dict, fit: dict) -> None:
    """Defaults that follow the fit settings, and the basis-size lists checked against each other."""
    cutoffs = merged["cutoffs"] if merged["cutoffs"] is not None else [fit["cutoff"]]
    if isinstance(cutoffs, (int, float)) and not isinstance(cutoffs, bool):
        cutoffs = [cutoffs]
    if not isinstance(cutoffs, (list, tuple)) or not cutoffs:
        raise _hyperopt_fail("cutoffs", f"must be a non-empty list of cutoffs (Å), got {cutoffs!r}")
    merged["cutoffs"] = sorted({_hyperopt_positive_number(c, "cutoffs", 1e-9) for c in cutoffs})
    ranks = len(fit["nradmax_by_orders"])
    max_n = _hyperopt_int_list(
        merged["max_nradmax_by_orders"] or fit["nradmax_by_orders"], "max_nradmax_by_orders", ranks, 1
    )
    max_l = _hyperopt_int_list(merged["max_lmax_by_orders"] or fit["lmax_by_orders"], "max_lmax_by_orders", ranks, 0)
    min_n = _hyperopt_int_list(merged["min_nradmax_by_orders"] or [1] * ranks, "min_nradmax_by_orders", ranks, 1)
    min_l = _hyperopt_int_list(merged["min_lmax_by_orders"] or [0] * ranks, "min_lmax_by_orders", ranks, 0)
    check_radial_order(max_n, "fit.hyperopt.max_nradmax_by_orders (default: fit.nradmax_by_orders)")
    if max_l[0] != 0 or min_l[0] != 0:
        raise _hyperopt_fail("max_lmax_by_orders", f"must start with 0 (rank 1 has l = 0 only), got {max_l} / {min_l}")
    for low, high, name in ((min_n, max_n, "nradmax_by_orders"), (min_l, max_l, "lmax_by_orders")):
        if any(lo > hi for lo, hi in zip(low, high, strict=True)):
            raise _hyperopt_fail(f"min_{name}", f"{low} exceeds fit.hyperopt.max_{name} {high} for some rank")
    merged.update(
        max_nradmax_by_orders=max_n, max_lmax_by_orders=max_l, min_nradmax_by_orders=min_n, min_lmax_by_orders=min_l
    )


def check_radial_order(nradmax_by_orders, where: str = "the basis") -> None:
    """Refuse sizes whose higher ranks have more radial functions than rank 1 (not a column subset).

    Raises
    ------
    ConfigError
        Naming the sizes.
    """
    nradmax = list(nradmax_by_orders)
    if max(nradmax) > nradmax[0]:
        raise ConfigError(
            f"{where}: nradmax_by_orders {nradmax} has a rank with more radial functions than rank 1; "
            "pyace builds every rank's radial functions from nradmax_by_orders[0] of them, so such a "
            "basis is no column subset of a larger one. Use nradmax_by_orders[0] >= every other entry"
        )
