"""The nested-sampling loop and its stopping criteria."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import numpy as np

from nestdb.ns.engine import Sampler, parse_symbols
from nestdb.ns.output import energies_header, energies_line, output_paths, write_frame, write_summary
from nestdb.ns.settings import MOVE_TYPES, NSSettings
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
        k, p, l = self.n_walkers, self.n_cull, self.line
        self.log_x += math.log(k - l % p) - math.log(k + 1 - l % p)
        self.line += 1
        return self.log_x - math.log(k + 1 - (l + 1) % p)


def temperature_estimate(h_lims: deque, n_walkers: int, n_cull: int) -> float:
    """T from the slope of log X against H_lim over the recent culls (K).

    Returns NaN while fewer than two culls are known or H_lim has not moved.
    """
    if len(h_lims) < 2 or h_lims[-1] >= h_lims[0]:
        return float("nan")
    dlogx_per_line = math.log((n_walkers + 1 - n_cull) / (n_walkers + 1)) / n_cull
    beta = (len(h_lims) - 1) * dlogx_per_line / (h_lims[-1] - h_lims[0])
    return 1.0 / (KB_EV_PER_K * beta)


def run_nested_sampling(symbols: list[str] | dict[str, int], calculator, settings: NSSettings,
                        out_prefix: str | Path, log: TextIO | None = None) -> dict:
    """Run constant-pressure nested sampling and write pymatnest-format outputs.

    Parameters
    ----------
    symbols : list of str or dict
        The atoms of every walker, e.g. ``["Mg"] * 8`` or ``{"Mg": 8}``.
    calculator : ase Calculator
        Shared by all walkers (energy and forces are used). For the committee
        settings it must set ``results["energy_std_per_atom"]`` (eV/atom).
    settings : NSSettings
        Run parameters (validated here).
    out_prefix : str or Path
        Writes ``<prefix>.energies``, ``<prefix>.traj.extxyz``,
        ``<prefix>.final.extxyz`` and ``<prefix>.summary.json``; the parent
        folder is created. Frames of the final live walkers carry
        ``iter`` = number of iterations done and ``config_n_global`` =
        ``iter * n_cull + walker index``.
    log : text stream, optional
        Progress lines every ``n_walkers / n_cull`` iterations.

    Returns
    -------
    dict
        The summary also written to ``<prefix>.summary.json``: ``n_iter``,
        ``stop_reason`` ("max_iter", "converged" or "committee"), ``n_calls``,
        ``wall_s``, ``calls_per_s``, ``iters_per_s``, ``acceptance``,
        ``step_sizes``, ``settings``, ``n_atoms``, ``pressure_ev_per_a3``,
        ``kemax``.
    """
    settings.validate()
    numbers = parse_symbols(symbols)
    paths = output_paths(out_prefix)
    paths["energies"].parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sampler = Sampler(numbers, calculator, settings)
    sampler.initialise()
    n_init_calls = sampler.evaluate.n_calls
    walkers, rng = sampler.walkers, sampler.rng
    n_walkers, n_cull = settings.n_walkers, settings.n_cull
    adapt_interval = max(1, n_walkers // n_cull)
    log_x = _LogXTracker(n_walkers, n_cull)
    recent_h_lims: deque = deque(maxlen=T_ESTIMATE_WINDOW)
    max_log_term = -math.inf
    stop_reason = "max_iter"
    iteration = 0

    def say(text: str) -> None:
        if log is not None:
            log.write(text + "\n")
            log.flush()

    say(f"NS: {len(numbers)} atoms, K={n_walkers}, L={settings.walk_length}, P={settings.pressure_gpa} GPa, "
        f"KEmax={sampler.kemax:.4g} eV, {n_init_calls} calls for the initial walkers")
    with open(paths["energies"], "w") as energies_file, open(paths["traj"], "w") as traj_file:
        energies_file.write(energies_header(n_walkers, n_cull, len(numbers)))
        while iteration < settings.max_iter:
            if _committee_stop(walkers.committee_std, settings):
                stop_reason = "committee"
                break
            # highest enthalpies first; stable sort keeps ties deterministic
            culled = np.argsort(-walkers.enthalpy, kind="stable")[:n_cull]
            h_lim = float(walkers.enthalpy[culled[-1]])
            if settings.converge_down_to_T is not None:
                beta = 1.0 / (KB_EV_PER_K * settings.converge_down_to_T)
                converged = False
                for index in culled:
                    term = log_x.next_log_weight() - beta * walkers.enthalpy[index]
                    max_log_term = max(max_log_term, term)
                    converged |= term < max_log_term - CONVERGENCE_LOG_MARGIN
                if converged:
                    stop_reason = "converged"
                    break
            for k, index in enumerate(culled):
                energies_file.write(energies_line(iteration, walkers.enthalpy[index], walkers.volume[index]))
                recent_h_lims.append(float(walkers.enthalpy[index]))
                n_global = iteration * n_cull + k
                if settings.traj_interval > 0 and n_global % settings.traj_interval == settings.traj_interval - 1:
                    write_frame(traj_file, sampler.frame(index, iteration, n_global))
            survivors = np.setdiff1d(np.arange(n_walkers), culled)
            for index in culled:
                walkers.copy_walker(int(survivors[rng.integers(len(survivors))]), int(index))
                sampler.walk(int(index), h_lim)
            iteration += 1
            if iteration % adapt_interval == 0:
                rates = sampler.window_rates()
                notes = sampler.adapt_steps()
                temperature = temperature_estimate(recent_h_lims, n_walkers, n_cull)
                say(f"iter {iteration} H_lim {h_lim:.6f} eV ({h_lim / len(numbers):.5f} eV/atom) "
                    f"T_estimate {temperature:.1f} K  <V>/atom {walkers.volume.mean() / len(numbers):.3f} "
                    f"accept " + " ".join(f"{m}={r:.2f}" for m, r in rates.items())
                    + (f"  steps: {', '.join(notes)}" if notes else ""))
                energies_file.flush()
                traj_file.flush()

    with open(paths["final"], "w") as final_file:
        for index in range(n_walkers):
            write_frame(final_file, sampler.frame(index, iteration, iteration * n_cull + index))

    wall = time.perf_counter() - start
    n_calls = sampler.evaluate.n_calls
    summary = {
        "n_iter": iteration,
        "stop_reason": stop_reason,
        "n_calls": n_calls,
        "n_init_calls": n_init_calls,
        "n_init_above_committee_limit": sampler.n_init_above_committee_limit,
        "wall_s": wall,
        "calls_per_s": n_calls / wall if wall > 0 else float("nan"),
        "iters_per_s": iteration / wall if wall > 0 else float("nan"),
        "acceptance": {m: sampler.total_accepts[m] / sampler.total_attempts[m]
                       for m in MOVE_TYPES if sampler.total_attempts[m]},
        "step_sizes": dict(sampler.step),
        "n_atoms": len(numbers),
        "pressure_ev_per_a3": sampler.pressure,
        "kemax": sampler.kemax,
        "settings": asdict(settings),
    }
    write_summary(paths["summary"], summary)
    say(f"NS stopped ({stop_reason}) after {iteration} iterations, {n_calls} calls, {wall:.1f} s "
        f"({summary['calls_per_s']:.0f} calls/s)")
    return summary


def _committee_stop(std_per_atom: np.ndarray, settings: NSSettings) -> bool:
    """True when at least committee_stop_fraction of walkers exceed committee_stop_std."""
    if settings.committee_stop_std is None:
        return False
    above = np.count_nonzero(std_per_atom * 1000.0 > settings.committee_stop_std)
    return above >= settings.committee_stop_fraction * len(std_per_atom)
