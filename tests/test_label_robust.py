"""A finished calculation is never lost to the label cache (issue 13.3); label fields are checked when read (13.4).

Before: with the cache folder not writable, every label job calculated and
then died with a raw PermissionError in the cache write, and Snakemake
deleted its output. Now a job checks its folders before calculating, writes
its own output first and treats the cache as best effort.

Folders are made unwritable by a regular file standing where the folder
must be (this works for root too, which ignores permission bits), and by
permission bits when the tests do not run as root.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.io import read, write
from test_label_policy import EMT_SPEC, CountingEMT, cu_cell
from test_label_policy import counting as counting  # noqa: F401 (the fixture, used by name)

from nestdb.errors import ConfigError, DataError
from nestdb.label import label_configuration, make_labeller
from nestdb.label.cache import LabelCache
from nestdb.label.castep_output import read_castep_output
from nestdb.label.potential import PotentialLabeller
from nestdb.label.stage import gather_labels, isolated_atom_energy, label_one

from conftest import SHARED, require_shared

POINTS = SHARED / "data" / "mg" / "castep_single_points"

BLOCKERS = ["file in the way"] + (["read-only folder"] if os.geteuid() != 0 else [])


def _block(folder: Path, how: str) -> None:
    """Make ``folder`` impossible to write into."""
    if how == "file in the way":
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.write_text("not a folder\n")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)


def _settings_folder(cache: Path) -> Path:
    return cache / make_labeller(EMT_SPEC).settings_hash


def _config_file(tmp_path: Path, seed: int = 1) -> Path:
    path = tmp_path / f"cu{seed}.extxyz"
    write(path, cu_cell(seed), format="extxyz")
    return path


@pytest.mark.parametrize("how", BLOCKERS)
@pytest.mark.parametrize("blocked", ["cache root", "settings folder"])
def test_unwritable_cache_refuses_before_calculating(tmp_path, counting, how, blocked):
    cache = tmp_path / "cache"
    folder = cache if blocked == "cache root" else _settings_folder(cache)
    _block(folder, how)
    out = tmp_path / "out" / "cu1.extxyz"
    with pytest.raises(ConfigError, match="label.cache_dir: cannot write to the label cache folder") as error:
        label_one(_config_file(tmp_path), out, tmp_path / "raw", EMT_SPEC, policy={"cache_dir": str(cache)})
    assert str(_settings_folder(cache)) in str(error.value)
    assert "no calculation was started" in str(error.value) and "label.cache_dir: null" in str(error.value)
    assert counting.calls == [] and not out.exists()
    with pytest.raises(ConfigError, match="label.cache_dir"):
        isolated_atom_energy(
            "Cu", EMT_SPEC, tmp_path / "Cu.json", tmp_path / "raw_e0", box=8.0, policy={"cache_dir": str(cache)}
        )
    assert counting.calls == []


@pytest.mark.parametrize("how", BLOCKERS)
def test_unwritable_output_folder_refuses_before_calculating(tmp_path, counting, how):
    _block(tmp_path / "out", how)
    with pytest.raises(DataError, match=r"cannot write the labelled record folder .*out.*no calculation"):
        label_one(_config_file(tmp_path), tmp_path / "out" / "cu1.extxyz", tmp_path / "raw", EMT_SPEC)
    _block(tmp_path / "raw2", how)
    with pytest.raises(DataError, match="cannot write the raw output folder"):
        label_one(_config_file(tmp_path), tmp_path / "fine" / "cu1.extxyz", tmp_path / "raw2", EMT_SPEC)
    assert counting.calls == []


class SabotagingEMT(CountingEMT):
    """The real EMT, which while calculating makes the cache unwritable (a full disk, a quota, an admin)."""

    cache_folder: Path | None = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        folder = SabotagingEMT.cache_folder
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        folder.write_text("the cache folder went away\n")


def test_cache_failing_after_the_calculation_keeps_the_label(tmp_path, counting, monkeypatch, caplog):
    import nestdb.label.potential

    cache = tmp_path / "cache"
    SabotagingEMT.cache_folder = _settings_folder(cache)
    monkeypatch.setattr(nestdb.label.potential, "make_calculator", lambda spec, base_dir=".": SabotagingEMT())
    out = tmp_path / "out" / "cu1.extxyz"
    with caplog.at_level(logging.WARNING, logger="nestdb"):
        labelled = label_one(_config_file(tmp_path), out, tmp_path / "raw", EMT_SPEC, policy={"cache_dir": str(cache)})
    assert counting.calls == ["cu1"]
    assert labelled.info["label_status"] == "ok"
    written = read(out)  # the job's output holds the calculation
    assert written.info["label_status"] == "ok" and written.info["dft_energy"] == labelled.info["dft_energy"]
    assert "could not store the label of cu1" in caplog.text and "the labelled record itself is kept" in caplog.text


def test_output_is_written_before_the_cache(tmp_path, counting, monkeypatch):
    order = []
    real_write = write

    def recording_write(path, *args, **kwargs):
        order.append("cache" if "cache" in Path(path).parts else "output")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr("nestdb.label.stage.write", recording_write)
    monkeypatch.setattr("nestdb.label.cache.write", recording_write)
    label_one(
        _config_file(tmp_path),
        tmp_path / "out.extxyz",
        tmp_path / "raw",
        EMT_SPEC,
        policy={"cache_dir": str(tmp_path / "cache")},
    )
    assert order == ["output", "cache"]
    assert len(list((tmp_path / "cache").rglob("*.extxyz"))) == 1


def test_unreadable_cache_entry_is_recalculated(tmp_path, counting, caplog):
    cache = tmp_path / "cache"
    policy = {"cache_dir": str(cache)}
    label_one(_config_file(tmp_path), tmp_path / "a.extxyz", tmp_path / "raw_a", EMT_SPEC, policy=policy)
    [entry] = cache.rglob("*.extxyz")
    entry.write_bytes(b"\x00\xff garbage")
    with caplog.at_level(logging.WARNING, logger="nestdb"):
        again = label_one(_config_file(tmp_path), tmp_path / "b.extxyz", tmp_path / "raw_b", EMT_SPEC, policy=policy)
    assert again.info["label_status"] == "ok" and again.info["label_cached"] is False
    assert counting.calls == ["cu1", "cu1"] and "ignoring" in caplog.text
    assert LabelCache(cache).get(cu_cell(1), make_labeller(EMT_SPEC).settings_hash) is not None  # rewritten


def test_label_command_names_the_unwritable_cache(tmp_path):
    """What the label rule's job reports: the folder named on stderr and in its log, no output, no calculation."""
    cache = tmp_path / "cache"
    _block(cache, "file in the way")
    out = tmp_path / "out.extxyz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nestdb.cli",
            "label",
            str(_config_file(tmp_path)),
            str(out),
            str(tmp_path / "raw"),
            "--spec",
            json.dumps(EMT_SPEC),
            "--policy",
            json.dumps({"cache_dir": str(cache)}),
            "--log",
            str(tmp_path / "job.log"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and not out.exists()
    assert f"cannot write to the label cache folder {cache}" in result.stderr
    assert "label.cache_dir" in (tmp_path / "job.log").read_text()


# --------------------------------------------------------------------------- issue 13.4: label fields checked when read


class NaNStressCalculator(Calculator):
    """Finite energy and forces, a NaN stress component: what a broken code's output can parse to."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        stress = np.zeros(6)
        stress[2] = np.nan
        self.results = {"energy": -1.0, "free_energy": -1.0, "forces": np.zeros((len(self.atoms), 3)), "stress": stress}


def test_non_finite_stress_is_a_failed_label_naming_configuration_and_field(tmp_path):
    labeller = PotentialLabeller({"type": "nan-stress"}, calculator_factory=NaNStressCalculator)
    record = label_configuration(cu_cell(4), labeller, tmp_path)
    assert record.info["label_status"] == "failed" and record.info["label_failure_kind"] == "unphysical"
    assert "config_id cu4" in record.info["label_error"] and "non-finite stress" in record.info["label_error"]
    assert not any(key.startswith("dft_") for key in record.info)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("dft_virial", np.full(9, np.nan), "info 'dft_virial' contains NaN/inf"),
        ("dft_virial", np.arange(4.0), r"info 'dft_virial' has 4 number\(s\), expected 9"),
        ("dft_energy", np.inf, r"info 'dft_energy' is inf \(not finite\)"),
    ],
)
def test_gather_refuses_a_corrupt_successful_record(tmp_path, counting, key, value, message):
    paths = []
    for seed in (1, 2):
        path = tmp_path / f"cu{seed}.extxyz"
        label_one(_config_file(tmp_path, seed), path, tmp_path / f"raw{seed}", EMT_SPEC)
        paths.append(path)
    record = read(paths[1])
    record.info[key] = value
    write(paths[1], record, format="extxyz")
    with pytest.raises(DataError, match=rf"cu2\.extxyz \(config_id cu2\): {message}.*; delete .*cu2\.extxyz and rerun"):
        gather_labels(paths, tmp_path / "db.extxyz", tmp_path / "labels.csv", max_failed_fraction=0.5)
    assert not (tmp_path / "db.extxyz").exists()


def _nan_force_output(tmp_path: Path) -> Path:
    source = require_shared(POINTS / "mg_0000.castep")
    text = source.read_text()
    line = next(line for line in text.splitlines() if line.startswith(" * Mg              2  "))
    broken = tmp_path / "nan_force.castep"
    broken.write_text(text.replace(line, line.replace("0.13383", "    NaN")))
    assert broken.read_text() != text
    return broken


def test_castep_reader_refuses_non_finite_results(tmp_path):
    broken = _nan_force_output(tmp_path)
    with pytest.raises(DataError, match=r"nan_force\.castep: CASTEP's forces is not finite"):
        read_castep_output(broken)


def test_castep_labeller_records_a_non_finite_force_as_failure(tmp_path, monkeypatch):
    broken = _nan_force_output(tmp_path)
    atoms = read(POINTS / "mg_0000.cell", format="castep-cell", calculator_args={"keyword_tolerance": 3})
    atoms.info["config_id"] = "mg0"
    monkeypatch.setenv("CASTEP_COMMAND", "sh -c " + shlex.quote("cp " + shlex.quote(str(broken)) + ' "$0.castep"'))
    record = label_configuration(atoms, make_labeller({"code": "castep"}), tmp_path / "raw")
    assert record.info["label_status"] == "failed"
    assert "config_id mg0" in record.info["label_error"] and "non-finite forces" in record.info["label_error"]
