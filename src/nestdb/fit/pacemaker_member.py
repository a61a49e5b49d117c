"""Run one pacemaker committee member: pacemaker, its optional low-kappa refit, pace_activeset.

Every step is an argv list run without a shell: the user's command strings
``fit.pacemaker.command`` and ``fit.pacemaker.activeset_command`` are split
with :func:`shlex.split` (quotes group words, nothing else is interpreted:
``;``, ``|``, ``$(...)``, ``#`` are plain characters of an argument) and the
file names are appended as separate arguments.

This module needs only the standard library and :mod:`nestdb.errors`, so that
``scripts/fit_pacemaker_member.py`` can load it in pacemaker's own environment
(``envs/pacemaker.yaml``), which does not install nestdb;
:func:`nestdb.fit.pacemaker.run_member` runs the same steps.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from nestdb.errors import ConfigError, DataError

INPUT_FILE = "input.yaml"
OUTPUT_POTENTIAL = "output_potential.yaml"
REFIT_INPUT_FILE = "input_refit.yaml"
FIRST_FIT_POTENTIAL = "fit_potential.yaml"
DATA_INFO_FILE = "fitting_data_info.pckl.gzip"


def command_argv(command: str, key: str) -> list[str]:
    """``shlex.split(command)``, refusing an empty command or unbalanced quotes (naming ``fit.pacemaker.<key>``)."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise ConfigError(
            f"fit.pacemaker.{key}: cannot split {command!r} into arguments ({error}); "
            "it is split like a shell would, without running one: balance the quotes"
        ) from None
    if not argv:
        raise ConfigError(f"fit.pacemaker.{key} is empty; give the command, e.g. 'pacemaker'")
    return argv


def _run(argv: list[str], work_dir: Path, log_path: Path, append: bool, what: str, key: str) -> None:
    if shutil.which(argv[0]) is None:
        raise ConfigError(
            f"{what} command {argv[0]!r} (fit.pacemaker.{key}) was not found on PATH or is not "
            "executable; install pacemaker in its own environment (envs/pacemaker.yaml) and set "
            "the full path of its command (the value is split into arguments, never run by a shell)"
        )
    with open(log_path, "a" if append else "w") as log_file:
        log_file.write(f"$ {shlex.join(argv)}  (in {work_dir})\n")
        log_file.flush()
        result = subprocess.run(argv, cwd=work_dir, stdout=log_file, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise DataError(f"{what} failed in {work_dir} (exit {result.returncode}); see {log_path}:\n{tail}")


def run_member_steps(
    work_dir: str | Path, command: str, activeset_command: str, log_path: str | Path | None = None
) -> Path:
    """Fit one member in ``work_dir`` (which holds ``input.yaml``); return ``output_potential.yaml``.

    Steps: ``<command> input.yaml``; when ``input_refit.yaml`` exists, the
    fitted potential becomes ``fit_potential.yaml`` and
    ``<command> input_refit.yaml -p fit_potential.yaml`` refits it; when
    pacemaker wrote ``fitting_data_info.pckl.gzip``,
    ``<activeset_command> -d fitting_data_info.pckl.gzip output_potential.yaml``
    builds the active set (``output_potential.asi``).

    Parameters
    ----------
    work_dir
        The member folder written by :func:`nestdb.fit.pacemaker.write_member_inputs`.
    command, activeset_command
        ``fit.pacemaker.command`` and ``fit.pacemaker.activeset_command``,
        split with :func:`shlex.split` (no shell).
    log_path
        One log for all steps (the workflow rule's log); None: ``pacemaker.log``,
        ``pacemaker_refit.log`` and ``activeset.log`` in ``work_dir``.

    Raises
    ------
    ConfigError
        A command that cannot be split or is not found.
    DataError
        A step failed or wrote no potential (the message ends with the log's tail).
    """
    work_dir = Path(work_dir).resolve()
    if not (work_dir / INPUT_FILE).is_file():
        raise DataError(f"pacemaker member folder {work_dir} has no {INPUT_FILE}; rerun fit_pacemaker_prepare")
    fit_argv = command_argv(command, "command")
    activeset_argv = command_argv(activeset_command, "activeset_command")
    logs = {
        name: Path(log_path).resolve() if log_path else work_dir / name
        for name in ("pacemaker.log", "pacemaker_refit.log", "activeset.log")
    }
    append = log_path is not None  # one log: the later steps add to it
    potential = work_dir / OUTPUT_POTENTIAL
    potential.unlink(missing_ok=True)  # a stale potential must not pass for this run's result
    _run(fit_argv + [INPUT_FILE], work_dir, logs["pacemaker.log"], False, "pacemaker", "command")
    if not potential.is_file():
        raise DataError(
            f"pacemaker finished in {work_dir} without writing {OUTPUT_POTENTIAL}; see {logs['pacemaker.log']}"
        )
    if (work_dir / REFIT_INPUT_FILE).is_file():
        potential.replace(work_dir / FIRST_FIT_POTENTIAL)
        _run(
            fit_argv + [REFIT_INPUT_FILE, "-p", FIRST_FIT_POTENTIAL],
            work_dir,
            logs["pacemaker_refit.log"],
            append,
            "pacemaker (low-kappa refit)",
            "command",
        )
        if not potential.is_file():
            raise DataError(
                f"the pacemaker refit in {work_dir} wrote no {OUTPUT_POTENTIAL}; see {logs['pacemaker_refit.log']}"
            )
    if (work_dir / DATA_INFO_FILE).is_file():
        _run(
            activeset_argv + ["-d", DATA_INFO_FILE, OUTPUT_POTENTIAL],
            work_dir,
            logs["activeset.log"],
            append,
            "pace_activeset",
            "activeset_command",
        )
    return potential
