"""The stage functions the Snakemake scripts call, on small real inputs."""

import csv
import json

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from nestdb.errors import DataError
from nestdb.label.stage import gather_labels, label_one
from nestdb.ns import NSSettings, run_nested_sampling
from nestdb.potentials.lj import FastLennardJones
from nestdb.select.stage import select_run
from nestdb.thermo.stage import analyse_run

GRID = {"t_min": 100, "t_max": 3000, "t_step": 50}


def labelled(tmp_path, name, spec, atoms):
    atoms.info["config_id"] = name
    source = tmp_path / f"{name}_in.extxyz"
    write(source, atoms, format="extxyz")
    out = tmp_path / f"{name}.extxyz"
    label_one(source, out, tmp_path / "raw" / name, spec)
    return out


def test_gather_keeps_good_labels_and_enforces_the_failure_budget(tmp_path):
    good = {"code": "potential", "potential": {"type": "emt"}}
    # EMT has no parameters for He: the calculation fails and must be recorded, not raised.
    paths = [
        labelled(tmp_path, "ok1", good, bulk("Cu", "fcc", a=3.6, cubic=True)),
        labelled(tmp_path, "ok2", good, bulk("Cu", "fcc", a=3.7, cubic=True)),
        labelled(tmp_path, "bad", good, bulk("He", "fcc", a=4.0)),
    ]
    assert read(paths[2]).info["label_status"] == "failed"
    database, table = tmp_path / "db.extxyz", tmp_path / "labels.csv"
    summary = gather_labels(paths, database, table, max_failed_fraction=0.5)
    assert summary == {"n_total": 3, "n_ok": 2, "n_failed": 1}
    frames = read(database, index=":")
    assert [f.info["config_id"] for f in frames] == ["ok1", "ok2"]
    rows = list(csv.DictReader(open(table)))
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"] and rows[2]["error"]
    with pytest.raises(DataError, match="max_failed_fraction"):
        gather_labels(paths, tmp_path / "db2.extxyz", tmp_path / "labels2.csv", max_failed_fraction=0.2)
    # Nothing computed is lost: the per-configuration files are still there.
    assert all(p.exists() for p in paths)


def ns_run(tmp_path, **overrides):
    values = dict(
        n_walkers=8, walk_length=8, pressure_gpa=5.0, max_iter=120, max_volume_per_atom=40.0, kemax_max_T=3000.0, seed=2
    )
    values.update(overrides)
    prefix = tmp_path / "ns"
    run_nested_sampling({"Mg": 4}, FastLennardJones(), NSSettings(**values), prefix)
    return prefix


def test_analyse_then_select_a_temperature_window(tmp_path):
    prefix = ns_run(tmp_path)
    paths = {k: tmp_path / k for k in ("thermo.csv", "temps.csv", "thermo.png")}
    analyse_run(f"{prefix}.energies", paths["thermo.csv"], paths["temps.csv"], paths["thermo.png"], GRID)
    temps = np.array([float(r["temp"]) for r in csv.DictReader(open(paths["temps.csv"]))])
    assert len(temps) == 120 and np.all(np.isfinite(temps))
    rule = {"kind": "last", "count": 3}
    chosen = select_run(
        f"{prefix}.traj.extxyz",
        f"{prefix}.summary.json",
        paths["temps.csv"],
        rule,
        0,
        5.0,
        0.0,
        tmp_path / "cand.extxyz",
        tmp_path / "configs",
        tmp_path / "sel.png",
        final_path=f"{prefix}.final.extxyz",
    )
    assert [a.info["iter"] for a in chosen] == [117, 118, 119]
    # each selected sample carries the temperature of its .energies line
    assert [a.info["temp"] for a in chosen] == pytest.approx(temps[117:120].tolist())
    assert sorted(p.stem for p in (tmp_path / "configs").iterdir()) == sorted(a.info["config_id"] for a in chosen)


def test_run_stopped_before_its_first_cull_gives_its_final_walker(tmp_path):
    prefix = ns_run(tmp_path, max_iter=1)
    # Make it look like a run the committee stopped at once: no culls at all.
    header = open(f"{prefix}.energies").readline()
    open(f"{prefix}.energies", "w").write(header)
    open(f"{prefix}.traj.extxyz", "w").close()
    summary = json.loads(open(f"{prefix}.summary.json").read())
    summary.update(stop_reason="committee", n_iter=0)
    open(f"{prefix}.summary.json", "w").write(json.dumps(summary))
    temps = tmp_path / "temps.csv"
    fig = analyse_run(f"{prefix}.energies", tmp_path / "t.csv", temps, tmp_path / "t.png", GRID, title="Mg")
    # a figure that says so (no empty C_p axes), written to the plot's path
    assert (tmp_path / "t.png").is_file()
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == ["Mg: no NS samples (stopped before the first iteration)"]
    assert not ax.lines and not ax.axison
    final = read(f"{prefix}.final.extxyz", index=":")
    chosen = select_run(
        f"{prefix}.traj.extxyz",
        f"{prefix}.summary.json",
        temps,
        {"kind": "final"},
        1,
        5.0,
        0.0,
        tmp_path / "cand.extxyz",
        tmp_path / "configs",
        tmp_path / "sel.png",
        final_path=f"{prefix}.final.extxyz",
    )
    assert len(chosen) == 1
    assert chosen[0].info["enthalpy"] == pytest.approx(min(a.info["ns_energy"] for a in final))
    with pytest.raises(DataError, match="no culled configurations"):
        select_run(
            f"{prefix}.traj.extxyz",
            f"{prefix}.summary.json",
            temps,
            {"kind": "temperature_window", "t_min": 200, "t_max": 3000, "count": 2},
            1,
            5.0,
            0.0,
            tmp_path / "c2.extxyz",
            tmp_path / "configs2",
            tmp_path / "s2.png",
            final_path=f"{prefix}.final.extxyz",
        )
