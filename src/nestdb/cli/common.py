"""What the ``nestdb`` subcommands share: the stage's log file."""

from __future__ import annotations

import contextlib
from pathlib import Path

from nestdb.logs import logging_to


def log_context(path: str | Path | None):
    """The stage's log file (:func:`nestdb.logs.logging_to`) when one is given.

    Without one, nothing: messages stay unlogged.
    """
    return logging_to(path) if path else contextlib.nullcontext()
