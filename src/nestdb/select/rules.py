"""Choosing NS configurations to label, by the thermodynamics of their own run.

Every culled configuration of a nested-sampling run has a temperature at
which it is most probable (:func:`nestdb.thermo.sample_temperatures`). The
rules of the reference study (method.md §2) pick configurations from a
temperature window, the last few culled ones, or only the final one. The
selected frames are plain copies carrying provenance in ``atoms.info`` so that
labelled databases from many cycles and pressures can be merged and traced
back (:func:`nestdb.select.merge.merge_databases`). The rules that also choose
from exploration pools are applied by :mod:`nestdb.select.pool`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.units import ev_per_a3_to_gpa, gpa_to_ev_per_a3

__all__ = [
    "IF_FEWER_CHOICES",
    "KNOWN_RULES",
    "POOL_RULES",
    "WEIGHT_RESCALE_CHOICES",
    "frame_temperatures",
    "pressure_tag",
    "select_configurations",
    "validate_rule",
]

KNOWN_RULES = ("temperature_window", "last", "final", "trust_window", "random")
#: Rules that need no NS thermodynamics, so they also select from exploration pools (MD, random crystals).
POOL_RULES = ("trust_window", "random")

_RULE_KEYS = {
    "temperature_window": {"required": ("t_min", "t_max", "count"), "optional": ("if_stopped_early", "if_fewer")},
    "last": {"required": ("count",), "optional": ("if_fewer",)},
    "final": {"required": (), "optional": ()},
    "trust_window": {"required": ("sigma_lo", "sigma_hi", "count"), "optional": ("if_fewer",)},
    "random": {"required": ("count",), "optional": ("seed", "if_fewer")},
}
_STOPPED_EARLY_CHOICES = ("final", "window")
#: What to do when a rule finds fewer configurations than its count: take them all, or stop.
IF_FEWER_CHOICES = ("min", "fail")
WEIGHT_RESCALE_CHOICES = ("none", "mean")
# Info keys copied verbatim from the culled frame when present.
_OPTIONAL_INFO = ("committee_std", "ns_KE", "KEmax")


# --------------------------------------------------------------------------- rules


def _check_nonnegative(rule: dict, key: str, where: str, meaning: str) -> None:
    """ConfigError unless ``rule[key]`` is a finite number >= 0 (``meaning``: what it is, for the message)."""
    value = rule[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"{where}.{key}: must be {meaning} (number >= 0), got {value!r}")


def validate_rule(rule: dict, where: str) -> None:
    """Check a selection rule from the configuration.

    Parameters
    ----------
    rule : dict
        E.g. ``{"kind": "temperature_window", "t_min": 200, "t_max": 3000,
        "count": 100, "if_stopped_early": "final", "if_fewer": "min"}``,
        ``{"kind": "last", "count": 100}``, ``{"kind": "final"}``,
        ``{"kind": "trust_window", "sigma_lo": 20, "sigma_hi": 100, "count": 10}``
        (committee energy STD in meV/atom, ``sigma_lo < sigma_hi``) or
        ``{"kind": "random", "count": 10, "seed": 0}``.
        ``if_fewer`` (``min``, default, or ``fail``) says what happens when
        fewer configurations than ``count`` qualify.
    where : str
        Location of the rule in the configuration, used in messages
        (e.g. ``"select.rules[1]"``).

    Raises
    ------
    ConfigError
        Naming ``where``, the offending key and what is allowed.
    """
    if not isinstance(rule, dict):
        raise ConfigError(f"{where}: a selection rule must be a mapping with a 'kind' key, got {rule!r}")
    kind = rule.get("kind")
    if kind not in KNOWN_RULES:
        raise ConfigError(f"{where}.kind: unknown selection rule {kind!r}; use one of {', '.join(KNOWN_RULES)}")
    spec = _RULE_KEYS[kind]
    allowed = ("kind",) + spec["required"] + spec["optional"]
    for key in rule:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: not a key of rule kind {kind!r}; allowed keys: {', '.join(allowed)}")
    for key in spec["required"]:
        if key not in rule:
            raise ConfigError(f"{where}: rule kind {kind!r} needs key {key!r}")
    if "count" in rule:
        count = rule["count"]
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigError(f"{where}.count: must be a positive integer, got {count!r}")
    if rule.get("if_fewer", "min") not in IF_FEWER_CHOICES:
        raise ConfigError(f"{where}.if_fewer: must be one of {', '.join(IF_FEWER_CHOICES)}, got {rule['if_fewer']!r}")
    if kind == "temperature_window":
        for key in ("t_min", "t_max"):
            _check_nonnegative(rule, key, where, "a temperature in K")
        if rule["t_min"] > rule["t_max"]:
            raise ConfigError(f"{where}: t_min ({rule['t_min']}) is above t_max ({rule['t_max']}); swap them")
        choice = rule.get("if_stopped_early", "window")
        if choice not in _STOPPED_EARLY_CHOICES:
            raise ConfigError(
                f"{where}.if_stopped_early: must be one of {', '.join(_STOPPED_EARLY_CHOICES)}, got {choice!r}"
            )
    if kind == "trust_window":
        for key in ("sigma_lo", "sigma_hi"):
            _check_nonnegative(rule, key, where, "a committee energy STD in meV/atom")
        if rule["sigma_lo"] >= rule["sigma_hi"]:
            raise ConfigError(
                f"{where}: trust window sigma_lo ({rule['sigma_lo']} meV/atom) must be below "
                f"sigma_hi ({rule['sigma_hi']} meV/atom); the window sigma_lo <= sigma < sigma_hi "
                "is empty otherwise"
            )
    if kind == "random" and "seed" in rule:
        seed = rule["seed"]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"{where}.seed: must be an integer >= 0, got {seed!r}")


# --------------------------------------------------------------------------- provenance helpers


def pressure_tag(pressure_gpa: float) -> str:
    """File-name-safe pressure label: 10 -> '10', 2.5 -> '2p5', -1 -> 'm1'."""
    text = f"{abs(float(pressure_gpa)):.6f}".rstrip("0").rstrip(".")
    return ("m" if pressure_gpa < 0 else "") + text.replace(".", "p")


def _formula_tag(atoms: Atoms) -> str:
    return atoms.get_chemical_formula(mode="hill").lower()


def frame_temperatures(
    frames: Sequence[Atoms], iters: np.ndarray, enthalpy: np.ndarray, temperatures: np.ndarray, source: str = ""
) -> np.ndarray:
    """Look up the per-sample temperature of every trajectory frame.

    Trajectory files hold only every ``traj_interval``-th cull, while
    temperatures are computed for every line of the ``.energies`` file; frames
    are matched by ``info['iter']`` and, when several culls share an iteration
    (``n_cull > 1``), by the closest ``info['ns_energy']``.

    Parameters
    ----------
    frames : sequence of Atoms
        Culled configurations with ``iter`` and ``ns_energy`` in ``info``.
    iters, enthalpy, temperatures : np.ndarray
        Per-sample iteration, enthalpy and temperature (e.g. ``NSEnergies.iters``,
        ``NSEnergies.enthalpy`` and :func:`nestdb.thermo.sample_temperatures`).
    source : str
        Name of the run for messages.

    Returns
    -------
    np.ndarray
        Temperature of each frame.
    """
    iters = np.asarray(iters)
    order = np.argsort(iters, kind="stable")
    sorted_iters = iters[order]
    out = np.empty(len(frames))
    for j, atoms in enumerate(frames):
        it, energy = _frame_iter_energy(atoms, j, source)
        lo, hi = np.searchsorted(sorted_iters, [it, it + 1])
        if lo == hi:
            raise DataError(
                f"{source or 'NS run'}: trajectory frame {j} has iter={it}, which is not in the "
                f"energies file (iterations {sorted_iters[0]}..{sorted_iters[-1]}); "
                "the trajectory and the .energies file belong to different runs or restarts"
            )
        candidates = order[lo:hi]
        out[j] = temperatures[candidates[np.argmin(np.abs(enthalpy[candidates] - energy))]]
    return out


def _frame_iter_energy(atoms: Atoms, index: int, source: str) -> tuple[int, float]:
    for key in ("iter", "ns_energy"):
        if key not in atoms.info:
            raise DataError(
                f"{source or 'NS run'}: trajectory frame {index} has no info key {key!r}; "
                "expected culled NS configurations (info: ns_energy, volume, iter, ns_P)"
            )
    return int(atoms.info["iter"]), float(atoms.info["ns_energy"])


def _provenance_copy(
    atoms: Atoms, *, temp: float, weight: float, cycle: int, pressure_gpa: float, source: str, index: int
) -> Atoms:
    """A calculator-free copy with wrapped positions and the provenance info keys."""
    it, energy = _frame_iter_energy(atoms, index, source)
    # Only symbols/positions/cell/pbc: pymatnest frames carry 1-amu masses and
    # momenta that must not leak into DFT or fitting.
    copy = Atoms(
        symbols=atoms.get_chemical_symbols(),
        positions=atoms.get_positions(),
        cell=atoms.get_cell(),
        pbc=atoms.get_pbc(),
    )
    if copy.pbc.all():
        copy.wrap()  # NS MD leaves atoms far outside the cell
    ptag = pressure_tag(pressure_gpa)
    info: dict[str, Any] = {
        "config_id": f"c{int(cycle)}_P{ptag}_i{it:06d}",
        "config_type": f"{_formula_tag(copy)}_P{ptag}GPa_c{int(cycle)}",
        "cycle": int(cycle),
        "pressure": float(pressure_gpa),
        "iter": it,
        "temp": float(temp),
        "enthalpy": energy,
        "ns_energy": energy,
        "weight": float(weight),
        "volume": float(atoms.info.get("volume", abs(atoms.get_volume()))),
        "ns_P": float(atoms.info.get("ns_P", gpa_to_ev_per_a3(pressure_gpa))),
    }
    for key in _OPTIONAL_INFO:
        if key in atoms.info:
            info[key] = atoms.info[key]
    if "config_type" in atoms.info and atoms.info["config_type"] != info["config_type"]:
        info["ns_config_type"] = atoms.info["config_type"]
    if source:
        info["source"] = str(source)
    copy.info.update(info)
    return copy


# --------------------------------------------------------------------------- selection


def evenly_spaced(indices: np.ndarray, count: int) -> np.ndarray:
    """``count`` entries of ``indices`` (sorted) equally spaced in position, both ends included."""
    if count >= indices.size:
        return indices
    if count == 1:
        return indices[-1:]  # the lowest-enthalpy (latest) eligible frame
    picks = np.round(np.linspace(0, indices.size - 1, count)).astype(int)
    return indices[picks]


def select_configurations(
    frames: list[Atoms],
    temperatures: np.ndarray,
    rule: dict,
    *,
    stopped_early: bool,
    cycle: int,
    pressure_gpa: float,
    weight_alpha: float = 0.0,
    weight_rescale: str = "none",
    min_policy: str | None = None,
    source: str = "",
) -> list[Atoms]:
    """Select culled NS configurations of one run by a rule.

    Parameters
    ----------
    frames : list of Atoms
        Culled configurations of the run in iteration order (trajectory
        frames) with info ``ns_energy``, ``iter`` and usually ``volume``,
        ``ns_P``, ``committee_std``.
    temperatures : np.ndarray
        Temperature of each frame (K), e.g. from :func:`frame_temperatures`.
    rule : dict
        A rule accepted by :func:`validate_rule`:

        * ``temperature_window``: ``count`` frames equally spaced in iteration
          among those with ``t_min <= T <= t_max``, the first and last
          eligible ones included; ``if_stopped_early: final`` gives the final
          frame instead when the run stopped early.
        * ``last``: the last ``count`` frames.
        * ``final``: the last frame only.
        * ``trust_window``: ``count`` frames equally spaced in iteration among
          those with ``sigma_lo <= committee_std < sigma_hi`` (meV/atom; info
          ``committee_std`` in eV/atom); an empty window selects nothing.
        * ``random``: ``count`` frames drawn without replacement (``seed``).

        When fewer than ``count`` frames qualify, ``if_fewer: min`` (default)
        takes all of them with a warning that says how many were found,
        ``if_fewer: fail`` raises :class:`DataError`.
    stopped_early : bool
        True if the run ended before convergence (e.g. committee stop).
    cycle : int
        Active-learning cycle, recorded in ``info['cycle']``.
    pressure_gpa : float
        Pressure of the run in GPa.
    weight_alpha : float
        α in 1/eV for the fitting weight ``W = exp(-α (H - H_F))`` with
        ``H_F`` the enthalpy of the run's final frame; 0 gives W = 1.
    weight_rescale : {'none', 'mean'}
        ``mean`` divides the run's weights by their mean, so that every
        pressure (one run each) carries the same total weight per
        configuration in the fit (method.md §2: "rescaled per pressure").
    min_policy : {'min', 'fail'}, optional
        Overrides the rule's ``if_fewer``.
    source : str
        Name of the run, used in messages and stored as ``info['source']``.

    Returns
    -------
    list of Atoms
        Copies without calculator/momenta, positions wrapped into the cell,
        with info keys ``config_id``, ``config_type``, ``cycle``,
        ``pressure``, ``iter``, ``temp``, ``enthalpy``, ``ns_energy``,
        ``weight``, ``volume``, ``ns_P`` (+ ``committee_std``, ``ns_KE``,
        ``KEmax``, ``ns_config_type``, ``source`` when available). Config
        ids are unique within the list.

    Raises
    ------
    ConfigError
        Bad rule or parameters.
    DataError
        No frames, mismatched lengths, frames without NS info, an empty
        temperature window, or too few frames under ``if_fewer: fail``.
    """
    if min_policy is not None:
        rule = {**rule, "if_fewer": min_policy}
    validate_rule(rule, f"selection rule for {source or 'run'}")
    if weight_rescale not in WEIGHT_RESCALE_CHOICES:
        raise ConfigError(f"weight_rescale must be one of {', '.join(WEIGHT_RESCALE_CHOICES)}, got {weight_rescale!r}")
    name = source or "NS run"
    temps = np.asarray(temperatures, dtype=float)
    if len(frames) == 0:
        raise DataError(f"{name}: no culled configurations to select from (empty trajectory)")
    if temps.shape != (len(frames),):
        raise DataError(f"{name}: {len(frames)} frames but {temps.size} temperatures; they must correspond")
    if not math.isfinite(weight_alpha) or weight_alpha < 0:
        raise ConfigError(f"{name}: weight_alpha must be a finite number >= 0 (1/eV), got {weight_alpha!r}")
    iters = np.array([_frame_iter_energy(a, j, source)[0] for j, a in enumerate(frames)])
    # Stable sort: frames are expected in iteration order already; merged MPI
    # trajectories may not be.
    order = np.argsort(iters, kind="stable")
    _check_pressure(frames[order[-1]], pressure_gpa, name)

    kind = rule["kind"]
    if kind == "final" or (
        kind == "temperature_window" and stopped_early and rule.get("if_stopped_early", "window") == "final"
    ):
        chosen = order[-1:]
    elif kind == "last":
        if rule["count"] > len(frames):
            shortfall(rule, name, f"rule 'last' asks for {rule['count']} frames but the run has {len(frames)}")
        chosen = order[-rule["count"] :]
    elif kind in POOL_RULES:
        chosen = order[pool_choice([frames[j] for j in order], rule, name)]
    else:
        t_lo, t_hi = float(rule["t_min"]), float(rule["t_max"])
        eligible = order[(temps[order] >= t_lo) & (temps[order] <= t_hi)]
        if eligible.size == 0:
            finite = temps[np.isfinite(temps)]
            covered = f"{finite.min():.1f}-{finite.max():.1f} K" if finite.size else "no finite temperatures"
            raise DataError(
                f"{name}: no configuration has a temperature in the window {t_lo:g}-{t_hi:g} K; "
                f"the run's frames cover {covered}. Widen the window or run NS longer "
                "(converge to lower temperature)"
            )
        if eligible.size < rule["count"]:
            shortfall(
                rule,
                name,
                f"only {eligible.size} frames lie in {t_lo:g}-{t_hi:g} K, fewer than the {rule['count']} requested",
            )
        chosen = evenly_spaced(eligible, int(rule["count"]))

    h_final = float(frames[order[-1]].info["ns_energy"])
    energies = np.array([float(frames[j].info["ns_energy"]) for j in chosen])
    # The exponent is <= 0 for every cull above the final one: no overflow.
    log_weights = -weight_alpha * (energies - h_final)
    if weight_rescale == "mean" and log_weights.size:
        # Normalise in log space: the weights of a hot window can all underflow.
        shifted = np.exp(log_weights - log_weights.max())
        weights = shifted / shifted.mean()
    else:
        weights = np.exp(log_weights)
    selected = []
    for j, weight in zip(chosen, weights, strict=True):
        selected.append(
            _provenance_copy(
                frames[j],
                temp=temps[j],
                weight=float(weight),
                cycle=cycle,
                pressure_gpa=pressure_gpa,
                source=source,
                index=int(j),
            )
        )
    _make_ids_unique(selected)
    return selected


def committee_stds(frames: Sequence[Atoms], source: str = "") -> np.ndarray:
    """Committee energy STD (meV/atom) of every frame, from its ``committee_std`` info key (eV/atom).

    Raises
    ------
    DataError
        A frame has no ``committee_std``: it was explored without a committee
        (cycle 0's classical potential) and was not scored by one.
    """
    out = np.empty(len(frames))
    for j, atoms in enumerate(frames):
        value = atoms.info.get("committee_std")
        if value is None or not math.isfinite(float(value)):
            raise DataError(
                f"{source or 'exploration'}: frame {j} has no committee STD (info 'committee_std'); "
                "the trust window needs configurations scored by the previous cycle's committee, "
                "which cycle 0 does not have"
            )
        out[j] = 1000.0 * float(value)
    return out


def pool_choice(frames: Sequence[Atoms], rule: dict, name: str) -> np.ndarray:
    """Positions in ``frames`` chosen by a pool rule (``trust_window`` or ``random``), in pool order.

    The trust window keeps ``sigma_lo <= sigma < sigma_hi`` (meV/atom) and
    takes ``count`` of them equally spaced in pool order (the MD time or NS
    iteration order), so every temperature and structure of the pool is
    represented; ``random`` draws ``count`` without replacement with ``seed``.
    """
    count = int(rule["count"])
    if rule["kind"] == "random":
        if count > len(frames):
            shortfall(rule, name, f"rule 'random' asks for {count} configurations but the pool has {len(frames)}")
        rng = np.random.default_rng(int(rule.get("seed", 0)))
        return np.sort(rng.choice(len(frames), size=min(count, len(frames)), replace=False))
    stds = committee_stds(frames, name)
    lo, hi = float(rule["sigma_lo"]), float(rule["sigma_hi"])
    eligible = np.flatnonzero((stds >= lo) & (stds < hi))
    if eligible.size < count:
        below, above = int(np.sum(stds < lo)), int(np.sum(stds >= hi))
        shortfall(
            rule,
            name,
            f"{eligible.size} of {len(frames)} configurations have a committee STD in "
            f"[{lo:g}, {hi:g}) meV/atom ({below} below: already accurate, {above} above: "
            f"untrusted), fewer than the {count} requested",
        )
    return evenly_spaced(eligible, count)


def shortfall(rule: dict, name: str, message: str) -> None:
    """A rule found fewer configurations than its ``count``: warn (``if_fewer: min``) or raise (``fail``)."""
    if rule.get("if_fewer", "min") == "fail":
        raise DataError(
            f"{name}: {message}, and the rule has if_fewer: fail. Set if_fewer: min to take them all, "
            "lower count, or run NS longer"
        )
    warnings.warn(f"{name}: {message}; taking all of them (if_fewer: min)", stacklevel=3)


def _check_pressure(atoms: Atoms, pressure_gpa: float, name: str) -> None:
    if "ns_P" not in atoms.info:
        return
    run_gpa = ev_per_a3_to_gpa(float(atoms.info["ns_P"]))
    if abs(run_gpa - pressure_gpa) > 1e-3 * max(1.0, abs(pressure_gpa)):
        warnings.warn(
            f"{name}: frames were sampled at ns_P = {run_gpa:.4g} GPa but pressure_gpa = "
            f"{pressure_gpa:g} was given; provenance will record {pressure_gpa:g} GPa",
            stacklevel=3,
        )


def _make_ids_unique(selected: list[Atoms]) -> None:
    """Several culls of one iteration (n_cull > 1) get suffixes _1, _2, ..."""
    seen: dict[str, int] = {}
    for atoms in selected:
        base = atoms.info["config_id"]
        n = seen.get(base, 0)
        seen[base] = n + 1
        if n:
            atoms.info["config_id"] = f"{base}_{n}"
