"""The files of a fitted model folder: names, staging, LAMMPS exports, and writing them all.

Every fitted model folder holds

* ``potential.yaml``  the mean model (pyace/pacemaker B-basis; energies exclude E0),
* ``potential.yace``  the same for LAMMPS ``pair_style pace`` (C-tilde basis),
* ``committee/member_<k>.yace``  each committee member for LAMMPS,
* ``committee.npz``   committee coefficients (:func:`nestdb.models.ace_committee.load_committee`),
* ``metrics.json``    train/test errors overall and per cycle, pressure, config type,
  and the committee calibration,
* ``parity.png``, ``calibration.png``  parity plots and committee STD vs actual error,
* ``model.json``, ``model_card.md``  settings, data, metrics (machine- and human-readable).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.fit.calibration import CALIBRATION_PLOT, calibration_summary, plot_calibration
from nestdb.fit.metrics import abs_energy_errors, error_metrics, grouped_metrics, plot_parity
from nestdb.fit.model_card import model_card
from nestdb.io import write_json
from nestdb.models.ace_committee import POTENTIAL_FILE, CommitteeACECalculator, load_committee, predict_frames

log = logging.getLogger(__name__)

#: ``potential.yaml`` (:data:`~nestdb.models.ace_committee.POTENTIAL_FILE`) for LAMMPS ``pair_style pace``.
YACE_FILE = "potential.yace"
#: Folder of the committee members' ``.yace`` files.
MEMBERS_DIR = "committee"
MODEL_FILE = "model.json"
METRICS_FILE = "metrics.json"
PARITY_FILE = "parity.png"
CARD_FILE = "model_card.md"
#: Subfolder with the model fitted without the test configurations when ``fit.refit_on_all_data``.
SPLIT_DIR = "split"


@contextmanager
def staged_outputs(out_dir: str | Path) -> Iterator[Path]:
    """A temporary folder next to ``out_dir`` whose files are moved into ``out_dir`` only on success.

    A fit that fails half-way (bad data, a crash, an interrupt) leaves no
    partial model in ``out_dir``: the temporary folder is deleted and the
    files already there stay as they were. On success every entry of the
    temporary folder replaces the entry of the same name in ``out_dir``
    (a sub-folder as a whole); other entries of ``out_dir`` are kept.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    out_dir.mkdir(exist_ok=True)
    for entry in sorted(staging.iterdir()):
        target = out_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)  # same file system: a rename
    staging.rmdir()


def yaml_to_yace(yaml_path: str | Path, yace_path: str | Path, coefficients: np.ndarray | None = None) -> None:
    """Convert a pyace B-basis ``.yaml`` to the ``.yace`` file of LAMMPS ``pair_style pace``.

    Parameters
    ----------
    yaml_path, yace_path
        Input potential and output file.
    coefficients
        Replace the basis coefficients first (committee members of a linear ACE).
    """
    from pyace import ACEBBasisSet  # optional dependency (the `ace` extra): only a fit writes .yace files

    basis = ACEBBasisSet(str(yaml_path))
    if coefficients is not None:
        basis.basis_coeffs = np.asarray(coefficients, dtype=float)
    basis.to_ACECTildeBasisSet().save_yaml(str(yace_path))


def write_model_outputs(
    out_dir: Path,
    frames: list[Atoms],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    model_info: dict,
    start: float,
    split_metrics: dict | None = None,
) -> dict[str, Any]:
    """Predict train and test with the written model and write metrics, plots, exports and the card.

    ``split_metrics`` (a model refitted on all data): the metrics of the fit
    without the test configurations, whose test errors and test calibration
    are reported here (``test_model`` names that fit's folder).

    Returns
    -------
    dict
        The metrics (also in ``metrics.json`` and ``model.json``).
    """
    yaml_to_yace(out_dir / POTENTIAL_FILE, out_dir / YACE_FILE)
    committee = load_committee(out_dir)
    (out_dir / MEMBERS_DIR).mkdir(exist_ok=True)
    for k, member in enumerate(committee.coefficients):
        yaml_to_yace(out_dir / POTENTIAL_FILE, out_dir / MEMBERS_DIR / f"member_{k:02d}.yace", member)

    calc = CommitteeACECalculator(out_dir)
    train = [frames[i] for i in train_idx]
    test = [frames[i] for i in test_idx]
    train_prediction = predict_frames(calc, train)
    test_prediction = predict_frames(calc, test) if test else None
    factor = float(model_info["calibration"]["factor"])
    metrics: dict[str, Any] = {"train": error_metrics(train, train_prediction)}
    metrics["groups"] = {"train": grouped_metrics(train, train_prediction)}
    calibration: dict[str, Any] = {
        "factor": factor,
        "method": model_info["committee_method"],
        "held_out_configs": model_info["calibration"]["n_configs"],
    }
    plot_sets = [
        ("train", 1000 * train_prediction["energy_std_per_atom"], 1000 * abs_energy_errors(train, train_prediction))
    ]
    if test:
        metrics["test"] = error_metrics(test, test_prediction)
        metrics["groups"]["test"] = grouped_metrics(test, test_prediction)
        std = 1000 * test_prediction["energy_std_per_atom"]
        error = 1000 * abs_energy_errors(test, test_prediction)
        calibration["test_raw"] = calibration_summary(std / factor, error)
        calibration["test_calibrated"] = calibration_summary(std, error)
        plot_sets.append(("test", std, error))
    metrics["calibration"] = calibration
    if split_metrics is not None and "test" in split_metrics:
        metrics["test"] = split_metrics["test"]
        metrics["groups"]["test"] = split_metrics["groups"]["test"]
        split_calibration = split_metrics["calibration"]
        calibration.update(
            test_raw=split_calibration["test_raw"],
            test_calibrated=split_calibration["test_calibrated"],
            test_factor=split_calibration["factor"],
        )
        metrics["test_model"] = (
            f"{model_info['refit_on_all_data']['split_model']}/: fitted without the "
            "test configurations; this model is refitted on all of them"
        )
    metrics["n_functions"] = model_info["n_functions"]
    metrics["fit_wall_time_s"] = time.perf_counter() - start
    plot_parity(train, train_prediction, test, test_prediction, out_dir / PARITY_FILE, model_info["reference_energies"])
    plot_calibration(
        plot_sets,
        out_dir / CALIBRATION_PLOT,
        title=f"committee ({model_info['committee_method']}), calibration factor {factor:.2f}",
    )

    model_info = {**model_info, "metrics": metrics}
    write_json(out_dir / MODEL_FILE, model_info)
    write_json(out_dir / METRICS_FILE, metrics)
    (out_dir / CARD_FILE).write_text(model_card(model_info))
    summary = (
        f"train E RMSE {metrics['train']['energy_rmse_mev_per_atom']:.2f} meV/atom, "
        f"F RMSE {metrics['train']['force_rmse_mev_per_a']:.1f} meV/A"
    )
    if "test" in metrics:
        summary += (
            f"; test E RMSE {metrics['test']['energy_rmse_mev_per_atom']:.2f} meV/atom, "
            f"F RMSE {metrics['test']['force_rmse_mev_per_a']:.1f} meV/A, committee Spearman "
            f"{calibration['test_calibrated']['spearman']}"
        )
    log.info("fit done in %.1f s: %s", metrics["fit_wall_time_s"], summary)
    return metrics
