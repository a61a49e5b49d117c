"""One function per workflow stage: file paths in, file paths out.

The Snakemake scripts in ``scripts/`` only unpack ``snakemake.input``,
``params`` and ``output`` and call these, so every stage can be run and
tested without Snakemake.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
from ase import Atoms
from ase.io import read, write

from nestdb.errors import DataError

log = logging.getLogger("nestdb")


@contextlib.contextmanager
def logging_to(path: str | Path) -> Iterator[logging.Logger]:
    """Send the ``nestdb`` logger and warnings of one stage to its log file.

    Parameters
    ----------
    path
        The rule's ``log`` file; overwritten.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield log
    except Exception:
        log.exception("stage failed")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def _symbols(composition: dict[str, int]) -> list[str]:
    return [element for element, count in composition.items() for _ in range(int(count))]


def _system_name(composition: dict[str, int]) -> str:
    return "".join(f"{element.lower()}{count}" for element, count in composition.items())


# --------------------------------------------------------------------------- explore
def explore(block: dict, pressure_gpa: float, cycle: int, out_prefix: str | Path,
            model_dir: str | Path | None = None, progress_path: str | Path | None = None) -> dict:
    """Run one constant-pressure NS run of a cycle.

    Parameters
    ----------
    block
        The cycle's merged ``ns`` settings (:func:`nestdb.config.ns_block`).
    pressure_gpa
        Pressure in GPa.
    cycle
        Cycle index, used in ``config_type``.
    out_prefix
        Prefix of the pymatnest-format output files.
    model_dir
        The previous cycle's fitted model, for ``calculator: {type: ace_committee}``.
    progress_path
        File the NS progress lines are appended to (the rule's log).

    Returns
    -------
    dict
        The run summary (also written to ``<prefix>.summary.json``).
    """
    from nestdb.calculators import make_calculator
    from nestdb.config import ns_engine_settings
    from nestdb.ns import NSSettings, run_nested_sampling

    spec = dict(block["calculator"])
    if spec["type"] == "ace_committee" and "model" not in spec:
        if model_dir is None:
            raise DataError(f"cycle {cycle}: an ace_committee calculator needs the previous cycle's model")
        spec["model"] = str(model_dir)
    calculator = make_calculator(spec, base_dir=Path.cwd())
    settings = ns_engine_settings(block, pressure_gpa)
    # Independent runs: the same seed at every pressure and cycle would start
    # every run from the same random walkers.
    settings["seed"] = int(np.random.SeedSequence(
        [int(block.get("seed", 0)), int(cycle), int(round(float(pressure_gpa) * 1000))]).generate_state(1)[0])
    settings["config_type"] = f"{_system_name(block['composition'])}_P{pressure_gpa:g}GPa_c{cycle}"
    Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
    stream = open(progress_path, "a") if progress_path else None
    try:
        return run_nested_sampling(_symbols(block["composition"]), calculator,
                                   NSSettings(**settings), out_prefix, log=stream)
    finally:
        if stream:
            stream.close()


# --------------------------------------------------------------------------- analyse
def _count_samples(energies_path: str | Path) -> int:
    """Number of sample lines after the header of a ``.energies`` file."""
    with open(energies_path) as handle:
        return max(sum(1 for line in handle if line.strip()) - 1, 0)


def analyse_run(energies_path: str | Path, table_path: str | Path, temperatures_path: str | Path,
                plot_path: str | Path, grid: dict, title: str = "") -> None:
    """Thermodynamics of one run: a table over T, per-sample temperatures, a plot.

    A run the committee stopped before its first iteration has no samples:
    it gets an empty table and a plot that says so (its selection falls back
    to the final live set), instead of failing the cycle.
    """
    from nestdb.thermo import TABLE_COLUMNS, analyse, plot_analysis, read_energies, sample_temperatures

    header = ["line", "iter", "enthalpy", "volume", "temp"]
    if _count_samples(energies_path) == 0:
        log.warning("%s has no samples (run stopped before its first iteration)", energies_path)
        import pandas as pd

        pd.DataFrame(columns=list(TABLE_COLUMNS)).to_csv(table_path, index=False)
        with open(temperatures_path, "w", newline="") as handle:
            csv.writer(handle).writerow(header)
        _plot_message(plot_path, f"{title}: no NS samples (stopped before the first iteration)")
        return
    energies = read_energies(energies_path)
    temperatures = np.arange(grid["t_min"], grid["t_max"] + 0.5 * grid["t_step"], grid["t_step"])
    table = analyse(energies, temperatures)
    table.to_csv(table_path, index=False)
    sample_t = sample_temperatures(energies)
    with open(temperatures_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for line, (it, h, v, t) in enumerate(zip(energies.iters, energies.enthalpy, energies.volume, sample_t)):
            writer.writerow([line, int(it), repr(float(h)), repr(float(v)), repr(float(t))])
    plot_analysis(table, plot_path, title=title, n_atoms=energies.n_atoms)
    log.info("analysed %d samples of %s", len(energies.enthalpy), energies_path)


def _plot_message(path: str | Path, message: str) -> None:
    """A placeholder figure for the report when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_sample_temperatures(path: str | Path) -> dict[str, np.ndarray]:
    """Per-sample ``iter``, ``enthalpy`` and ``temp`` written by :func:`analyse_run`."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return {key: np.array([float(row[key]) for row in rows]) for key in ("iter", "enthalpy", "temp")}


# --------------------------------------------------------------------------- select
def select_run(traj_path: str | Path, summary_path: str | Path, temperatures_path: str | Path,
               rule: dict, cycle: int, pressure_gpa: float, weight_alpha: float,
               candidates_path: str | Path, configs_dir: str | Path, plot_path: str | Path,
               final_path: str | Path | None = None) -> list[Atoms]:
    """Apply the cycle's selection rule to one run; one file per chosen configuration.

    A run the committee stopped before its first cull has no culled samples;
    its final configuration is then the lowest-enthalpy walker of the final
    live set (``final_path``), for rules that ask for the final configuration.
    """
    from nestdb.select import frame_temperatures, select_configurations

    summary = json.loads(Path(summary_path).read_text())
    stopped_early = summary.get("stop_reason") == "committee"
    frames = read(traj_path, index=":") if Path(traj_path).stat().st_size > 0 else []
    wants_final = rule["kind"] == "final" or (stopped_early and rule.get("if_stopped_early") == "final")
    if frames:
        samples = read_sample_temperatures(temperatures_path)
        frame_t = frame_temperatures(frames, samples["iter"].astype(int), samples["enthalpy"], samples["temp"],
                                     source=str(traj_path))
    elif wants_final and final_path is not None:
        live = read(final_path, index=":")
        frames = [min(live, key=lambda atoms: atoms.info["ns_energy"])]
        # No culled sample resolves any temperature; the study's database writes -inf there.
        frame_t = np.array([-np.inf])
        log.warning("%s: no culled samples (%s after %s iterations); using the lowest-enthalpy final walker",
                    traj_path, summary.get("stop_reason"), summary.get("n_iter"))
    else:
        raise DataError(
            f"{traj_path}: the run has no culled configurations (stopped: {summary.get('stop_reason')} after "
            f"{summary.get('n_iter')} iterations), so rule {rule['kind']!r} has nothing to choose from; "
            "use `select: {kind: final}` for such runs or loosen the committee limits."
        )
    chosen = select_configurations(frames, frame_t, rule, stopped_early=stopped_early, cycle=cycle,
                                   pressure_gpa=pressure_gpa, weight_alpha=weight_alpha,
                                   source=str(traj_path))
    configs_dir = Path(configs_dir)
    configs_dir.mkdir(parents=True, exist_ok=True)
    write(candidates_path, chosen, format="extxyz")
    for atoms in chosen:
        write(configs_dir / f"{atoms.info['config_id']}.extxyz", atoms, format="extxyz")
    _plot_selection(frames, frame_t, chosen, plot_path, f"cycle {cycle}, {pressure_gpa:g} GPa")
    log.info("selected %d of %d configurations (%s; stopped early: %s)", len(chosen), len(frames),
             rule["kind"], stopped_early)
    return chosen


def _plot_selection(frames: list[Atoms], temperatures: np.ndarray, chosen: list[Atoms],
                    path: str | Path, title: str) -> None:
    """Enthalpy per atom against iteration and temperature, selected samples marked (study Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_atoms = len(frames[0])
    iters = np.array([f.info["iter"] for f in frames])
    enthalpy = np.array([f.info["ns_energy"] for f in frames]) / n_atoms
    chosen_iter = np.array([a.info["iter"] for a in chosen])
    chosen_h = np.array([a.info["enthalpy"] for a in chosen]) / n_atoms
    chosen_t = np.array([a.info["temp"] for a in chosen])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(iters, enthalpy, lw=0.8, color="0.4", label="culled samples")
    left.plot(chosen_iter, chosen_h, "o", color="C3", label="selected")
    left.set_xlabel("NS iteration")
    left.set_ylabel("H / atom (eV)")
    left.legend(fontsize=8)
    finite = np.isfinite(temperatures)
    right.plot(temperatures[finite], enthalpy[finite], ".", ms=2, color="0.4")
    right.plot(chosen_t, chosen_h, "o", color="C3")
    right.set_xscale("log")
    right.set_xlabel("sample temperature (K)")
    right.set_ylabel("H / atom (eV)")
    # The first culls of a random start (overlapping atoms) are orders of
    # magnitude above the rest: show the part of the run that matters.
    top = max(np.quantile(enthalpy, 0.9), chosen_h.max() if len(chosen_h) else -np.inf)
    bottom = enthalpy.min()
    if np.isfinite(top) and top > bottom:
        margin = 0.05 * (top - bottom)
        for axis in (left, right):
            axis.set_ylim(bottom - margin, top + margin)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- label
def mpi_rank() -> int:
    """Rank of this process under srun/mpirun (0 when not launched by MPI)."""
    import os

    for variable in ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def label_one(config_path: str | Path, out_path: str | Path, raw_dir: str | Path, spec: dict) -> Atoms:
    """Label one configuration; a failed calculation is recorded, not raised.

    Under MPI every rank runs the calculation (the DFT code parallelises
    over them) and only rank 0 writes the labelled file.
    """
    from nestdb.label import label_configuration, make_labeller

    atoms = read(config_path, format="extxyz")
    labeller = make_labeller(spec, base_dir=Path.cwd())
    Path(raw_dir).mkdir(parents=True, exist_ok=True)
    labelled = label_configuration(atoms, labeller, Path(raw_dir))
    if mpi_rank() == 0:
        write(out_path, labelled, format="extxyz")
    log.info("%s: %s %s", atoms.info.get("config_id"), labelled.info.get("label_status"),
             labelled.info.get("label_error", ""))
    return labelled


def gather_labels(paths: list[str | Path], database_path: str | Path, table_path: str | Path,
                  max_failed_fraction: float) -> dict:
    """Merge one cycle's labelled configurations; failed ones go to the table only.

    Raises
    ------
    DataError
        When more than ``max_failed_fraction`` of the configurations failed:
        the labelled files stay in place, so nothing computed is lost.
    """
    frames = [read(p, format="extxyz") for p in paths]
    ok = [f for f in frames if f.info.get("label_status") == "ok"]
    failed = [f for f in frames if f.info.get("label_status") != "ok"]
    with open(table_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["config_id", "pressure", "iter", "temp", "status", "dft_energy_per_atom",
                         "cpu_s", "error"])
        for f, path in zip(frames, paths):
            info = f.info
            energy = info.get("dft_energy")
            writer.writerow([info.get("config_id", Path(path).stem), info.get("pressure"), info.get("iter"),
                             info.get("temp"), info.get("label_status", "missing"),
                             "" if energy is None else energy / len(f), info.get("label_cpu_s", ""),
                             info.get("label_error", "")])
    n_total = len(frames)
    summary = {"n_total": n_total, "n_ok": len(ok), "n_failed": len(failed)}
    log.info("labels: %s", summary)
    if n_total == 0:
        raise DataError(f"no labelled configurations to gather for {database_path}")
    if len(failed) / n_total > max_failed_fraction:
        raise DataError(
            f"{len(failed)} of {n_total} DFT calculations failed (more than label.max_failed_fraction="
            f"{max_failed_fraction}); see {table_path} for the reasons. Fix the settings and rerun: "
            "labelled configurations are kept, only the failed ones need to be forced "
            "(snakemake --forcerun label) or removed."
        )
    write(database_path, ok, format="extxyz")
    return summary


# --------------------------------------------------------------------------- fit
def fit_cycle(training_paths: list[str | Path], settings: dict, out_dir: str | Path) -> dict:
    """Fit the committee of one cycle to all labels so far."""
    from nestdb.fit import fit_linear_ace, load_training_frames

    frames = load_training_frames(training_paths)
    return fit_linear_ace(frames, settings, out_dir, log=log)


# --------------------------------------------------------------------------- bench
def _ev_scales(bench: dict) -> np.ndarray:
    low, high = bench["ev_range"]
    return np.linspace(low, high, bench["ev_points"])


def run_benchmarks(calculator_for, bench: dict, element: str) -> tuple[list[dict], dict]:
    """E–V curves of the configured structures and one elastic tensor.

    Parameters
    ----------
    calculator_for
        Callable ``(name, atoms) -> ASE calculator``: a fresh calculator per
        benchmark (``"hcp"``, ..., ``"elastic_hcp"``) for that structure.
    bench
        The ``bench`` config block.
    element
        Chemical element of the structures.
    """
    from nestdb.bench import build_structure, elastic_constants, ev_curve

    rows = []
    for name in bench["structures"]:
        atoms = build_structure(name, element=element)
        curve = ev_curve(atoms, calculator_for(name, atoms), volume_scales=_ev_scales(bench))
        for row in curve.to_dict("records"):
            rows.append({"structure": name, **row})
    elastic_cfg = bench["elastic"]
    name = elastic_cfg["structure"]
    symmetry = "hexagonal" if name == "hcp" else "cubic"
    structure = build_structure(name, element=element)
    elastic = elastic_constants(structure, calculator_for(f"elastic_{name}", structure),
                                symmetry=symmetry, delta=elastic_cfg["delta"], n_steps=elastic_cfg["n_steps"],
                                fmax=elastic_cfg["relax_fmax"], max_steps=elastic_cfg["relax_max_steps"])
    elastic["structure"] = name
    return rows, elastic


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def _fixed_grid_gpaw(spec: dict, atoms: Atoms, kpt_density: float, directory: Path):
    """A GPAW calculator whose k-point grid stays that of ``atoms`` under strain.

    Stresses of a soft metal at 1-2 % strain are ~1 GPa, the size of the
    k-point noise of demo settings: the elastic fit needs a denser grid that
    does not change between the strained cells (measured in
    benchmarks/gpaw_elastic_settings.py).
    """
    from ase.calculators.calculator import kptdensity2monkhorstpack

    from nestdb.label import make_labeller

    size = [int(n) for n in kptdensity2monkhorstpack(atoms, kpt_density, True)]
    settings = dict(spec.get("gpaw") or {}, kpts={"size": size, "gamma": True})
    log.info("elastic reference: fixed GPAW k-point grid %s (density %s)", size, kpt_density)
    return make_labeller({"code": "gpaw", "gpaw": settings}, base_dir=Path.cwd()).calculator(directory)


def bench_reference(spec: dict, bench: dict, element: str, ev_path: str | Path,
                    elastic_path: str | Path, raw_dir: str | Path) -> None:
    """Reference side of the benchmarks with the reference labeller's calculator."""
    import pandas as pd

    from nestdb.label import make_labeller

    labeller = make_labeller(spec, base_dir=Path.cwd())
    raw_dir = Path(raw_dir)

    def calculator_for(name: str, atoms: Atoms):
        directory = raw_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        if name.startswith("elastic_") and spec["code"] == "gpaw":
            return _fixed_grid_gpaw(spec, atoms, bench["elastic"]["kpt_density"], directory)
        return labeller.calculator(directory)

    rows, elastic = run_benchmarks(calculator_for, bench, element)
    pd.DataFrame(rows).to_csv(ev_path, index=False)
    Path(elastic_path).write_text(json.dumps(_jsonable(elastic), indent=2))


def _relaxed(elastic: dict) -> bool:
    """Whether the cell and all internal relaxations of an elastic calculation converged."""
    cell = (elastic.get("relaxation") or {}).get("converged", True)
    internal = (elastic.get("internal_relaxation") or {}).get("all_converged", True)
    return bool(cell and internal)


def bench_model(model_dir: str | Path, bench: dict, element: str, reference_ev_path: str | Path,
                reference_elastic_path: str | Path, ev_path: str | Path, ev_plot_path: str | Path,
                elastic_path: str | Path, summary_path: str | Path) -> dict:
    """Model side of the benchmarks and the comparison with the reference."""
    import pandas as pd

    from nestdb.bench import fit_eos, plot_ev
    from nestdb.fit.committee import CommitteeACECalculator

    model = CommitteeACECalculator(model_dir)
    rows, elastic = run_benchmarks(lambda name, atoms: model, bench, element)
    model_ev = pd.DataFrame(rows)
    reference = pd.read_csv(reference_ev_path)
    model_ev.to_csv(ev_path, index=False)
    curves = {"model": {}, "reference": {}}
    eos = {}
    for name in bench["structures"]:
        curves["model"][name] = model_ev[model_ev.structure == name]
        curves["reference"][name] = reference[reference.structure == name]
        eos[name] = {side: _jsonable(fit_eos(curves[side][name])) for side in ("model", "reference")}
    plot_ev(curves, ev_plot_path)
    ref_elastic = json.loads(Path(reference_elastic_path).read_text())
    keys = [k for k in ref_elastic if k.startswith("C") and len(k) == 3]
    with open(elastic_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        # Unconverged relaxations are shown next to the numbers they affect.
        writer.writerow(["constant", "model_GPa", "reference_GPa", "difference_GPa",
                         "model_relaxed", "reference_relaxed"])
        for key in keys:
            writer.writerow([key, elastic[key], ref_elastic[key], elastic[key] - ref_elastic[key],
                             _relaxed(elastic), _relaxed(ref_elastic)])
    # Energy differences between structures are what matters for phase stability.
    ev_rmse = {}
    for name in bench["structures"]:
        m, r = curves["model"][name], curves["reference"][name]
        ev_rmse[name] = float(np.sqrt(np.mean((m.energy_per_atom.values - m.energy_per_atom.values.min()
                                               - (r.energy_per_atom.values - r.energy_per_atom.values.min()))
                                              ** 2)) * 1000)
    summary = {"eos": eos, "ev_shape_rmse_meV_per_atom": ev_rmse,
               "elastic_model": _jsonable(elastic), "elastic_reference": ref_elastic}
    Path(summary_path).write_text(json.dumps(summary, indent=2))
    return summary


def main_guard(function, *args, log_path: str | Path, **kwargs):
    """Run a stage with its log; used by the thin Snakemake scripts."""
    with logging_to(log_path):
        try:
            return function(*args, **kwargs)
        finally:
            sys.stdout.flush()
