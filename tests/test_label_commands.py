"""No config or environment string reaches a shell on the labelling side (issue 13.2).

The DFT codes' commands (CASTEP_COMMAND, ASE_VASP_COMMAND, ASE_ESPRESSO_COMMAND)
are split into argv lists; the `label` rule's shell line quotes every value
(paths, the labeller spec with its model file, the policy with the cache
folder, the MPI launcher). Stand-in programs here are plumbing: they record
their argv and fail, which the labeller records as a failed label.
"""

from __future__ import annotations

import shlex
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.io import read, write

from nestdb.label import label_configuration, make_labeller

from conftest import FAST_CONFIG, SHARED, require_shared, snakemake

HOSTILE_ARGUMENT = "a; touch PWNED #"

CODES = {
    "castep": ("CASTEP_COMMAND", {"code": "castep"}, ["castep"]),
    "vasp": ("ASE_VASP_COMMAND", {"code": "vasp"}, []),
    "espresso": (
        "ASE_ESPRESSO_COMMAND",
        {"code": "espresso", "espresso": {"pseudopotentials": {"Mg": "Mg.UPF"}}},
        ["-in", "espresso.pwi"],
    ),
}


def _recording_program(path: Path, record: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nprintf "%s|" "$@" > {shlex.quote(str(record))}\nexit 2\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _no_pwned(root: Path) -> bool:
    return not any(path.name == "PWNED" for path in root.rglob("*"))


@pytest.mark.parametrize("code", sorted(CODES))
def test_code_commands_are_argv_lists(code, tmp_path, monkeypatch):
    variable, spec, tail = CODES[code]
    pseudo = tmp_path / "pp" / "potpaw_PBE" / "Mg"
    pseudo.mkdir(parents=True)
    (pseudo / "POTCAR").write_text("stand-in POTCAR: VASP never runs here\n")
    monkeypatch.setenv("VASP_PP_PATH", str(tmp_path / "pp"))
    monkeypatch.chdir(tmp_path)
    atoms = bulk("Mg", "hcp", a=3.2, c=5.2)
    labeller = make_labeller(spec)
    # A shell would run `touch PWNED`; as an argv the first word is a program that does not exist.
    monkeypatch.setenv(variable, "true; touch PWNED #")
    record = label_configuration(atoms, labeller, tmp_path / "raw; $(touch PWNED)")
    assert record.info["label_status"] == "failed"
    assert _no_pwned(tmp_path)
    # A program in a folder with spaces, with a quoted argument full of metacharacters.
    argv_file = tmp_path / "argv.txt"
    program = _recording_program(tmp_path / "bin dir" / "fake code", argv_file)
    monkeypatch.setenv(variable, shlex.join([str(program), HOSTILE_ARGUMENT]))
    record = label_configuration(atoms, labeller, tmp_path / "raw dir 2")
    assert record.info["label_status"] == "failed"  # the stand-in exits 2
    assert argv_file.read_text().split("|")[:-1] == [HOSTILE_ARGUMENT, *tail]
    assert _no_pwned(tmp_path)


def _workdir_with_a_selection(tmp_path: Path) -> Path:
    """A working folder (spaces in its name) holding one selected configuration, as the select checkpoint leaves it."""
    workdir = tmp_path / "work dir; $(touch PWNED)"
    configs = workdir / "results" / "select" / "cycle0" / "P5GPa" / "configs"
    configs.mkdir(parents=True)
    atoms = bulk("Mg", "hcp", a=3.2, c=5.2) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    atoms.info["config_id"] = "c0"
    write(configs / "c0.extxyz", atoms, format="extxyz")
    return workdir


def _config(workdir: Path, label: dict) -> Path:
    config = yaml.safe_load(FAST_CONFIG.read_text())
    config["label"] = label
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


TARGET = "results/label/cycle0/P5GPa/c0.extxyz"


def test_label_rule_with_hostile_model_and_cache_paths(tmp_path):
    """The real rule labels with an EAM file and a cache folder whose names hold spaces and shell syntax."""
    eam = require_shared(SHARED / "data" / "mg" / "Mg1.eam.fs")
    workdir = _workdir_with_a_selection(tmp_path)
    model = tmp_path / "eam dir; $(touch PWNED)" / "Mg 1.eam.fs"
    model.parent.mkdir()
    shutil.copyfile(eam, model)
    cache = tmp_path / "cache dir; touch PWNED #"
    config = _config(
        workdir,
        {
            "code": "potential",
            "cache_dir": str(cache),
            "potential": {"type": "eam", "file": str(model), "kind": "eam/fs"},
        },
    )
    result = snakemake(workdir, TARGET, "--cores", "1", "--configfile", str(config), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    labelled = read(workdir / TARGET)
    assert labelled.info["label_status"] == "ok" and labelled.info["label_code"] == "potential"
    assert len(list(cache.rglob("*.extxyz"))) == 1  # the cache folder was used as named
    assert _no_pwned(tmp_path)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("gpaw", ["srun; touch PWNED #", "-n", "2"]),  # GPAW runs in the Python process started under MPI
        ("castep", ["--mpi", "srun; touch PWNED #", "--tasks", "2"]),  # the labeller builds the launcher argv
    ],
)
def test_label_rule_quotes_the_mpi_launcher(code, expected, tmp_path):
    workdir = _workdir_with_a_selection(tmp_path)
    config = _config(workdir, {"code": code})
    result = snakemake(
        workdir,
        TARGET,
        "--cores",
        "1",
        "--configfile",
        str(config),
        "-n",
        "-p",
        "--set-resources",
        'label:mpi="srun; touch PWNED #"',
        "label:tasks=2",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if "nestdb.cli label" in line]
    argv = shlex.split(line.split(":", 1)[1])  # "Shell command: ..." as bash would split it
    joined = " ".join(argv)
    for word in expected:
        assert word in argv, (word, argv)
    assert argv[argv.index("label") + 1 : argv.index("label") + 4] == [
        "results/select/cycle0/P5GPa/configs/c0.extxyz",
        TARGET,
        "results/label/cycle0/P5GPa/raw/c0",
    ]
    assert "touch PWNED" not in joined.replace("srun; touch PWNED #", "")
