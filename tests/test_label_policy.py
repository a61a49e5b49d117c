"""Cache, retries, timeouts, limits, failures table, cost and E0 around one labelling."""

import csv
import json
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.io import read, write

import nestdb.label.potential
from nestdb.errors import ConfigError, DataError
from nestdb.label import make_labeller
from nestdb.label.cache import structure_hash
from nestdb.label.driver import LabelPolicy, label_with_policy
from nestdb.label.potential import PotentialLabeller
from nestdb.label.stage import FAILURE_COLUMNS, gather_labels, isolated_atom_energy, label_one

POINTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mg" / "castep_single_points"


class CountingEMT(EMT):
    """ASE's EMT that counts its calculations and fails on configurations named in ``broken``."""

    calls: list[str] = []
    broken: set[str] = set()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        name = atoms.info.get("config_id", "?")
        CountingEMT.calls.append(name)
        if name in CountingEMT.broken:
            raise RuntimeError(f"injected crash of {name}")
        super().calculate(atoms, properties, system_changes)


@pytest.fixture
def counting(monkeypatch):
    """Every `potential` spec of type emt builds a CountingEMT (the real EMT underneath)."""
    CountingEMT.calls, CountingEMT.broken = [], set()
    real = nestdb.label.potential.make_calculator

    def make(spec, base_dir="."):
        return CountingEMT() if spec.get("type") == "emt" else real(spec, base_dir=base_dir)

    monkeypatch.setattr(nestdb.label.potential, "make_calculator", make)
    return CountingEMT


def cu_cell(seed, a=3.6):
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.rattle(0.05, seed=seed)
    atoms.info["config_id"] = f"cu{seed}"
    return atoms


EMT_SPEC = {"code": "potential", "potential": {"type": "emt"}}


def test_same_configuration_is_computed_once(tmp_path, counting):
    labeller = make_labeller(EMT_SPEC)
    policy = LabelPolicy(cache_dir=str(tmp_path / "cache"))
    atoms = cu_cell(1)
    first = label_with_policy(atoms, labeller, tmp_path / "a", policy)
    assert first.info["label_status"] == "ok" and first.info["label_cached"] is False
    # The same structure as another cycle would present it: atoms re-ordered, one wrapped across the cell.
    again = atoms[[3, 1, 0, 2]]
    again.positions[0] += again.cell[0]
    again.info["config_id"] = "cu1_copy"
    second = label_with_policy(again, labeller, tmp_path / "b", policy)
    assert counting.calls == ["cu1"]  # computed once
    assert second.info["label_cached"] is True and second.info["config_id"] == "cu1_copy"
    assert second.info["dft_energy"] == pytest.approx(first.info["dft_energy"], abs=1e-12)
    np.testing.assert_allclose(second.arrays["dft_forces"], first.arrays["dft_forces"][[3, 1, 0, 2]], atol=1e-7)
    np.testing.assert_allclose(second.positions, again.positions)  # the query's own geometry is kept
    # Other settings: another key, computed again.
    other = PotentialLabeller({"type": "emt", "variant": 2}, calculator_factory=CountingEMT)
    label_with_policy(atoms, other, tmp_path / "c", policy)
    assert len(counting.calls) == 2
    assert len(list((tmp_path / "cache").glob("*/*.extxyz"))) == 2


def test_structure_hash_sees_real_changes():
    atoms = cu_cell(2)
    moved = atoms.copy()
    moved.positions[1] += [1e-3, 0, 0]
    strained = atoms.copy()
    strained.set_cell(atoms.cell * 1.001, scale_atoms=True)
    hashes = {structure_hash(atoms), structure_hash(moved), structure_hash(strained)}
    assert len(hashes) == 3
    assert structure_hash(atoms[::-1]) == structure_hash(atoms)


def test_fault_injection_failures_recorded_rest_continue_rerun_touches_only_failed(tmp_path, counting):
    counting.broken = {"cu1", "cu3"}
    policy = {"cache_dir": str(tmp_path / "cache")}
    inputs = []
    for seed in range(5):
        path = tmp_path / "in" / f"cu{seed}.extxyz"
        path.parent.mkdir(exist_ok=True)
        atoms = cu_cell(seed)
        atoms.info["pressure"] = 5.0
        write(path, atoms, format="extxyz")
        inputs.append(path)

    def run_cycle(tag, max_failed_fraction):
        outputs = []
        for path in inputs:
            out = tmp_path / tag / path.name
            out.parent.mkdir(exist_ok=True)
            label_one(path, out, tmp_path / tag / "raw" / path.stem, EMT_SPEC, policy=policy)
            outputs.append(out)
        files = {k: tmp_path / tag / k for k in ("db.extxyz", "labels.csv", "failures.tsv", "cost.csv")}
        summary = gather_labels(
            outputs,
            files["db.extxyz"],
            files["labels.csv"],
            max_failed_fraction,
            failures_path=files["failures.tsv"],
            cost_path=files["cost.csv"],
        )
        return summary, files

    summary, files = run_cycle("run1", max_failed_fraction=0.5)
    assert summary == {"n_total": 5, "n_ok": 3, "n_failed": 2}
    assert sorted(counting.calls) == ["cu0", "cu1", "cu2", "cu3", "cu4"]
    rows = list(csv.DictReader(open(files["failures.tsv"]), delimiter="\t"))
    assert tuple(rows[0]) == FAILURE_COLUMNS
    assert [r["config_id"] for r in rows] == ["cu1", "cu3"]
    assert all(
        r["kind"] == "crash" and "injected crash" in r["reason"] and r["settings_hash"].startswith("sha256-")
        for r in rows
    )
    assert [f.info["config_id"] for f in read(files["db.extxyz"], index=":")] == ["cu0", "cu2", "cu4"]
    [cost] = csv.DictReader(open(files["cost.csv"]))
    assert cost["n_computed"] == "5" and cost["n_cached"] == "0" and float(cost["cpu_s"]) > 0

    # The cause is fixed; the whole cycle is run again (snakemake --forcerun label).
    counting.calls, counting.broken = [], set()
    summary, files = run_cycle("run2", max_failed_fraction=0.0)
    assert sorted(counting.calls) == ["cu1", "cu3"]
    assert summary["n_ok"] == 5
    assert list(csv.DictReader(open(files["failures.tsv"]), delimiter="\t")) == []
    [cost] = csv.DictReader(open(files["cost.csv"]))
    assert cost["n_computed"] == "2" and cost["n_cached"] == "3"


def test_failure_budget_still_stops_the_cycle(tmp_path, counting):
    counting.broken = {"cu0", "cu1"}
    outputs = []
    for seed in range(3):
        src, out = tmp_path / f"in{seed}.extxyz", tmp_path / f"out{seed}.extxyz"
        write(src, cu_cell(seed), format="extxyz")
        label_one(src, out, tmp_path / "raw" / str(seed), EMT_SPEC)
        outputs.append(out)
    with pytest.raises(DataError, match="failures.tsv"):
        gather_labels(
            outputs,
            tmp_path / "db.extxyz",
            tmp_path / "labels.csv",
            0.5,
            failures_path=tmp_path / "failures.tsv",
            cost_path=tmp_path / "cost.csv",
        )
    assert len(list(csv.DictReader(open(tmp_path / "failures.tsv"), delimiter="\t"))) == 2


class SleepingCalculator(Calculator):
    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        time.sleep(30)


def test_timeout_of_a_python_calculation(tmp_path):
    labeller = PotentialLabeller({"type": "sleep"}, calculator_factory=SleepingCalculator)
    start = time.perf_counter()
    record = label_with_policy(cu_cell(0), labeller, tmp_path, LabelPolicy(timeout_s=0.3))
    assert time.perf_counter() - start < 10
    assert record.info["label_status"] == "failed" and record.info["label_failure_kind"] == "timeout"
    assert "label.timeout_s=0.3" in record.info["label_error"]


@pytest.mark.needs_shared(POINTS)
def test_timeout_kills_an_external_code(tmp_path, monkeypatch):
    monkeypatch.setenv("CASTEP_COMMAND", "sh -c 'sleep 60'")
    atoms = read(POINTS / "mg_0000.cell", format="castep-cell", calculator_args={"keyword_tolerance": 3})
    start = time.perf_counter()
    record = label_with_policy(atoms, make_labeller({"code": "castep"}), tmp_path, LabelPolicy(timeout_s=0.5))
    assert time.perf_counter() - start < 20
    assert record.info["label_failure_kind"] == "timeout"


def test_unphysical_forces_are_failures(tmp_path):
    squeezed = bulk("Cu", "fcc", a=2.6, cubic=True)
    squeezed.rattle(0.2, seed=1)
    labeller = PotentialLabeller({"type": "emt"}, calculator_factory=EMT)
    record = label_with_policy(squeezed, labeller, tmp_path, LabelPolicy(limits={"max_force": 1.0}))
    assert record.info["label_failure_kind"] == "unphysical"
    assert "label.limits.max_force=1" in record.info["label_error"]
    assert "dft_energy" not in record.info
    absurd = label_with_policy(
        cu_cell(0), labeller, tmp_path / "e", LabelPolicy(limits={"max_abs_energy_per_atom": 1e-6})
    )
    assert absurd.info["label_failure_kind"] == "unphysical" and "eV/atom" in absurd.info["label_error"]
    with pytest.raises(ConfigError, match="label.limits"):
        LabelPolicy.from_config({"code": "gpaw", "limits": {"max_forces": 1}})


@pytest.mark.needs_shared(POINTS)
def test_retry_with_safer_castep_settings(tmp_path, monkeypatch):
    good = POINTS / "mg_0000.castep"
    text = good.read_text()
    position = text.rindex("Final free energy (E-TS)")
    bad = tmp_path / "unconverged.castep"
    bad.write_text(
        text[:position] + " *Warning* max. SCF cycles performed but system has not reached the "
        "groundstate.\n" + text[position:]
    )
    # A replayed CASTEP that converges only when the .param asks for 300 SCF cycles.
    script = (
        f'if grep -qi \'max_scf_cycles *: *300\' "$0.param"; then cp {shlex.quote(str(good))} "$0.castep"; '
        f'else cp {shlex.quote(str(bad))} "$0.castep"; fi'
    )
    monkeypatch.setenv("CASTEP_COMMAND", "sh -c " + shlex.quote(script))
    atoms = read(POINTS / "mg_0000.cell", format="castep-cell", calculator_args={"keyword_tolerance": 3})
    labeller = make_labeller({"code": "castep"})
    policy = LabelPolicy.from_config(
        {
            "code": "castep",
            "retry": {"castep": [{"smearing_width": 0.3}, {"max_scf_cycles": 300, "smearing_width": 0.3}]},
        }
    )
    record = label_with_policy(atoms, labeller, tmp_path / "raw", policy)
    assert record.info["label_status"] == "ok" and record.info["label_attempts"] == 3
    assert json.loads(record.info["label_settings"])["max_scf_cycles"] == 300
    assert record.info["label_requested_hash"] == labeller.settings_hash != record.info["label_settings_hash"]
    assert (tmp_path / "raw" / "retry2" / "castep.castep").is_file()
    assert "groundstate" in (tmp_path / "raw" / "label_error.txt").read_text()
    with pytest.raises(ConfigError, match="max_scf_cycle"):
        label_with_policy(atoms, labeller, tmp_path / "x", LabelPolicy(retry=[{"max_scf_cycle": 3}]))


def test_isolated_atom_energy_once_per_settings(tmp_path, counting):
    policy = {"cache_dir": str(tmp_path / "cache")}
    first = isolated_atom_energy("Cu", EMT_SPEC, tmp_path / "Cu.json", tmp_path / "raw", box=10.0, policy=policy)
    stored = json.loads((tmp_path / "Cu.json").read_text())
    assert stored == first and stored["element"] == "Cu" and stored["box"] == 10.0
    alone = Atoms("Cu", cell=[10.0] * 3, pbc=True)
    alone.calc = EMT()
    assert stored["energy"] == pytest.approx(alone.get_potential_energy(), abs=1e-9)
    assert stored["settings_hash"] == make_labeller(EMT_SPEC).settings_hash
    again = isolated_atom_energy("Cu", EMT_SPEC, tmp_path / "Cu2.json", tmp_path / "raw2", box=10.0, policy=policy)
    assert again["cached"] is True and len(counting.calls) == 1
    with pytest.raises(DataError, match="Xx"):
        isolated_atom_energy("Xx", EMT_SPEC, tmp_path / "X.json", tmp_path / "rawx")


def test_policy_from_config_and_json_round_trip():
    policy = LabelPolicy.from_config(
        {
            "code": "gpaw",
            "cache_dir": "c",
            "timeout_s": 60,
            "retry": {"gpaw": [{"maxiter": 500}], "castep": [{"max_scf_cycles": 300}]},
            "limits": {"max_force": 50.0},
        }
    )
    assert policy.retry == [{"maxiter": 500}]
    assert LabelPolicy(**json.loads(policy.to_json())) == policy
    with pytest.raises(ConfigError, match="label.retry.gpaw"):
        LabelPolicy.from_config({"code": "gpaw", "retry": {"gpaw": {"maxiter": 5}}})
    with pytest.raises(ConfigError, match="maxiterr"):
        LabelPolicy.from_config({"code": "gpaw", "retry": {"gpaw": [{"maxiterr": 5}]}})


def test_serial_gpaw_labels_only_on_rank_zero(tmp_path, monkeypatch):
    """srun -n 2 over a GPAW without MPI: rank 1 neither calculates nor writes."""
    from ase.build import bulk
    from ase.io import write

    from nestdb.label.stage import label_one

    config = tmp_path / "config.extxyz"
    write(config, bulk("Mg"), format="extxyz")
    out = tmp_path / "labelled.extxyz"
    monkeypatch.setenv("SLURM_PROCID", "1")
    spec = {
        "code": "gpaw",
        "gpaw": {"mode": {"name": "pw", "ecut": 200}, "setups": {"Mg": "2"}, "kpts": {"density": 1.0, "gamma": True}},
    }
    label_one(config, out, tmp_path / "raw", spec)
    assert not out.exists()
    assert not (tmp_path / "raw").exists()
    # The same call as rank 0 calculates and writes.
    monkeypatch.setenv("SLURM_PROCID", "0")
    labelled = label_one(config, out, tmp_path / "raw", spec)
    assert out.exists() and labelled.info["label_status"] == "ok"
