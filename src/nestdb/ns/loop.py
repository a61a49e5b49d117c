"""The nested-sampling loop and its stopping criteria."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nestdb.logs import progress_logger
from nestdb.ns.output import energies_header, energies_line, output_paths, write_frame, write_summary
from nestdb.ns.parallel import WalkerPool, WalkResult, WalkTask, walk_seed
from nestdb.ns.restart import (
    LEGACY_SNAPSHOT_SUFFIX,
    calculator_fingerprint,
    chain_fingerprint,
    check_compatible,
    legacy_snapshot_error,
    load_snapshot,
    save_snapshot,
    truncate_outputs,
)
from nestdb.ns.sampler import Sampler, parse_symbols
from nestdb.ns.settings import MOVE_TYPES, NSSettings
from nestdb.ns.walkers import WALKER_FIELDS
from nestdb.units import KB_EV_PER_K

#: H_lim values (culls) used for the printed temperature estimate, as pymatnest.
T_ESTIMATE_WINDOW = 1001
#: pymatnest's converge_down_to_T margin: stop once the Z(T) term fell by e^10.
CONVERGENCE_LOG_MARGIN = 10.0


class _LogXTracker:
    """Running log X_l and log a_l per culled line (pymatnest-format.md section 4)."""

    def __init__(self, n_walkers: int, n_cull: int) -> None:
        self.n_walkers, self.n_cull = n_walkers, n_cull
        self.line = 0
        self.log_x = 0.0

    def next_log_weight(self) -> float:
        k, p, line = self.n_walkers, self.n_cull, self.line
        self.log_x += math.log(k - line % p) - math.log(k + 1 - line % p)
        self.line += 1
        return self.log_x - math.log(k + 1 - (line + 1) % p)


def temperature_estimate(h_lims: deque, n_walkers: int, n_cull: int) -> float:
    """T from the slope of log X against H_lim over the recent culls (K).

    Returns NaN while fewer than two culls are known or H_lim has not moved.
    """
    if len(h_lims) < 2 or h_lims[-1] >= h_lims[0]:
        return float("nan")
    dlogx_per_line = math.log((n_walkers + 1 - n_cull) / (n_walkers + 1)) / n_cull
    beta = (len(h_lims) - 1) * dlogx_per_line / (h_lims[-1] - h_lims[0])
    return 1.0 / (KB_EV_PER_K * beta)


def run_nested_sampling(
    symbols: list[str] | dict[str, int],
    calculator,
    settings: NSSettings,
    out_prefix: str | Path,
    resume: bool = False,
    snapshot_path: str | Path | None = None,
    model: dict | None = None,
) -> dict:
    """Run constant-pressure nested sampling and write pymatnest-format outputs.

    Cost model: initial walkers cost one model call per prior draw; then every
    iteration costs ``n_cull * walk_length`` model calls (one walk per culled
    walker's clone; an MD move of ``md_traj_len`` steps counts as that many
    calls) and no extra walk of a random walker as pymatnest does. Calls ask
    only for what the move needs (energy alone for cell, atom and swap moves);
    with a model that then skips forces, an MD move after such moves costs
    one call more for its starting forces, outside the walk budget (see
    :class:`nestdb.ns.sampler.Sampler`). With ``n_procs`` > 1 the ``n_cull``
    walks run side by side.

    Parameters
    ----------
    symbols : list of str or dict
        The atoms of every walker, e.g. ``["Mg"] * 8`` or ``{"Mg": 8}``.
    calculator : ase Calculator
        Shared by all walkers (energy and forces are used). For the committee
        settings it must set ``results["energy_std_per_atom"]`` (eV/atom). A
        call that raises or gives NaN/inf only rejects that move (counted).
    settings : NSSettings
        Run parameters (validated here).
    out_prefix : str or Path
        Writes ``<prefix>.energies``, ``<prefix>.traj.extxyz``,
        ``<prefix>.final.extxyz`` and ``<prefix>.summary.json``; the parent
        folder is created. Frames of the final live walkers carry
        ``iter`` = number of iterations done and ``config_n_global`` =
        ``iter * n_cull + walker index``.
        Progress lines (a header, one line every ``n_walkers / n_cull``
        iterations, the stop) go to the progress logger
        (:func:`nestdb.logs.progress_to` chooses their file).
    resume : bool
        Continue from the snapshot if there is one (else start afresh).
    snapshot_path : str or Path, optional
        Restart snapshot, written every ``settings.snapshot_seconds``;
        default ``<prefix>.restart.npz`` (format in :mod:`nestdb.ns.restart`).
        A legacy ``<prefix>.restart.pkl`` is refused unread (DataError).
    model : dict, optional
        Fingerprint of the energy model,
        :func:`nestdb.ns.restart.model_fingerprint` of the calculator's spec
        (covers its model files); default: the calculator's class and
        parameters. With the settings and atoms it is stored in every
        snapshot; resuming with a different one is refused (ConfigError
        naming what changed).

    Returns
    -------
    dict
        The summary also written to ``<prefix>.summary.json``: ``n_iter``,
        ``stop_reason`` ("max_iter", "converged" or "committee"), ``n_calls``,
        ``n_failed_calls`` (raised or non-finite), ``n_committee_rejected``,
        ``wall_s``, ``calls_per_s``, ``iters_per_s``, ``acceptance`` and
        ``attempts`` per move type, ``step_sizes``, ``settings``, ``n_atoms``,
        ``pressure_ev_per_a3``, ``kemax``, ``restarted_at_iteration``.
    """
    settings.validate()
    numbers = parse_symbols(symbols)
    paths = output_paths(out_prefix)
    snapshot = Path(snapshot_path) if snapshot_path is not None else paths["restart"]
    paths["energies"].parent.mkdir(parents=True, exist_ok=True)

    say = progress_logger().info

    start = time.perf_counter()
    fingerprint = chain_fingerprint(
        settings, numbers, model if model is not None else calculator_fingerprint(calculator)
    )
    legacy = Path(str(out_prefix) + LEGACY_SNAPSHOT_SUFFIX)
    if resume and snapshot_path is None and legacy.exists():
        raise legacy_snapshot_error(legacy)
    state = load_snapshot(snapshot) if resume and snapshot.exists() else None
    if state is not None:
        check_compatible(state, fingerprint, snapshot)
    sampler = Sampler(numbers, calculator, settings)
    # workers fork before the first model call (see WalkerPool)
    with WalkerPool(numbers, calculator, settings) as pool:
        run = _Run(sampler, settings, paths, say, fingerprint)
        if state is None:
            run.start_afresh()
        else:
            run.restore(state)
            say(f"NS: resumed from {snapshot} at iteration {run.iteration}")
        run.loop(pool, snapshot, start)
    return run.finish(start)


class _TerminationRequests:
    """SIGTERM (what SLURM sends at the time limit, before SIGKILL) sets
    ``requested``; the loop then snapshots and exits between iterations."""

    def __init__(self) -> None:
        self.requested = 0
        self.previous = None

    def __enter__(self) -> _TerminationRequests:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.requested = signum

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class _Run:
    """The mutable state of one run between iterations (what a snapshot holds)."""

    def __init__(self, sampler: Sampler, settings: NSSettings, paths: dict[str, Path], say, fingerprint: dict) -> None:
        self.sampler, self.settings, self.paths, self.say = sampler, settings, paths, say
        self.fingerprint = fingerprint
        self.n_atoms = sampler.n_atoms
        self.log_x = _LogXTracker(settings.n_walkers, settings.n_cull)
        self.recent_h_lims: deque = deque(maxlen=T_ESTIMATE_WINDOW)
        self.max_log_term = -math.inf
        self.iteration = 0
        self.n_init_calls = 0
        self.wall_before = 0.0  # wall seconds of earlier sessions of a restarted run
        self.restarted_at: int | None = None
        self.stop_reason = "max_iter"

    # ------------------------------------------------------------ start / restore
    def start_afresh(self) -> None:
        """Initial walkers and empty output files."""
        sampler, s = self.sampler, self.settings
        sampler.initialise()
        self.n_init_calls = sampler.evaluate.n_calls
        with open(self.paths["energies"], "w") as handle:
            handle.write(
                energies_header(s.n_walkers, s.n_cull, self.n_atoms, 0 if sampler.sample_kinetic else 3 * self.n_atoms)
            )
        open(self.paths["traj"], "w").close()
        self.say(
            f"NS: {self.n_atoms} atoms, K={s.n_walkers}, L={s.walk_length}, n_cull={s.n_cull}, "
            f"n_procs={s.n_procs}, P={s.pressure_gpa} GPa, KEmax={sampler.kemax:.4g} eV, "
            f"{self.n_init_calls} calls for the initial walkers"
        )

    def state(self, offsets: dict[str, int], wall_s: float) -> dict:
        """Everything the rest of the run depends on (see nestdb.ns.restart)."""
        sampler = self.sampler
        return {
            "fingerprint": self.fingerprint,
            "iteration": self.iteration,
            "walkers": {name: getattr(sampler.walkers, name).copy() for name in WALKER_FIELDS},
            "step": dict(sampler.step),
            "attempts": dict(sampler.attempts),
            "accepts": dict(sampler.accepts),
            "total_attempts": dict(sampler.total_attempts),
            "total_accepts": dict(sampler.total_accepts),
            "n_committee_rejected": sampler.n_committee_rejected,
            "n_calls": sampler.evaluate.n_calls,
            "n_failed": sampler.evaluate.n_failed,
            "n_init_calls": self.n_init_calls,
            "n_init_above_committee_limit": sampler.n_init_above_committee_limit,
            "rng_state": sampler.rng.bit_generator.state,
            "log_x": [self.log_x.line, self.log_x.log_x],
            "max_log_term": self.max_log_term,
            "recent_h_lims": np.array(self.recent_h_lims, dtype=float),
            "offsets": offsets,
            "wall_s": wall_s,
        }

    def restore(self, state: dict) -> None:
        """Load a snapshot's state and cut the output files back to it."""
        sampler = self.sampler
        for name in WALKER_FIELDS:
            getattr(sampler.walkers, name)[...] = state["walkers"][name]
        sampler.step.update(state["step"])
        for key in ("attempts", "accepts", "total_attempts", "total_accepts"):
            getattr(sampler, key).update(state[key])
        sampler.n_committee_rejected = state["n_committee_rejected"]
        sampler.n_init_above_committee_limit = state["n_init_above_committee_limit"]
        sampler.evaluate.n_calls = state["n_calls"]
        sampler.evaluate.n_failed = state["n_failed"]
        sampler.rng.bit_generator.state = state["rng_state"]
        self.iteration = self.restarted_at = state["iteration"]
        self.n_init_calls = state["n_init_calls"]
        self.log_x.line, self.log_x.log_x = state["log_x"]
        self.max_log_term = state["max_log_term"]
        self.recent_h_lims.extend(float(h) for h in state["recent_h_lims"])
        self.wall_before = state["wall_s"]
        truncate_outputs(state["offsets"], self.paths)

    # -------------------------------------------------------------------- loop
    def loop(self, pool: WalkerPool, snapshot: Path, start: float) -> None:
        """Iterate until max_iter, convergence or the committee stop."""
        s, sampler = self.settings, self.sampler
        walkers, rng = sampler.walkers, sampler.rng
        n_walkers, n_cull = s.n_walkers, s.n_cull
        adapt_interval = max(1, n_walkers // n_cull)
        # a fresh run snapshots at once: its initial walkers may have cost hours
        last_snapshot = -math.inf if self.restarted_at is None else time.perf_counter()
        with (
            open(self.paths["energies"], "a") as energies_file,
            open(self.paths["traj"], "a") as traj_file,
            _TerminationRequests() as terminate,
        ):

            def take_snapshot() -> None:
                offsets = {}
                for kind, handle in (("energies", energies_file), ("traj", traj_file)):
                    handle.flush()
                    os.fsync(handle.fileno())
                    offsets[kind] = os.fstat(handle.fileno()).st_size
                save_snapshot(snapshot, self.state(offsets, self.wall_before + time.perf_counter() - start))

            while self.iteration < s.max_iter:
                if s.snapshot_seconds is not None and (
                    terminate.requested or time.perf_counter() - last_snapshot >= s.snapshot_seconds
                ):
                    take_snapshot()
                    last_snapshot = time.perf_counter()
                if terminate.requested:
                    self.say(
                        f"NS: terminated by signal {terminate.requested} at iteration {self.iteration}"
                        + ("; snapshot written, rerun to resume" if s.snapshot_seconds is not None else "")
                    )
                    raise SystemExit(128 + terminate.requested)
                if _committee_stop(walkers.committee_std, s):
                    self.stop_reason = "committee"
                    break
                # highest enthalpies first; stable sort keeps ties deterministic
                culled = np.argsort(-walkers.enthalpy, kind="stable")[:n_cull]
                h_lim = float(walkers.enthalpy[culled[-1]])
                if self._converged(culled):
                    self.stop_reason = "converged"
                    break
                for k, index in enumerate(culled):
                    energies_file.write(energies_line(self.iteration, walkers.enthalpy[index], walkers.volume[index]))
                    self.recent_h_lims.append(float(walkers.enthalpy[index]))
                    n_global = self.iteration * n_cull + k
                    if s.traj_interval > 0 and n_global % s.traj_interval == s.traj_interval - 1:
                        write_frame(traj_file, sampler.frame(index, self.iteration, n_global))
                survivors = np.setdiff1d(np.arange(n_walkers), culled)
                tasks = []
                for k, index in enumerate(culled):
                    walkers.copy_walker(int(survivors[rng.integers(len(survivors))]), int(index))
                    tasks.append(
                        WalkTask(
                            walkers.state(int(index)), h_lim, dict(sampler.step), walk_seed(s.seed, self.iteration, k)
                        )
                    )
                for index, result in zip(culled, pool.walk(tasks), strict=True):
                    walkers.set_state(int(index), result.state)
                    self._merge(result)
                self.iteration += 1
                if self.iteration % adapt_interval == 0:
                    self._progress(h_lim, start)
                    energies_file.flush()
                    traj_file.flush()
            if self.stop_reason == "max_iter" and s.snapshot_seconds is not None:
                # lets a later restart with a larger max_iter continue the run
                take_snapshot()

    def _converged(self, culled: np.ndarray) -> bool:
        """pymatnest's converge_down_to_T test on this iteration's culled walkers."""
        s = self.settings
        if s.converge_down_to_T is None:
            return False
        beta = 1.0 / (KB_EV_PER_K * s.converge_down_to_T)
        converged = False
        for index in culled:
            term = self.log_x.next_log_weight() - beta * self.sampler.walkers.enthalpy[index]
            self.max_log_term = max(self.max_log_term, term)
            converged |= term < self.max_log_term - CONVERGENCE_LOG_MARGIN
        return converged

    def _merge(self, result: WalkResult) -> None:
        sampler = self.sampler
        for move in MOVE_TYPES:
            sampler.attempts[move] += result.attempts[move]
            sampler.accepts[move] += result.accepts[move]
            sampler.total_attempts[move] += result.attempts[move]
            sampler.total_accepts[move] += result.accepts[move]
        sampler.evaluate.n_calls += result.n_calls
        sampler.evaluate.n_failed += result.n_failed
        sampler.n_committee_rejected += result.n_committee_rejected
        if result.last_error:
            sampler.evaluate.last_error = result.last_error

    def _progress(self, h_lim: float, start: float) -> None:
        """Adapt the step sizes and write one progress line."""
        s, sampler, n_atoms = self.settings, self.sampler, self.n_atoms
        rates = sampler.window_rates()
        notes = sampler.adapt_steps()
        temperature = temperature_estimate(self.recent_h_lims, s.n_walkers, s.n_cull)
        wall = self.wall_before + time.perf_counter() - start
        failed = sampler.evaluate.n_failed
        self.say(
            f"iter {self.iteration} H_lim {h_lim:.6f} eV ({h_lim / n_atoms:.5f} eV/atom) "
            f"T_estimate {temperature:.1f} K  <V>/atom {sampler.walkers.volume.mean() / n_atoms:.3f} "
            f"accept "
            + " ".join(f"{m}={r:.2f}" for m, r in rates.items())
            + f"  calls {sampler.evaluate.n_calls} ({sampler.evaluate.n_calls / wall:.0f}/s)"
            + (f" failed {failed}" if failed else "")
            + (f"  steps: {', '.join(notes)}" if notes else "")
        )

    # ------------------------------------------------------------------ finish
    def finish(self, start: float) -> dict:
        """Write the final walkers and the summary; return the summary."""
        s, sampler, iteration = self.settings, self.sampler, self.iteration
        with open(self.paths["final"], "w") as final_file:
            for index in range(s.n_walkers):
                write_frame(final_file, sampler.frame(index, iteration, iteration * s.n_cull + index))
        session = time.perf_counter() - start
        wall = self.wall_before + session
        n_calls = sampler.evaluate.n_calls
        summary = {
            "n_iter": iteration,
            "stop_reason": self.stop_reason,
            "n_calls": n_calls,
            "n_init_calls": self.n_init_calls,
            "n_init_above_committee_limit": sampler.n_init_above_committee_limit,
            "n_failed_calls": sampler.evaluate.n_failed,
            "last_model_error": sampler.evaluate.last_error or None,
            "n_committee_rejected": sampler.n_committee_rejected,
            "wall_s": wall,
            "calls_per_s": n_calls / wall if wall > 0 else float("nan"),
            "iters_per_s": iteration / wall if wall > 0 else float("nan"),
            "acceptance": {
                m: sampler.total_accepts[m] / sampler.total_attempts[m] for m in MOVE_TYPES if sampler.total_attempts[m]
            },
            "attempts": {m: sampler.total_attempts[m] for m in MOVE_TYPES if sampler.total_attempts[m]},
            "step_sizes": dict(sampler.step),
            "n_atoms": self.n_atoms,
            "n_procs": s.n_procs,
            "pressure_ev_per_a3": sampler.pressure,
            "kemax": sampler.kemax,
            "restarted_at_iteration": self.restarted_at,
            "settings": asdict(s),
        }
        write_summary(self.paths["summary"], summary)
        accept = " ".join(f"{m}={r:.2f}" for m, r in summary["acceptance"].items())
        self.say(
            f"NS stopped ({self.stop_reason}) after {iteration} iterations: {n_calls} model calls "
            f"({summary['n_failed_calls']} failed, {summary['n_committee_rejected']} proposals rejected "
            f"by the committee), acceptance {accept}, wall {wall:.1f} s, {summary['calls_per_s']:.0f} calls/s, "
            f"{summary['iters_per_s']:.2f} iterations/s"
        )
        return summary


def _committee_stop(std_per_atom: np.ndarray, settings: NSSettings) -> bool:
    """True when at least committee_stop_fraction of walkers exceed committee_stop_std."""
    if settings.committee_stop_std is None:
        return False
    above = np.count_nonzero(std_per_atom * 1000.0 > settings.committee_stop_std)
    return above >= settings.committee_stop_fraction * len(std_per_atom)
