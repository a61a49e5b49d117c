"""Linear-ACE committees of several basis sizes for the speed benchmarks (ns_speed.py, ace_ns_cost.py).

Each model is a real fit (``nestdb.fit.fit_linear_ace``) with the study's
fit settings (``config/mg-study.yaml``: cutoff 6 A, smoothness prior,
weights, 32-member jackknife committee, fitted E0) on a stratified sixth of
the study's CASTEP data (``cycle_0`` + ``cycle_1``: every 6th of the 1139
configurations, 80/20 split, no refit), so that fitting takes seconds to two
minutes instead of six. The evaluation cost of a model depends only on its
basis and committee size, not on how well it was fitted; the test errors
printed here come from ~40 held-out configurations and only say that the
models are sane (the accuracy of a basis is measured by fit_mg.py on all data).

Models are cached in ``--models`` (default ``~/.cache/nestdb/ace_models``):
one folder per basis, reused when its ``model.json`` matches the settings.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mg"
FILES = [DATA / "cycle_0.edb.extxyz", DATA / "cycle_1.edb.extxyz"]
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nestdb" / "ace_models"
#: Every n-th study configuration is used for the fits.
SUBSET_STEP = 6

#: Basis ladder: name -> (nradmax_by_orders, lmax_by_orders); number of functions at cutoff 6 A.
BASES: dict[str, tuple[list[int], list[int]]] = {
    "b914": ([14, 10, 5], [0, 5, 3]),  # the study config's basis (body order 4)
    "b496": ([12, 8, 4], [0, 4, 3]),  # mg-study.yaml: same 5-split mean error as 914
    "b352": ([12, 8, 4], [0, 4, 2]),
    "b189": ([10, 6, 3], [0, 4, 2]),
    "b74": ([8, 4, 2], [0, 3, 2]),  # nestdb's default fit basis
}


def data_missing() -> bool:
    """True (after saying so) when ``../shared`` lacks the study's Mg data."""
    missing = [str(f) for f in FILES if not f.is_file()]
    if missing:
        print(f"skipped: shared Mg data not found ({missing})")
    return bool(missing)


def fit_settings(name: str) -> dict:
    """The study config's fit settings with basis ``name`` (no refit, 80/20 split, one job)."""
    study = yaml.safe_load((ROOT / "config" / "mg-study.yaml").read_text())
    nradmax, lmax = BASES[name]
    return dict(
        study["fit"],
        elements=study["elements"],
        nradmax_by_orders=nradmax,
        lmax_by_orders=lmax,
        refit_on_all_data=False,
        test_fraction=0.2,
        n_jobs=1,
        seed=0,
    )


def committee_model(name: str, cache: Path = DEFAULT_CACHE, log=print) -> tuple[Path, dict]:
    """Folder of the fitted committee for basis ``name`` (fitted now unless cached) and its summary:
    ``n_functions``, ``test_energy_rmse_mev_per_atom``, ``test_force_rmse_mev_per_a``, ``fit_wall_s``."""
    from nestdb.fit import fit_linear_ace, load_training_frames

    folder = Path(cache) / name
    settings = fit_settings(name)
    summary_path = folder / "benchmark_fit.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("settings") == json.loads(json.dumps(settings)) and (folder / "committee.npz").is_file():
            return folder, summary
    frames = load_training_frames(FILES)[::SUBSET_STEP]
    log(
        f"fitting {name} ({settings['nradmax_by_orders']}, {settings['lmax_by_orders']}) on {len(frames)} "
        f"configurations into {folder}"
    )
    start = time.perf_counter()
    metrics = fit_linear_ace(frames, settings, folder)
    summary = {
        "settings": settings,
        "n_functions": metrics["n_functions"],
        "n_configurations": len(frames),
        "test_energy_rmse_mev_per_atom": metrics["test"]["energy_rmse_mev_per_atom"],
        "test_force_rmse_mev_per_a": metrics["test"]["force_rmse_mev_per_a"],
        "fit_wall_s": time.perf_counter() - start,
    }
    summary_path.write_text(json.dumps(summary, indent=1))
    log(
        f"  {summary['n_functions']} functions, test {summary['test_energy_rmse_mev_per_atom']:.2f} meV/atom, "
        f"{summary['test_force_rmse_mev_per_a']:.1f} meV/A, {summary['fit_wall_s']:.0f} s"
    )
    return folder, summary


if __name__ == "__main__":
    if data_missing():
        sys.exit(0)
    for basis in sys.argv[1:] or BASES:
        committee_model(basis)
