"""Selecting from exploration pools (random crystals, MD, NS samples) by rules that need no thermodynamics.

``trust_window`` keeps the configurations whose committee energy STD lies in
a window (DP-GEN's trust levels) and ``random`` draws a fixed number; both
take the pool in its order (MD time, NS iteration).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ase import Atoms

from nestdb.errors import ConfigError
from nestdb.models.ace_committee import predict_frames
from nestdb.select.rules import POOL_RULES, pool_choice, validate_rule

log = logging.getLogger(__name__)


def select_pool(frames: list[Atoms], rule: dict, *, source: str = "") -> list[Atoms]:
    """Select from an exploration pool (:mod:`nestdb.explore`) by a pool rule.

    Parameters
    ----------
    frames : list of Atoms
        Explored configurations in pool order, with their provenance info
        (``config_id``, ``cycle``, ``pressure``, ...) and, for the trust
        window, ``committee_std`` (eV/atom).
    rule : dict
        ``{"kind": "trust_window", "sigma_lo", "sigma_hi", "count"}`` or
        ``{"kind": "random", "count", "seed"}`` (:func:`validate_rule`).
    source : str
        Name of the pool for messages.

    Returns
    -------
    list of Atoms
        Copies of the chosen frames. A trust window with no candidate returns
        an empty list (DP-GEN's sign of convergence) unless ``if_fewer: fail``.

    Raises
    ------
    ConfigError
        A rule that needs NS thermodynamics (``temperature_window``, ``last``, ``final``).
    DataError
        Frames without committee STD for the trust window, or too few under ``if_fewer: fail``.
    """
    validate_rule(rule, f"selection rule for {source or 'pool'}")
    if rule["kind"] not in POOL_RULES:
        raise ConfigError(
            f"selection rule {rule['kind']!r} needs nested-sampling thermodynamics; an exploration "
            f"pool ({source or 'pool'}) is selected with one of {', '.join(POOL_RULES)}"
        )
    if not frames:
        return []
    return [frames[j].copy() for j in pool_choice(frames, rule, source or "pool")]


def score_committee_std(frames: list[Atoms], model_dir: str | Path) -> int:
    """Give every frame without ``committee_std`` (eV/atom) the committee STD of the model in ``model_dir``.

    NS records the STD only where the run limits it (``committee_std_max``);
    a trust window on the other samples needs it. Returns how many frames were scored.
    """
    missing = [a for a in frames if "committee_std" not in a.info]
    if missing:
        stds = predict_frames(model_dir, missing)["energy_std_per_atom"]
        for atoms, std in zip(missing, stds, strict=True):
            atoms.info["committee_std"] = float(std)
        log.info("scored %d samples with the committee of %s", len(missing), model_dir)
    return len(missing)
