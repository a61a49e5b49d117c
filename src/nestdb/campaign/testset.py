"""An independent test set made by the oracle itself, never used for training.

Nested sampling with the oracle (the campaign's ``label.code: potential``)
at the campaign's pressures and intermediate ones, with seeds no campaign run
uses (one per pressure, from ``seeds``), gives configurations from the
crystal to the dilute gas; samples are taken equally spaced in iteration
between ``t_min`` and ``t_max`` (8000 K: the widest window the study labels;
the first culls above it are the random initial walkers). Strained
and rattled hcp/fcc/bcc crystals at the oracle's density of each pressure are
added. Every configuration is labelled with the oracle (``dft_energy``,
``dft_forces``, ``dft_virial`` as the labelled databases) and classed:

* ``crystal``: Steinhardt order parameters say fcc, hcp or bcc (:mod:`nestdb.structures.steinhardt`);
* ``dilute``: disordered with a volume per atom above ``dilute_factor`` times
  the oracle's fcc volume at that pressure (the gas and the expanding fluid),
  or hotter than ``liquid_t_max`` (the supercritical fluid);
* ``liquid``: the other disordered configurations;

with ``temp`` (K; 0 for the strained crystals) for the temperature split.
Cost: one oracle NS run per pressure and seed (16 Mg atoms with the EAM,
K = 48, L = 24: ~20-30 s each on one core), the rest is negligible.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write
from ase.units import GPa

from nestdb.explore.md import seed_crystal
from nestdb.explore.random_crystals import perturbed_copy
from nestdb.explore.volume import model_volume_per_atom
from nestdb.models.calculators import make_calculator
from nestdb.ns import NSSettings, output_paths, run_nested_sampling
from nestdb.select import frame_temperatures, select_configurations
from nestdb.structures.steinhardt import order_parameters
from nestdb.thermo import read_energies, sample_temperatures

log = logging.getLogger(__name__)

#: Phase classes of the test configurations.
PHASE_CLASSES = ("crystal", "liquid", "dilute")
#: Temperature bins (K) of the test set's temperature split; strained crystals have T = 0.
TEMPERATURE_BINS = (0.0, 1000.0, 2000.0, np.inf)

DEFAULT_TEST_SET = {
    "pressures": [0, 7.5, 15, 22.5, 30, 37.5, 45],
    "seeds": [1001],
    "n_walkers": 48,
    "walk_length": 24,
    "samples_per_run": 40,
    "t_min": 150.0,
    "t_max": 8000.0,
    "liquid_t_max": 4000.0,
    "crystals": ["hcp", "fcc", "bcc"],
    "strained_per_crystal": 3,
    "strain": 0.03,
    "rattle": 0.05,
    "dilute_factor": 1.4,
}


def temperature_bin(temperature: float) -> str:
    """Label of the temperature bin of a configuration (``0 K`` for the strained crystals)."""
    if temperature <= 0:
        return "0 K (strained crystal)"
    for low, high in zip(TEMPERATURE_BINS[:-1], TEMPERATURE_BINS[1:], strict=True):
        if low < temperature <= high:
            return f"{low:.0f}-{high:.0f} K" if np.isfinite(high) else f"> {low:.0f} K"
    return f"> {TEMPERATURE_BINS[-2]:.0f} K"


def oracle_label(frames: list[Atoms], calculator) -> list[Atoms]:
    """Label copies of ``frames`` with the oracle: ``dft_energy``, ``dft_forces``, ``dft_virial``, ``dft_stress``."""
    labelled = []
    for frame in frames:
        atoms = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
        atoms.info.update({k: v for k, v in frame.info.items() if not isinstance(v, np.ndarray)})
        atoms.calc = calculator
        energy = float(atoms.get_potential_energy())
        forces = atoms.get_forces().copy()
        stress = atoms.get_stress(voigt=False)
        atoms.calc = None
        atoms.info.update(
            dft_energy=energy,
            dft_virial=(-stress * atoms.get_volume()).reshape(9).tolist(),
            dft_stress=(stress / GPa).reshape(9).tolist(),
            label_status="ok",
            label_code="potential",
        )
        atoms.arrays["dft_forces"] = forces
        labelled.append(atoms)
    return labelled


def classify(atoms: Atoms, reference_volume: float, dilute_factor: float, liquid_t_max: float = 4000.0) -> str:
    """``crystal``, ``liquid`` or ``dilute`` from the order parameters, the volume per atom and ``temp``."""
    order = order_parameters(atoms)
    atoms.info.update(order)
    if order["phase"] != "liquid":
        return "crystal"
    if atoms.get_volume() / len(atoms) > dilute_factor * reference_volume:
        return "dilute"
    if float(atoms.info.get("temp", 0.0)) > liquid_t_max:
        return "dilute"
    return "liquid"


def _ns_samples(
    oracle_spec: dict,
    composition: dict[str, int],
    pressure: float,
    seed: int,
    settings: dict,
    ns_defaults: dict,
    workdir: Path,
) -> list[Atoms]:
    """Samples of one oracle NS run, equally spaced in iteration above ``t_min``."""
    values = {k: v for k, v in ns_defaults.items() if k in NSSettings.__dataclass_fields__}
    values.update(
        n_walkers=int(settings["n_walkers"]),
        walk_length=int(settings["walk_length"]),
        pressure_gpa=float(pressure),
        seed=int(seed),
        snapshot_seconds=None,
        committee_std_max=None,
        committee_stop_std=None,
        n_procs=1,
        n_cull=1,
    )
    prefix = workdir / f"oracle_P{pressure:g}_seed{seed}"
    run_nested_sampling(composition, make_calculator(oracle_spec, base_dir=Path.cwd()), NSSettings(**values), prefix)
    paths = output_paths(prefix)
    energies = read_energies(paths["energies"])
    frames = read(paths["traj"], index=":")
    temps = frame_temperatures(frames, energies.iters, energies.enthalpy, sample_temperatures(energies))
    rule = {
        "kind": "temperature_window",
        "t_min": float(settings["t_min"]),
        "t_max": float(settings["t_max"]),
        "count": int(settings["samples_per_run"]),
    }
    return select_configurations(
        frames,
        temps,
        rule,
        stopped_early=False,
        cycle=-1,
        pressure_gpa=float(pressure),
        source=f"test_P{pressure:g}_seed{seed}",
    )


def make_test_set(
    oracle_spec: dict,
    composition: dict[str, int],
    settings: dict,
    ns_defaults: dict,
    out_path: str | Path,
    workdir: str | Path | None = None,
) -> list[Atoms]:
    """Build, label and class the oracle's test set; write it as extended XYZ.

    Parameters
    ----------
    oracle_spec
        The oracle's calculator spec (``label.potential``).
    composition
        Atoms per NS cell (the campaign's ``ns.composition``).
    settings
        :data:`DEFAULT_TEST_SET` keys (pressures, seeds, NS size, samples per
        run, strained crystals, ``dilute_factor``).
    ns_defaults
        The campaign's ``ns`` block (prior, moves, aspect ratio, ...);
        walkers, walk length, seed and pressure come from ``settings``.
    out_path
        The test set (info ``phase_class``, ``temp``, ``pressure``,
        ``test_source`` = ``ns`` or ``strained_crystal``, order parameters).
    workdir
        Where the NS runs go (default: beside ``out_path``).

    Returns
    -------
    list of Atoms
    """
    settings = {**DEFAULT_TEST_SET, **(settings or {})}
    out_path = Path(out_path)
    workdir = Path(workdir) if workdir else out_path.parent / "test_set_runs"
    workdir.mkdir(parents=True, exist_ok=True)
    oracle = make_calculator(oracle_spec, base_dir=Path.cwd())
    element = next(iter(composition))
    n_atoms = int(sum(composition.values()))
    bounds = (float(ns_defaults.get("min_volume_per_atom", 1.0)), float(ns_defaults.get("max_volume_per_atom", 60.0)))
    rng = np.random.default_rng(int(settings["seeds"][0]))
    frames: list[Atoms] = []
    for pressure in settings["pressures"]:
        pressure = float(pressure)
        reference_volume = model_volume_per_atom(oracle, element, pressure, bounds)
        batch = []
        for seed in settings["seeds"]:
            # one seed per pressure: the same seed everywhere would start every run from the same walkers
            run_seed = int(np.random.SeedSequence([int(seed), int(round(pressure * 1000))]).generate_state(1)[0])
            for atoms in _ns_samples(oracle_spec, composition, pressure, run_seed, settings, ns_defaults, workdir):
                atoms.info["test_source"] = "ns"
                batch.append(atoms)
        for name in settings["crystals"]:
            crystal = seed_crystal(name, element, n_atoms, reference_volume)
            for k in range(int(settings["strained_per_crystal"])):
                atoms = perturbed_copy(crystal, float(settings["rattle"]), float(settings["strain"]), rng)
                atoms.info.update(
                    test_source="strained_crystal",
                    crystal=name,
                    temp=0.0,
                    pressure=pressure,
                    config_id=f"test_P{pressure:g}_{name}{k}",
                )
                batch.append(atoms)
        for atoms in batch:
            atoms.info["phase_class"] = classify(
                atoms, reference_volume, float(settings["dilute_factor"]), float(settings["liquid_t_max"])
            )
            atoms.info["reference_volume_per_atom"] = reference_volume
            atoms.info["t_bin"] = temperature_bin(float(atoms.info.get("temp", 0.0)))
        frames += oracle_label(batch, oracle)
        log.info("test set at %g GPa: %d configurations", pressure, len(batch))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write(out_path, frames, format="extxyz")
    return frames
