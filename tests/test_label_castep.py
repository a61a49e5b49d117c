"""Tests of the CASTEP labeller without a CASTEP binary: input files, failure capture, config errors."""

import shlex
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

from nestdb.errors import ConfigError
from nestdb.label import KNOWN_LABELLERS, label_configuration, make_labeller

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
POINTS = SHARED / "data" / "mg" / "castep_single_points"
STUDY_CONFIG = ROOT / "config" / "mg-study.yaml"
OTFG_MG = "3|1.8|7|8|9|20U:30:21:32"

needs_shared = pytest.mark.needs_shared(POINTS)


def study_spec():
    label = yaml.safe_load(STUDY_CONFIG.read_text())["label"]
    return {"code": label["code"], "castep": label["castep"]}


def study_labeller(**extra):
    return make_labeller({"code": "castep", "castep": {**study_spec()["castep"], **extra}})


def read_cell(path):
    # keyword_tolerance=3: do not look for castep_keywords.json (that would run a CASTEP binary)
    return ase.io.read(path, format="castep-cell", calculator_args={"keyword_tolerance": 3})


def parse_freeform(path):
    """CASTEP .param/.cell keywords (not blocks) as {lower-case key: value string}."""
    keywords = {}
    in_block = False
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#")[0].split("!")[0].strip()
        if not line:
            continue
        if line.lower().startswith("%block"):
            in_block = True
        elif line.lower().startswith("%endblock"):
            in_block = False
        elif not in_block:
            key, _, value = line.replace("=", ":").partition(":")
            keywords[key.strip().lower()] = value.strip()
    return keywords


def same_value(a, b):
    a, b = a.split(), b.split()  # drop a trailing unit such as 'eV' (CASTEP's default unit here)
    try:
        return np.isclose(float(a[0]), float(b[0]))
    except ValueError:
        return a[0].lower() == b[0].lower()


def lattice_block(path):
    lines = Path(path).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().upper() == "%BLOCK LATTICE_CART")
    return np.array([[float(x) for x in lines[start + 1 + i].split()] for i in range(3)])


def test_castep_is_known():
    assert "castep" in KNOWN_LABELLERS


def test_unknown_setting_names_the_key():
    with pytest.raises(ConfigError, match=r"label\.castep\.cut_of_energy"):
        make_labeller({"code": "castep", "castep": {"cut_of_energy": 700}})


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match=r"label\.castep\.cut_off_energy"):
        make_labeller({"code": "castep", "castep": {"cut_off_energy": -5}})
    with pytest.raises(ConfigError, match=r"label\.castep\.calculate_stress"):
        make_labeller({"code": "castep", "castep": {"calculate_stress": False}})
    with pytest.raises(ConfigError, match=r"label\.castep\.pseudopotentials"):
        make_labeller({"code": "castep", "castep": {"pseudopotentials": ["Mg"]}})


def test_study_config_builds_and_defaults_are_the_study():
    labeller = make_labeller(study_spec())
    assert labeller.name == "castep"
    assert labeller.settings_hash == make_labeller({"code": "castep"}).settings_hash


@needs_shared
def test_input_files_match_the_study(tmp_path, monkeypatch):
    monkeypatch.setenv("CASTEP_COMMAND", "definitely-not-castep")
    cell_path = POINTS / "mg_0000.cell"
    atoms = read_cell(cell_path)
    labeller = study_labeller(pseudopotentials={"Mg": OTFG_MG})
    calc = labeller.calculator(tmp_path / "raw")
    assert calc._castep_command == "definitely-not-castep"
    calc.prepare_input_files(atoms)  # writes castep.param and castep.cell, runs nothing

    param = parse_freeform(tmp_path / "raw" / "castep.param")
    original = parse_freeform(POINTS / "mg_original.param")
    study_keys = set(study_spec()["castep"]) - {"kpoints_mp_spacing"}
    shared_keys = study_keys & set(original)
    assert {
        "xc_functional",
        "cut_off_energy",
        "elec_energy_tol",
        "fine_grid_scale",
        "max_scf_cycles",
        "calculate_stress",
        "opt_strategy",
        "data_distribution",
    } <= shared_keys
    for key in shared_keys:
        assert same_value(param[key], original[key]), (key, param[key], original[key])
    assert original["task"].lower() == param["task"].lower() == "singlepoint"
    assert param["smearing_scheme"].lower() == "gaussian"
    assert float(param["smearing_width"]) == 0.2
    assert param["finite_basis_corr"].lower() == "automatic"

    cell_text = (tmp_path / "raw" / "castep.cell").read_text()
    cell = parse_freeform(tmp_path / "raw" / "castep.cell")
    assert float(cell["kpoints_mp_spacing"]) == 0.015
    assert "KPOINTS_MP_SPACING" in cell_text
    assert f"%BLOCK SPECIES_POT\nMg {OTFG_MG}\n%ENDBLOCK SPECIES_POT" in cell_text  # ':' kept
    np.testing.assert_allclose(lattice_block(tmp_path / "raw" / "castep.cell"), lattice_block(cell_path), atol=1e-6)


@needs_shared
def test_failing_command_gives_failed_record(tmp_path, monkeypatch):
    monkeypatch.setenv("CASTEP_COMMAND", "false")
    atoms = read_cell(POINTS / "mg_0000.cell")
    labelled = label_configuration(atoms, study_labeller(), tmp_path / "raw")
    assert labelled.info["label_status"] == "failed"
    error = labelled.info["label_error"]
    assert "CastepFailure" in error and "'false castep'" in error and "status 1" in error
    assert "\n" not in error
    assert "dft_energy" not in labelled.info
    assert (tmp_path / "raw" / "castep.param").is_file()
    assert (tmp_path / "raw" / "label_error.txt").is_file()


def fake_castep(source: Path) -> str:
    """CASTEP_COMMAND that 'runs' by copying a real .castep output to <seed>.castep."""
    script = "cp " + shlex.quote(str(source)) + ' "$0.castep"'
    return "sh -c " + shlex.quote(script)


@needs_shared
def test_real_output_energies_as_the_study_recorded_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CASTEP_COMMAND", fake_castep(POINTS / "mg_0000.castep"))
    atoms = read_cell(POINTS / "mg_0000.cell")
    labelled = label_configuration(atoms, study_labeller(), tmp_path / "raw")
    assert labelled.info["label_status"] == "ok", labelled.info.get("label_error")
    # 'Total energy corrected for finite basis set' of mg_0000.castep, the study's dft_energy
    assert labelled.info["dft_energy"] == -27023.218180
    # last 'Final free energy (E-TS)' line (full 700 eV cut-off)
    assert labelled.info["dft_free_energy"] == pytest.approx(-27023.21817931, abs=1e-9)
    assert labelled.arrays["dft_forces"].shape == (len(atoms), 3)
    assert labelled.info["dft_stress"].shape == (9,)


@needs_shared
def test_unconverged_scf_is_a_failure(tmp_path, monkeypatch):
    text = (POINTS / "mg_0000.castep").read_text()
    marker = "Final free energy (E-TS)"
    position = text.rindex(marker)
    unconverged = tmp_path / "unconverged.castep"
    unconverged.write_text(
        text[:position]
        + " *Warning* max. SCF cycles performed but system has not reached the groundstate.\n"
        + text[position:]
    )
    monkeypatch.setenv("CASTEP_COMMAND", fake_castep(unconverged))
    labelled = label_configuration(read_cell(POINTS / "mg_0000.cell"), study_labeller(), tmp_path / "raw")
    assert labelled.info["label_status"] == "failed"
    assert "SCF not converged" in labelled.info["label_error"]
    assert "max_scf_cycles" in labelled.info["label_error"]


def test_isolated_atom_inputs_are_gamma_only_and_spin_polarised(tmp_path, monkeypatch):
    from nestdb.errors import DataError
    from nestdb.label.stage import isolated_atom_energy

    monkeypatch.setenv("CASTEP_COMMAND", "false")
    with pytest.raises(DataError, match="isolated Fe atom"):
        isolated_atom_energy("Fe", {"code": "castep"}, tmp_path / "Fe.json", tmp_path / "raw")
    param = parse_freeform(tmp_path / "raw" / "castep.param")
    cell = parse_freeform(tmp_path / "raw" / "castep.cell")
    assert param["spin_polarized"].lower() == "true"
    assert float(param["cut_off_energy"]) == 700  # the labelling settings otherwise
    assert float(cell["kpoints_mp_spacing"]) == 1.0
    assert "SPIN=" in (tmp_path / "raw" / "castep.cell").read_text().upper()
    assert not (tmp_path / "Fe.json").exists()
