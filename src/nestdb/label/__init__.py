"""DFT (or potential) single-point labelling of selected configurations.

Each code is a :class:`Labeller` in its own module (``gpaw``, ``castep``,
``potential``); a new code (VASP, Quantum ESPRESSO) is a subclass plus one entry in
``core._LABELLER_CLASSES``. See :mod:`nestdb.label.core` for the keys and sign
conventions of labelled records.
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
