"""Nonlinear ACE fits with pacemaker, run as an external program.

pacemaker needs TensorFlow (and numpy < 2.4), which the main environment
does not carry, so nestdb only *writes* its inputs and *runs* the command
configured in ``fit.pacemaker.command`` (default ``pacemaker``) from its own
environment (``envs/pacemaker.yaml`` on clusters, or any venv made with the
recipe of the README).  One committee member is one pacemaker run in its own
folder; members differ by random initial function coefficients
(``coefs_init: random`` under ``functions: ALL``) and seed, not only by the
split, so they are independent fits.

Files of one member folder::

    train.pckl.gzip, test.pckl.gzip    pacemaker DataFrames (ase_atoms, energy, forces[, w_energy, w_forces])
    input.yaml                         the pacemaker input
    output_potential.yaml              written by pacemaker (after the low-kappa refit, if any)
    input_refit.yaml, fit_potential.yaml   with ``refit_kappa``: the refit input and the first fit's potential
    output_potential.asi               active set (pace_activeset), extrapolation grade gamma
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from ase import Atoms

from nestdb.errors import DataError
from nestdb.fit.calibration import calibration_summary
from nestdb.fit.dataset import ENERGY_KEY, FORCES_KEY, frame_weight, stratified_split
from nestdb.fit.files import staged_outputs, yaml_to_yace
from nestdb.fit.metrics import error_metrics, grouped_metrics, plot_parity, spearman
from nestdb.fit.pacemaker_member import INPUT_FILE, OUTPUT_POTENTIAL, REFIT_INPUT_FILE, run_member_steps
from nestdb.fit.settings import validate_fit_settings
from nestdb.io import write_json
from nestdb.models.ace_committee import predict_frames
from nestdb.models.pacemaker_committee import COMMITTEE_INDEX, PacemakerCommitteeCalculator

log = logging.getLogger(__name__)

TRAIN_FILE = "train.pckl.gzip"
TEST_FILE = "test.pckl.gzip"


def pacemaker_dataframe(frames: list[Atoms], use_sample_weights: bool):
    """pacemaker's training DataFrame: ``ase_atoms``, ``energy`` (total, eV), ``forces``.

    With ``use_sample_weights`` each configuration's ``info["weight"]`` becomes
    ``w_energy`` and per-atom ``w_forces`` (pacemaker normalises both).
    """
    records = []
    for atoms in frames:
        bare = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        record = {
            "ase_atoms": bare,
            "energy": float(atoms.info[ENERGY_KEY]),
            "forces": np.asarray(atoms.arrays[FORCES_KEY], dtype=float),
        }
        if use_sample_weights:
            weight = frame_weight(atoms)
            record["w_energy"] = weight
            record["w_forces"] = np.full(len(atoms), weight)
        records.append(record)
    return pd.DataFrame.from_records(records)


def pacemaker_input(fit_settings: dict, pacemaker_settings: dict, member: int, with_test: bool) -> dict:
    """The ``input.yaml`` of committee member ``member`` (a dict).

    Parameters
    ----------
    fit_settings
        Validated ``fit:`` settings (elements, E0, cutoff, basis shape, seed).
    pacemaker_settings
        Validated ``fit.pacemaker`` settings.
    member
        Member index: seed ``fit.seed + member`` and random initial coefficients.
    with_test
        Whether a ``test.pckl.gzip`` is given.
    """
    ndensity = pacemaker_settings["ndensity"]
    # pacemaker's FinnisSinclairShiftedScaled takes (prefactor, exponent) per density
    fs_parameters = [1, 1] + [1, 0.5] * (ndensity - 1)
    data: dict[str, Any] = {
        "filename": TRAIN_FILE,
        "reference_energy": dict(fit_settings["reference_energies"], shift=0.0),
    }
    if with_test:
        data["test_filename"] = TEST_FILE
    fit: dict[str, Any] = {
        "loss": {"kappa": pacemaker_settings["kappa"], "L1_coeffs": 1e-8, "L2_coeffs": 1e-8},
        "optimizer": "BFGS",
        "maxiter": pacemaker_settings["maxiter"],
    }
    if pacemaker_settings["ladder_step"]:
        fit["ladder_step"] = pacemaker_settings["ladder_step"]
        fit["ladder_type"] = "power_order"
    return {
        "cutoff": fit_settings["cutoff"],
        "seed": fit_settings["seed"] + member,
        "metadata": {"origin": "nestdb", "committee_member": member},
        "data": data,
        "potential": {
            "deltaSplineBins": 0.001,
            "elements": list(fit_settings["elements"]),
            "embeddings": {
                "ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": fs_parameters, "ndensity": ndensity}
            },
            "bonds": {
                "ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": fit_settings["cutoff"], "dcut": 0.01}
            },
            "functions": {
                "number_of_functions_per_element": pacemaker_settings["number_of_functions_per_element"],
                "ALL": {
                    "nradmax_by_orders": list(fit_settings["nradmax_by_orders"]),
                    "lmax_by_orders": list(fit_settings["lmax_by_orders"]),
                    "coefs_init": "random",
                },
            },
        },
        "fit": fit,
        "backend": {
            "evaluator": "tensorpot",
            "batch_size": pacemaker_settings["batch_size"],
            "display_step": 50,
            # gpu_ind -1 forces the CPU; on a GPU node (fit.pacemaker.gpu) TensorFlow picks the GPU
            **({} if pacemaker_settings["gpu"] else {"gpu_config": {"gpu_ind": -1, "mem_limit": 0}}),
        },
    }


def write_member_inputs(
    train: list[Atoms],
    test: list[Atoms],
    fit_settings: dict,
    pacemaker_settings: dict,
    member: int,
    work_dir: str | Path,
) -> Path:
    """Write DataFrames and ``input.yaml`` of one member into ``work_dir``; return the input path."""
    if not train:
        raise DataError(f"pacemaker member {member}: empty training set; check the labelled database files")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    pacemaker_dataframe(train, fit_settings["use_sample_weights"]).to_pickle(
        work_dir / TRAIN_FILE, compression="gzip", protocol=4
    )
    if test:
        pacemaker_dataframe(test, fit_settings["use_sample_weights"]).to_pickle(
            work_dir / TEST_FILE, compression="gzip", protocol=4
        )
    config = pacemaker_input(fit_settings, pacemaker_settings, member, with_test=bool(test))
    path = work_dir / INPUT_FILE
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    refit = work_dir / REFIT_INPUT_FILE
    if pacemaker_settings.get("refit_kappa") is not None:
        refit.write_text(yaml.safe_dump(refit_input(config, pacemaker_settings), sort_keys=False))
    else:
        refit.unlink(missing_ok=True)
    return path


def refit_input(config: dict, pacemaker_settings: dict) -> dict:
    """The low-kappa refit input: ``config`` with kappa ``refit_kappa`` and ``refit_maxiter`` iterations.

    The refit starts from the first fit's potential (``pacemaker input_refit.yaml -p fit_potential.yaml``)
    and keeps its whole basis (no ladder).
    """
    refit = copy.deepcopy(config)
    refit["fit"]["loss"]["kappa"] = float(pacemaker_settings["refit_kappa"])
    refit["fit"]["maxiter"] = int(pacemaker_settings["refit_maxiter"])
    refit["fit"].pop("ladder_step", None)
    refit["fit"].pop("ladder_type", None)
    return refit


def run_member(work_dir: str | Path, pacemaker_settings: dict) -> Path:
    """Run pacemaker (and its low-kappa refit) and ``pace_activeset`` in a member folder.

    When the folder has an ``input_refit.yaml`` (``fit.pacemaker.refit_kappa``)
    the fitted potential is kept as ``fit_potential.yaml`` and refitted from
    its own coefficients with that small force weight kappa: the low-kappa
    refit that trades a little force accuracy for energy accuracy.  The
    commands are argv lists, ``shlex.split`` of ``fit.pacemaker.command`` and
    ``activeset_command`` (never a shell; :mod:`nestdb.fit.pacemaker_member`,
    which the rule ``fit_pacemaker_member`` runs too).  The logs are
    ``pacemaker.log``, ``pacemaker_refit.log`` and ``activeset.log`` in the
    folder.  Returns ``output_potential.yaml``.
    """
    log.info(f"pacemaker: fitting in {work_dir}")
    return run_member_steps(work_dir, pacemaker_settings["command"], pacemaker_settings["activeset_command"])


# --------------------------------------------------------------------------- workflow steps
SPLIT_FILE = "split.json"


def prepare_committee(frames: list[Atoms], fit_settings: dict, out_dir: str | Path) -> list[Path]:
    """Split like the linear fit and write the inputs of every committee member.

    Returns the member folders ``out_dir/member_<k>``.
    """
    settings = validate_fit_settings(fit_settings)
    pacemaker_settings = settings["pacemaker"]
    if not frames:
        raise DataError("pacemaker fit got an empty training set; check the labelled database files")
    train_idx, test_idx = stratified_split(frames, settings["test_fraction"], settings["seed"])
    train = [frames[i] for i in train_idx]
    test = [frames[i] for i in test_idx]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / SPLIT_FILE, {"train_indices": train_idx, "test_indices": test_idx})
    folders = []
    for member in range(pacemaker_settings["committee_size"]):
        folder = out_dir / f"member_{member}"
        write_member_inputs(train, test, settings, pacemaker_settings, member, folder)
        folders.append(folder)
    log.info(f"pacemaker: {len(folders)} members prepared in {out_dir} ({len(train)} train / {len(test)} test)")
    return folders


def collect_committee(
    frames: list[Atoms], fit_settings: dict, member_dirs: list[str | Path], out_dir: str | Path
) -> dict:
    """Export the members (``.yaml``/``.yace``), the committee index and the test metrics.

    ``out_dir`` receives ``member_<k>.yaml``/``.yace``, ``member_0.asi`` (the
    first member's active set, if any), ``committee.json`` (read by
    :class:`nestdb.models.pacemaker_committee.PacemakerCommitteeCalculator`),
    ``metrics.json`` and ``parity.png``.

    The committee energy STD and the extrapolation grade (max gamma of the
    first member's active set) are both compared with the actual error.
    """
    settings = validate_fit_settings(fit_settings)
    out_dir = Path(out_dir)
    split = json.loads((out_dir / SPLIT_FILE).read_text())
    for k, member_dir in enumerate(member_dirs):
        if not (Path(member_dir) / OUTPUT_POTENTIAL).is_file():
            raise DataError(f"pacemaker member {k}: {Path(member_dir) / OUTPUT_POTENTIAL} is missing; rerun its fit")
    # exports, index and metrics go to a folder next to out_dir first: a failure leaves no partial committee
    with staged_outputs(out_dir) as staging:
        potentials = []
        for k, member_dir in enumerate(member_dirs):
            target = staging / f"member_{k}.yaml"
            shutil.copyfile(Path(member_dir) / OUTPUT_POTENTIAL, target)
            yaml_to_yace(target, target.with_suffix(".yace"))
            potentials.append(target)
        active_set = Path(member_dirs[0]) / "output_potential.asi"
        if active_set.is_file():
            shutil.copyfile(active_set, staging / "member_0.asi")
            active_set = staging / "member_0.asi"
        else:
            active_set = None
        write_json(
            staging / COMMITTEE_INDEX,
            {
                "members": [p.name for p in potentials],
                "reference_energies": settings["reference_energies"],
                "active_set": active_set.name if active_set else None,
            },
        )
        calculator = PacemakerCommitteeCalculator.from_folder(staging)
        metrics: dict[str, Any] = {"committee_size": len(potentials)}
        sets: dict[str, tuple[list[Atoms], dict]] = {}
        for name in ("train", "test"):
            subset = [frames[i] for i in split[f"{name}_indices"]]
            if not subset:
                continue
            prediction = predict_frames(calculator, subset)
            metrics[name] = error_metrics(subset, prediction)
            metrics.setdefault("groups", {})[name] = grouped_metrics(subset, prediction)
            reference = np.array([float(a.info[ENERGY_KEY]) / len(a) for a in subset])
            error = 1000 * np.abs(prediction["energy_per_atom"] - reference)
            metrics[name]["committee"] = calibration_summary(1000 * prediction["energy_std_per_atom"], error)
            if "max_gamma" in prediction:
                metrics[name]["max_gamma_max"] = float(np.max(prediction["max_gamma"]))
                metrics[name]["spearman_gamma_vs_abs_error"] = spearman(prediction["max_gamma"], error)
            sets[name] = (subset, prediction)
        train_frames, train_prediction = sets["train"]
        test_frames, test_prediction = sets.get("test", ([], None))
        plot_parity(
            train_frames,
            train_prediction,
            test_frames,
            test_prediction,
            staging / "parity.png",
            settings["reference_energies"],
        )
        write_json(staging / "metrics.json", metrics)
    log.info(f"pacemaker committee of {len(potentials)} collected in {out_dir}")
    return metrics
