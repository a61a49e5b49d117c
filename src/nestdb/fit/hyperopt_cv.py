"""Cross-validated linear-ACE fits from cached normal equations: the cost of one ``fit.hyperopt`` trial.

Three facts make a trial cost seconds instead of a row computation:

* **Smaller bases are column subsets.** pyace's B-basis functions of a basis
  with ``nradmax_by_orders``/``lmax_by_orders`` no larger than those of a
  bigger one (same elements, cutoff and radial basis) are exactly the bigger
  basis's functions with ``max(n) <= nradmax[rank - 1]`` and
  ``max(l) <= lmax[rank - 1]``, with bit-identical values (checked by
  tests/test_fit_hyperopt.py on design rows and on the pyace energy of a fitted
  small basis) -- provided no rank has more radial functions than rank 1:
  pyace builds the radial functions of every rank from ``nradmax_by_orders[0]``
  basis functions, so with e.g. ``[8, 9, 3]`` the n = 9 functions are other
  functions than the larger basis's (:func:`check_radial_order` refuses such
  sizes).  So the design rows of the largest basis, computed once per cutoff,
  hold every smaller basis.
* **Weights are squared into the normal equations.** With one Gram matrix per
  row kind (energy, forces, virials) the normal equations of any weights are
  ``w_E^2 G_E + w_F^2 G_F + w_V^2 G_V`` (rows as in :mod:`nestdb.fit.linear_ace`).
* **Folds add.** The training equations of a fold are the sum of the other
  folds' equations; validation errors come from the held-out fold's energy
  rows and unweighted force/virial Grams (``|X c - y|^2 = c.Gc - 2 c.r + y.y``).

A trial is then one Bayesian ridge (:func:`nestdb.fit.bayesian.bayesian_ridge`,
the fit's own regression) per fold on a sub-block of these matrices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from nestdb.errors import ConfigError, DataError
from nestdb.fit.bayesian import NormalEquations, bayesian_ridge
from nestdb.fit.dataset import ENERGY_KEY, FORCES_KEY, VIRIAL_KEY, frame_groups, frame_weight
from nestdb.fit.features import ConfigFeatures
from nestdb.fit.settings import check_radial_order

ROW_KINDS = ("energy", "force", "virial")


def function_key(function) -> tuple:
    """Identity of a pyace B-basis function: central and neighbour species, radial and angular indices,
    intermediate couplings."""
    return (int(function.mu0), tuple(function.mus), tuple(function.ns), tuple(function.ls), tuple(function.LS))


@dataclass
class FunctionTable:
    """Rank, largest n and l, and sums of n and l of every function of a basis, in coefficient order."""

    keys: list[tuple]
    rank: np.ndarray
    max_n: np.ndarray
    max_l: np.ndarray
    sum_n: np.ndarray
    sum_l: np.ndarray

    @classmethod
    def from_basis(cls, basis) -> FunctionTable:
        functions = [
            f for rank1, higher in zip(basis.basis_rank1, basis.basis, strict=True) for f in list(rank1) + list(higher)
        ]
        return cls(
            keys=[function_key(f) for f in functions],
            rank=np.array([len(f.ns) for f in functions], dtype=int),
            max_n=np.array([max(f.ns) for f in functions], dtype=int),
            max_l=np.array([max(f.ls) for f in functions], dtype=int),
            sum_n=np.array([sum(f.ns) for f in functions], dtype=float),
            sum_l=np.array([sum(f.ls) for f in functions], dtype=float),
        )

    @property
    def n_functions(self) -> int:
        return len(self.keys)

    def mask(self, nradmax_by_orders: list[int], lmax_by_orders: list[int]) -> np.ndarray:
        """Indices of the functions that a basis with these sizes has (a subset of this, larger, basis)."""
        check_radial_order(nradmax_by_orders)
        nradmax = np.asarray(list(nradmax_by_orders), dtype=int)
        lmax = np.asarray(list(lmax_by_orders), dtype=int)
        if nradmax.size > self.rank.max(initial=0) or lmax.size != nradmax.size:
            raise ConfigError(
                f"basis sizes {list(nradmax_by_orders)}/{list(lmax_by_orders)} do not fit the "
                f"largest basis (ranks up to {self.rank.max(initial=0)})"
            )
        in_rank = self.rank <= nradmax.size
        rank_index = np.clip(self.rank - 1, 0, nradmax.size - 1)
        keep = in_rank & (self.max_n <= nradmax[rank_index]) & (self.max_l <= lmax[rank_index])
        return np.flatnonzero(keep)

    def columns_of(self, basis) -> np.ndarray:
        """Columns of this basis holding each function of ``basis`` (in ``basis``'s coefficient order).

        Raises
        ------
        ConfigError
            When ``basis`` has a function this basis lacks (it is not a subset).
        """
        index = {key: i for i, key in enumerate(self.keys)}
        small = FunctionTable.from_basis(basis)
        for table, name in ((self, "the largest basis"), (small, "the chosen basis")):
            # radial functions with n above rank 1's count are built differently (check_radial_order)
            if table.n_functions and np.any(table.max_n > table.max_n[table.rank == 1].max(initial=0)):
                raise ConfigError(
                    f"{name} has functions of rank >= 2 with more radial functions than rank 1; "
                    "it is no column subset (use nradmax_by_orders[0] >= every other entry)"
                )
        columns = []
        for key in small.keys:
            if key not in index:
                raise ConfigError(
                    f"basis function {key} is not in the largest basis of fit.hyperopt; "
                    "raise fit.hyperopt.max_nradmax_by_orders/max_lmax_by_orders"
                )
            columns.append(index[key])
        return np.array(columns, dtype=int)


def stratified_folds(frames: list[Atoms], n_folds: int, seed: int) -> list[np.ndarray]:
    """``n_folds`` disjoint folds covering ``frames``, each with its share of every (cycle, pressure) stratum.

    The members of each stratum are shuffled and dealt round-robin, with one
    counter across strata, so fold sizes differ by at most one.
    """
    if n_folds < 2 or n_folds > len(frames):
        raise DataError(
            f"fit.hyperopt.cv_folds = {n_folds} needs 2 <= folds <= the {len(frames)} configurations "
            "of the cross-validation"
        )
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, str], list[int]] = {}
    for i, atoms in enumerate(frames):
        groups = frame_groups(atoms)
        strata.setdefault((groups["cycle"], groups["pressure"]), []).append(i)
    order = np.concatenate([rng.permutation(strata[key]) for key in sorted(strata)])
    start = int(rng.integers(n_folds))
    assignment = (start + np.arange(len(order))) % n_folds
    return [np.sort(order[assignment == k]) for k in range(n_folds)]


@dataclass
class FoldBlock:
    """Normal equations of one fold's configurations, per row kind, and its validation data."""

    gram: dict[str, np.ndarray]
    rhs: dict[str, np.ndarray]
    yty: dict[str, float]
    n_rows: dict[str, int]
    energy_rows: np.ndarray  # per atom: [phi, element counts] / N   (n_configs, n_columns)
    energy_targets: np.ndarray  # (E - sum E0) / N
    force_metric: tuple[np.ndarray, np.ndarray, float, int]  # unweighted Gram, rhs, y.y, components
    virial_metric: tuple[np.ndarray, np.ndarray, float, int] | None  # per-atom virial; None without virials


class CrossValidation:
    """k-fold (optionally repeated) cross-validation of linear-ACE fits from the rows of the largest basis.

    Parameters
    ----------
    frames
        Labelled configurations (all of them are cross-validated).
    features
        Their design rows for the largest basis (:func:`nestdb.fit.features.compute_features`).
    functions
        :class:`FunctionTable` of that basis.
    settings
        Validated ``fit:`` settings (reference energies, sample weights, fitted E0).
    folds
        One list of disjoint index arrays per repeat (:func:`stratified_folds`).
    """

    def __init__(
        self,
        frames: list[Atoms],
        features: list[ConfigFeatures],
        functions: FunctionTable,
        settings: dict,
        folds: list[list[np.ndarray]],
    ):
        self.functions = functions
        self.fit_reference_energies = bool(settings["fit_reference_energies"])
        self.n_columns = functions.n_functions + len(settings["elements"])
        self.folds = folds
        self.use_sample_weights = bool(settings["use_sample_weights"])
        self._elements = list(settings["elements"])
        self._e0 = settings["reference_energies"]
        self.blocks = [
            [self._block([frames[i] for i in fold], [features[i] for i in fold]) for fold in repeat] for repeat in folds
        ]

    # ------------------------------------------------------------------ building
    def _block(self, frames: list[Atoms], features: list[ConfigFeatures]) -> FoldBlock:
        extra = len(self._elements)
        counts = np.array([[a.get_chemical_symbols().count(e) for e in self._elements] for a in frames], dtype=float)
        n_atoms = np.array([len(a) for a in frames], dtype=float)
        weight = np.array([frame_weight(a) if self.use_sample_weights else 1.0 for a in frames])
        binding = np.array(
            [float(a.info[ENERGY_KEY]) - sum(self._e0[s] for s in a.get_chemical_symbols()) for a in frames]
        )
        energy_rows = np.hstack([np.array([f.phi for f in features]), counts])
        has_virial = [f.virial_rows is not None and VIRIAL_KEY in a.info for f, a in zip(features, frames, strict=True)]

        def pad(rows):
            return np.hstack([rows, np.zeros((rows.shape[0], extra))]) if extra else rows

        def equations(blocks):
            return NormalEquations.from_blocks(blocks, self.n_columns)

        scale_e = weight / np.sqrt(n_atoms)
        kinds = {
            "energy": equations(
                (scale_e[k] * energy_rows[k][None, :], np.array([scale_e[k] * binding[k]])) for k in range(len(frames))
            ),
            "force": equations(
                (weight[k] * pad(f.force_rows), weight[k] * np.asarray(a.arrays[FORCES_KEY], dtype=float).reshape(-1))
                for k, (f, a) in enumerate(zip(features, frames, strict=True))
            ),
            "virial": equations(
                (scale_e[k] * pad(f.virial_rows), scale_e[k] * np.asarray(a.info[VIRIAL_KEY], dtype=float).reshape(9))
                for k, (f, a) in enumerate(zip(features, frames, strict=True))
                if has_virial[k]
            ),
        }
        if np.all(weight == 1.0):  # the fit's force rows are the unweighted ones
            force = kinds["force"]
        else:
            force = equations(
                (pad(f.force_rows), np.asarray(a.arrays[FORCES_KEY], dtype=float).reshape(-1))
                for f, a in zip(features, frames, strict=True)
            )
        virial = None
        if any(has_virial):  # per-atom virial error, the unit of the fit's metrics
            virial_eq = equations(
                (pad(f.virial_rows) / n_atoms[k], np.asarray(a.info[VIRIAL_KEY], dtype=float).reshape(9) / n_atoms[k])
                for k, (f, a) in enumerate(zip(features, frames, strict=True))
                if has_virial[k]
            )
            virial = (virial_eq.gram, virial_eq.rhs, virial_eq.yty, virial_eq.n_rows)
        return FoldBlock(
            gram={k: e.gram for k, e in kinds.items()},
            rhs={k: e.rhs for k, e in kinds.items()},
            yty={k: e.yty for k, e in kinds.items()},
            n_rows={k: e.n_rows for k, e in kinds.items()},
            energy_rows=energy_rows / n_atoms[:, None],
            energy_targets=binding / n_atoms,
            force_metric=(force.gram, force.rhs, force.yty, force.n_rows),
            virial_metric=virial,
        )

    # ------------------------------------------------------------------ fitting
    def columns(self, nradmax_by_orders, lmax_by_orders) -> np.ndarray:
        """Columns of the basis with these sizes, followed by the fitted-E0 columns when fitted."""
        columns = self.functions.mask(nradmax_by_orders, lmax_by_orders)
        if self.fit_reference_energies:
            columns = np.concatenate([columns, self.functions.n_functions + np.arange(len(self._elements))])
        return columns

    def prior_weights(self, columns: np.ndarray, smoothness_prior: float, l_weight: float) -> np.ndarray:
        """``degree**p`` per function column (as :func:`nestdb.fit.linear_ace.prior_weights`), 1 for E0 columns."""
        weights = np.ones(columns.size)
        functions = columns < self.functions.n_functions
        degree = self.functions.sum_n[columns[functions]] + l_weight * self.functions.sum_l[columns[functions]]
        weights[functions] = np.clip(degree, 1.0, None) ** smoothness_prior
        return weights

    def equations(self, blocks: list[FoldBlock], params: dict, columns: np.ndarray) -> NormalEquations:
        """Normal equations of ``blocks`` together for the weights in ``params``, restricted to ``columns``."""
        weights = {
            "energy": params["energy_weight"],
            "force": params["force_weight"],
            "virial": params["virial_weight"],
        }
        kinds = [k for k in ROW_KINDS if weights[k] > 0]
        gram = sum(weights[k] ** 2 * b.gram[k] for b in blocks for k in kinds)
        rhs = sum(weights[k] ** 2 * b.rhs[k] for b in blocks for k in kinds)
        yty = float(sum(weights[k] ** 2 * b.yty[k] for b in blocks for k in kinds))
        n_rows = int(sum(b.n_rows[k] for b in blocks for k in kinds))
        return NormalEquations(gram[np.ix_(columns, columns)], rhs[columns], yty, n_rows)

    def fit(self, params: dict, blocks: list[FoldBlock] | None = None):
        """Bayesian ridge fit on ``blocks`` (default: every fold of the first repeat).

        Returns
        -------
        columns, fit
            The columns used and the :class:`~nestdb.fit.bayesian.BayesianFit` (coefficients of those columns).
        """
        columns = self.columns(params["nradmax_by_orders"], params["lmax_by_orders"])
        blocks = self.blocks[0] if blocks is None else blocks
        weights = self.prior_weights(columns, params["smoothness_prior"], params["smoothness_l_weight"])
        return columns, bayesian_ridge(self.equations(blocks, params, columns), prior_weights=weights)

    def evaluate(self, params: dict) -> dict:
        """Cross-validated errors of the fit settings ``params``.

        ``params`` holds ``nradmax_by_orders``, ``lmax_by_orders``,
        ``energy_weight``, ``force_weight``, ``virial_weight``,
        ``smoothness_prior`` and ``smoothness_l_weight``.

        Returns
        -------
        dict
            ``energy_rmse_mev_per_atom``, ``force_rmse_mev_per_a``,
            ``virial_rmse_mev_per_atom`` (None without virials): RMSEs pooled
            over every held-out configuration of every fold and repeat;
            ``fold_energy_rmse``/``fold_force_rmse`` per fold; ``n_functions``;
            ``seconds``; ``finite`` (False when a fold's regression diverged).
        """
        start = time.perf_counter()
        columns = self.columns(params["nradmax_by_orders"], params["lmax_by_orders"])
        sse = {"energy": 0.0, "force": 0.0, "virial": 0.0}
        count = {"energy": 0, "force": 0, "virial": 0}
        fold_e, fold_f = [], []
        finite = True
        for repeat in self.blocks:
            for k, held_out in enumerate(repeat):
                _, fit = self.fit(params, [b for j, b in enumerate(repeat) if j != k])
                if not np.all(np.isfinite(fit.mean)):
                    finite = False
                    continue
                coefficients = np.zeros(self.n_columns)
                coefficients[columns] = fit.mean
                energy_error = held_out.energy_rows @ coefficients - held_out.energy_targets
                force_sse = _sse(coefficients, held_out.force_metric)
                sse["energy"] += float(energy_error @ energy_error)
                count["energy"] += energy_error.size
                sse["force"] += force_sse
                count["force"] += held_out.force_metric[3]
                if held_out.virial_metric is not None:
                    sse["virial"] += _sse(coefficients, held_out.virial_metric)
                    count["virial"] += held_out.virial_metric[3]
                fold_e.append(1000 * np.sqrt(energy_error @ energy_error / energy_error.size))
                fold_f.append(1000 * np.sqrt(force_sse / max(held_out.force_metric[3], 1)))

        def rmse(kind):
            return 1000 * float(np.sqrt(sse[kind] / count[kind])) if count[kind] else None

        return {
            "energy_rmse_mev_per_atom": rmse("energy"),
            "force_rmse_mev_per_a": rmse("force"),
            "virial_rmse_mev_per_atom": rmse("virial"),
            "fold_energy_rmse": fold_e,
            "fold_force_rmse": fold_f,
            "n_functions": int(np.sum(columns < self.functions.n_functions)),
            "seconds": time.perf_counter() - start,
            "finite": finite,
        }


def _sse(coefficients: np.ndarray, metric: tuple[np.ndarray, np.ndarray, float, int]) -> float:
    """Sum of squared residuals ``|X c - y|^2`` from ``X^T X``, ``X^T y`` and ``y^T y`` (never below 0)."""
    gram, rhs, yty, _ = metric
    return max(float(coefficients @ gram @ coefficients - 2.0 * coefficients @ rhs + yty), 0.0)
