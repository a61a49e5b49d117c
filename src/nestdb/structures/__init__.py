"""Descriptions of atomic structures shared by several domains.

:mod:`~nestdb.structures.crystals` (reference crystals: fcc, hcp, bcc, ...,
at an element's volume), :mod:`~nestdb.structures.fingerprint` (a hash that
ignores atom order and wrapping), :mod:`~nestdb.structures.steinhardt`
(Steinhardt Q_l/W_l order parameters and the phase they indicate) and
:mod:`~nestdb.structures.warren_cowley` (chemical short-range order).
"""
