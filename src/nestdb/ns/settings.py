"""Settings of a nested-sampling run and their validation."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields

from nestdb.errors import ConfigError
from nestdb.schemas import schema_defaults

MOVE_TYPES: tuple[str, ...] = ("md", "atom", "volume", "shear", "stretch", "swap")
#: Settings that may differ between a run and its restart: they change when
#: or where the run stops, not the chain it samples.
RESTART_MAY_CHANGE: tuple[str, ...] = ("max_iter", "converge_down_to_T", "snapshot_seconds", "n_procs")
#: A pressure above this (GPa) is almost surely a value in Pa, bar or kbar.
MAX_PLAUSIBLE_PRESSURE_GPA = 1000.0


#: The config schema's ``ns`` defaults (``nestdb/schemas/config.schema.yaml``, the one table of
#: defaults): a library call samples what the workflow and ``nestdb ns run`` sample.
SCHEMA_NS_DEFAULTS: dict = schema_defaults("ns")


@dataclass
class NSSettings:
    """Parameters of one constant-pressure nested-sampling run.

    Every default is the config schema's (:data:`SCHEMA_NS_DEFAULTS`, read
    from ``nestdb/schemas/config.schema.yaml``, the one table of defaults), so
    a library call, ``nestdb ns run`` and the workflow run the same sampler:
    up to ``max_iter`` 2000 iterations, stopping once converged down to
    200 K, Vmax 40 A^3/atom, seed 1. ``n_walkers``, ``walk_length`` (the
    run's size and cost) and ``pressure_gpa`` have no default here: a call
    names them. ``config_type`` is no config key (the workflow sets it).

    Attributes
    ----------
    n_walkers : int
        Live-set size K.
    walk_length : int
        Model calls per walk L (an MD move costs ``md_traj_len``, a cell move 1).
    pressure_gpa : float
        Pressure in GPa.
    n_cull : int
        Walkers removed (and re-walked) per iteration.
    max_iter : int
        Iteration cap.
    converge_down_to_T : float or None
        Stop when log a_i - H_i/(kB T) of the latest cull is more than 10 below
        its running maximum (pymatnest's criterion), T in K.
    max_volume_per_atom, min_volume_per_atom : float
        Hard volume bounds in A^3/atom; Vmax also bounds the initial prior.
    min_aspect_ratio : float
        Smallest allowed face-to-face height / V^(1/3).
    move_fractions : dict
        Probability of picking each move type (``md``, ``atom``, ``volume``,
        ``shear``, ``stretch``, ``swap``); normalised internally. ``atom`` is
        single-atom MC (1 call), the alternative to ``md`` (TE-HMC); without
        ``md`` walkers carry no kinetic energy (nExtraDOF = 3N). ``swap``
        exchanges the positions of two atoms of different species.
    md_traj_len : int
        Velocity-Verlet steps per TE-HMC move.
    kemax_max_T : float or None
        KEmax = 1.5 N kB T; None gives pymatnest's 1.5 P N Vmax.
    start_energy_ceiling_per_atom : float
        Initial walkers need PE + P V below this * N + P Vmax N (eV).
    min_nn_distance : float
        A; initial walkers are redrawn (without a model call) while two atoms
        are closer than this (pymatnest's ``min_nn_dis``); 0 switches it off.
        Keeps random walkers out of the short-distance region a fitted model
        never saw; walks are not restricted.
    seed : int
        Seed of ``np.random.default_rng``.
    traj_interval : int
        Write every k-th culled configuration (global cull index g with
        g % k == k - 1, as pymatnest); <= 0 writes none.
    committee_std_max : float or None
        meV/atom; proposals whose committee energy STD is above are rejected.
    committee_stop_fraction, committee_stop_std : float, float or None
        Stop when at least this fraction of walkers has STD above
        ``committee_stop_std`` (meV/atom).
    config_type : str
        Written to the ``config_type`` info key of every frame.
    n_procs : int
        Processes that walk the ``n_cull`` clones of an iteration side by side
        (must not exceed ``n_cull``); the samples do not depend on it.
    snapshot_seconds : float or None
        Wall seconds between restart snapshots; 0 writes one every iteration,
        None none.
    load_balance : bool
        Every walk makes the same moves, ``move_fractions`` rounded to whole
        moves within ``walk_length`` calls, in its own random order (pymatnest's
        ``do_good_load_balance``), instead of picking each move at random. The
        walks of one iteration then cost more nearly the same, which parallel
        runs (``n_procs`` > 1) need: the slowest of 16 walks takes 1.11-1.20x
        the mean with random picks, 1.06-1.15x with this
        (``benchmarks/ns_parallel.py --imbalance``). Changes the chain, not the
        sampled distribution.
    """

    n_walkers: int
    walk_length: int
    pressure_gpa: float
    n_cull: int = SCHEMA_NS_DEFAULTS["n_cull"]
    max_iter: int = SCHEMA_NS_DEFAULTS["max_iter"]
    converge_down_to_T: float | None = SCHEMA_NS_DEFAULTS["converge_down_to_T"]
    max_volume_per_atom: float = SCHEMA_NS_DEFAULTS["max_volume_per_atom"]
    min_volume_per_atom: float = SCHEMA_NS_DEFAULTS["min_volume_per_atom"]
    min_aspect_ratio: float = SCHEMA_NS_DEFAULTS["min_aspect_ratio"]
    # a fresh copy per instance (a mapping default is shared otherwise)
    move_fractions: dict = field(default_factory=lambda: copy.deepcopy(SCHEMA_NS_DEFAULTS["move_fractions"]))
    md_traj_len: int = SCHEMA_NS_DEFAULTS["md_traj_len"]
    kemax_max_T: float | None = SCHEMA_NS_DEFAULTS["kemax_max_T"]
    start_energy_ceiling_per_atom: float = SCHEMA_NS_DEFAULTS["start_energy_ceiling_per_atom"]
    min_nn_distance: float = SCHEMA_NS_DEFAULTS["min_nn_distance"]
    seed: int = SCHEMA_NS_DEFAULTS["seed"]
    traj_interval: int = SCHEMA_NS_DEFAULTS["traj_interval"]
    committee_std_max: float | None = SCHEMA_NS_DEFAULTS["committee_std_max"]
    committee_stop_fraction: float = SCHEMA_NS_DEFAULTS["committee_stop_fraction"]
    committee_stop_std: float | None = SCHEMA_NS_DEFAULTS["committee_stop_std"]
    config_type: str = "ns"
    n_procs: int = SCHEMA_NS_DEFAULTS["n_procs"]
    snapshot_seconds: float | None = SCHEMA_NS_DEFAULTS["snapshot_seconds"]
    load_balance: bool = SCHEMA_NS_DEFAULTS["load_balance"]

    @classmethod
    def from_dict(cls, values: dict) -> NSSettings:
        """Build from a config mapping; unknown keys raise ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"nested-sampling settings: unknown key(s) {unknown}; known keys: {sorted(known)}")
        missing = [name for name in ("n_walkers", "walk_length", "pressure_gpa") if name not in values]
        if missing:
            raise ConfigError(f"nested-sampling settings: missing required key(s) {missing}")
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value and how to fix it."""

        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"nested-sampling setting {key}={getattr(self, key)!r}: {why}")

        for key in ("n_walkers", "walk_length", "n_cull", "max_iter", "md_traj_len", "n_procs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(key, "must be a positive integer")
        if self.n_walkers < 2:
            raise bad("n_walkers", "need at least 2 walkers (one is cloned while another is culled)")
        if self.n_cull >= self.n_walkers:
            raise bad(
                "n_cull",
                f"must be smaller than n_walkers={self.n_walkers} (survivors are cloned "
                "into the culled slots); raise n_walkers or lower n_cull",
            )
        if self.n_procs > self.n_cull:
            raise bad(
                "n_procs",
                f"at most n_cull={self.n_cull} processes can walk at once; "
                f"set n_cull to a multiple of n_procs (e.g. n_cull: {self.n_procs})",
            )
        if isinstance(self.pressure_gpa, bool) or not isinstance(self.pressure_gpa, (int, float)):
            raise bad("pressure_gpa", "must be a number in GPa (write 1.0, not '1 GPa'; 1 kbar = 0.1 GPa)")
        if not math.isfinite(self.pressure_gpa) or self.pressure_gpa < 0:
            raise bad("pressure_gpa", "must be a finite pressure >= 0 GPa")
        if self.pressure_gpa > MAX_PLAUSIBLE_PRESSURE_GPA:
            raise bad(
                "pressure_gpa",
                f"is above {MAX_PLAUSIBLE_PRESSURE_GPA:g} GPa: the unit is GPa, not Pa, "
                "bar or eV/A^3 (1 eV/A^3 = 160.2 GPa); convert the value",
            )
        for key in ("min_volume_per_atom", "max_volume_per_atom"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be a volume > 0 A^3/atom")
        if not self.min_volume_per_atom < self.max_volume_per_atom:
            raise bad(
                "max_volume_per_atom",
                f"need 0 < min_volume_per_atom ({self.min_volume_per_atom}) < max_volume_per_atom",
            )
        if (
            isinstance(self.min_nn_distance, bool)
            or not isinstance(self.min_nn_distance, (int, float))
            or not 0 <= self.min_nn_distance < 10
        ):
            raise bad("min_nn_distance", "must be a distance in [0, 10) A; 0 switches it off")
        if not 0 < self.min_aspect_ratio <= 1:
            raise bad("min_aspect_ratio", "must lie in (0, 1]; 0.65 suits 8-16 atoms")
        if not isinstance(self.move_fractions, dict) or not self.move_fractions:
            raise bad("move_fractions", f"must be a mapping with keys from {MOVE_TYPES}")
        unknown = sorted(set(self.move_fractions) - set(MOVE_TYPES))
        if unknown:
            raise bad("move_fractions", f"unknown move type(s) {unknown}; known: {MOVE_TYPES}")
        if any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
            for v in self.move_fractions.values()
        ):
            raise bad("move_fractions", "fractions must be finite numbers >= 0")
        if self.move_fractions.get("md", 0) + self.move_fractions.get("atom", 0) <= 0:
            raise bad(
                "move_fractions",
                "needs md (TE-HMC) or atom (single-atom MC) > 0, else the atoms "
                "never move; e.g. {md: 0.21, volume: 0.31, shear: 0.24, stretch: 0.24}",
            )
        if self.move_fractions.get("md", 0) > 0 and self.kemax_max_T is None and self.pressure_gpa == 0:
            raise bad("kemax_max_T", "needed when pressure_gpa is 0 (the default KEmax 1.5 P N Vmax is 0)")
        if self.kemax_max_T is not None and not self.kemax_max_T > 0:
            raise bad("kemax_max_T", "must be a temperature > 0 K or None")
        if self.converge_down_to_T is not None and not self.converge_down_to_T > 0:
            raise bad("converge_down_to_T", "must be a temperature > 0 K or None")
        if self.committee_std_max is not None and not self.committee_std_max > 0:
            raise bad("committee_std_max", "must be > 0 meV/atom or None")
        if self.committee_stop_std is not None and not self.committee_stop_std > 0:
            raise bad("committee_stop_std", "must be > 0 meV/atom or None")
        if not 0 < self.committee_stop_fraction <= 1:
            raise bad("committee_stop_fraction", "must lie in (0, 1]")
        if (
            self.committee_std_max is not None
            and self.committee_stop_std is not None
            and not self.committee_stop_std < self.committee_std_max
        ):
            raise bad(
                "committee_stop_std",
                f"must be below committee_std_max={self.committee_std_max!r} meV/atom: proposals above "
                "committee_std_max are rejected, so no walker would ever exceed committee_stop_std and the run "
                "would never stop on it; e.g. committee_stop_std = 0.97 * committee_std_max (config/config.yaml)",
            )
        if not isinstance(self.traj_interval, int):
            raise bad("traj_interval", "must be an integer (<= 0: no trajectory)")
        if self.snapshot_seconds is not None and not (
            isinstance(self.snapshot_seconds, (int, float)) and self.snapshot_seconds >= 0
        ):
            raise bad("snapshot_seconds", "must be >= 0 seconds (0: every iteration) or None (no snapshots)")
        if not isinstance(self.load_balance, bool):
            raise bad("load_balance", "must be true or false")
        if not isinstance(self.config_type, str) or not self.config_type or any(c.isspace() for c in self.config_type):
            raise bad("config_type", "must be a non-empty string without spaces")

    def normalised_move_fractions(self) -> dict[str, float]:
        """Move-type pick probabilities summing to 1, zero entries dropped."""
        total = float(sum(self.move_fractions.values()))
        return {move: self.move_fractions[move] / total for move in MOVE_TYPES if self.move_fractions.get(move, 0) > 0}


#: Keys of a workflow ``ns`` block that are not NSSettings fields.
BLOCK_ONLY_KEYS: tuple[str, ...] = ("composition", "calculator", "engine", "pymatnest")


def ns_engine_settings(block: dict, pressure_gpa: float) -> dict:
    """The keyword arguments of :class:`NSSettings` from a workflow ``ns`` block at one pressure."""
    settings = {key: value for key, value in block.items() if key not in BLOCK_ONLY_KEYS}
    settings["pressure_gpa"] = float(pressure_gpa)
    return settings


def check_ns_block(block: dict, pressures: list[float], where: str) -> None:
    """Validate a workflow ``ns`` block at every pressure before any job runs.

    Raises ConfigError prefixed with ``where`` (e.g. ``cycles[0].ns``).
    """
    for pressure in pressures:
        try:
            NSSettings.from_dict(ns_engine_settings(block, pressure))
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
