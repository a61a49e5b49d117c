"""The workflow on a campaign of another element and on alloys: dry runs of the shipped configs, bad input
named before any job, and a tiny Cu-Au campaign end to end (real NS, EMT labels, real two-element pyace fit,
formation energies and hull, short-range order, mixing enthalpy, report)."""

import json
import re

import pandas as pd
import pytest
import yaml
from test_workflow import job_counts

from conftest import REPO, snakemake

ALLOY_FAST = REPO / "tests" / "data" / "alloy_fast.yaml"


def _dry_run(tmp_path, config_path):
    # --directory: the campaign is exactly the given file (no config/config.yaml there to merge with)
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_dry_run_copper_lists_only_copper(tmp_path):
    output = _dry_run(tmp_path, REPO / "config" / "cu.yaml")
    counts = job_counts(output)
    assert counts["ns"] == 4 and counts["label_isolated_atom"] == 1 and counts["fit"] == 2
    assert re.findall(r"wildcards: element=(\w+)", output) == ["Cu"]
    assert "results/ns/cycle0/P10GPa/ns.energies" in output  # one composition: the single-element paths
    assert "Mg" not in output


def test_dry_run_alloy_lists_its_compositions_and_elements(tmp_path):
    output = _dry_run(tmp_path, REPO / "config" / "alloy.yaml")
    counts = job_counts(output)
    assert counts["ns"] == 2 * 5 and counts["select"] == 2 * 5
    assert counts["bench_sro"] == 2 * 3 and counts["bench_mixing"] == 2
    assert counts["bench_property_reference"] == 1 and counts["bench_property"] == 2  # the alloy hull only
    assert sorted(re.findall(r"wildcards: element=(\w+)", output)) == ["Au", "Cu"]
    for tag in ("Cu4", "Cu3Au1", "Cu2Au2", "Cu1Au3", "Au4"):
        assert f"results/ns/cycle0/{tag}/P0GPa/ns.energies" in output
    assert "results/bench/cycle1/alloy.json" in output
    assert "Mg" not in output


def test_dry_run_alloy_cluster(tmp_path):
    config = yaml.safe_load((REPO / "config" / "alloy-cluster.yaml").read_text())
    output = _dry_run(tmp_path, REPO / "config" / "alloy-cluster.yaml")
    counts = job_counts(output)
    n_runs = len(config["ns"]["composition"]) * len(config["pressures"])
    assert counts["ns"] == len(config["cycles"]) * n_runs
    assert counts["fit"] == len(config["cycles"]) and counts["label_isolated_atom"] == 2
    assert sorted(set(re.findall(r"wildcards: element=(\w+)", output))) == ["Au", "Cu"]
    assert "Mg" not in output


def test_dry_run_ternary(tmp_path):
    config = yaml.safe_load((REPO / "config" / "alloy.yaml").read_text())
    config["elements"] = ["Cu", "Ag", "Au"]
    config["ns"]["composition"] = [{"Cu": 4}, {"Ag": 4}, {"Au": 4}, {"Cu": 2, "Ag": 1, "Au": 1}]
    config["label"]["gpaw"]["setups"] = None
    config["fit"]["reference_energies"] = {"Cu": "isolated_atom", "Ag": "isolated_atom", "Au": "isolated_atom"}
    path = tmp_path / "ternary.yaml"
    path.write_text(yaml.safe_dump(config))
    output = _dry_run(tmp_path, path)
    assert sorted(re.findall(r"wildcards: element=(\w+)", output)) == ["Ag", "Au", "Cu"]
    assert "results/ns/cycle0/Cu2Ag1Au1/P0GPa/ns.energies" in output
    assert job_counts(output)["bench_sro"] == 2 and job_counts(output)["bench_mixing"] == 2


def _bad_alloy(tmp_path, **changes):
    config = yaml.safe_load((REPO / "config" / "alloy.yaml").read_text())
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            config[section][name] = value
        else:
            config[section] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(path))
    assert result.returncode != 0
    assert not (tmp_path / "results").exists()  # stopped before any job
    return result.stdout + result.stderr


def test_composition_outside_elements_is_named_before_any_job(tmp_path):
    output = _bad_alloy(tmp_path, elements=["Cu"], **{"fit.reference_energies": {"Cu": 0.0}})
    assert "['Au'] not listed in `elements`" in output


def test_element_in_no_composition_is_named_before_any_job(tmp_path):
    output = _bad_alloy(
        tmp_path, elements=["Cu", "Au", "Ag"], **{"fit.reference_energies": {"Cu": 0.0, "Au": 0.0, "Ag": 0.0}}
    )
    assert "`elements` lists ['Ag'], which no ns.composition" in output


def test_element_without_gpaw_setup_is_named_before_any_job(tmp_path):
    label = yaml.safe_load((REPO / "config" / "alloy.yaml").read_text())["label"]
    label["gpaw"]["setups"] = {"Cu": "paw", "Au": "7"}
    output = _bad_alloy(tmp_path, label=label)
    assert "GPAW has no PAW setup for Au ('7' setup for PBE)" in output


@pytest.fixture(scope="module")
def alloy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("alloy")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(ALLOY_FAST))
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"alloy workflow failed:\n{result.stderr[-6000:]}\n{logs}")
    return workdir


@pytest.mark.slow
def test_alloy_run_samples_labels_and_fits_every_composition(alloy_run):
    from ase.io import read

    labelled = read(alloy_run / "results/label/cycle1/labelled.extxyz", index=":")
    assert {a.get_chemical_formula() for a in labelled} == {"Cu3", "Au2Cu2", "Au3"}
    ids = [a.info["config_id"] for a in labelled]
    assert len(set(ids)) == len(ids) and all(i.split("_")[0] in ("Cu3", "Cu2Au2", "Au3") for i in ids)
    # the mixed composition swapped atoms; the pure ones could not
    assert "swap=" in (alloy_run / "logs/ns/cycle0_Cu2Au2/P0GPa.log").read_text()
    assert "swap=" not in (alloy_run / "logs/ns/cycle0_Cu3/P0GPa.log").read_text()
    model = json.loads((alloy_run / "results/fit/cycle1/model.json").read_text())
    e0 = {e: json.loads((alloy_run / f"results/label/e0/{e}.json").read_text())["energy"] for e in ("Cu", "Au")}
    assert model["elements"] == ["Au", "Cu"] and model["reference_energies"] == pytest.approx(e0)


@pytest.mark.slow
def test_alloy_run_hull_formation_energies_and_report(alloy_run):
    table = pd.read_csv(alloy_run / "results/bench/cycle1/alloy.csv")
    assert set(table.name) == {"Cu_fcc", "Au_fcc", "Cu3Au_L1_2", "CuAu3_L1_2", "CuAu_L1_0", "CuAu_B2"}
    reference = json.loads((alloy_run / "results/bench/reference/alloy.json").read_text())
    ref = pd.DataFrame(reference["table"]).set_index("name")
    # the reference (EMT here) formation energy from its own relaxed energies per atom
    mu = {e: ref.loc[f"{e}_fcc", "energy_per_atom"] for e in ("Cu", "Au")}
    expected = ref.loc["Cu3Au_L1_2", "energy_per_atom"] - 0.75 * mu["Cu"] - 0.25 * mu["Au"]
    assert ref.loc["Cu3Au_L1_2", "formation_energy"] == pytest.approx(expected)
    row = table.set_index("name").loc["Cu3Au_L1_2"]
    error = 1000 * (row.formation_energy_model - row.formation_energy_reference)
    assert row.formation_error_meV == pytest.approx(error)
    result = json.loads((alloy_run / "results/bench/cycle1/alloy.json").read_text())
    assert set(result["comparison"]["errors_meV_per_atom"]) == set(table.name)
    sro = pd.read_csv(alloy_run / "results/bench/cycle0/sro/Cu2Au2/P0GPa/sro.csv")
    assert "alpha_Cu-Au" in sro and sro["alpha_Cu-Au"].between(-1, 1).all()
    mixing = pd.read_csv(alloy_run / "results/bench/cycle0/mixing/P0GPa/mixing.csv")
    assert set(mixing.composition) == {"Cu3", "Cu2Au2", "Au3"}
    report = alloy_run / "results" / "report.html"
    result = snakemake(alloy_run, "--cores", "1", "--configfile", str(ALLOY_FAST), "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "alloy.png" in html and "mixing.png" in html and "sro.png" in html
