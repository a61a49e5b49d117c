"""The one logging style of nestdb: standard :mod:`logging`, handlers set up only here.

Every module logs to ``logging.getLogger(__name__)`` (so all records are
under ``nestdb``) and never configures handlers. A workflow stage runs under
:func:`logging_to` (the Snakemake scripts through :func:`main_guard`, the
``nestdb`` command through its ``--log`` option), which sends the records
and Python warnings to the rule's log file.

The nested-sampling progress lines (pymatnest's layout: a header, one line
per ``n_print`` iterations, the stop) go to their own logger,
:data:`PROGRESS_LOGGER`, written bare (no time stamp, so the lines are those
of pymatnest's output) to the file or stream given to :func:`progress_to`.
It does not propagate: a rule whose progress file is its log file gets each
line once.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

#: Name of the logger of the NS progress lines (:func:`progress_to`).
PROGRESS_LOGGER = "nestdb.ns.progress"
#: Layout of the log records in a stage's log file.
RECORD_FORMAT = "%(asctime)s %(levelname)s %(message)s"

log = logging.getLogger(__name__)


def progress_logger() -> logging.Logger:
    """The logger of the NS progress lines (INFO, not propagated to the stage's log handler)."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


@contextlib.contextmanager
def logging_to(path: str | Path) -> Iterator[logging.Logger]:
    """Send the ``nestdb`` loggers and Python warnings of one stage to its log file.

    Parameters
    ----------
    path
        The rule's ``log`` file; emptied first, then only appended to
        (O_APPEND), so other writers of the same file, such as the NS progress
        lines (:func:`progress_to`), never overwrite the log's records or the
        other way round.

    Yields
    ------
    logging.Logger
        The ``nestdb`` logger. An exception leaving the block is logged
        (with its traceback) before it propagates.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    open(path, "w").close()
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter(RECORD_FORMAT))
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


@contextlib.contextmanager
def progress_to(target: str | Path | TextIO | None) -> Iterator[logging.Logger]:
    """Write the NS progress lines to a file (appended) or an open text stream while the block runs.

    Parameters
    ----------
    target
        File appended to (created with its folder), a text stream, or None
        (the lines go nowhere, as in a run without progress output).
    """
    logger = progress_logger()
    if target is None:
        yield logger
        return
    if isinstance(target, (str, Path)):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(target, mode="a")
    else:
        handler = logging.StreamHandler(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close() if isinstance(handler, logging.FileHandler) else handler.flush()


def main_guard(function: Callable[..., Any], *args: Any, log_path: str | Path, **kwargs: Any) -> Any:
    """Run a stage function under :func:`logging_to` its log file; used by the thin Snakemake scripts."""
    with logging_to(log_path):
        try:
            return function(*args, **kwargs)
        finally:
            sys.stdout.flush()
