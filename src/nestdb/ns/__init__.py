"""Constant-pressure nested sampling (pymatnest-compatible outputs).

Modules: :mod:`~nestdb.ns.settings` (NSSettings and checks),
:mod:`~nestdb.ns.moves` (pure proposals), :mod:`~nestdb.ns.walkers` (walker
arrays, the model evaluator), :mod:`~nestdb.ns.sampler` (initial walkers and
moves), :mod:`~nestdb.ns.loop` (the NS loop, progress, summary),
:mod:`~nestdb.ns.parallel` (walking clones in worker processes),
:mod:`~nestdb.ns.restart` (snapshots, exact restart),
:mod:`~nestdb.ns.output` (pymatnest's file formats),
:mod:`~nestdb.ns.pymatnest` (running pymatnest itself, reading its files),
:mod:`~nestdb.ns.stage` (the workflow's ``ns`` rule); the command line is
:mod:`~nestdb.cli.ns` (``nestdb ns run``).

>>> from nestdb.ns import NSSettings, run_nested_sampling
>>> from nestdb.models.calculators import make_calculator
>>> settings = NSSettings(n_walkers=32, walk_length=32, pressure_gpa=10.0)
>>> summary = run_nested_sampling({"Mg": 8}, make_calculator({"type": "lj"}), settings, "out/mg8")
"""

from nestdb.ns.loop import run_nested_sampling, temperature_estimate
from nestdb.ns.moves import min_aspect_ratio
from nestdb.ns.output import output_paths
from nestdb.ns.pymatnest import read_ns_frames
from nestdb.ns.settings import MOVE_TYPES, NSSettings

__all__ = [
    "MOVE_TYPES",
    "NSSettings",
    "min_aspect_ratio",
    "output_paths",
    "read_ns_frames",
    "run_nested_sampling",
    "temperature_estimate",
]
