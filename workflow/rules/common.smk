# Helpers shared by all stages (config views, target lists, input functions).
import json
import os
import shlex
import sys

from nestdb.fit.settings import isolated_atom_elements
from nestdb.config import (
    bench_reference_spec,
    bench_targets,
    check_config,
    composition_dirs,
    cycle_pressures,
    cycle_runs,
    explore_block,
    explore_kind,
    labeller_spec,
    n_cycles,
    ns_block,
    select_rule,
)

# One BLAS/OpenMP thread per job unless the user says otherwise: Snakemake
# already runs jobs side by side, and GPAW's threads fighting over the same
# cores made single points 10x slower. Jobs inherit this environment.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

# The conda envs (envs/*.yaml, `--sdm conda`) install this repository and its lock
# from ${NESTDB_ROOT} (this checkout): Snakemake builds them from copies in
# .snakemake/conda/, where relative paths would miss it.
os.environ.update(NESTDB_ROOT=workflow.basedir)

# Relative paths in the config (e.g. an EAM file) are relative to the working directory.
check_config(config, base_dir=os.getcwd())

CYCLES = list(range(n_cycles(config)))


def python_for_shell():
    """The interpreter of shell rules: the conda env's `python`, else the one running Snakemake."""
    methods = {str(m).lower() for m in workflow.deployment_settings.deployment_method}
    if any("conda" in m for m in methods):
        return "python"
    return shlex.quote(sys.executable)


PYTHON = python_for_shell()


def ns_prefix(cycle, pressure, comp=""):
    """Path prefix of one NS run's pymatnest-format files (``comp``: "" or "<composition tag>/")."""
    return f"results/ns/cycle{cycle}/{comp}P{pressure}GPa/ns"


def model_dir(cycle):
    return f"results/fit/cycle{cycle}"


def ns_model_input(wildcards):
    """Cycle n > 0 samples with the committee fitted in cycle n - 1 (linear, or pacemaker's)."""
    cycle = int(wildcards.cycle)
    if cycle == 0:
        return []
    calculator = ns_block(config, cycle)["calculator"]["type"]
    if calculator == "pacemaker_committee":
        return {"model": f"{model_dir(cycle - 1)}/pacemaker/committee.json"}
    if calculator == "ace_committee":
        return {"model": f"{model_dir(cycle - 1)}/committee.npz"}
    return []


def mpi_launcher(wildcards, resources):
    """`srun -n N` (or another launcher) when the profile gives the rule `mpi` and `tasks`.

    Only GPAW runs inside the Python process; CASTEP, VASP and Quantum
    ESPRESSO run as one Python process that starts the code itself with
    `srun -n N` in front (see `external_launch`).
    """
    launcher = resources.get("mpi")
    if not launcher or config["label"]["code"] != "gpaw":
        return ""
    return f"{shlex.quote(str(launcher))} -n {int(resources.get('tasks', 1))}"


def external_launch(wildcards, resources):
    """`--mpi srun --tasks N` for codes started as their own program (CASTEP, VASP, Quantum ESPRESSO).

    GPAW runs inside the Python process, which `mpi_launcher` starts under MPI instead.
    """
    launcher = resources.get("mpi")
    if not launcher or config["label"]["code"] not in ("castep", "vasp", "espresso"):
        return ""
    arguments = ["--mpi", str(launcher)]
    if resources.get("tasks"):
        arguments += ["--tasks", str(int(resources["tasks"]))]
    return shlex.join(arguments)


def labelled_configs(wildcards):
    """One labelled file per selected configuration of every pressure of a cycle.

    The selection is a checkpoint: the configuration ids are known only once
    it has run, and each id becomes its own `label` job.
    """
    cycle = int(wildcards.cycle)
    files = []
    for comp, pressure in cycle_runs(config, cycle):
        selected = checkpoints.select.get(cycle=cycle, comp=comp, pressure=pressure).output.configs
        ids = glob_wildcards(os.path.join(selected, "{config_id}.extxyz")).config_id
        files += [f"results/label/cycle{cycle}/{comp}P{pressure}GPa/{config_id}.extxyz" for config_id in sorted(ids)]
    return files


def training_sets(wildcards):
    """A cycle's model is fitted to the labels of this and all earlier cycles."""
    cycle = int(wildcards.cycle)
    return [f"results/label/cycle{c}/labelled.extxyz" for c in range(cycle + 1)]


def all_targets():
    targets = []
    for cycle in CYCLES:
        for comp, pressure in cycle_runs(config, cycle):
            if explore_kind(config, cycle) == "ns":  # random_crystals/md cycles have no NS run to analyse
                targets.append(f"results/analyse/cycle{cycle}/{comp}P{pressure}GPa/thermo.csv")
        targets.append(f"{model_dir(cycle)}/metrics.json")
        if config["fit"].get("pacemaker", {}).get("enabled", False):  # optional nonlinear route
            targets.append(f"{model_dir(cycle)}/pacemaker/metrics.json")
        targets.append(f"results/bench/cycle{cycle}/summary.json")
    # Enthalpy, Bain, phonons, XRD, phase diagram (rules in bench.smk).
    targets += bench_targets(config, CYCLES)
    return targets


# --------------------------------------------------------------------------- fit
# Elements with `reference_energies: {X: isolated_atom}` take E0 from rule label_isolated_atom.
E0_FILES = [f"results/label/e0/{e}.json" for e in isolated_atom_elements(config["fit"]["reference_energies"])]


# Optional hyperparameter study (fit.hyperopt.enabled): rows of the largest basis once per cutoff of
# the grid (one job each), `n_workers` jobs running trials against one optuna journal file (separate
# SLURM jobs may share it: it is written under a lock file), then the choice (best.json), which the
# fit reads. The journal is no declared output, so a failed or killed worker never deletes finished
# trials; rerunning resumes the study.
HYPEROPT = config["fit"].get("hyperopt") or {}
HYPEROPT_CUTOFFS = sorted(set(HYPEROPT.get("cutoffs") or [config["fit"]["cutoff"]]))


def hyperopt_dir(cycle):
    return f"{model_dir(cycle)}/hyperopt"


def fit_inputs(wildcards):
    """The cycle's labels, E0 files, and the study's choice when fit.hyperopt is enabled."""
    inputs = {"training": training_sets(wildcards), "e0": E0_FILES}
    if HYPEROPT.get("enabled", False):
        inputs["hyperopt"] = f"{hyperopt_dir(wildcards.cycle)}/best.json"
    return inputs
