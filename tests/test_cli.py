"""The installed ``nestdb`` command (``[project.scripts]``): subcommands, help, and one real call each.

Runs the console script next to the interpreter (``.venv/bin/nestdb``, made by
``pip install -e .`` in install.sh) as a user would, on real inputs: a
pymatnest run from ../shared for ``analyse``, a tiny LJ NS run, the study's
CASTEP labels for ``fit``, the study's Mg EAM as benchmark reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import bulk
from ase.io import read, write

from conftest import require_shared

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED_MG = REPO.parent / "shared" / "data" / "mg"
SAMPLE = SHARED_MG / "pymatnest" / "samples" / "mg16_1GPa_aseeam_partial" / "mg16_1GPa_aseeam"
EAM = SHARED_MG / "Mg1.eam.fs"
SUBCOMMANDS = ("ns", "analyse", "label", "fit", "bench")


def nestdb(*args: str, script: str = "nestdb", cwd: Path | None = None) -> subprocess.CompletedProcess:
    path = BIN / script
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: the console scripts are registered by `pip install --no-deps -e .` "
            "(install.sh does it)"
        )
    return subprocess.run([str(path), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_help_lists_every_subcommand():
    listed = ok(nestdb("--help")).stdout
    for command in SUBCOMMANDS:
        assert any(line.split()[:1] == [command] for line in listed.splitlines()), f"{command} not in:\n{listed}"
    # `python -m nestdb.cli` is the same program.
    module = ok(subprocess.run([sys.executable, "-m", "nestdb.cli", "--help"], capture_output=True, text=True))
    assert module.stdout == listed


@pytest.mark.parametrize(
    "words",
    [["ns"], ["ns", "run"], ["analyse"], ["label"], ["fit"], ["bench"], ["bench", "reference"], ["bench", "model"]],
)
def test_each_subcommand_has_help(words):
    text = ok(nestdb(*words, "--help")).stdout
    assert text.startswith(f"usage: nestdb {' '.join(words)}")


def test_unknown_subcommand_and_missing_arguments_fail():
    result = nestdb("sample")
    assert result.returncode == 2 and "invalid choice: 'sample'" in result.stderr
    result = nestdb("fit", "config/config.yaml")
    assert result.returncode == 2 and "--out" in result.stderr


def test_analyse_is_byte_identical_to_ns_analyse_on_a_pymatnest_run():
    require_shared(f"{SAMPLE}.energies", f"{SAMPLE}.analysis")
    expected = Path(f"{SAMPLE}.analysis").read_text()
    temps = [float(line.split()[0]) for line in expected.splitlines() if not line.startswith("#")]
    grid = ["-M", f"{temps[0]:g}", "-D", f"{temps[1] - temps[0]:g}", "-n", str(len(temps))]
    assert ok(nestdb("analyse", f"{SAMPLE}.energies", *grid)).stdout == expected
    # the ns_analyse-like alias is the same command
    assert ok(nestdb(f"{SAMPLE}.energies", *grid, script="nestdb-analyse")).stdout == expected


def write_config(path: Path, **sections) -> Path:
    config = yaml.safe_load((REPO / "config" / "fast.yaml").read_text())
    for key, value in sections.items():
        config[key] = value if not isinstance(config.get(key), dict) else {**config[key], **value}
    path.write_text(yaml.safe_dump(config))
    return path


def test_ns_run_tiny_lj(tmp_path):
    config = write_config(tmp_path / "lj.yaml", ns={"max_iter": 30, "converge_down_to_T": None})
    printed = json.loads(
        ok(nestdb("ns", "run", str(config), "--pressure", "5", "--out", str(tmp_path / "run"), cwd=REPO)).stdout
    )
    assert printed["n_iter"] == 30 and printed["stop_reason"] == "max_iter" and printed["n_failed_calls"] == 0
    lines = (tmp_path / "run.energies").read_text().splitlines()
    assert lines[0].split()[:2] == ["16", "1"] and len(lines) == 31  # K = 16, n_cull = 1; header + 30 culls
    assert len(read(tmp_path / "run.traj.extxyz", index=":")) == 30
    assert "NS stopped (max_iter) after 30 iterations" in (tmp_path / "run.log").read_text()


def test_label_one_configuration_with_the_eam(tmp_path):
    require_shared(EAM)
    atoms = bulk("Mg", "hcp", a=3.2, c=5.2) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    write(tmp_path / "in.extxyz", atoms)
    spec = {"code": "potential", "potential": {"type": "eam", "file": str(EAM), "kind": "eam/fs"}}
    ok(
        nestdb(
            "label",
            str(tmp_path / "in.extxyz"),
            str(tmp_path / "out.extxyz"),
            str(tmp_path / "raw"),
            "--spec",
            json.dumps(spec),
            "--log",
            str(tmp_path / "label.log"),
        )
    )
    labelled = read(tmp_path / "out.extxyz")
    assert labelled.info["label_status"] == "ok" and labelled.info["label_code"] == "potential"
    from matscipy.calculators.eam import EAM as MatscipyEAM

    atoms.calc = MatscipyEAM(str(EAM), kind="eam/fs")
    assert labelled.info["dft_energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(labelled.arrays["dft_forces"], atoms.get_forces(), atol=1e-8)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """`nestdb fit` on 24 of the study's CASTEP-labelled configurations with a 24-function basis."""
    database = require_shared(SHARED_MG / "cycle_0.edb.extxyz")
    pytest.importorskip("pyace")
    tmp = tmp_path_factory.mktemp("cli_fit")
    frames = read(database, index="::46")
    write(tmp / "labelled.extxyz", frames)
    config = write_config(
        tmp / "config.yaml",
        fit={
            "cutoff": 5.5,
            "nradmax_by_orders": [6, 3],
            "lmax_by_orders": [0, 2],
            "committee_size": 4,
            "reference_energies": {"Mg": -1688.821},
            "test_fraction": 0.25,
            "seed": 1,
        },
        bench={
            "structures": ["hcp", "fcc"],
            "enthalpy": {"enabled": False},
            "reference": {"code": "potential", "potential": {"type": "eam", "file": str(EAM), "kind": "eam/fs"}},
        },
    )
    printed = json.loads(
        ok(nestdb("fit", str(config), str(tmp / "labelled.extxyz"), "--out", str(tmp / "model"), cwd=REPO)).stdout
    )
    return tmp, config, frames, printed


def test_fit_writes_the_model_folder(fitted):
    tmp, _, frames, printed = fitted
    model = tmp / "model"
    for name in ("potential.yaml", "potential.yace", "committee.npz", "model.json", "metrics.json", "fit.log"):
        assert (model / name).is_file(), name
    metrics = json.loads((model / "metrics.json").read_text())
    assert printed["train"] == metrics["train"] and printed["test"] == metrics["test"]
    # test errors from the 80/20 split's fit (split/), the exported model refitted on all labels
    assert metrics["train"]["n_configs"] == len(frames) and metrics["test"]["n_configs"] == 6
    assert (model / "split" / "metrics.json").is_file()
    assert metrics["n_functions"] == printed["n_functions"] > 0


def test_bench_reference_and_model(fitted):
    tmp, config, frames, _ = fitted
    ok(nestdb("bench", "reference", str(config), "--out", str(tmp / "reference"), cwd=REPO))
    assert {p.name for p in (tmp / "reference").iterdir()} >= {"ev.csv", "elastic.json"}
    ok(
        nestdb(
            "bench",
            "model",
            str(config),
            str(tmp / "model"),
            "--reference",
            str(tmp / "reference"),
            "--out",
            str(tmp / "bench"),
            cwd=REPO,
        )
    )
    for name in ("ev.csv", "ev.png", "elastic.csv", "summary.json"):
        assert (tmp / "bench" / name).is_file(), name
    ev = pd.read_csv(tmp / "bench" / "ev.csv")
    assert sorted(set(ev["structure"])) == ["fcc", "hcp"]
    # The model side is the fitted ACE (energies on the CASTEP scale, ~-1690 eV/atom), not the EAM reference.
    lowest_label = min(f.info["dft_energy"] / len(f) for f in frames)
    assert abs(ev["energy_per_atom"].min() - lowest_label) < 0.2
    summary = json.loads((tmp / "bench" / "summary.json").read_text())
    assert set(summary["eos"]) == {"hcp", "fcc"}
    assert abs(summary["eos"]["hcp"]["reference"]["E0"]) < 5  # EAM: cohesive-energy scale


def test_bench_model_without_reference_names_the_command(fitted, tmp_path):
    _, config, _, _ = fitted
    result = nestdb(
        "bench",
        "model",
        str(config),
        str(tmp_path / "model"),
        "--reference",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ev.csv" in result.stderr and "nestdb bench reference" in result.stderr


def test_input_error_is_one_line_with_exit_status_2(tmp_path):
    config = write_config(tmp_path / "c.yaml")
    result = nestdb("fit", str(config), str(tmp_path / "missing.extxyz"), "--out", str(tmp_path / "m"), cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("nestdb: error:") and "missing.extxyz" in result.stderr
