"""Choosing configurations to label.

:mod:`~nestdb.select.rules` (the rules, and the temperature of every NS
sample: temperature window, last, final), :mod:`~nestdb.select.pool` (rules
for exploration pools: trust window, random), :mod:`~nestdb.select.merge`
(databases of several cycles merged, repeats dropped) and
:mod:`~nestdb.select.stage` (the workflow stages).
"""

from nestdb.select.merge import merge_databases
from nestdb.select.pool import score_committee_std, select_pool
from nestdb.select.rules import (
    IF_FEWER_CHOICES,
    KNOWN_RULES,
    POOL_RULES,
    WEIGHT_RESCALE_CHOICES,
    committee_stds,
    frame_temperatures,
    pressure_tag,
    select_configurations,
    validate_rule,
)

__all__ = [
    "IF_FEWER_CHOICES",
    "KNOWN_RULES",
    "POOL_RULES",
    "WEIGHT_RESCALE_CHOICES",
    "committee_stds",
    "frame_temperatures",
    "merge_databases",
    "pressure_tag",
    "score_committee_std",
    "select_configurations",
    "select_pool",
    "validate_rule",
]
