"""Run pymatnest's ``ns_run`` from our config, and read pymatnest's output files.

``ns.engine: pymatnest`` writes pymatnest's ``key=value`` input from the same
settings as our engine (reference/pymatnest-format.md section 1), runs
``ns_run`` (``-no_mpi``, or under a launcher such as ``srun -n 64``) in the
run's folder, and converts its files to ours: ``.energies`` unchanged,
``.traj.<rank>.extxyz`` merged into ``.traj.extxyz`` in cull order, the
newest snapshot as ``.final.extxyz``, plus a ``.summary.json``. pymatnest
restarts by itself from its newest snapshot (``restart_file=AUTO``), so a
rerun in the same folder resumes.

Keyword choices that keep pymatnest's run equal to ours in meaning:
``n_model_calls`` = ``walk_length`` per walk with ``no_extra_walks_at_all=T``
(no extra walk per iteration), move weights = ``move_fractions`` x 100,
real atomic masses in ``start_species`` and cheap step adaptation
(``full_auto_step_sizes=F``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.io import iread, write

from nestdb.errors import ConfigError, DataError
from nestdb.io import write_json
from nestdb.ns.output import output_paths, write_summary
from nestdb.ns.restart import afresh_hint, chain_fingerprint, check_compatible, model_fingerprint
from nestdb.ns.settings import NSSettings
from nestdb.thermo.energies import read_energies
from nestdb.units import KB_EV_PER_K, gpa_to_ev_per_a3

#: Suffix of the record of the chain a pymatnest run samples (checked before it resumes).
CHAIN_SUFFIX = ".chain.json"
#: Module (written into the run folder) that defines pymatnest's ``calc``.
CALC_MODULE = "nestdb_pymatnest_calc"
#: Our move names and pymatnest's weight keywords.
MOVE_KEYWORDS = {
    "md": "n_atom_steps",
    "atom": "n_atom_steps",
    "volume": "n_cell_volume_steps",
    "shear": "n_cell_shear_steps",
    "stretch": "n_cell_stretch_steps",
    "swap": "n_swap_steps",
}
#: Keywords that ns_run reads with int() (reference/pymatnest-format.md section 1): "600.0" aborts it.
INTEGER_KEYWORDS = (
    "n_walkers",
    "n_cull",
    "n_model_calls",
    "atom_traj_len",
    "atom_traj_len_cost_multiplier",
    "traj_interval",
    "delta_random_seed",
    "snapshot_time",
    "snapshot_interval",
    "n_atom_steps",
    "n_cell_volume_steps",
    "n_cell_shear_steps",
    "n_cell_stretch_steps",
    "n_swap_steps",
    "n_extra_walk_per_task",
    "n_model_calls_expected",
    "T_estimate_finite_diff_lag",
    "debug",
)
#: Info keys of a culled/live walker that carry over (stale calculator keys do not).
NS_INFO_KEYS = (
    "ns_energy",
    "volume",
    "KEmax",
    "ns_P",
    "iter",
    "config_type",
    "config_n_global",
    "ns_KE",
    "committee_std",
)


def input_keywords(
    settings: NSSettings,
    composition: dict[str, int],
    name: str,
    calc_module: str = CALC_MODULE,
    extra: dict | None = None,
) -> dict[str, str]:
    """pymatnest input keywords (as strings) for our settings.

    Parameters
    ----------
    settings : NSSettings
        Our settings; committee restriction is not available in upstream
        pymatnest (ConfigError).
    composition : dict
        Atoms per element, e.g. ``{"Mg": 16}``.
    name : str
        ``out_file_prefix`` (file name stem, no folder).
    calc_module : str
        Importable module that defines ``calc``.
    extra : dict, optional
        Keywords added last (they override the generated ones). Those in
        :data:`INTEGER_KEYWORDS` must be whole numbers (``600.0`` is written
        as ``600``; ``600.5`` is a ConfigError).
    """
    settings.validate()
    if settings.committee_std_max is not None or settings.committee_stop_std is not None:
        raise ConfigError(
            "committee_std_max / committee_stop_std are not supported by upstream pymatnest "
            "(only by the VGFletcher fork); use ns.engine: nestdb for committee runs"
        )
    species = []
    for symbol, count in composition.items():
        if symbol not in atomic_numbers:
            raise ConfigError(f"ns.composition: {symbol!r} is not a chemical symbol")
        z = atomic_numbers[symbol]
        species.append(f"{z} {int(count)} {atomic_masses[z]:.4f}")
    fractions = settings.normalised_move_fractions()
    if "md" in fractions and "atom" in fractions:
        raise ConfigError(
            "move_fractions: pymatnest runs one atom algorithm, MD or MC; set md or atom to 0 with engine: pymatnest"
        )
    n_walkers, n_cull = settings.n_walkers, settings.n_cull
    keywords = {
        "start_species": ", ".join(species),
        "max_volume_per_atom": repr(float(settings.max_volume_per_atom)),
        "min_volume_per_atom": repr(float(settings.min_volume_per_atom)),
        "MC_cell_P": repr(gpa_to_ev_per_a3(settings.pressure_gpa)),
        "MC_cell_min_aspect_ratio": repr(float(settings.min_aspect_ratio)),
        "start_energy_ceiling_per_atom": repr(float(settings.start_energy_ceiling_per_atom)),
        "n_walkers": str(n_walkers),
        "n_cull": str(n_cull),
        # n_iter = round(value * n_walkers / n_cull)
        "n_iter_times_fraction_killed": repr(settings.max_iter * n_cull / n_walkers),
        "out_file_prefix": name,
        "energy_calculator": "ASE",
        "ASE_calc_module": calc_module,
        "atom_algorithm": "MD" if "md" in fractions else "MC",
        "n_model_calls": str(settings.walk_length),
        "no_extra_walks_at_all": "T",
        # MC: one atom move is a sweep over all N atoms, N model calls
        "atom_traj_len": str(settings.md_traj_len if "md" in fractions else 1),
        "atom_traj_len_cost_multiplier": str(1 if "md" in fractions else sum(composition.values())),
        "traj_interval": str(settings.traj_interval),
        "full_auto_step_sizes": "F",
        # with -no_mpi, monitoring on the adjust iteration crashes (format notes section 8)
        "monitor_step_interval_times_fraction_killed": "0",
        # only values > 0 seed pymatnest's generator
        "delta_random_seed": str(int(settings.seed) + 1),
    }
    for move, fraction in fractions.items():
        keywords[MOVE_KEYWORDS[move]] = str(max(1, round(100 * fraction)))
    for keyword in MOVE_KEYWORDS.values():
        keywords.setdefault(keyword, "0")
    if settings.load_balance:
        # pymatnest's own fixed move list (its create_list from the same weights and n_model_calls)
        keywords["do_good_load_balance"] = "T"
    if settings.min_nn_distance > 0:
        keywords["min_nn_dis"] = repr(float(settings.min_nn_distance))
    if len(set(composition)) > 1:
        # unequal masses need fully random velocity redraws in pymatnest
        keywords["atom_velo_rej_free_fully_randomize"] = "T"
    if settings.kemax_max_T is not None:
        keywords["KEmax_max_T"] = repr(float(settings.kemax_max_T))
    if settings.converge_down_to_T is not None:
        if int(np.__version__.split(".")[0]) >= 2:
            raise ConfigError(
                f"converge_down_to_T={settings.converge_down_to_T}: pymatnest's converge_down_to_T crashes with "
                f"NumPy >= 2 (np.NINF; installed: {np.__version__}); set converge_down_to_T: null with "
                "engine: pymatnest (the run stops at max_iter) or run pymatnest with NumPy < 2"
            )
        keywords["converge_down_to_T"] = repr(float(settings.converge_down_to_T))
        keywords["kB"] = repr(KB_EV_PER_K)
    if settings.snapshot_seconds is not None:
        # whole seconds, at least 1 (0 would mean no time-based snapshots to pymatnest)
        keywords["snapshot_time"] = str(max(math.ceil(settings.snapshot_seconds), 1))
    for key, value in (extra or {}).items():
        keywords[str(key)] = "T" if value is True else "F" if value is False else str(value)
    for key in INTEGER_KEYWORDS:
        if key in keywords:
            keywords[key] = _integer_keyword(key, keywords[key])
    return keywords


def _integer_keyword(key: str, value: str) -> str:
    """``value`` as ns_run's int() accepts it; ConfigError naming the keyword otherwise."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number == int(number)):
        raise ConfigError(
            f"ns.pymatnest.keywords: {key}={value!r}: pymatnest reads {key} as an integer; give a whole number"
        )
    return str(int(number))


def write_input(path: str | Path, keywords: dict[str, str]) -> None:
    """Write ``key=value`` lines, pymatnest's stdin input."""
    lines = ["# written by nestdb (ns.engine: pymatnest)"] + [f"{key}={value}" for key, value in keywords.items()]
    Path(path).write_text("\n".join(lines) + "\n")


def write_calc_module(folder: Path, spec: dict, model_dir: str | Path | None = None) -> None:
    """A module defining ``calc`` from our calculator spec, for ``ASE_calc_module``."""
    spec = dict(spec)
    if spec.get("type") in ("ace_committee", "pacemaker_committee") and "model" not in spec and model_dir is not None:
        spec["model"] = str(model_dir)
    code = (
        "# written by nestdb: pymatnest imports `calc` from here\n"
        "import json\n\n"
        "from nestdb.models.calculators import make_calculator\n\n"
        f"calc = make_calculator(json.loads({json.dumps(spec)!r}), base_dir={str(Path.cwd())!r})\n"
    )
    (folder / f"{CALC_MODULE}.py").write_text(code)


def find_ns_run(command: str = "ns_run") -> str:
    """Path of pymatnest's ``ns_run``; ConfigError naming it when it is not installed."""
    found = shutil.which(command)
    if found is None:
        raise ConfigError(
            f"ns.engine is 'pymatnest' but its program {command!r} was not found (not on PATH); install "
            "pymatnest (README: 'Running pymatnest itself') or set ns.pymatnest.command to its path, or use "
            "ns.engine: nestdb"
        )
    return found


def run_pymatnest(
    block: dict,
    settings: NSSettings,
    run_prefix: str | Path,
    log_path: str | Path | None = None,
    model_dir: str | Path | None = None,
    resume: bool = False,
) -> dict:
    """Run ``ns_run`` for one NS run and convert its outputs to ours at ``run_prefix``.

    Parameters
    ----------
    block : dict
        The ``ns`` block: ``composition``, ``calculator`` and the optional
        ``pymatnest`` mapping (``command``, ``launcher``, ``calc_module``,
        ``keywords``).
    settings : NSSettings
        The run's settings (seed and config_type already set).
    run_prefix : str or Path
        Output prefix; pymatnest runs in its folder.
    log_path : str or Path, optional
        pymatnest's stdout and stderr are appended here.
    model_dir : str or Path, optional
        Fitted committee folder for an ``ace_committee`` calculator.
    resume : bool
        Keep pymatnest's snapshots so that it restarts from the newest,
        after checking that they continue the same chain (settings, atoms,
        calculator and the sha256 of its model files, recorded in
        ``<prefix>.chain.json``; ConfigError naming what changed);
        otherwise (or without snapshots) its old files of this prefix are
        removed first.

    Returns
    -------
    dict
        The summary written to ``<prefix>.summary.json``.
    """
    options = dict(block.get("pymatnest") or {})
    executable = find_ns_run(options.get("command", "ns_run"))
    run_prefix = Path(run_prefix)
    folder, name = run_prefix.parent.resolve(), run_prefix.name
    folder.mkdir(parents=True, exist_ok=True)
    calc_module = options.get("calc_module") or CALC_MODULE
    keywords = input_keywords(settings, block["composition"], name, calc_module, options.get("keywords"))
    chain = _chain(settings, block, options, model_dir)
    if not resume or not list(folder.glob(f"{name}.snapshot.*.extxyz")):
        for stale in _pymatnest_files(folder, name):
            stale.unlink()
    else:
        _check_chain(folder, name, chain)
    write_json(folder / f"{name}{CHAIN_SUFFIX}", chain)
    if not options.get("calc_module"):
        write_calc_module(folder, block["calculator"], model_dir)
    input_path = folder / f"{name}.inp"
    write_input(input_path, keywords)
    launcher = options.get("launcher")
    command = shlex.split(launcher) + [executable] if launcher else [executable, "-no_mpi"]
    environment = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(folder)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
    )
    start = time.perf_counter()
    with open(input_path) as stdin, open(log_path or folder / f"{name}.out", "a") as log:
        log.write(f"pymatnest: {' '.join(command)} < {input_path}\n")
        log.flush()
        status = subprocess.run(
            command, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=environment, check=False
        ).returncode
    if status != 0:
        raise DataError(
            f"pymatnest ({' '.join(command)}) exited with status {status}; see {log_path or folder / (name + '.out')}"
        )
    summary = convert_outputs(folder / name, run_prefix, settings, wall_s=time.perf_counter() - start)
    # converted: a later run must not restart from these snapshots
    for snapshot in [*folder.glob(f"{name}.snapshot.*.extxyz"), folder / f"{name}{CHAIN_SUFFIX}"]:
        snapshot.unlink(missing_ok=True)
    return summary


def _pymatnest_files(folder: Path, name: str) -> list[Path]:
    """Files an earlier pymatnest run of this prefix left (it would restart from them)."""
    return [
        *folder.glob(f"{name}.snapshot.*.extxyz"),
        *folder.glob(f"{name}.traj.*.extxyz"),
        *folder.glob(f"{name}.energies"),
        *folder.glob(f"{name}{CHAIN_SUFFIX}"),
    ]


def _chain(settings: NSSettings, block: dict, options: dict, model_dir: str | Path | None) -> dict:
    """Fingerprint of the chain pymatnest samples: our settings, the atoms, the model, extra keywords."""
    spec = dict(block["calculator"])
    if spec.get("type") in ("ace_committee", "pacemaker_committee") and "model" not in spec and model_dir:
        spec["model"] = str(model_dir)
    numbers = [atomic_numbers[symbol] for symbol, count in block["composition"].items() for _ in range(int(count))]
    chain = chain_fingerprint(settings, np.array(numbers), model_fingerprint(spec, Path.cwd()))
    chain["settings"]["pymatnest.keywords"] = json.loads(json.dumps(options.get("keywords") or {}, default=str))
    chain["settings"]["pymatnest.calc_module"] = options.get("calc_module")
    return chain


def _check_chain(folder: Path, name: str, chain: dict) -> None:
    """ConfigError unless pymatnest's snapshots in ``folder`` continue the chain ``chain`` describes."""
    snapshots = f"{folder}/{name}.snapshot.*.extxyz"
    hint = (
        afresh_hint(folder / name)
        if folder.name == "restart"
        else f"delete {snapshots} (pymatnest's restart files) to start the run afresh"
    )
    record = folder / f"{name}{CHAIN_SUFFIX}"
    try:
        old = json.loads(record.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot resume pymatnest from {snapshots}: the record of the chain they continue "
            f"({record}) cannot be read ({err}), so the model and settings cannot be checked; "
            f"{hint}"
        ) from None
    check_compatible({"fingerprint": old}, chain, snapshots, hint=hint)


def read_ns_frames(path: str | Path) -> list[Atoms]:
    """Frames of a pymatnest or nestdb ``.traj``/snapshot extxyz file as plain Atoms.

    Keeps positions, cell, masses, momenta and the NS info keys; drops the
    stale ``energy``/``free_energy``/``forces`` that pymatnest's shared
    calculator leaves in snapshots (they belong to another configuration).
    """
    frames = []
    try:
        for frame in iread(str(path), format="extxyz"):
            atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
            atoms.set_masses(frame.get_masses())
            if frame.has("momenta"):
                atoms.set_momenta(frame.get_momenta())
            atoms.info.update(
                {
                    key: frame.info[key].item() if isinstance(frame.info[key], np.generic) else frame.info[key]
                    for key in NS_INFO_KEYS
                    if key in frame.info
                }
            )
            frames.append(atoms)
    except (OSError, ValueError, IndexError) as err:
        raise DataError(f"cannot read NS configurations from {path}: {err}") from None
    return frames


def _snapshot_iteration(path: Path) -> int:
    match = re.search(r"\.snapshot\.(\d+)\.", path.name)
    return int(match.group(1)) if match else -1


def convert_outputs(
    pymatnest_prefix: str | Path, out_prefix: str | Path, settings: NSSettings, wall_s: float | None = None
) -> dict:
    """Turn a pymatnest run's files into ours (``.energies``, ``.traj.extxyz``,
    ``.final.extxyz``, ``.summary.json`` at ``out_prefix``)."""
    source = Path(pymatnest_prefix)
    folder, name = source.parent, source.name
    out = output_paths(out_prefix)
    energies = folder / f"{name}.energies"
    if not energies.is_file():
        raise DataError(f"pymatnest wrote no {energies}; see its log")
    if energies.resolve() != out["energies"].resolve():
        shutil.copyfile(energies, out["energies"])
    frames = [frame for path in sorted(folder.glob(f"{name}.traj.*.extxyz")) for frame in read_ns_frames(path)]
    frames.sort(key=lambda atoms: int(atoms.info.get("config_n_global", 0)))
    with open(out["traj"], "w") as handle:
        for frame in frames:
            frame.info["config_type"] = settings.config_type
            write(handle, frame, format="extxyz")
    snapshots = sorted(folder.glob(f"{name}.snapshot.*.extxyz"), key=_snapshot_iteration)
    if not snapshots:
        raise DataError(f"pymatnest left no snapshot {folder}/{name}.snapshot.*.extxyz (its final walkers)")
    newest = _snapshot_iteration(snapshots[-1])
    live = [frame for path in snapshots if _snapshot_iteration(path) == newest for frame in read_ns_frames(path)]

    samples = read_energies(energies)
    n_iter = int(samples.iters[-1]) + 1 if samples.n_samples else 0
    with open(out["final"], "w") as handle:
        for index, frame in enumerate(live):
            frame.info["config_type"] = settings.config_type
            frame.info["iter"] = n_iter
            frame.info["config_n_global"] = n_iter * settings.n_cull + index
            write(handle, frame, format="extxyz")
    summary = {
        "engine": "pymatnest",
        "n_iter": n_iter,
        "stop_reason": "pymatnest",
        "n_traj_frames": len(frames),
        "n_live_walkers": len(live),
        "wall_s": wall_s,
        "n_atoms": len(live[0]) if live else None,
        "pressure_ev_per_a3": gpa_to_ev_per_a3(settings.pressure_gpa),
        "python": sys.executable,
    }
    write_summary(out["summary"], summary)
    return summary
