"""Linear-ACE design rows of each configuration: energy, forces and virials.

A linear ACE model (linear embedding, no core repulsion) predicts

    E = Phi . c,   F = dPhi/dr . c,   W = -dPhi/d(strain) . c

with ``Phi_k = sum_atoms B_k(atom)`` the summed per-atom basis values (pyace
"projections").  This module builds the pyace basis from the ``fit:``
settings and computes, per configuration,

* ``phi``          (n_functions,)          summed projections,
* ``force_rows``   (3 n_atoms, n_functions) ``dF_{a,x}/dc_k`` (atom-major x, y, z),
* ``virial_rows``  (9, n_functions)        ``dW_{ab}/dc_k``, in the ``dft_virial``
  convention ``W = -stress * volume``.

pyace gives force derivatives of every basis function but no per-function
stress, so the virial rows are central differences of ``phi`` under six
symmetric strains (12 projection-only evaluations, ~5 % of the cost of the
force rows).

Rows depend only on the basis and the structure, so they are cached on
disk (one ``.npz`` per configuration, keyed by a hash of both): a cycle's
fit reuses the rows of every configuration that an earlier cycle already
computed, which is most of the cost of a refit.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError, DataError

# Fixed parts of the basis: the linear embedding makes E linear in c; no core
# repulsion, so projections . c is the whole energy.
EMBEDDING = {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}
RADIAL = {"radbase": "SBessel", "radparameters": [5.25], "dcut": 0.01}

#: Bump when the meaning of cached rows changes.
FEATURE_VERSION = 1
#: Strain step of the finite-difference virial rows (dimensionless).
VIRIAL_STRAIN_STEP = 1.0e-5
_VOIGT_PAIRS = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


@dataclass
class ConfigFeatures:
    """Design rows of one configuration (see the module docstring)."""

    phi: np.ndarray
    force_rows: np.ndarray
    virial_rows: np.ndarray | None


def basis_settings(settings: dict) -> dict[str, Any]:
    """The part of the ``fit:`` settings that defines the basis (used as cache key)."""
    return {
        "elements": list(settings["elements"]),
        "cutoff": float(settings["cutoff"]),
        "nradmax_by_orders": list(settings["nradmax_by_orders"]),
        "lmax_by_orders": list(settings["lmax_by_orders"]),
        "number_of_functions_per_element": settings.get("number_of_functions_per_element"),
        "embedding": EMBEDDING,
        "radial": RADIAL,
    }


def build_basis(settings: dict):
    """pyace ``ACEBBasisSet`` (all coefficients zero) for validated fit settings."""
    # optional: pyace is the `ace` extra, imported only where a model is built or evaluated
    from pyace import ACEBBasisSet
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    functions: dict[str, Any] = {
        "ALL": {"nradmax_by_orders": settings["nradmax_by_orders"], "lmax_by_orders": settings["lmax_by_orders"]}
    }
    if settings.get("number_of_functions_per_element") is not None:
        functions["number_of_functions_per_element"] = settings["number_of_functions_per_element"]
    potential_config = {
        "deltaSplineBins": 0.001,
        "elements": list(settings["elements"]),
        "embeddings": {"ALL": dict(EMBEDDING)},
        "bonds": {"ALL": {**RADIAL, "rcut": settings["cutoff"]}},
        "functions": functions,
    }
    try:
        config = create_multispecies_basis_config(potential_config)
    except Exception as exc:  # pyace validates the basis and raises plain errors
        raise ConfigError(f"pyace rejected the basis from fit.nradmax_by_orders/lmax_by_orders: {exc}") from exc
    return ACEBBasisSet(config)


def function_offsets(basis) -> tuple[np.ndarray, np.ndarray]:
    """Start index and count of each element's functions in the coefficient vector.

    pyace orders coefficients element by element (element index order), rank-1
    functions first; per-atom projections follow the same order.
    """
    counts = np.array([len(r1) + len(r) for r1, r in zip(basis.basis_rank1, basis.basis, strict=True)], dtype=int)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
    return offsets, counts


def function_degrees(basis, l_weight: float) -> np.ndarray:
    """Degree ``sum(n) + l_weight * sum(l)`` of every function, in coefficient order.

    The smoothness prior of :func:`nestdb.fit.linear_ace.fit_linear_ace`
    damps functions by this degree (radial index n counts 1, angular l counts
    ``l_weight``, as the total degree of ACEpotentials.jl).
    """
    degrees = []
    for rank1, higher in zip(basis.basis_rank1, basis.basis, strict=True):
        degrees.extend(float(sum(f.ns)) + l_weight * float(sum(f.ls)) for f in list(rank1) + list(higher))
    return np.array(degrees)


class _RowComputer:
    """One pyace evaluator for a basis; computes the rows of single configurations."""

    def __init__(self, settings: dict):
        # optional: pyace is the `ace` extra, imported only where a model is built or evaluated
        from pyace import ACEBEvaluator, ACECalculator

        self.basis = build_basis(settings)
        self.offsets, self.counts = function_offsets(self.basis)
        self.n_functions = int(self.counts.sum())
        self.element_index = dict(self.basis.elements_to_index_map)
        # the calculator keeps a raw pointer to the evaluator: hold a reference
        self._evaluator = ACEBEvaluator(self.basis)
        self._calculator = ACECalculator(self._evaluator)

    def _species(self, atoms: Atoms) -> np.ndarray:
        try:
            return np.array([self.element_index[s] for s in atoms.get_chemical_symbols()], dtype=int)
        except KeyError as exc:
            where = (
                f"{atoms.info.get('source_file', 'in-memory frames')}, configuration "
                f"{atoms.info.get('source_index', '?')}"
            )
            raise ConfigError(
                f"{where} contains element {exc.args[0]!r}, which is not in fit.elements "
                f"{sorted(self.element_index)}; add it there and to fit.reference_energies"
            ) from None

    def _evaluate(self, atoms: Atoms, species: np.ndarray, with_forces: bool):
        # optional: pyace is the `ace` extra, imported only where a model is built or evaluated
        from pyace.atomicenvironment import aseatoms_to_atomicenvironment

        env = aseatoms_to_atomicenvironment(atoms, cutoff=self.basis.cutoffmax, elements_mapper_dict=self.element_index)
        self._calculator.compute(env, compute_projections=True, compute_b_grad=with_forces)
        phi = np.zeros(self.n_functions)
        for atom, projection in zip(species, self._calculator.projections, strict=True):
            start = self.offsets[atom]
            phi[start : start + self.counts[atom]] += projection
        return phi

    def rows(self, atoms: Atoms, with_virials: bool) -> ConfigFeatures:
        species = self._species(atoms)
        phi = self._evaluate(atoms, species, with_forces=True)
        # d(-E)/dr of every basis function (all elements' columns): (n_atoms, n_functions, 3)
        grads = np.asarray(self._calculator.forces_bfuncs)
        force_rows = grads.transpose(0, 2, 1).reshape(3 * len(atoms), self.n_functions)
        virial_rows = self._virial_rows(atoms, species) if with_virials and atoms.cell.rank == 3 else None
        return ConfigFeatures(phi, force_rows, virial_rows)

    def _virial_rows(self, atoms: Atoms, species: np.ndarray) -> np.ndarray:
        # W_ab = -dE/d(eps_ab) for a symmetric strain eps; central differences of phi
        virial = np.zeros((3, 3, self.n_functions))
        for a, b in _VOIGT_PAIRS:
            direction = np.zeros((3, 3))
            direction[a, b] += 0.5
            direction[b, a] += 0.5
            values = []
            for sign in (1.0, -1.0):
                strained = Atoms(atoms.numbers, cell=atoms.cell, positions=atoms.positions, pbc=atoms.pbc)
                strained.set_cell(atoms.cell[:] @ (np.eye(3) + sign * VIRIAL_STRAIN_STEP * direction), scale_atoms=True)
                values.append(self._evaluate(strained, species, with_forces=False))
            derivative = -(values[0] - values[1]) / (2 * VIRIAL_STRAIN_STEP)
            virial[a, b] = virial[b, a] = derivative
        return virial.reshape(9, self.n_functions)


def frame_key(atoms: Atoms, basis_key: str) -> str:
    digest = hashlib.sha256(basis_key.encode())
    for array in (
        atoms.numbers.astype(np.int64),
        np.asarray(atoms.positions, dtype=np.float64),
        np.asarray(atoms.cell[:], dtype=np.float64),
        np.asarray(atoms.pbc, dtype=bool),
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]


def basis_key(settings: dict) -> str:
    """Hash of the basis definition, the feature version and the pyace version."""
    text = json.dumps(
        {"basis": basis_settings(settings), "version": FEATURE_VERSION, "pyace": version("python-ace")}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Worker-process state of the parallel row computation (one evaluator per process).
_WORKER: dict[str, Any] = {}


def _worker_init(settings: dict) -> None:
    _WORKER["computer"] = _RowComputer(settings)


def _worker_rows(task: tuple[Atoms, bool]) -> ConfigFeatures:
    atoms, with_virials = task
    return _WORKER["computer"].rows(atoms, with_virials)


def load_cached_rows(path: Path) -> ConfigFeatures | None:
    try:
        with np.load(path) as data:
            virial = np.asarray(data["virial_rows"]) if "virial_rows" in data.files else None
            return ConfigFeatures(np.asarray(data["phi"]), np.asarray(data["force_rows"]), virial)
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a truncated cache file is recomputed


def store_cached_rows(path: Path, features: ConfigFeatures) -> None:
    arrays = {"phi": features.phi, "force_rows": features.force_rows}
    if features.virial_rows is not None:
        arrays["virial_rows"] = features.virial_rows
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, path)  # atomic: concurrent fits never read half a file


def compute_features(
    frames: list[Atoms],
    settings: dict,
    *,
    with_virials: bool = True,
    cache_dir: str | Path | None = None,
    n_jobs: int = 1,
) -> tuple[list[ConfigFeatures], dict]:
    """Design rows of every configuration, from the cache where possible.

    Parameters
    ----------
    frames
        Configurations (their labels are not used).
    settings
        Validated ``fit:`` settings (basis keys).
    with_virials
        Also compute virial rows (configurations without a 3D cell get ``None``).
    cache_dir
        Folder of the row cache (created; one subfolder per basis); ``None``: no cache.
    n_jobs
        Worker processes for the configurations not in the cache.

    Returns
    -------
    features, info
        One :class:`ConfigFeatures` per frame, and ``{"n_cached", "n_computed", "basis_key"}``.
    """
    key = basis_key(settings)
    cache = Path(cache_dir) / key if cache_dir else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    features: list[ConfigFeatures | None] = [None] * len(frames)
    keys = [frame_key(atoms, key) for atoms in frames]
    todo = []
    for i, atoms in enumerate(frames):
        cached = load_cached_rows(cache / f"{keys[i]}.npz") if cache is not None else None
        if cached is not None and (cached.virial_rows is not None or not with_virials or atoms.cell.rank < 3):
            features[i] = cached
        else:
            todo.append(i)
    tasks = [(_bare_copy(frames[i]), with_virials) for i in todo]
    # results are stored as they arrive, so an interrupted fit keeps its finished rows
    if n_jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(
            max_workers=n_jobs,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
            initargs=(settings,),
        ) as pool:
            chunk = max(1, min(16, len(tasks) // (4 * n_jobs)))
            for i, result in zip(todo, pool.map(_worker_rows, tasks, chunksize=chunk), strict=True):
                features[i] = result
                if cache is not None:
                    store_cached_rows(cache / f"{keys[i]}.npz", result)
    elif tasks:
        computer = _RowComputer(settings)
        for i, (atoms, virials) in zip(todo, tasks, strict=True):
            features[i] = computer.rows(atoms, virials)
            if cache is not None:
                store_cached_rows(cache / f"{keys[i]}.npz", features[i])
    if any(f is None for f in features):
        raise DataError("internal error: design rows missing for some configurations")
    return features, {"n_cached": len(frames) - len(todo), "n_computed": len(todo), "basis_key": key}


def _bare_copy(atoms: Atoms) -> Atoms:
    """Structure only (cheap to send to a worker), keeping the provenance used in messages."""
    copy = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    for name in ("source_file", "source_index"):
        if name in atoms.info:
            copy.info[name] = atoms.info[name]
    return copy
