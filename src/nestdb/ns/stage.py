"""The nested-sampling stage of the workflow (rules ``ns`` and ``bench_phase_diagram_ns``): file paths in, files out."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nestdb.errors import DataError
from nestdb.logs import progress_to
from nestdb.models.calculators import COMMITTEE_TYPES, make_calculator
from nestdb.ns.loop import run_nested_sampling
from nestdb.ns.pymatnest import run_pymatnest
from nestdb.ns.restart import model_fingerprint, publish_outputs
from nestdb.ns.settings import NSSettings, ns_engine_settings

log = logging.getLogger(__name__)


def _symbols(composition: dict[str, int]) -> list[str]:
    return [element for element, count in composition.items() for _ in range(int(count))]


def _system_name(composition: dict[str, int]) -> str:
    return "".join(f"{element.lower()}{count}" for element, count in composition.items())


def run_seed(block: dict, cycle: int, pressure_gpa: float) -> int:
    """The NS seed of one run: ``ns.seed``, the cycle and the pressure drawn into one number.

    Independent runs: the same seed at every pressure and cycle would start
    every run from the same random walkers.
    """
    return int(
        np.random.SeedSequence(
            [int(block.get("seed", 0)), int(cycle), int(round(float(pressure_gpa) * 1000))]
        ).generate_state(1)[0]
    )


def ns_run_stage(
    block: dict,
    pressure_gpa: float,
    cycle: int,
    out_prefix: str | Path,
    model_dir: str | Path | None = None,
    progress_path: str | Path | None = None,
    resume: bool = False,
    work_dir: str | Path | None = None,
) -> dict:
    """Run one constant-pressure NS run of a cycle.

    Parameters
    ----------
    block
        The cycle's merged ``ns`` settings (:func:`nestdb.config.ns_block`);
        ``engine: pymatnest`` runs pymatnest's ``ns_run`` instead of ours.
    pressure_gpa
        Pressure in GPa.
    cycle
        Cycle index, used in ``config_type`` and the seed (:func:`run_seed`).
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
    settings = ns_engine_settings(block, pressure_gpa)
    settings["seed"] = run_seed(block, cycle, pressure_gpa)
    settings["config_type"] = f"{_system_name(block['composition'])}_P{pressure_gpa:g}GPa_c{cycle}"
    run_prefix = Path(work_dir) / Path(out_prefix).name if work_dir else Path(out_prefix)
    run_prefix.parent.mkdir(parents=True, exist_ok=True)
    spec = dict(block["calculator"])
    if spec["type"] in COMMITTEE_TYPES and "model" not in spec:
        if model_dir is None:
            raise DataError(f"cycle {cycle}: a {spec['type']} calculator needs the previous cycle's model")
        spec["model"] = str(model_dir)
    if block.get("engine", "nestdb") == "pymatnest":
        summary = run_pymatnest(
            dict(block, calculator=spec), NSSettings(**settings), run_prefix, log_path=progress_path, resume=resume
        )
    else:
        calculator = make_calculator(spec, base_dir=Path.cwd())
        # what a restart snapshot must match: the spec and the sha256 of the files it reads
        model = model_fingerprint(spec, base_dir=Path.cwd())
        with progress_to(progress_path):
            summary = run_nested_sampling(
                _symbols(block["composition"]),
                calculator,
                NSSettings(**settings),
                run_prefix,
                resume=resume,
                model=model,
            )
    if work_dir:
        publish_outputs(run_prefix, out_prefix)
    return summary
