"""Tests of nestdb.fit.pacemaker: pacemaker inputs, committee collection, and a real fit when available.

pacemaker needs TensorFlow, which the main environment does not carry.  The
real fit runs only when ``NESTDB_PACEMAKER`` names a working pacemaker
command (e.g. ``.venv-pacemaker/bin/pacemaker``) or ``.venv-pacemaker`` exists
in the repository; otherwise it is skipped with a message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("pyace")

from pyace import PyACECalculator  # noqa: E402
from test_fit import SMALL_BASIS, _emt_isolated_energy, emt_al_frames  # noqa: E402

from nestdb.errors import ConfigError, DataError  # noqa: E402
from nestdb.fit import fit_linear_ace, validate_fit_settings  # noqa: E402
from nestdb.fit.pacemaker import collect_committee, pacemaker_input, prepare_committee, run_member  # noqa: E402
from nestdb.fit.settings import validate_pacemaker_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _pacemaker_command() -> str | None:
    command = os.environ.get("NESTDB_PACEMAKER")
    if command:
        return command
    local = ROOT / ".venv-pacemaker" / "bin" / "pacemaker"
    return str(local) if local.is_file() else None


def _energy_rmse_lines(log: Path, kind: str) -> list[float]:
    """Training energy RMSEs (meV/atom) that pacemaker printed on lines of one kind."""
    import re

    pattern = re.compile(r"RMSE Energy\(low\):\s+([0-9.eE+-]+)")
    return [
        float(pattern.search(line).group(1))
        for line in log.read_text().splitlines()
        if kind in line and "(TEST)" not in line and pattern.search(line)
    ]


def _coefficients(potential: Path) -> np.ndarray:
    """All radial and basis-function coefficients of a pacemaker potential file."""
    block = yaml.safe_load(potential.read_text())["species"][0]
    values = np.ravel(block["radcoefficients"]).tolist()
    for function in block.get("nbody", []):
        values.extend(function["c"])
    return np.array(values, dtype=float)


def test_input_yaml_matches_the_study_settings():
    settings = validate_fit_settings(
        {
            "cutoff": 8.2,
            "elements": ["Mg"],
            "reference_energies": {"Mg": -1688.821},
            "nradmax_by_orders": [15, 6, 4],
            "lmax_by_orders": [0, 3, 2],
            "seed": 4,
            "pacemaker": {"number_of_functions_per_element": 300},
        }
    )
    first = pacemaker_input(settings, settings["pacemaker"], member=0, with_test=True)
    second = pacemaker_input(settings, settings["pacemaker"], member=1, with_test=True)
    assert first["cutoff"] == 8.2 and first["potential"]["bonds"]["ALL"]["rcut"] == 8.2
    assert first["data"]["reference_energy"] == {"Mg": -1688.821, "shift": 0.0}
    assert first["data"]["test_filename"] == "test.pckl.gzip" and "test_size" not in first["data"]
    functions = first["potential"]["functions"]
    assert functions["ALL"]["coefs_init"] == "random"  # independent members, not just another split
    assert functions["number_of_functions_per_element"] == 300
    assert first["potential"]["embeddings"]["ALL"]["fs_parameters"] == [1, 1, 1, 0.5]
    assert first["backend"]["gpu_config"]["gpu_ind"] == -1  # CPU unless fit.pacemaker.gpu
    assert (first["seed"], second["seed"]) == (4, 5)
    gpu = validate_pacemaker_settings({"gpu": True, "ladder_step": 50})
    on_gpu = pacemaker_input(settings, gpu, member=0, with_test=False)
    assert "gpu_config" not in on_gpu["backend"] and "test_filename" not in on_gpu["data"]
    assert on_gpu["fit"]["ladder_step"] == 50


def test_prepare_writes_member_inputs_and_weighted_dataframes(tmp_path):
    frames = emt_al_frames(10, seed=3)
    for i, atoms in enumerate(frames):
        atoms.info["weight"] = 0.5 + i
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": -3.0},
        "test_fraction": 0.2,
        "use_sample_weights": True,
        "pacemaker": {"committee_size": 2},
        **SMALL_BASIS,
    }
    folders = prepare_committee(frames, settings, tmp_path)
    assert [f.name for f in folders] == ["member_0", "member_1"]
    split = json.loads((tmp_path / "split.json").read_text())
    assert len(split["train_indices"]) == 8 and len(split["test_indices"]) == 2
    config = yaml.safe_load((folders[1] / "input.yaml").read_text())
    assert config["data"]["filename"] == "train.pckl.gzip" and config["metadata"]["committee_member"] == 1
    train = pd.read_pickle(folders[0] / "train.pckl.gzip", compression="gzip")
    assert list(train.columns[:3]) == ["ase_atoms", "energy", "forces"]
    first = frames[split["train_indices"][0]]
    assert train["energy"].iloc[0] == pytest.approx(first.info["dft_energy"])
    assert np.allclose(train["forces"].iloc[0], first.arrays["dft_forces"])
    assert train["w_energy"].iloc[0] == pytest.approx(first.info["weight"])
    assert len(pd.read_pickle(folders[0] / "test.pckl.gzip", compression="gzip")) == 2
    with pytest.raises(DataError, match="empty"):
        prepare_committee([], settings, tmp_path / "empty")


def test_pacemaker_settings_errors():
    with pytest.raises(ConfigError, match="fit.pacemaker.comittee_size"):
        validate_pacemaker_settings({"comittee_size": 2})
    with pytest.raises(ConfigError, match="fit.pacemaker.kappa"):
        validate_pacemaker_settings({"kappa": 2})
    with pytest.raises(ConfigError, match="refit_kappa"):
        validate_pacemaker_settings({"refit_kappa": 5})
    with pytest.raises(ConfigError, match="fit.pacemaker.maxiter"):
        validate_fit_settings({"elements": ["Mg"], "reference_energies": {"Mg": 0.0}, "pacemaker": {"maxiter": 0}})


def test_missing_pacemaker_command_is_a_config_error(tmp_path):
    frames = emt_al_frames(4, seed=5)
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": 0.0},
        "test_fraction": 0.0,
        "pacemaker": {"committee_size": 1, "command": "no-such-pacemaker-binary"},
        **SMALL_BASIS,
    }
    folder = prepare_committee(frames, settings, tmp_path)[0]
    with pytest.raises(ConfigError, match="no-such-pacemaker-binary.*not found"):
        run_member(folder, validate_fit_settings(settings)["pacemaker"])


def test_collect_exports_members_and_scores_the_committee(tmp_path):
    """Plumbing of collection with linear-ACE potentials standing in for pacemaker outputs."""
    frames = emt_al_frames(12, seed=6)
    e0 = _emt_isolated_energy("Al")
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": e0},
        "test_fraction": 0.25,
        "pacemaker": {"committee_size": 2},
        **SMALL_BASIS,
    }
    folders = prepare_committee(frames, settings, tmp_path / "pm")
    for k, folder in enumerate(folders):
        # each member sees every other configuration: two different fits, as pacemaker members are
        model = tmp_path / f"linear_{k}"
        member_settings = {**settings, "seed": k, "test_fraction": 0.0, "calibration_fraction": 0.0}
        fit_linear_ace(frames[k::2], member_settings, model)
        (folder / "output_potential.yaml").write_text((model / "potential.yaml").read_text())
    metrics = collect_committee(frames, settings, folders, tmp_path / "pm")
    for name in ("member_0.yaml", "member_1.yace", "metrics.json", "parity.png"):
        assert (tmp_path / "pm" / name).is_file(), name
    assert metrics["test"]["n_configs"] == 3 and metrics["committee_size"] == 2
    assert metrics["test"]["energy_rmse_mev_per_atom"] < 20
    # The committee STD is the spread of the members' own predictions (pyace directly, ddof=1), nonzero here.
    split = json.loads((tmp_path / "pm" / "split.json").read_text())
    for name in ("train", "test"):
        spread = []
        for i in split[f"{name}_indices"]:
            energies = []
            for k in range(2):
                atoms = frames[i].copy()
                atoms.calc = PyACECalculator(str(tmp_path / "pm" / f"member_{k}.yaml"))
                energies.append(1000 * atoms.get_potential_energy() / len(atoms))
            spread.append(np.std(energies, ddof=1))
        assert metrics[name]["committee"]["std_rms"] == pytest.approx(np.sqrt(np.mean(np.square(spread))), rel=1e-6)
        assert metrics[name]["committee"]["std_rms"] > 0.01
    (folders[1] / "output_potential.yaml").unlink()
    with pytest.raises(DataError, match="member 1"):
        collect_committee(frames, settings, folders, tmp_path / "pm")


def _stand_in_committee(tmp_path: Path, frames, settings) -> Path:
    """A collected 'pacemaker' committee whose members are two linear-ACE fits (pyace potentials)."""
    folders = prepare_committee(frames, settings, tmp_path / "pm")
    for k, folder in enumerate(folders):
        model = tmp_path / f"linear_{k}"
        fit_linear_ace(
            frames[k::2] + frames[:2], {**settings, "seed": k, "test_fraction": 0.0, "calibration_fraction": 0.0}, model
        )
        (folder / "output_potential.yaml").write_text((model / "potential.yaml").read_text())
    collect_committee(frames, settings, folders, tmp_path / "pm")
    return tmp_path / "pm"


def test_pacemaker_committee_calculator_averages_members(tmp_path):
    from ase.calculators.calculator import all_changes
    from pyace import PyACECalculator

    from nestdb.models.calculators import make_calculator

    frames = emt_al_frames(12, seed=6)
    e0 = _emt_isolated_energy("Al")
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": e0},
        "test_fraction": 0.25,
        "pacemaker": {"committee_size": 2},
        **SMALL_BASIS,
    }
    folder = _stand_in_committee(tmp_path, frames, settings)
    index = json.loads((folder / "committee.json").read_text())
    assert index == {
        "members": ["member_0.yaml", "member_1.yaml"],
        "reference_energies": {"Al": e0},
        "active_set": None,
    }
    calc = make_calculator({"type": "pacemaker_committee", "model": str(folder)})
    atoms = frames[3].copy()
    atoms.calc = calc
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    members = []
    for name in index["members"]:
        member = PyACECalculator(str(folder / name))
        member.calculate(atoms, properties=("energy", "forces", "stress"), system_changes=all_changes)
        members.append(member.results)
    expected = np.array([m["energy"] for m in members]) + len(atoms) * e0
    assert energy == pytest.approx(expected.mean(), abs=1e-9)
    assert np.allclose(forces, np.mean([m["forces"] for m in members], axis=0), atol=1e-9)
    assert np.allclose(stress, np.mean([m["stress"] for m in members], axis=0), atol=1e-12)
    assert calc.results["energy_std_per_atom"] == pytest.approx(np.std(expected, ddof=1) / len(atoms))
    assert calc.results["energy_std"] > 0  # different training subsets: the members differ
    (folder / "committee.json").unlink()
    with pytest.raises(DataError, match="committee.json"):
        make_calculator({"type": "pacemaker_committee", "model": str(folder)})


def test_ns_samples_with_a_pacemaker_committee(tmp_path):
    """A later cycle's NS run through the workflow stage with the pacemaker committee and its STD limit."""
    from ase.io import read

    from nestdb.ns.stage import ns_run_stage

    frames = emt_al_frames(12, seed=6)
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": _emt_isolated_energy("Al")},
        "test_fraction": 0.25,
        "pacemaker": {"committee_size": 2},
        **SMALL_BASIS,
    }
    folder = _stand_in_committee(tmp_path, frames, settings)
    block = {
        "composition": {"Al": 4},
        "n_walkers": 8,
        "n_cull": 1,
        "walk_length": 4,
        "max_iter": 12,
        "converge_down_to_T": None,
        "min_volume_per_atom": 10.0,
        "max_volume_per_atom": 40.0,
        "committee_std_max": 1.0e6,
        "calculator": {"type": "pacemaker_committee"},
        "seed": 3,
    }
    summary = ns_run_stage(block, 0.1, 1, tmp_path / "ns" / "ns", model_dir=str(folder))
    samples = read(tmp_path / "ns" / "ns.traj.extxyz", index=":")
    assert summary["n_iter"] == 12 and len(samples) == 12 and summary["n_committee_rejected"] == 0
    stds = np.array([s.info["committee_std"] for s in samples])  # recorded per sample, eV/atom
    assert np.all(stds > 0)
    # a limit below the typical STD holds for every sample (walkers redrawn, moves rejected), as with
    # the linear committee
    limit = 1000 * float(np.median(stds))
    limited = ns_run_stage(dict(block, committee_std_max=limit), 0.1, 1, tmp_path / "ns3" / "ns", model_dir=str(folder))
    kept = np.array([s.info["committee_std"] for s in read(tmp_path / "ns3" / "ns.traj.extxyz", index=":")])
    assert limited["n_init_above_committee_limit"] == 0 and 1000 * kept.max() <= limit
    assert limited["n_calls"] > summary["n_calls"]  # initial walkers above the limit were redrawn
    with pytest.raises(DataError, match="previous cycle's model"):
        ns_run_stage(block, 0.1, 1, tmp_path / "ns2" / "ns")


def test_prepare_writes_the_low_kappa_refit_input(tmp_path):
    frames = emt_al_frames(8, seed=2)
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": -3.0},
        "test_fraction": 0.25,
        "pacemaker": {"committee_size": 1, "refit_kappa": 0.02, "refit_maxiter": 30, "ladder_step": 5},
        **SMALL_BASIS,
    }
    folder = prepare_committee(frames, settings, tmp_path / "pm")[0]
    first = yaml.safe_load((folder / "input.yaml").read_text())
    refit = yaml.safe_load((folder / "input_refit.yaml").read_text())
    assert first["fit"]["ladder_step"] == 5 and "ladder_step" not in refit["fit"]
    assert refit["fit"]["loss"]["kappa"] == 0.02 and refit["fit"]["maxiter"] == 30
    assert refit["potential"] == first["potential"] and refit["data"] == first["data"]
    settings["pacemaker"]["refit_kappa"] = None
    folder = prepare_committee(frames, settings, tmp_path / "pm")[0]
    assert not (folder / "input_refit.yaml").exists()  # a re-prepared member without refit loses the old input
    with pytest.raises(ConfigError, match="feeds_ns"):
        validate_pacemaker_settings({"feeds_ns": True})


def test_real_pacemaker_fit(tmp_path):
    command = _pacemaker_command()
    if command is None:
        pytest.skip(
            "no pacemaker with TensorFlow: set NESTDB_PACEMAKER or create .venv-pacemaker "
            "(recipe in README, section Fitting)"
        )
    frames = emt_al_frames(12, seed=8)
    activeset = str(Path(command).with_name("pace_activeset")) if "/" in command else "pace_activeset"
    settings = {
        "elements": ["Al"],
        "reference_energies": {"Al": _emt_isolated_energy("Al")},
        "test_fraction": 0.25,
        "nradmax_by_orders": [4, 2],
        "lmax_by_orders": [0, 1],
        "cutoff": 5.0,
        "pacemaker": {
            "committee_size": 2,
            "command": command,
            "activeset_command": activeset,
            "maxiter": 10,
            "number_of_functions_per_element": 10,
            "ndensity": 1,
            "refit_kappa": 0.01,
            "refit_maxiter": 5,
        },
    }
    folders = prepare_committee(frames, settings, tmp_path)
    for folder in folders:
        run_member(folder, validate_fit_settings(settings)["pacemaker"])
        # the low-kappa refit starts from the first fit and changes its coefficients
        refit_input = yaml.safe_load((folder / "input_refit.yaml").read_text())
        assert refit_input["fit"]["loss"]["kappa"] == 0.01 and refit_input["fit"]["maxiter"] == 5
        first, final = (_coefficients(folder / name) for name in ("fit_potential.yaml", "output_potential.yaml"))
        assert first.shape == final.shape and not np.allclose(first, final)
        # it starts where the first fit ended, not from random coefficients
        fitted = _energy_rmse_lines(folder / "pacemaker.log", "Iteration")[-1]
        start = _energy_rmse_lines(folder / "pacemaker_refit.log", "Initial state")[0]
        assert start <= 2 * fitted  # random coefficients start 10-100x higher
    metrics = collect_committee(frames, settings, folders, tmp_path)
    assert np.isfinite(metrics["test"]["energy_rmse_mev_per_atom"])
    assert metrics["test"]["committee"]["std_rms"] > 0  # random initial coefficients: members differ
    assert metrics["train"]["max_gamma_max"] > 0
    # the collected committee with its active set reports the extrapolation grade per configuration
    from nestdb.models.pacemaker_committee import PacemakerCommitteeCalculator

    calc = PacemakerCommitteeCalculator.from_folder(tmp_path)
    atoms = frames[0].copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.results["max_gamma"] > 0 and calc.results["energy_std"] > 0
