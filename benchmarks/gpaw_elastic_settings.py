"""hcp Mg elastic constants with GPAW at low cost (measured settings, see bottom).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpaw_elastic_settings.py [density] [delta]

Key points (measured on a shared 2-core box):
* OMP_NUM_THREADS=1: with it unset, GPAW's OpenMP threads fight other jobs for the
  2 cores; one single point went from 3.5 s to 46 s (SCF 0.35 -> 6.3 s/step).
* Fixed Gamma-centred k-grid (kpts size) computed once from the cell, density 6
  (14x14x8 for Mg); density 4 (10x10x6) gives C13=7, C33=87 (k-point noise).
* delta=0.02, n_steps=3 (strains -2%, 0, +2%): stresses of Mg at 1% strain are only
  ~0.7 GPa, comparable to the k-point/SCF noise; the 3-point fit slope is a central
  difference, so the quadratic (anharmonic) term cancels.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from ase.calculators.calculator import kptdensity2monkhorstpack  # noqa: E402

from nestdb.bench import elastic_constants  # noqa: E402
from nestdb.label import make_labeller  # noqa: E402
from nestdb.structures.crystals import build_structure  # noqa: E402

warnings.filterwarnings("ignore")
DENSITY = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
DELTA = float(sys.argv[2]) if len(sys.argv) > 2 else 0.02

atoms = build_structure("hcp", element="Mg")
size = [int(n) for n in kptdensity2monkhorstpack(atoms, DENSITY, True)]
settings = {"kpts": {"size": size, "gamma": True}}  # rest: nestdb GPAW defaults (pw 400, PBE, Mg 2e, MV 0.1)
calc = make_labeller({"code": "gpaw", "gpaw": settings}).calculator(tempfile.mkdtemp(prefix="gpaw_elastic_"))
t0 = time.time()
res = elastic_constants(
    atoms, calc, symmetry="hexagonal", delta=DELTA, n_steps=3, relax=True, fmax=5e-3, relax_internal=True, max_steps=20
)
wall = time.time() - t0
print("kpts size", size, "delta", DELTA, "n_steps 3")
print(" ".join(f"{k}={res[k]:.1f}" for k in ("C11", "C12", "C13", "C33", "C44", "C66")), "GPa")
print(
    "positive_definite",
    res["positive_definite"],
    "min_eig",
    round(res["min_eigenvalue_gpa"], 1),
    "B_V",
    round(res["bulk_modulus_voigt_gpa"], 1),
    "relax",
    res["relaxation"]["steps"],
    "steps",
    "internal",
    res["internal_relaxation"],
)
print(f"wall {wall:.0f} s")
