"""VASP and Quantum ESPRESSO inputs (golden files), k-point conventions, MPI command lines."""

import math
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import kptdensity2monkhorstpack
from ase.io import read, write

from nestdb.errors import ConfigError
from nestdb.kpoints import castep_spacing_from_density, monkhorst_pack_grid, vasp_kspacing_from_castep
from nestdb.label import KNOWN_LABELLERS, make_labeller
from nestdb.label.launch import code_argv, mpi_prefix

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "label_golden"
POINTS = ROOT.parent / "shared" / "data" / "mg" / "castep_single_points"


def golden_structure():
    atoms = bulk("Mg", "hcp", a=3.2, c=5.2).repeat((2, 1, 1))
    atoms.positions[0] += [0.05, -0.02, 0.01]
    return atoms


def test_new_codes_are_known():
    assert {"vasp", "espresso"} <= set(KNOWN_LABELLERS)


def test_vasp_inputs_match_golden_files(tmp_path):
    labeller = make_labeller({"code": "vasp", "vasp": {"encut": 600, "amix": 0.2}})
    written = labeller.write_inputs(golden_structure(), tmp_path)
    for path in written:
        assert path.read_text() == (GOLDEN / "vasp" / path.name).read_text(), path.name
    incar = dict(line.split(" = ") for line in (tmp_path / "INCAR").read_text().splitlines() if " = " in line)
    assert float(incar["ENCUT"]) == 600 and incar["IBRION"] == "-1" and incar["NSW"] == "0"
    assert incar["GGA"] == "PE" and float(incar["AMIX"]) == 0.2 and incar["LWAVE"] == ".FALSE."
    # 0.03 1/A without 2 pi: ceil(|b_i| / 0.03) with |b| = 1/d of the lattice planes.
    kpoints = (tmp_path / "KPOINTS").read_text().splitlines()
    assert kpoints[2] == "Gamma"
    a, c = 6.4, 5.2
    expected = [
        math.ceil(1 / (a * math.sqrt(3) / 2) / 0.03),
        math.ceil(1 / (3.2 * math.sqrt(3) / 2) / 0.03),
        math.ceil(1 / c / 0.03),
    ]
    assert [int(n) for n in kpoints[3].split()] == expected
    poscar = read(tmp_path / "POSCAR", format="vasp")
    np.testing.assert_allclose(poscar.positions, golden_structure().positions, atol=1e-10)


def test_vasp_rejects_unknown_and_fixed_keys():
    with pytest.raises(ConfigError, match="encutt"):
        make_labeller({"code": "vasp", "vasp": {"encutt": 500}})
    with pytest.raises(ConfigError, match="nsw"):
        make_labeller({"code": "vasp", "vasp": {"nsw": 10}})


def test_espresso_input_matches_golden_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ESPRESSO_PSEUDO", "/pseudo")
    labeller = make_labeller(
        {
            "code": "espresso",
            "espresso": {"pseudopotentials": {"Mg": "Mg.pbe-spnl-rrkjus_psl.1.0.0.UPF"}, "ecutwfc": 45},
        }
    )
    [path] = labeller.write_inputs(golden_structure(), tmp_path)
    text = path.read_text()
    assert text == (GOLDEN / "espresso" / "espresso.pwi").read_text()
    assert "tstress          = .true." in text and "tprnfor          = .true." in text
    assert "pseudo_dir       = '/pseudo'" in text
    assert "K_POINTS automatic\n7 13 7  0 0 0" in text  # explicit grid, not a density
    back = read(path, format="espresso-in")
    np.testing.assert_allclose(back.positions, golden_structure().positions, atol=1e-8)


def test_espresso_needs_pseudopotentials():
    with pytest.raises(ConfigError, match="label.espresso.pseudopotentials"):
        make_labeller({"code": "espresso", "espresso": {}})


def test_kpoint_conventions_agree():
    rng = np.random.default_rng(3)
    for _ in range(20):
        atoms = bulk("Mg", "hcp", a=3.2, c=5.2)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.2 * rng.standard_normal((3, 3))), scale_atoms=True)
        density = float(rng.uniform(1, 6))
        # ASE's density convention, as ASE itself computes it.
        ours = monkhorst_pack_grid(atoms, density=density)
        assert ours == tuple(kptdensity2monkhorstpack(atoms, density, even=False))
        assert monkhorst_pack_grid(atoms, density=density, even=True) == tuple(
            kptdensity2monkhorstpack(atoms, density, even=True)
        )
        spacing = castep_spacing_from_density(density)
        assert monkhorst_pack_grid(atoms, castep_spacing=spacing) == ours
        assert monkhorst_pack_grid(atoms, kspacing=vasp_kspacing_from_castep(spacing)) == ours
    slab = bulk("Mg", "hcp", a=3.2, c=5.2)
    slab.pbc = [True, True, False]
    assert monkhorst_pack_grid(slab, castep_spacing=0.03)[2] == 1
    with pytest.raises(ConfigError, match="exactly one"):
        monkhorst_pack_grid(slab, castep_spacing=0.03, density=3)


def test_mpi_prefix_and_injection_guards():
    assert mpi_prefix("srun", 16) == ["srun", "-n", "16"]
    assert mpi_prefix("", 16) == [] and mpi_prefix(None) == []
    assert code_argv(mpi_prefix("srun", 16), "castep.mpi", "castep") == ["srun", "-n", "16", "castep.mpi", "castep"]
    assert code_argv([], "pw.x -nk 2", "-in", "espresso.pwi") == ["pw.x", "-nk", "2", "-in", "espresso.pwi"]
    # A command with its own launcher is not launched twice.
    assert code_argv(["srun", "-n", "16"], "srun castep.mpi", "castep") == ["srun", "castep.mpi", "castep"]
    with pytest.raises(ConfigError, match="resources.mpi"):
        mpi_prefix("srun; rm -rf ~", 4)
    with pytest.raises(ConfigError, match="resources.tasks"):
        mpi_prefix("srun", "4; reboot")


def fake_program(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.needs_shared(POINTS)
def test_castep_mpi_job_runs_srun_n_tasks_castep_seed(tmp_path, monkeypatch):
    """The label command of an MPI job (what the rule runs) starts `srun -n 16 castep.mpi castep`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.txt"
    # Stand-ins on PATH: srun records its argv and runs the rest; castep.mpi replays a real output.
    fake_program(
        bin_dir / "srun", f'printf "%s\\n" "$(basename "$0")" "$@" > {shlex.quote(str(log))}\nshift 2\nexec "$@"'
    )
    fake_program(bin_dir / "castep.mpi", f'cp {shlex.quote(str(POINTS / "mg_0000.castep"))} "$1.castep"')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CASTEP_COMMAND", "castep.mpi")
    atoms = read(POINTS / "mg_0000.cell", format="castep-cell", calculator_args={"keyword_tolerance": 3})
    config = tmp_path / "in.extxyz"
    write(config, atoms, format="extxyz")
    out, raw = tmp_path / "out.extxyz", tmp_path / "raw"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nestdb.cli",
            "label",
            str(config),
            str(out),
            str(raw),
            "--spec",
            '{"code": "castep"}',
            "--mpi",
            "srun",
            "--tasks",
            "16",
        ],
        check=True,
        cwd=tmp_path,
    )
    assert log.read_text().splitlines() == ["srun", "-n", "16", "castep.mpi", "castep"]
    labelled = read(out)
    assert labelled.info["label_status"] == "ok"
    assert labelled.info["dft_energy"] == pytest.approx(-27023.21818, abs=1e-6)


@pytest.mark.needs_shared(POINTS)
def test_castep_command_is_not_a_shell(tmp_path, monkeypatch):
    from nestdb.label import label_configuration

    monkeypatch.setenv("CASTEP_COMMAND", f"true; touch {tmp_path / 'pwned'}")
    atoms = read(POINTS / "mg_0000.cell", format="castep-cell", calculator_args={"keyword_tolerance": 3})
    record = label_configuration(atoms, make_labeller({"code": "castep"}), tmp_path / "raw")
    assert record.info["label_status"] == "failed"
    assert not (tmp_path / "pwned").exists()
