"""DFT (or potential) single-point labelling of selected configurations.

Each code is a :class:`Labeller` in its own module (``gpaw``, ``castep``,
``vasp``, ``espresso``, ``potential``); a new code is a subclass plus one entry
in ``core._LABELLER_CLASSES``. See :mod:`nestdb.label.core` for the keys and
sign conventions of labelled records, :mod:`nestdb.label.driver` for the cache,
retries and limits around one calculation, :mod:`nestdb.label.kpoints` for the
k-point conventions and :mod:`nestdb.label.launch` for MPI command lines.
"""

from nestdb.label.core import (
    KNOWN_LABELLERS,
    Labeller,
    LabellingFailure,
    label_configuration,
    make_labeller,
    settings_hash,
)

__all__ = [
    "KNOWN_LABELLERS",
    "Labeller",
    "LabellingFailure",
    "label_configuration",
    "make_labeller",
    "settings_hash",
]
