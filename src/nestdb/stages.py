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
        The rule's ``log`` file; emptied first, then only appended to
        (O_APPEND), so other writers of the same file, such as the NS progress
        lines, never overwrite the log's records or the other way round.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    open(path, "w").close()
    handler = logging.FileHandler(path, mode="a")
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
            model_dir: str | Path | None = None, progress_path: str | Path | None = None,
            resume: bool = False, work_dir: str | Path | None = None) -> dict:
    """Run one constant-pressure NS run of a cycle.

    Parameters
    ----------
    block
        The cycle's merged ``ns`` settings (:func:`nestdb.config.ns_block`);
        ``engine: pymatnest`` runs pymatnest's ``ns_run`` instead of ours.
    pressure_gpa
        Pressure in GPa.
    cycle
        Cycle index, used in ``config_type`` and the seed.
    out_prefix
        Prefix of the pymatnest-format output files.
    model_dir
        The previous cycle's fitted model folder, for ``calculator: {type: ace_committee}``
        (linear) or ``{type: pacemaker_committee}`` (its ``pacemaker/`` folder).
    progress_path
        File the NS progress lines are appended to (the rule's log).
    resume
        Continue from the restart snapshot if there is one; ConfigError if
        it was made with other settings, atoms, calculator or model files
        (their sha256), naming what changed and what to delete.
    work_dir
        Run in this folder (snapshot and partial files) and move the four
        outputs to ``out_prefix`` only at the end, so that a killed job
        leaves no partial outputs but a snapshot that its rerun resumes.

    Returns
    -------
    dict
        The run summary (also written to ``<prefix>.summary.json``).
    """
    from nestdb.calculators import make_calculator
    from nestdb.config import ns_engine_settings
    from nestdb.ns import NSSettings, run_nested_sampling
    from nestdb.ns.restart import model_fingerprint, publish_outputs

    settings = ns_engine_settings(block, pressure_gpa)
    # Independent runs: the same seed at every pressure and cycle would start
    # every run from the same random walkers.
    settings["seed"] = int(np.random.SeedSequence(
        [int(block.get("seed", 0)), int(cycle), int(round(float(pressure_gpa) * 1000))]).generate_state(1)[0])
    settings["config_type"] = f"{_system_name(block['composition'])}_P{pressure_gpa:g}GPa_c{cycle}"
    run_prefix = Path(work_dir) / Path(out_prefix).name if work_dir else Path(out_prefix)
    run_prefix.parent.mkdir(parents=True, exist_ok=True)
    spec = dict(block["calculator"])
    if spec["type"] in ("ace_committee", "pacemaker_committee") and "model" not in spec:
        if model_dir is None:
            raise DataError(f"cycle {cycle}: a {spec['type']} calculator needs the previous cycle's model")
        spec["model"] = str(model_dir)
    if block.get("engine", "nestdb") == "pymatnest":
        from nestdb.ns.pymatnest import run_pymatnest

        summary = run_pymatnest(dict(block, calculator=spec), NSSettings(**settings), run_prefix,
                                log_path=progress_path, resume=resume)
    else:
        calculator = make_calculator(spec, base_dir=Path.cwd())
        # what a restart snapshot must match: the spec and the sha256 of the files it reads
        model = model_fingerprint(spec, base_dir=Path.cwd())
        with open(progress_path, "a") if progress_path else contextlib.nullcontext() as stream:
            summary = run_nested_sampling(_symbols(block["composition"]), calculator, NSSettings(**settings),
                                          run_prefix, log=stream, resume=resume, model=model)
    if work_dir:
        publish_outputs(run_prefix, out_prefix)
    return summary


# --------------------------------------------------------------------------- analyse
def analyse_run(energies_path: str | Path, table_path: str | Path, temperatures_path: str | Path,
                plot_path: str | Path, grid: dict, title: str = "",
                transitions_path: str | Path | None = None) -> None:
    """Thermodynamics of one run: a table over T, per-sample temperatures, a plot.

    ``grid`` is the ``analyse`` config block (``t_min``, ``t_max``,
    ``t_step``; optional ``bootstrap``: number of redrawn NS processes for
    C_p/<V> error bands, 0 for none). C_p peaks (:func:`nestdb.thermo.detect_transitions`)
    are marked on the plot and, with ``transitions_path``, written as CSV.
    A run the committee stopped before its first iteration has no samples:
    it gets an empty table and a plot that says so (its selection falls back
    to the final live set), instead of failing the cycle.
    """
    import dataclasses

    import pandas as pd

    from nestdb.thermo import (TABLE_COLUMNS, Transition, analyse, bootstrap, detect_transitions, plot_analysis,
                               read_energies, sample_temperatures)
    from nestdb.thermo.energies import count_samples

    transition_columns = [f.name for f in dataclasses.fields(Transition)]

    header = ["line", "iter", "enthalpy", "volume", "temp"]
    if count_samples(energies_path) == 0:
        log.warning("%s has no samples (run stopped before its first iteration)", energies_path)
        pd.DataFrame(columns=list(TABLE_COLUMNS)).to_csv(table_path, index=False)
        if transitions_path:
            pd.DataFrame(columns=transition_columns).to_csv(transitions_path, index=False)
        with open(temperatures_path, "w", newline="") as handle:
            csv.writer(handle).writerow(header)
        _plot_message(plot_path, f"{title}: no NS samples (stopped before the first iteration)")
        return
    energies = read_energies(energies_path)
    temperatures = np.arange(grid["t_min"], grid["t_max"] + 0.5 * grid["t_step"], grid["t_step"])
    table = analyse(energies, temperatures)
    if grid.get("bootstrap", 0):
        errors = bootstrap(energies, temperatures, n_boot=int(grid["bootstrap"]))
        table = table.assign(U_err=errors["U_err"], Cp_err=errors["Cp_err"], V_err=errors["V_err"])
    table.to_csv(table_path, index=False)
    transitions = detect_transitions(table, energies.n_atoms) if energies.n_atoms and len(table) >= 3 else []
    for t in transitions:
        log.info("C_p peak (%s) at %.0f K, FWHM %.0f K, volume jump %.3g A^3/atom", t.kind, t.temperature,
                 t.fwhm, t.volume_jump)
    if transitions_path:
        pd.DataFrame([dataclasses.asdict(t) for t in transitions], columns=transition_columns).to_csv(
            transitions_path, index=False)
    sample_t = sample_temperatures(energies)
    with open(temperatures_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for line, (it, h, v, t) in enumerate(zip(energies.iters, energies.enthalpy, energies.volume, sample_t)):
            writer.writerow([line, int(it), repr(float(h)), repr(float(v)), repr(float(t))])
    plot_analysis(table, plot_path, title=title, n_atoms=energies.n_atoms, transitions=transitions)
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
               final_path: str | Path | None = None, weight_rescale: str = "none",
               order_plot_path: str | Path | None = None, model_dir: str | Path | None = None,
               id_tag: str = "") -> list[Atoms]:
    """Apply the cycle's selection rule to one run; one file per chosen configuration.

    Every chosen configuration gets the info keys ``q4``, ``q6``, ``w6``
    (Steinhardt, :mod:`nestdb.order`) and ``phase`` (fcc/hcp/bcc/liquid);
    ``order_plot_path`` receives their Q6-W6 scatter coloured by temperature.

    A run the committee stopped before its first cull has no culled samples;
    its final configuration is then the lowest-enthalpy walker of the final
    live set (``final_path``), for rules that ask for the final configuration.

    ``model_dir`` (the previous cycle's committee) scores the samples that
    carry no ``committee_std`` for a ``trust_window`` rule
    (:func:`nestdb.explore.stage.score_committee_std`).

    ``id_tag`` (the composition tag of a cycle with several compositions,
    e.g. ``Cu3Au1``) prefixes every ``config_id``: runs of two compositions
    at one pressure would otherwise give the same ids.
    """
    from nestdb.order import order_parameters
    from nestdb.select import frame_temperatures, select_configurations
    from nestdb.thermo.plots import plot_order_parameters

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
    if rule["kind"] == "trust_window" and model_dir is not None:
        from nestdb.explore.stage import score_committee_std

        score_committee_std(frames, model_dir)
    chosen = select_configurations(frames, frame_t, rule, stopped_early=stopped_early, cycle=cycle,
                                   pressure_gpa=pressure_gpa, weight_alpha=weight_alpha,
                                   weight_rescale=weight_rescale, source=str(traj_path))
    for atoms in chosen:
        atoms.info.update(order_parameters(atoms))
        if id_tag:
            atoms.info["config_id"] = f"{id_tag.rstrip('/')}_{atoms.info['config_id']}"
    if order_plot_path:
        plot_order_parameters([a.info["q6"] for a in chosen], [a.info["w6"] for a in chosen],
                              [a.info["temp"] for a in chosen], order_plot_path,
                              title=f"cycle {cycle}, {pressure_gpa:g} GPa: selected configurations")
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
    import pandas as pd

    from nestdb.thermo.plots import plot_selection

    n_atoms = len(frames[0])
    marked = pd.DataFrame({"iter": [a.info["iter"] for a in chosen],
                           "enthalpy": [a.info["enthalpy"] / n_atoms for a in chosen],
                           "temp": [a.info["temp"] for a in chosen]})
    plot_selection(np.array([f.info["iter"] for f in frames]),
                   np.array([f.info["ns_energy"] for f in frames]) / n_atoms,
                   np.asarray(temperatures, dtype=float), marked, path, title)


# --------------------------------------------------------------------------- label
# The labelling stages live in nestdb.label.workflow; these names are kept for scripts.
from nestdb.label.workflow import (FAILURE_COLUMNS, gather_labels, isolated_atom_energy,  # noqa: E402,F401
                                   label_one, mpi_rank)


# --------------------------------------------------------------------------- fit
def fit_cycle(training_paths: list[str | Path], settings: dict, out_dir: str | Path,
              step: str = "linear", e0_paths: list[str | Path] | None = None) -> dict:
    """Fit the committee of one cycle to all labels so far.

    ``step``: ``linear`` (the linear-ACE committee), ``pacemaker_prepare``
    (write the pacemaker members' inputs) or ``pacemaker_collect`` (export
    and score the pacemaker members after their jobs ran). ``e0_paths``: the
    isolated-atom energies of the elements whose ``reference_energies`` are
    ``isolated_atom`` (:func:`nestdb.fit.settings.resolve_reference_energies`).
    """
    from nestdb.fit import fit_linear_ace, load_training_frames
    from nestdb.fit.pacemaker import collect_committee, prepare_committee
    from nestdb.fit.settings import isolated_atom_elements, resolve_reference_energies

    if e0_paths or isolated_atom_elements(settings.get("reference_energies") or {}):
        settings = resolve_reference_energies(settings, list(e0_paths or []))
    frames = load_training_frames(training_paths)
    if step == "linear":
        return fit_linear_ace(frames, settings, out_dir, log=log)
    if step == "pacemaker_prepare":
        folders = prepare_committee(frames, settings, out_dir, log=log)
        return {"members": [str(f) for f in folders]}
    if step == "pacemaker_collect":
        members = sorted(Path(out_dir).glob("member_*/"), key=lambda p: int(p.name.split("_")[1]))
        return collect_committee(frames, settings, members, out_dir, log=log)
    raise ValueError(f"unknown fit step {step!r}")


# --------------------------------------------------------------------------- bench
# The benchmark stages live in nestdb.bench.workflow; these names are kept for scripts.
from nestdb.bench.workflow import bench_model, bench_reference, run_benchmarks  # noqa: E402,F401


def main_guard(function, *args, log_path: str | Path, **kwargs):
    """Run a stage with its log; used by the thin Snakemake scripts."""
    with logging_to(log_path):
        try:
            return function(*args, **kwargs)
        finally:
            sys.stdout.flush()
