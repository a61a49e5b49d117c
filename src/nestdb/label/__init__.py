"""DFT (or potential) single-point labelling of selected configurations.

Each code is a :class:`Labeller` in its own module (``gpaw``, ``castep``,
``vasp``, ``espresso``, ``potential``), registered by ``label.code`` in
:mod:`nestdb.label.labellers`. See :mod:`nestdb.label.core` for the keys and
sign conventions of labelled records, :mod:`nestdb.label.driver` for the
cache, retries and limits around one calculation, :mod:`nestdb.kpoints` for
the k-point conventions, :mod:`nestdb.label.launch` for MPI command lines
and :mod:`nestdb.label.stage` for the workflow stages.
"""

from nestdb.label.core import Labeller, LabellingFailure, label_configuration, settings_hash
from nestdb.label.labellers import KNOWN_LABELLERS, make_labeller

__all__ = [
    "KNOWN_LABELLERS",
    "Labeller",
    "LabellingFailure",
    "label_configuration",
    "make_labeller",
    "settings_hash",
]
