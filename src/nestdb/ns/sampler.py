"""Constant-pressure nested sampling: initial walkers, walks, the NS loop.

One iteration culls the ``n_cull`` highest-enthalpy walkers, clones random
survivors into their slots and walks each clone once (``walk_length`` model
calls) below the new limit H_lim. There is deliberately no extra walk of a
random walker per iteration (pymatnest does one since 2022, doubling the
cost). The :class:`Sampler` holds the live set and walks single walkers;
:mod:`nestdb.ns.loop` drives the iterations.

Each model call asks only for what its move needs: cell, single-atom and
swap moves the energy alone (a walker accepted that way keeps NaN forces
unless the model gave them anyway, and its next MD move first computes
them: one call outside the walk budget); MD steps energy and forces; the
committee STD only where ``committee_std_max`` tests a proposal (cell moves
and the last MD step), else once per walk for its end point. Which calls
computed forces changes neither the random draws nor, with nestdb's EAM and
Lennard-Jones (whose energy-only energies are bit for bit those of full
calls), the accepted states: tests/test_ns.py runs the same chain both ways.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
from ase.data import atomic_masses
from ase.symbols import symbols2numbers

from nestdb.errors import ConfigError
from nestdb.ns import moves
from nestdb.ns.output import walker_frame
from nestdb.ns.settings import MOVE_TYPES, NSSettings
from nestdb.ns.walkers import Evaluator, WalkerSet, forces_known
from nestdb.potentials.neighbours import half_neighbour_list, inverse_and_volume
from nestdb.units import KB_EV_PER_K, gpa_to_ev_per_a3

#: Acceptance windows of the step-size adaptation (method.md section 1).
ACCEPTANCE_WINDOWS: dict[str, tuple[float, float]] = {
    "md": (0.5, 0.95),
    "atom": (0.25, 0.75),
    "volume": (0.25, 0.75),
    "shear": (0.25, 0.75),
    "stretch": (0.25, 0.75),
}
#: Multiplicative step change per adaptation (pymatnest's MC_adjust_step_factor).
STEP_FACTOR = 1.5
#: Fewer attempts than this since the last adaptation leave a step size alone.
MIN_ATTEMPTS_TO_ADAPT = 5
#: Tries per initial walker before giving up on the start energy ceiling.
MAX_INIT_TRIES = 1000
#: Position draws in one initial cell before giving up on min_nn_distance
#: (no model call is spent on a rejected draw: ~25 us each for 16 atoms).
MAX_INIT_GEOMETRY_TRIES = 100_000
#: A model failing on all of its first calls this many is broken, not unlucky.
MAX_FAILED_FIRST_CALLS = 100
#: Random shear/stretch steps that shape each initial cell.
INIT_CELL_SHAPE_STEPS = 30


def balanced_move_list(fractions: dict[str, float], walk_length: int, md_traj_len: int) -> list[str]:
    """The moves of every walk under ``load_balance``.

    A random walk of ``walk_length`` calls makes on average
    ``walk_length / sum(f * cost)`` picks (an MD move costs ``md_traj_len``
    calls, the others 1); that number, rounded, is shared out over the move
    types in proportion to ``fractions`` by largest remainders. A list
    without a move of the atoms (md or atom) gets one, so that the atoms move
    in every walk.

    Parameters
    ----------
    fractions : dict
        Normalised pick probabilities per move type.
    walk_length, md_traj_len : int
        Calls per walk and per MD move.

    Returns
    -------
    list of str
        Move types, grouped by type (each walk shuffles them).
    """
    cost = {move: md_traj_len if move == "md" else 1 for move in fractions}
    picks = max(1, round(walk_length / sum(fractions[m] * cost[m] for m in fractions)))
    expected = {move: fractions[move] * picks for move in fractions}
    counts = {move: int(math.floor(value)) for move, value in expected.items()}
    for move in sorted(expected, key=lambda m: counts[m] - expected[m])[: picks - sum(counts.values())]:
        counts[move] += 1
    atom_moves = [m for m in ("md", "atom") if m in fractions]
    if not any(counts[m] for m in atom_moves):
        counts[max(atom_moves, key=fractions.get)] += 1
    return [move for move in fractions for _ in range(counts[move])]


def parse_symbols(symbols: list[str] | dict[str, int]) -> np.ndarray:
    """Atomic numbers from ``["Mg", "Mg", ...]`` or ``{"Mg": 8}``."""
    try:
        if isinstance(symbols, dict):
            expanded: list[str] = []
            for symbol, count in symbols.items():
                if not isinstance(count, (int, np.integer)) or count < 0:
                    raise ConfigError(f"atom count for {symbol!r} must be a non-negative integer, got {count!r}")
                expanded += [symbol] * int(count)
            numbers = symbols2numbers(expanded)
        else:
            numbers = symbols2numbers(list(symbols))
    except (KeyError, ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"symbols {symbols!r} are not chemical symbols ({err}); use e.g. {{'Mg': 8}}") from None
    if len(numbers) == 0:
        raise ConfigError("symbols: need at least one atom, e.g. {'Mg': 8}")
    return np.asarray(numbers, dtype=int)


class Sampler:
    """State and moves of one NS run: walkers, step sizes, acceptance statistics.

    Parameters
    ----------
    numbers : array of int
        Atomic numbers of the N atoms (masses are the real atomic masses).
    calculator : ase Calculator
        Evaluated through one reused Atoms object.
    settings : NSSettings
        Validated run settings; ``settings.seed`` seeds the initial walkers.
    n_slots : int, optional
        Walker slots (default ``settings.n_walkers``; 1 for a process that
        only walks clones).
    """

    def __init__(self, numbers: np.ndarray, calculator, settings: NSSettings, n_slots: int | None = None) -> None:
        self.settings = settings
        self.numbers = numbers
        self.n_atoms = len(numbers)
        self.masses = atomic_masses[numbers].astype(float)
        self.pressure = gpa_to_ev_per_a3(settings.pressure_gpa)
        # the initial walkers and the clone choices; every walk gets its own
        # generator (see nestdb.ns.parallel.walk_seed) so that walks can run anywhere
        self.rng = np.random.default_rng(settings.seed)
        need_std = settings.committee_std_max is not None or settings.committee_stop_std is not None
        self.evaluate = Evaluator(numbers, calculator, need_std=need_std)
        # A proposal needs the committee STD only under committee_std_max; else
        # the STD of a walk's end point is filled in by one call (complete_std)
        self.std_per_move = settings.committee_std_max is not None
        n_atoms = self.n_atoms
        vmax = settings.max_volume_per_atom
        if settings.kemax_max_T is not None:
            self.kemax = 1.5 * n_atoms * KB_EV_PER_K * settings.kemax_max_T
        else:
            self.kemax = 1.5 * self.pressure * n_atoms * vmax
        self.v_min = settings.min_volume_per_atom * n_atoms
        self.v_max = vmax * n_atoms
        fractions = settings.normalised_move_fractions()
        self.move_names = list(fractions)
        if "swap" in fractions and len(np.unique(numbers)) < 2:
            raise ConfigError(
                "move_fractions.swap > 0 needs at least two species in the composition; "
                "set swap to 0 for a one-element system"
            )
        self.move_cumulative = np.cumsum([fractions[m] for m in self.move_names])
        self._cumulative = self.move_cumulative.tolist()  # bisect on a list: same as searchsorted, faster
        # load_balance: every walk makes the same moves (in its own random order),
        # so the walks of one parallel iteration cost the same
        self.move_list = (
            balanced_move_list(fractions, settings.walk_length, settings.md_traj_len) if settings.load_balance else None
        )
        # Initial steps: MD dt in ASE time units scaled by sqrt(mass) (pymatnest's
        # 0.1 is for 1 amu); volume per atom as pymatnest; shear/stretch dimensionless.
        mass_scale = math.sqrt(float(self.masses.mean()))
        # atom: displacement in units of the walker's (V/N)^(1/3)
        self.step = {"md": 0.1 * mass_scale, "atom": 0.1, "volume": vmax / 20.0, "shear": 0.1, "stretch": 0.1}
        self.step_max = {"md": 2.0 * mass_scale, "atom": 1.0, "volume": vmax / 2.0, "shear": 1.0, "stretch": 1.0}
        # Without MD the momenta are integrated out analytically (pymatnest's
        # nExtraDOF = 3N in the .energies header): walkers carry no kinetic energy.
        self.sample_kinetic = "md" in fractions
        self.attempts = dict.fromkeys(MOVE_TYPES, 0)
        self.accepts = dict.fromkeys(MOVE_TYPES, 0)
        self.total_attempts = dict.fromkeys(MOVE_TYPES, 0)
        self.total_accepts = dict.fromkeys(MOVE_TYPES, 0)
        self.n_committee_rejected = 0
        self.walkers = WalkerSet.empty(settings.n_walkers if n_slots is None else n_slots, n_atoms)

    # ---------------------------------------------------------------- helpers
    def _std_allowed(self, std_per_atom: float) -> bool:
        limit = self.settings.committee_std_max
        if limit is None or std_per_atom * 1000.0 <= limit:
            return True
        self.n_committee_rejected += 1
        return False

    def _record(self, move: str, accepted: bool) -> None:
        self.attempts[move] += 1
        self.total_attempts[move] += 1
        if accepted:
            self.accepts[move] += 1
            self.total_accepts[move] += 1

    # ------------------------------------------------------- initial walkers
    def _random_cell(self, volume: float) -> np.ndarray:
        """A random cell shape (shear/stretch random walk from a cube that keeps
        the aspect-ratio limit), scaled to the given volume."""
        cell = np.eye(3)
        for _ in range(INIT_CELL_SHAPE_STEPS):
            trial = moves.propose_shear(cell, 0.2, self.rng)
            trial = moves.propose_stretch(trial, 0.2, self.rng)
            if moves.min_aspect_ratio(trial) >= self.settings.min_aspect_ratio:
                cell = trial
        return cell * (volume / moves.cell_volume(cell)) ** (1.0 / 3.0)

    def _random_geometry(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Positions, cell and volume of one draw from the prior: p(V) ~ V^N
        in [Vmin, Vmax] per atom and uniform positions. With ``min_nn_distance``
        > 0 the positions are redrawn in the same cell (as pymatnest does)
        until no two atoms or periodic images are closer than that."""
        s, n_atoms = self.settings, self.n_atoms
        volume = 0.0
        while volume < self.v_min:  # the prior below Vmin is redrawn, not clipped
            volume = self.v_max * self.rng.random() ** (1.0 / (n_atoms + 1))
        cell = self._random_cell(volume)
        for _ in range(MAX_INIT_GEOMETRY_TRIES):
            positions = self.rng.random((n_atoms, 3)) @ cell
            if s.min_nn_distance <= 0:
                return positions, cell, volume
            if half_neighbour_list(positions, cell, (True,) * 3, s.min_nn_distance)[3].size == 0:
                return positions, cell, volume
        raise ConfigError(
            f"no random initial walker had all nearest-neighbour distances >= min_nn_distance="
            f"{s.min_nn_distance} A after {MAX_INIT_GEOMETRY_TRIES} draws of positions in a cell of "
            f"{volume / n_atoms:.3g} A^3/atom (max_volume_per_atom={s.max_volume_per_atom}); "
            "lower ns.min_nn_distance or raise ns.max_volume_per_atom"
        )

    def initialise(self) -> None:
        """Random walkers: p(V) ~ V^N below Vmax N, uniform positions (no pair
        closer than ``min_nn_distance``), PE + PV under the start ceiling, KE
        drawn uniformly in momentum space below KEmax."""
        s, w, n_atoms = self.settings, self.walkers, self.n_atoms
        ceiling = s.start_energy_ceiling_per_atom * n_atoms + self.pressure * self.v_max
        std_limit = s.committee_std_max
        self.n_init_above_committee_limit = 0
        for index in range(s.n_walkers):
            candidate = None
            for _ in range(MAX_INIT_TRIES):
                trial_positions, cell, volume = self._random_geometry()
                # most draws lie above the ceiling: forces only when an MD move needs them
                trial = self.evaluate(trial_positions, cell, forces=False)  # with the STD
                if self.evaluate.n_failed == self.evaluate.n_calls >= MAX_FAILED_FIRST_CALLS:
                    raise ConfigError(
                        f"the model failed on all of its first {MAX_FAILED_FIRST_CALLS} calls "
                        f"(last: {self.evaluate.last_error}); check the calculator settings"
                    )
                if not trial.energy + self.pressure * volume < ceiling:
                    continue
                candidate = (trial_positions, cell, volume, trial)
                # The committee limit holds for initial walkers as for moves:
                # drawing from the prior until it is met is the same restriction.
                if std_limit is None or trial.std_per_atom is None or trial.std_per_atom * 1e3 <= std_limit:
                    break
            if candidate is None:
                failed = self.evaluate.n_failed
                raise ConfigError(
                    f"no random initial walker had PE + PV below start_energy_ceiling_per_atom="
                    f"{s.start_energy_ceiling_per_atom} after {MAX_INIT_TRIES} tries; raise it"
                    + (f" ({failed} model calls failed, last: {self.evaluate.last_error})" if failed else "")
                )
            positions, cell, volume, result = candidate
            if std_limit is not None and result.std_per_atom is not None and result.std_per_atom * 1e3 > std_limit:
                # Kept so that the committee stop criterion can see the model is unusable here.
                self.n_init_above_committee_limit += 1
            if self.sample_kinetic:
                kinetic = moves.redraw_kinetic_energy(
                    min(self.kemax, ceiling - result.energy - self.pressure * volume), n_atoms, self.rng
                )
                w.velocities[index] = moves.random_velocities(kinetic, self.masses, self.rng)
            else:
                kinetic = 0.0
                w.velocities[index] = 0.0
            w.positions[index] = positions
            w.cells[index] = cell
            w.forces[index] = np.nan if result.forces is None else result.forces  # see forces_known
            w.potential[index] = result.energy
            w.kinetic[index] = kinetic
            w.volume[index] = volume
            w.enthalpy[index] = result.energy + self.pressure * volume + kinetic
            w.committee_std[index] = result.std_per_atom

    # ------------------------------------------------------------------ moves
    def md_move(self, index: int, h_lim: float) -> None:
        """Total-enthalpy HMC: NVE velocity Verlet, accept iff H' < H_lim and
        KE' < KEmax; then a rejection-free velocity redraw below H_lim.

        Starting from a configuration whose forces are not known (the walker's
        last accepted move was energy-only) costs one more model call; it is
        counted in ``n_calls`` but not in the walk's budget, so the moves and
        random draws of a walk do not depend on which calls computed forces.
        """
        w, masses, dt = self.walkers, self.masses, self.step["md"]
        cell = w.cells[index]
        forces = w.forces[index]
        finite = True
        if not forces_known(forces):
            start = self.evaluate(w.positions[index], cell, std=False)  # the STD is known
            finite = start.ok
            if finite:
                w.forces[index] = forces = start.forces
        velocities = w.velocities[index]
        result = None
        if finite:
            inverse = inverse_and_volume(cell)[0]
            positions = w.positions[index]
            n_steps = self.settings.md_traj_len
            for step in range(n_steps):
                velocities = moves.verlet_half_kick(velocities, forces, masses, dt)
                # wrapping every step changes nothing physically but keeps atoms
                # near the cell, which the neighbour lists need to stay fast
                positions = moves.wrap_positions(positions + dt * velocities, cell, inverse)
                # the committee STD matters only where the move ends
                result = self.evaluate(positions, cell, std=self.std_per_move and step == n_steps - 1)
                forces = result.forces
                if not result.ok:
                    finite = False  # overlapping atoms: the trajectory is lost, reject
                    break
                velocities = moves.verlet_half_kick(velocities, forces, masses, dt)
        kinetic = moves.kinetic_energy(velocities, masses)
        pv = self.pressure * w.volume[index]
        accepted = (
            finite
            and result.energy + pv + kinetic < h_lim
            and kinetic < self.kemax
            and self._std_allowed(result.std_per_atom)
        )
        self._record("md", accepted)
        if accepted:
            w.positions[index] = positions
            w.forces[index] = forces
            w.potential[index] = result.energy
            w.committee_std[index] = result.std_per_atom
        else:
            # reversal keeps the move reversible; the redraw below replaces it anyway
            velocities = -w.velocities[index]
        ke_limit = min(self.kemax, h_lim - (w.potential[index] + pv))
        kinetic = moves.redraw_kinetic_energy(ke_limit, self.n_atoms, self.rng)
        w.velocities[index] = moves.random_velocities(kinetic, masses, self.rng) if kinetic > 0 else 0.0 * velocities
        w.kinetic[index] = kinetic
        w.enthalpy[index] = w.potential[index] + pv + kinetic

    def cell_move(self, index: int, h_lim: float, move: str) -> None:
        """Volume, shear or stretch move with atoms scaled along (fixed
        fractional coordinates); accept iff bounds hold and H' < H_lim."""
        w, rng = self.walkers, self.rng
        cell = w.cells[index]
        volume = w.volume[index]
        if move == "volume":
            new_cell, ratio = moves.propose_volume(cell, self.step["volume"], self.n_atoms, rng)
            new_volume = volume * ratio
            # (V'/V)^N: the flat prior on atomic positions inside the cell
            if ratio <= 0 or (ratio < 1.0 and rng.random() >= ratio**self.n_atoms):
                self._record(move, False)
                return
        else:
            propose = moves.propose_shear if move == "shear" else moves.propose_stretch
            new_cell = propose(cell, self.step[move], rng)
            new_volume = volume
        if (
            not (self.v_min <= new_volume <= self.v_max)
            or moves.min_aspect_ratio(new_cell) < self.settings.min_aspect_ratio
        ):
            self._record(move, False)
            return
        new_positions = moves.transform_positions(w.positions[index], cell, new_cell)
        result = self.evaluate(new_positions, new_cell, forces=False, std=self.std_per_move)
        enthalpy = result.energy + self.pressure * new_volume + w.kinetic[index]
        accepted = result.ok and enthalpy < h_lim and self._std_allowed(result.std_per_atom)
        self._record(move, accepted)
        if accepted:
            w.positions[index] = new_positions
            w.cells[index] = new_cell
            w.forces[index] = np.nan if result.forces is None else result.forces  # see forces_known
            w.potential[index] = result.energy
            w.volume[index] = new_volume
            w.enthalpy[index] = enthalpy
            w.committee_std[index] = result.std_per_atom

    def _accept_positions_if_below(self, index: int, positions: np.ndarray, h_lim: float, move: str) -> None:
        """Evaluate new positions at fixed cell and kinetic energy; keep them iff
        H' < H_lim and the committee allows them (shared by atom and swap moves)."""
        w = self.walkers
        result = self.evaluate(positions, w.cells[index], forces=False, std=self.std_per_move)
        enthalpy = result.energy + self.pressure * w.volume[index] + w.kinetic[index]
        accepted = result.ok and enthalpy < h_lim and self._std_allowed(result.std_per_atom)
        self._record(move, accepted)
        if accepted:
            w.positions[index] = positions
            w.forces[index] = np.nan if result.forces is None else result.forces  # see forces_known
            w.potential[index] = result.energy
            w.enthalpy[index] = enthalpy
            w.committee_std[index] = result.std_per_atom

    def atom_move(self, index: int, h_lim: float) -> None:
        """Single-atom MC: displace one random atom by a Gaussian step of
        ``step['atom'] * (V/N)^(1/3)`` per Cartesian component (a symmetric
        proposal); accept iff H' < H_lim. KE is unchanged."""
        w, rng = self.walkers, self.rng
        atom = int(rng.integers(self.n_atoms))
        positions = w.positions[index].copy()
        sigma = self.step["atom"] * (w.volume[index] / self.n_atoms) ** (1.0 / 3.0)
        positions[atom] += rng.normal(0.0, sigma, size=3)
        positions = moves.wrap_positions(positions, w.cells[index])
        self._accept_positions_if_below(index, positions, h_lim, "atom")

    def swap_move(self, index: int, h_lim: float) -> None:
        """Exchange the positions of two atoms of different species; accept iff
        H' < H_lim. Velocities stay with the atom indices, so KE is unchanged.

        The first atom is uniform over all atoms, the second uniform over the
        atoms of other species: the chance of proposing a pair depends only on
        the two species, the same for the move and its reverse (symmetric
        proposal, so detailed balance needs only the H_lim test).
        """
        w, rng = self.walkers, self.rng
        first = int(rng.integers(self.n_atoms))
        others = np.flatnonzero(self.numbers != self.numbers[first])
        second = int(others[rng.integers(len(others))])
        positions = w.positions[index].copy()
        positions[[first, second]] = positions[[second, first]]
        self._accept_positions_if_below(index, positions, h_lim, "swap")

    def walk(self, index: int, h_lim: float) -> None:
        """Walk one walker for ``walk_length`` model calls below ``h_lim``.

        Moves are picked at random with the configured fractions until the
        budget is used, or (``load_balance``) taken from the fixed move list
        in a random order.
        """
        if self.move_list is not None:
            for position in self.rng.permutation(len(self.move_list)):
                self._move(self.move_list[position], index, h_lim)
            self.complete_std(index)
            return
        used, budget, traj_len = 0, self.settings.walk_length, self.settings.md_traj_len
        names, cumulative, several = self.move_names, self._cumulative, len(self.move_names) > 1
        while used < budget:
            move = names[bisect.bisect_right(cumulative, self.rng.random()) if several else 0]
            self._move(move, index, h_lim)
            used += traj_len if move == "md" else 1
        self.complete_std(index)

    def _move(self, move: str, index: int, h_lim: float) -> None:
        """One move of type ``move`` of walker ``index`` below ``h_lim``."""
        if move == "md":
            self.md_move(index, h_lim)
        elif move == "swap":
            self.swap_move(index, h_lim)
        elif move == "atom":
            self.atom_move(index, h_lim)
        else:
            self.cell_move(index, h_lim, move)

    def complete_std(self, index: int) -> None:
        """Give walker ``index`` its committee STD where its last accepted move
        skipped it (a committee calculator with ``std_on_request``): one call,
        which also gives the forces if they are unknown. The walker's energy
        stays that of its move, so the chain does not depend on this call."""
        w = self.walkers
        std = w.committee_std[index]
        if std == std or not self.evaluate.std_on_request:
            return
        result = self.evaluate(w.positions[index], w.cells[index], forces=not forces_known(w.forces[index]))
        w.committee_std[index] = result.std_per_atom
        if result.forces is not None and result.ok:
            w.forces[index] = result.forces

    def adapt_steps(self) -> list[str]:
        """Rescale each step size by 1.5 when its acceptance since the last call
        left its window; returns human-readable notes."""
        notes = []
        for move in MOVE_TYPES:
            n_try = self.attempts[move]
            if move not in ACCEPTANCE_WINDOWS:  # swaps have no step size
                self.attempts[move] = self.accepts[move] = 0
                continue
            low, high = ACCEPTANCE_WINDOWS[move]
            if n_try >= MIN_ATTEMPTS_TO_ADAPT:
                rate = self.accepts[move] / n_try
                if rate < low:
                    self.step[move] /= STEP_FACTOR
                    notes.append(f"{move} down to {self.step[move]:.4g}")
                elif rate > high and self.step[move] < self.step_max[move]:
                    self.step[move] = min(self.step[move] * STEP_FACTOR, self.step_max[move])
                    notes.append(f"{move} up to {self.step[move]:.4g}")
            self.attempts[move] = 0
            self.accepts[move] = 0
        return notes

    def window_rates(self) -> dict[str, float]:
        """Acceptance rates since the last adaptation, per move type tried."""
        return {m: self.accepts[m] / self.attempts[m] for m in MOVE_TYPES if self.attempts[m]}

    def frame(self, index: int, iteration: int, config_n_global: int):
        """Walker ``index`` as a plain Atoms with the NS info keys."""
        w = self.walkers
        return walker_frame(
            self.numbers,
            self.masses,
            w.positions[index],
            w.cells[index],
            w.velocities[index],
            enthalpy=w.enthalpy[index],
            volume=w.volume[index],
            kemax=self.kemax,
            pressure=self.pressure,
            iteration=iteration,
            config_type=self.settings.config_type,
            config_n_global=config_n_global,
            kinetic=w.kinetic[index],
            committee_std=w.committee_std[index],
        )
