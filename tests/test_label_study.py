"""The study's real CASTEP outputs, read through the labeller, reproduce the study's database."""

import shlex
from pathlib import Path

import ase.io
import numpy as np
import pytest

from nestdb.kpoints import monkhorst_pack_grid
from nestdb.label import label_configuration, make_labeller
from nestdb.label.castep_output import read_castep_output, scf_report
from nestdb.label.compare import find_match, match_atoms
from nestdb.units import GPA

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
POINTS = SHARED / "data" / "mg" / "castep_single_points"
STUDY_DB = SHARED / "data" / "mg" / "cycle_0.edb.extxyz"

pytestmark = pytest.mark.needs_shared(POINTS, STUDY_DB)


@pytest.fixture(scope="module")
def zero_pressure_records():
    frames = ase.io.read(STUDY_DB, index=":")
    return [f for f in frames if f.info["config_type"].startswith("mg16_0GPa")]


def outputs():
    return sorted(POINTS.glob("*.castep")) if POINTS.is_dir() else []


def replaying_castep(source: Path) -> str:
    """CASTEP_COMMAND that 'runs' by copying a real .castep output to <seed>.castep (seed is $0)."""
    return "sh -c " + shlex.quote("cp " + shlex.quote(str(source)) + ' "$0.castep"')


def test_every_output_matches_a_database_record(tmp_path, monkeypatch, zero_pressure_records):
    labeller = make_labeller({"code": "castep"})  # the study's settings are the defaults
    matched = 0
    for output in outputs():
        atoms = ase.io.read(output.with_suffix(".cell"), format="castep-cell", calculator_args={"keyword_tolerance": 3})
        monkeypatch.setenv("CASTEP_COMMAND", replaying_castep(output))
        labelled = label_configuration(atoms, labeller, tmp_path / output.stem)
        assert labelled.info["label_status"] == "ok", labelled.info.get("label_error")
        found = find_match(labelled, zero_pressure_records)
        assert found is not None, f"{output.name}: no record with the same structure"
        index, perm = found
        record = zero_pressure_records[index]
        # The study stored CASTEP's finite-basis-corrected total energy with 6 decimals.
        assert labelled.info["dft_energy"] == pytest.approx(record.info["dft_energy"], abs=2e-6)
        np.testing.assert_allclose(labelled.arrays["dft_forces"], record.arrays["dft_forces"][perm], atol=1e-6)
        np.testing.assert_allclose(labelled.info["dft_stress"], record.info["dft_stress"], atol=1e-6)
        np.testing.assert_allclose(
            labelled.info["dft_virial"], record.info["dft_virial"], atol=1e-6 * record.get_volume() * GPA + 1e-9
        )
        # Free energy kept separately; cost from CASTEP's own timing (wall x ranks x threads).
        assert abs(labelled.info["dft_free_energy"] - labelled.info["dft_energy"]) < 1e-3
        report = scf_report(output.read_text())
        assert labelled.info["label_cpu_s"] == pytest.approx(report.cpu_s)
        assert labelled.info["label_cpu_s"] > 3600  # these are hour-scale CASTEP runs
        matched += 1
    assert matched == 12


def test_ase_reader_and_scf_report_of_real_outputs():
    for output in outputs():
        atoms, report = read_castep_output(output)
        assert report.converged, (output.name, report.reason)
        assert len(report.iterations) == 3  # finite_basis_corr: automatic samples 3 cut-offs
        assert report.tolerance == 1e-9 and report.max_cycles == 150
        assert max(report.last_gain) < report.tolerance
        # CASTEP's kpoints_mp_spacing convention (1/A, no 2 pi) reproduces the grid it printed.
        assert monkhorst_pack_grid(atoms, castep_spacing=0.015) == report.kpoint_grid, output.name


def test_unconverged_and_truncated_outputs_are_detected():
    text = (POINTS / "mg_0000.castep").read_text()
    # SCF table cut after an iteration above tolerance: the last gain decides.
    lines = text.splitlines()
    first_table_end = next(i for i, line in enumerate(lines) if "     10  -2.70232130E+004" in line)
    truncated = "\n".join(lines[: first_table_end + 1])
    report = scf_report(truncated)
    assert not report.converged and "above elec_energy_tol" in report.reason
    warned = text.replace(
        "Final free energy (E-TS)",
        "*Warning* max. SCF cycles performed but system has not reached the groundstate.\nFinal free energy (E-TS)",
        1,
    )
    assert "groundstate" in scf_report(warned).reason
    assert "Total time" in scf_report(text.replace("Total time", "Tot. time")).reason


def test_matching_ignores_basis_wrapping_order_and_shift(zero_pressure_records):
    record = zero_pressure_records[3]
    moved = record.copy()
    moved.positions += [0.7, -1.1, 2.3]
    moved.wrap()
    order = np.random.default_rng(0).permutation(len(moved))
    moved = moved[order]
    moved.set_cell(
        record.cell.array @ np.eye(3) + [[0, 0, 0], [0, 0, 0], record.cell.array[0]], scale_atoms=False
    )  # another basis of the same lattice: c' = c + a
    perm = match_atoms(moved, record)
    assert perm is not None
    np.testing.assert_array_equal(perm, order)
    shifted_atom = moved.copy()
    shifted_atom.positions[0] += 0.01
    assert match_atoms(shifted_atom, record) is None
