"""Outputs of a fit: metrics, plots, LAMMPS files and the model card.

Every fitted model folder holds

* ``potential.yaml``  the mean model (pyace/pacemaker B-basis; energies exclude E0),
* ``potential.yace``  the same for LAMMPS ``pair_style pace`` (C-tilde basis),
* ``committee/member_<k>.yace``  each committee member for LAMMPS,
* ``committee.npz``   committee coefficients (:func:`nestdb.fit.committee.load_committee`),
* ``metrics.json``    train/test errors overall and per cycle, pressure, config type,
  and the committee calibration,
* ``parity.png``, ``calibration.png``  parity plots and committee STD vs actual error,
* ``model.json``, ``model_card.md``  settings, data, metrics (machine- and human-readable).
"""

from __future__ import annotations

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

from nestdb.fit.dataset import ENERGY_KEY, LogLike, emit

YACE_FILE = "potential.yace"
MEMBERS_DIR = "committee"
CARD_FILE = "model_card.md"


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
    from pyace import ACEBBasisSet

    basis = ACEBBasisSet(str(yaml_path))
    if coefficients is not None:
        basis.basis_coeffs = np.asarray(coefficients, dtype=float)
    basis.to_ACECTildeBasisSet().save_yaml(str(yace_path))


def _abs_energy_errors(frames: list[Atoms], prediction: dict) -> np.ndarray:
    reference = np.array([float(a.info[ENERGY_KEY]) / len(a) for a in frames])
    return np.abs(prediction["energy_per_atom"] - reference)


def write_model_outputs(out_dir: Path, frames: list[Atoms], train_idx: np.ndarray, test_idx: np.ndarray,
                        model_info: dict, start: float, log: LogLike = None,
                        split_metrics: dict | None = None) -> dict[str, Any]:
    """Predict train and test with the written model and write metrics, plots, exports and the card.

    ``split_metrics`` (a model refitted on all data): the metrics of the fit
    without the test configurations, whose test errors and test calibration
    are reported here (``test_model`` names that fit's folder).

    Returns
    -------
    dict
        The metrics (also in ``metrics.json`` and ``model.json``).
    """
    from nestdb.fit.calibration import CALIBRATION_PLOT, calibration_summary, plot_calibration
    from nestdb.fit.committee import CommitteeACECalculator, load_committee, predict_frames
    from nestdb.fit.linear_ace import METRICS_FILE, MODEL_FILE, PARITY_FILE, POTENTIAL_FILE, write_json
    from nestdb.fit.metrics import error_metrics, grouped_metrics, plot_parity

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
    calibration: dict[str, Any] = {"factor": factor, "method": model_info["committee_method"],
                                   "held_out_configs": model_info["calibration"]["n_configs"]}
    plot_sets = [("train", 1000 * train_prediction["energy_std_per_atom"],
                  1000 * _abs_energy_errors(train, train_prediction))]
    if test:
        metrics["test"] = error_metrics(test, test_prediction)
        metrics["groups"]["test"] = grouped_metrics(test, test_prediction)
        std = 1000 * test_prediction["energy_std_per_atom"]
        error = 1000 * _abs_energy_errors(test, test_prediction)
        calibration["test_raw"] = calibration_summary(std / factor, error)
        calibration["test_calibrated"] = calibration_summary(std, error)
        plot_sets.append(("test", std, error))
    metrics["calibration"] = calibration
    if split_metrics is not None and "test" in split_metrics:
        metrics["test"] = split_metrics["test"]
        metrics["groups"]["test"] = split_metrics["groups"]["test"]
        split_calibration = split_metrics["calibration"]
        calibration.update(test_raw=split_calibration["test_raw"], test_calibrated=split_calibration["test_calibrated"],
                           test_factor=split_calibration["factor"])
        metrics["test_model"] = (f"{model_info['refit_on_all_data']['split_model']}/: fitted without the "
                                 "test configurations; this model is refitted on all of them")
    metrics["n_functions"] = model_info["n_functions"]
    metrics["fit_wall_time_s"] = time.perf_counter() - start
    plot_parity(train, train_prediction, test, test_prediction, out_dir / PARITY_FILE,
                model_info["reference_energies"])
    plot_calibration(plot_sets, out_dir / CALIBRATION_PLOT,
                     title=f"committee ({model_info['committee_method']}), calibration factor {factor:.2f}")

    model_info = {**model_info, "metrics": metrics}
    write_json(out_dir / MODEL_FILE, model_info)
    write_json(out_dir / METRICS_FILE, metrics)
    (out_dir / CARD_FILE).write_text(model_card(model_info))
    summary = f"train E RMSE {metrics['train']['energy_rmse_mev_per_atom']:.2f} meV/atom, " \
              f"F RMSE {metrics['train']['force_rmse_mev_per_a']:.1f} meV/A"
    if "test" in metrics:
        summary += f"; test E RMSE {metrics['test']['energy_rmse_mev_per_atom']:.2f} meV/atom, " \
                   f"F RMSE {metrics['test']['force_rmse_mev_per_a']:.1f} meV/A, committee Spearman " \
                   f"{calibration['test_calibrated']['spearman']}"
    emit(log, f"fit done in {metrics['fit_wall_time_s']:.1f} s: {summary}")
    return metrics


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def model_card(info: dict) -> str:
    """Markdown model card: what the model is, what it was fitted to, how good it is."""
    settings = info["settings"]
    metrics = info["metrics"]
    data = info["training_set"]
    lines = [
        f"# Model card: {info['model']}",
        "",
        "## Model",
        f"- elements {info['elements']}, cutoff {settings['cutoff']} Å, body order {info['body_order']}, "
        f"{info['n_functions']} basis functions (nradmax_by_orders {settings['nradmax_by_orders']}, "
        f"lmax_by_orders {settings['lmax_by_orders']})",
        f"- reference energies E0 (eV): {info['reference_energies']}"
        + (f" (fitted; given {info['reference_energies_given']})" if settings["fit_reference_energies"] else "")
        + " — added back by the committee calculator; `potential.yaml`/`.yace` give E − ΣE0",
        f"- weights energy : force : virial = {settings['energy_weight']:g} : {settings['force_weight']:g} : "
        f"{settings['virial_weight']:g}; sample weights {'used' if settings['use_sample_weights'] else 'not used'}",
        f"- committee: {info['committee_size']} members ({info['committee_method']}), calibration factor "
        f"{info['calibration']['factor']:.2f} from {info['calibration']['n_configs']} held-out configurations",
        "",
        "## Data",
        f"- {data['n_configs']} configurations, {data['n_atoms_total']} atoms "
        f"({len(info['train_indices'])} train / {len(info['test_indices'])} test, stratified by cycle and pressure)",
    ]
    if "refit_on_all_data" in info:
        lines.append(f"- refitted on all configurations; the test errors below are those of the fit without the "
                     f"{len(info['refit_on_all_data']['test_indices_of_split'])} test configurations "
                     f"(`{info['refit_on_all_data']['split_model']}/`)")
    if "volume_per_atom_min" in data:
        lines.append(f"- volume {data['volume_per_atom_min']:.1f}–{data['volume_per_atom_max']:.1f} Å³/atom")
    lines += ["", "## Errors", "", "| set | E RMSE (meV/atom) | F RMSE (meV/Å) | virial RMSE (meV/atom) | n |",
              "|---|---|---|---|---|"]
    for name in ("train", "test"):
        if name in metrics:
            m = metrics[name]
            lines.append(f"| {name} | {_fmt(m['energy_rmse_mev_per_atom'])} | {_fmt(m['force_rmse_mev_per_a'], 1)} "
                         f"| {_fmt(m.get('virial_rmse_mev_per_atom'), 1)} | {m['n_configs']} |")
    for kind in ("cycle", "pressure"):
        groups = metrics.get("groups", {}).get("test") or metrics.get("groups", {}).get("train", {})
        if groups.get(kind):
            lines += ["", f"Per {kind} ({'test' if 'test' in metrics else 'train'}):", "",
                      f"| {kind} | E RMSE | F RMSE | n |", "|---|---|---|---|"]
            for label, m in groups[kind].items():
                lines.append(f"| {label} | {_fmt(m['energy_rmse_mev_per_atom'])} | "
                             f"{_fmt(m['force_rmse_mev_per_a'], 1)} | {m['n_configs']} |")
    calibration = metrics.get("calibration", {})
    if "test_calibrated" in calibration:
        raw, cal = calibration["test_raw"], calibration["test_calibrated"]
        lines += ["", "## Committee uncertainty (test set)", "",
                  "| | STD RMS (meV/atom) | error RMS | within 1 STD | within 2 STD | Spearman |",
                  "|---|---|---|---|---|---|",
                  f"| raw | {_fmt(raw['std_rms'], 3)} | {_fmt(raw['error_rms'])} | {_fmt(raw['fraction_within_1std'])} "
                  f"| {_fmt(raw['fraction_within_2std'])} | {_fmt(raw['spearman'])} |",
                  f"| calibrated | {_fmt(cal['std_rms'], 3)} | {_fmt(cal['error_rms'])} | "
                  f"{_fmt(cal['fraction_within_1std'])} | {_fmt(cal['fraction_within_2std'])} | {_fmt(cal['spearman'])} |",
                  "", "The calibrated STD is the per-configuration error scale (errors / STD have unit RMS on held-out "
                  "data); the NS committee limit "
                  "(`ns.committee_std_max`) compares against it."]
    lines += ["", f"Fit wall time {metrics['fit_wall_time_s']:.1f} s.", ""]
    return "\n".join(lines)
