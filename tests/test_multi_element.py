"""Campaigns of any element and of several: compositions, per-element labelling data, E0, multi-element fits."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.io import write

from nestdb.config import (
    DEFAULT_SWAP_FRACTION,
    check_config,
    composition_dirs,
    composition_tag,
    cycle_runs,
    ns_block,
    run_compositions,
)
from nestdb.errors import ConfigError, DataError
from nestdb.label.elements import check_label_elements, gpaw_setup_file


def _load(repo, name: str, **changes) -> dict:
    """A shipped config with the schema's defaults, top-level keys replaced by ``changes``."""
    from snakemake.utils import validate

    data = yaml.safe_load((repo / "config" / name).read_text())
    data.update(changes)
    validate(data, str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    return data


@pytest.fixture
def alloy(repo):
    return _load(repo, "alloy.yaml")


# ---------------------------------------------------------------- compositions and runs
def test_alloy_runs_one_folder_per_composition(alloy):
    check_config(alloy)
    assert [composition_tag(c, alloy["elements"]) for c in run_compositions(alloy, 0)] == [
        "Cu4",
        "Cu3Au1",
        "Cu2Au2",
        "Cu1Au3",
        "Au4",
    ]
    assert cycle_runs(alloy, 1)[:2] == [("Cu4/", "0"), ("Cu3Au1/", "0")]
    block = ns_block(alloy, 0, "Cu3Au1/")
    assert block["composition"] == {"Cu": 3, "Au": 1}
    assert block["move_fractions"]["swap"] == DEFAULT_SWAP_FRACTION  # alloys swap by default
    assert "swap" not in ns_block(alloy, 0, "Cu4/")["move_fractions"]  # a pure run cannot
    assert ns_block(alloy, 1, {"Au": 4})["calculator"] == {"type": "ace_committee"}
    with pytest.raises(ConfigError, match="no composition 'Cu5'"):
        ns_block(alloy, 0, "Cu5/")


def test_one_composition_keeps_the_single_element_paths(repo):
    config = _load(repo, "cu.yaml")
    check_config(config)
    assert composition_dirs(config, 0) == [""] and cycle_runs(config, 0) == [("", "0"), ("", "10")]
    assert ns_block(config, 0)["composition"] == {"Cu": 4}


def test_explicit_swap_fraction_is_kept(alloy):
    alloy["ns"]["move_fractions"] = {"md": 0.3, "volume": 0.3, "shear": 0.2, "stretch": 0.2, "swap": 0.0}
    assert ns_block(alloy, 0, "Cu2Au2/")["move_fractions"]["swap"] == 0.0
    alloy["ns"]["move_fractions"]["swap"] = 0.2  # one list for all runs: the pure ones drop it
    assert ns_block(alloy, 0, "Cu2Au2/")["move_fractions"]["swap"] == 0.2
    assert "swap" not in ns_block(alloy, 0, "Au4/")["move_fractions"]
    check_config(alloy)


@pytest.mark.parametrize(
    "composition, elements, message",
    [
        ([{"Cu": 2, "Ag": 2}], ["Cu", "Au"], r"\['Ag'\] not listed in `elements`"),
        ([{"Cu": 4}], ["Cu", "Au"], r"`elements` lists \['Au'\], which no ns.composition"),
        ([{"Cu": 4}, {"Au": 4}, {"Cu": 4}], ["Cu", "Au"], "the same composition twice"),
    ],
)
def test_compositions_and_elements_must_match(alloy, composition, elements, message):
    alloy["ns"]["composition"] = composition
    alloy["elements"] = elements
    alloy["fit"]["reference_energies"] = {e: 0.0 for e in set(elements) | {"Ag"}}
    alloy["label"]["gpaw"]["setups"] = None
    with pytest.raises(ConfigError, match=message):
        check_config(alloy)


# ---------------------------------------------------------------- per-element labelling data
def test_missing_gpaw_setup_is_named(alloy):
    alloy["label"]["gpaw"]["setups"] = {"Cu": "paw", "Au": "7"}
    with pytest.raises(ConfigError, match=r"label.gpaw.setups: GPAW has no PAW setup for Au \('7' setup for PBE\)"):
        check_config(alloy)
    from gpaw import setup_paths

    assert gpaw_setup_file("Mg", "2", "PBE", setup_paths).name == "Mg.2.PBE.gz"
    assert gpaw_setup_file("Au", "paw", "PBEsol", setup_paths).name == "Au.PBE.gz"  # GGAs use PBE setups


def test_pseudopotentials_and_potentials_cover_every_element():
    with pytest.raises(ConfigError, match=r"label.espresso.pseudopotentials has no entry for \['Au'\]"):
        check_label_elements({"code": "espresso", "espresso": {"pseudopotentials": {"Cu": "Cu.UPF"}}}, ["Cu", "Au"])
    with pytest.raises(ConfigError, match=r"label.castep.pseudopotentials has no entry for \['Au'\]"):
        check_label_elements({"code": "castep", "castep": {"pseudopotentials": {"Cu": "Cu_00PBE.usp"}}}, ["Cu", "Au"])
    check_label_elements({"code": "castep", "castep": {}}, ["Cu", "Au"])  # CASTEP generates its own
    with pytest.raises(ConfigError, match=r"EMT has no parameters for \['Mg'\]"):
        check_label_elements({"code": "potential", "potential": {"type": "emt"}}, ["Cu", "Mg"])


def test_vasp_potcars_checked_where_the_folder_is_known(tmp_path, monkeypatch):
    (tmp_path / "potpaw_PBE" / "Cu").mkdir(parents=True)
    (tmp_path / "potpaw_PBE" / "Cu" / "POTCAR").write_text("PAW_PBE Cu\n")
    monkeypatch.setenv("VASP_PP_PATH", str(tmp_path))
    check_label_elements({"code": "vasp", "vasp": {}}, ["Cu"])
    with pytest.raises(ConfigError, match=r"no POTCAR for \['Au_pv'\]"):
        check_label_elements({"code": "vasp", "vasp": {"setups": {"Au": "_pv"}}}, ["Cu", "Au"])


def test_emt_explorer_must_know_the_compositions(repo):
    config = _load(repo, "config.yaml")
    config["cycles"][0]["ns"]["calculator"] = {"type": "emt"}
    with pytest.raises(ConfigError, match=r"cycles\[0\].ns.calculator: ASE's EMT has no parameters for \['Mg'\]"):
        check_config(config)


@pytest.mark.gpaw
def test_per_element_gpaw_setups_reach_the_calculation(tmp_path):
    pytest.importorskip("gpaw")
    from nestdb.label import make_labeller
    from nestdb.label.core import label_configuration

    cell = Atoms("MgAl", cell=[3.2] * 3, pbc=True, scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]])
    base = {"mode": {"name": "pw", "ecut": 200}, "kpts": {"size": [2, 2, 2], "gamma": True}}
    for setups, valence, files in (
        ({"Mg": "2"}, 5, ("Mg.2.PBE.gz", "Al.PBE.gz")),
        ({"Mg": "paw", "Al": "paw"}, 13, ("Mg.PBE.gz", "Al.PBE.gz")),
    ):
        folder = tmp_path / str(valence)
        labelled = label_configuration(
            cell, make_labeller({"code": "gpaw", "gpaw": {**base, "setups": setups}}), folder
        )
        assert labelled.info["label_status"] == "ok", labelled.info.get("label_error")
        text = (folder / "gpaw.txt").read_text()
        assert f"Valence electrons: {valence}.0" in text
        assert all(f"/{name}" in text for name in files)


# ---------------------------------------------------------------- E0 and the multi-element fit
def _emt_alloy_frames(n: int, seed: int, workdir) -> list[Atoms]:
    """4-atom fcc cells of random Cu-Au compositions, strained and rattled, labelled by EMT through the labeller."""
    from nestdb.label import make_labeller
    from nestdb.label.core import label_configuration

    labeller = make_labeller({"code": "potential", "potential": {"type": "emt"}})
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.9, cubic=True)
        atoms.numbers = np.where(rng.random(4) < (i % 5) / 4, 79, 29)
        atoms.set_cell(
            atoms.cell @ (np.eye(3) * rng.uniform(0.95, 1.05) + rng.normal(0, 0.01, (3, 3))), scale_atoms=True
        )
        atoms.positions += rng.normal(0, 0.06, atoms.positions.shape)
        atoms.info.update(config_id=f"c0_P0_i{i:06d}", cycle=0, pressure=0.0, config_type="emt_alloy")
        frames.append(label_configuration(atoms, labeller, workdir))
    return frames


def test_isolated_atom_reference_energies(tmp_path):
    from nestdb.fit.settings import resolve_reference_energies, validate_fit_settings
    from nestdb.label.stage import isolated_atom_energy

    spec = {"code": "potential", "potential": {"type": "emt"}}
    paths = [tmp_path / f"{e}.json" for e in ("Cu", "Au")]
    for element, path in zip(("Cu", "Au"), paths, strict=True):
        isolated_atom_energy(element, spec, path, tmp_path / "raw" / element, box=8.0, policy={"cache_dir": None})
    settings = {"elements": ["Cu", "Au"], "reference_energies": {"Cu": "isolated_atom", "Au": -1.0}}
    resolved = resolve_reference_energies(settings, paths)
    emt_cu = Atoms("Cu", cell=[8.0] * 3, pbc=True)
    emt_cu.calc = __import__("ase.calculators.emt", fromlist=["EMT"]).EMT()
    assert resolved["reference_energies"] == {"Cu": pytest.approx(emt_cu.get_potential_energy()), "Au": -1.0}
    with pytest.raises(ConfigError, match="fit.reference_energies.Cu is 'isolated_atom'"):
        validate_fit_settings(settings)
    with pytest.raises(ConfigError, match=r"no isolated-atom energy of Cu"):
        resolve_reference_energies(settings, paths[1:])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="bad.json"):
        resolve_reference_energies(settings, [tmp_path / "bad.json"])


def test_two_element_committee_fit_on_emt_labels(tmp_path):
    from nestdb.fit.stage import fit_cycle
    from nestdb.label.stage import isolated_atom_energy
    from nestdb.models.ace_committee import CommitteeACECalculator

    frames = _emt_alloy_frames(30, seed=1, workdir=tmp_path / "labels")
    assert {frozenset(a.get_chemical_symbols()) for a in frames} >= {
        frozenset(["Cu"]),
        frozenset(["Au"]),
        frozenset(["Cu", "Au"]),
    }
    write(tmp_path / "labelled.extxyz", frames[:24], format="extxyz")
    spec = {"code": "potential", "potential": {"type": "emt"}}
    e0 = [tmp_path / "e0" / f"{e}.json" for e in ("Cu", "Au")]
    for element, path in zip(("Cu", "Au"), e0, strict=True):
        path.parent.mkdir(exist_ok=True)
        isolated_atom_energy(element, spec, path, tmp_path / "raw" / element, box=8.0, policy={"cache_dir": None})
    settings = {
        "elements": ["Cu", "Au"],
        "reference_energies": {"Cu": "isolated_atom", "Au": "isolated_atom"},
        "cutoff": 4.5,
        "nradmax_by_orders": [6, 3],
        "lmax_by_orders": [0, 2],
        "committee_size": 4,
        "test_fraction": 0.0,
        "calibration_fraction": 0.0,
    }
    fit_cycle([tmp_path / "labelled.extxyz"], settings, tmp_path / "model", e0_paths=e0)
    model = json.loads((tmp_path / "model" / "model.json").read_text())
    assert model["elements"] == ["Au", "Cu"]
    assert model["reference_energies"] == {
        e: pytest.approx(json.loads(p.read_text())["energy"]) for e, p in zip(("Cu", "Au"), e0, strict=True)
    }
    calc = CommitteeACECalculator(tmp_path / "model")
    errors = []
    for atoms in frames[24:]:  # not trained on
        copy = atoms.copy()
        copy.calc = calc
        errors.append(copy.get_potential_energy() / len(copy) - atoms.info["dft_energy"] / len(atoms))
    # EMT energies of these cells spread over ~0.5 eV/atom; the fit resolves them to tens of meV
    spread = np.ptp([a.info["dft_energy"] / len(a) for a in frames])
    assert spread > 0.2 and np.sqrt(np.mean(np.square(errors))) < 0.1 * spread
    # species matter: Cu and Au on the same positions get different energies
    swapped = frames[0].copy()
    swapped.set_chemical_symbols(["Au" if s == "Cu" else "Cu" for s in swapped.get_chemical_symbols()])
    original = frames[0].copy()
    for atoms in (swapped, original):
        atoms.calc = calc
    assert abs(swapped.get_potential_energy() - original.get_potential_energy()) > 0.05


def test_pacemaker_input_for_two_elements(tmp_path):
    from nestdb.fit.pacemaker import prepare_committee

    frames = _emt_alloy_frames(10, seed=2, workdir=tmp_path / "labels")
    settings = {
        "elements": ["Cu", "Au"],
        "reference_energies": {"Cu": -0.1, "Au": -0.2},
        "test_fraction": 0.2,
        "nradmax_by_orders": [4, 2],
        "lmax_by_orders": [0, 1],
        "pacemaker": {"committee_size": 2},
    }
    folders = prepare_committee(frames, settings, tmp_path)
    config = yaml.safe_load((folders[0] / "input.yaml").read_text())
    assert config["potential"]["elements"] == ["Au", "Cu"]
    assert config["data"]["reference_energy"] == {"Au": -0.2, "Cu": -0.1, "shift": 0.0}
    train = pd.read_pickle(folders[0] / "train.pckl.gzip", compression="gzip")
    species = {s for atoms in train["ase_atoms"] for s in atoms.get_chemical_symbols()}
    assert species == {"Cu", "Au"}
