"""MPI launch commands of external DFT codes, built as argv lists (no shell).

The workflow's ``label`` rule takes the launcher and the number of ranks from
the job's Snakemake resources (``mpi`` and ``tasks``, set in a profile, e.g.
``profiles/slurm``) and passes them to ``python -m nestdb.cli label --mpi srun
--tasks 16``; the labeller then runs, e.g. for CASTEP::

    ["srun", "-n", "16", "castep.mpi", "castep"]

Each element is one argument: a config or resource value can never inject a
second shell command. The executable itself comes from the code's environment
variable (``CASTEP_COMMAND``, ``ASE_VASP_COMMAND``, ``ASE_ESPRESSO_COMMAND``),
split with :func:`shlex.split`.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from nestdb.errors import ConfigError

#: Launchers whose rank-count option is ``-n``.
KNOWN_LAUNCHERS = ("srun", "mpirun", "mpiexec", "mpiexec.hydra", "aprun")


def mpi_prefix(launcher: str | None, tasks: int | None = None) -> list[str]:
    """Launcher argv for ``tasks`` MPI ranks, e.g. ``["srun", "-n", "16"]``; ``[]`` without a launcher.

    Parameters
    ----------
    launcher
        ``srun``, ``mpirun``, ``mpiexec``, ... (a path to one is fine); empty or
        None: run serially.
    tasks
        Number of ranks (Snakemake resource ``tasks``); None or 1 with ``srun``
        leaves the count to the job allocation.

    Raises
    ------
    ConfigError
        Unknown launcher, or a rank count that is not a positive integer.
    """
    if not launcher:
        return []
    if Path(launcher).name not in KNOWN_LAUNCHERS or any(c.isspace() for c in launcher):
        raise ConfigError(
            f"resources.mpi: unknown MPI launcher {launcher!r}; use one of {', '.join(KNOWN_LAUNCHERS)} "
            "(put further launcher options in the code's command variable, e.g. CASTEP_COMMAND)"
        )
    if tasks is None:
        return [launcher]
    try:
        count = int(tasks)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or str(count) != str(tasks).strip():
        raise ConfigError(f"resources.tasks: expected a positive integer number of MPI ranks, got {tasks!r}")
    return [launcher, "-n", str(count)]


def code_argv(prefix: list[str], command: str, *arguments: str) -> list[str]:
    """Full argv: launcher prefix, the code's command (shell-split) and its arguments.

    Parameters
    ----------
    prefix
        From :func:`mpi_prefix`.
    command
        The code's command, e.g. ``"castep.mpi"`` or ``"pw.x -nk 2"``; one that
        starts with a launcher (``"srun castep.mpi"``) is used as it is,
        without ``prefix``.
    arguments
        Further arguments (seed name, input file).

    Raises
    ------
    ConfigError
        Empty command.
    """
    split = shlex.split(command)
    if not split:
        raise ConfigError(
            "empty command for the DFT code: set CASTEP_COMMAND / ASE_VASP_COMMAND / "
            "ASE_ESPRESSO_COMMAND to the executable"
        )
    if Path(split[0]).name in KNOWN_LAUNCHERS:
        # The command brings its own launcher (e.g. CASTEP_COMMAND="srun castep.mpi"): never launch twice.
        prefix = []
    return [*prefix, *split, *arguments]


def mpi_rank() -> int:
    """Rank of this process under srun/mpirun (0 when not launched by MPI)."""
    for variable in ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0
