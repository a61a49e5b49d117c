"""Melting temperature of a model from nested sampling, against the oracle's at the same settings.

The same N, K, L, prior and seeds for every model, so that the only
difference between two runs is the model: the oracle's melting temperature
at these (small, unconverged) settings is the yardstick, not the
thermodynamic limit. The melting peak of C_p is located by
:func:`nestdb.thermo.melting_transition`; runs without one give NaN.
Cost: one NS run per seed (16 atoms, K = 32, L = 16: ~10^5 calls, ~20 s
with the EAM, ~2-4 min with a 170-function ACE committee on one core).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from nestdb.models.calculators import make_calculator
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.thermo import analyse, melting_transition, read_energies

log = logging.getLogger(__name__)

#: Temperature grid (K) of the C_p analysis.
GRID = np.arange(100.0, 4000.0 + 1.0, 5.0)


def melting_run(
    spec: dict, composition: dict[str, int], pressure_gpa: float, settings: dict, seed: int, prefix: str | Path
) -> dict:
    """One NS run with the model ``spec`` and its melting C_p peak.

    Parameters
    ----------
    spec
        Calculator spec (``{type: eam, file: ...}``, ``{type: ace_committee, model: ...}``).
    composition
        Atoms per cell.
    pressure_gpa
        Pressure of the run.
    settings
        NSSettings keys (``n_walkers``, ``walk_length``, prior, moves, ...);
        committee limits are switched off.
    seed
        The run's seed (the same for every model).
    prefix
        Output prefix of the run's files.

    Returns
    -------
    dict
        ``seed``, ``melting_T`` (K, NaN without a peak), ``fwhm``, ``volume_jump``,
        ``n_iter``, ``n_calls``, ``wall_s``.
    """
    values = {k: v for k, v in settings.items() if k in NSSettings.__dataclass_fields__}
    values.update(
        pressure_gpa=float(pressure_gpa),
        seed=int(seed),
        snapshot_seconds=None,
        committee_std_max=None,
        committee_stop_std=None,
        n_procs=1,
    )
    start = time.perf_counter()
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    summary = run_nested_sampling(composition, make_calculator(spec, base_dir=Path.cwd()), NSSettings(**values), prefix)
    energies = read_energies(output_paths(prefix)["energies"])
    table = analyse(energies, GRID)
    melting = melting_transition(table, energies.n_atoms)
    result = {
        "seed": int(seed),
        "melting_T": melting.temperature if melting else float("nan"),
        "fwhm": melting.fwhm if melting else float("nan"),
        "volume_jump": melting.volume_jump if melting else float("nan"),
        "n_iter": summary["n_iter"],
        "n_calls": summary["n_calls"],
        "wall_s": time.perf_counter() - start,
    }
    log.info("melting run %s seed %d: %s K", prefix, seed, result["melting_T"])
    return result


def melting_statistics(runs: list[dict]) -> dict:
    """Mean, standard deviation and standard error of the melting temperatures found over seeds."""
    values = np.array([r["melting_T"] for r in runs], dtype=float)
    found = values[np.isfinite(values)]
    return {
        "n_seeds": len(values),
        "n_found": int(found.size),
        "mean": float(found.mean()) if found.size else float("nan"),
        "std": float(found.std(ddof=1)) if found.size > 1 else float("nan"),
        "sem": float(found.std(ddof=1) / np.sqrt(found.size)) if found.size > 1 else float("nan"),
    }
