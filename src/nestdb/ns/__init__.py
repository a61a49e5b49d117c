"""Constant-pressure nested sampling (pymatnest-compatible outputs).

>>> from nestdb.ns import NSSettings, run_nested_sampling
>>> from nestdb.calculators import make_calculator
>>> settings = NSSettings(n_walkers=32, walk_length=32, pressure_gpa=10.0)
>>> summary = run_nested_sampling({"Mg": 8}, make_calculator({"type": "lj"}), settings, "out/mg8")
"""

from nestdb.ns.moves import min_aspect_ratio
from nestdb.ns.output import output_paths
from nestdb.ns.run import run_nested_sampling, temperature_estimate
from nestdb.ns.settings import MOVE_TYPES, NSSettings

__all__ = ["MOVE_TYPES", "NSSettings", "min_aspect_ratio", "output_paths", "run_nested_sampling",
           "temperature_estimate"]
