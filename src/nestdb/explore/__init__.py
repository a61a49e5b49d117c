"""Exploration strategies besides nested sampling: ASSYST-style random crystals and DP-GEN-style MD.

See :mod:`nestdb.explore.settings` for the ``cycles[i].explore`` keys,
:mod:`nestdb.explore.random_crystals`, :mod:`nestdb.explore.md`, and
:mod:`nestdb.explore.stage` for the workflow stages.
"""

from nestdb.explore.settings import EXPLORE_DEFAULTS, EXPLORE_KINDS, explore_settings

__all__ = ["EXPLORE_DEFAULTS", "EXPLORE_KINDS", "explore_settings"]
