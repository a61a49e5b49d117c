"""Bayesian linear regression on normal equations (evidence maximisation).

Same model and hyper-parameter updates as scikit-learn's ``BayesianRidge``
(MacKay's evidence maximisation: Gaussian noise of precision ``alpha`` on
every weighted row, isotropic Gaussian prior of precision ``lambda`` on the
coefficients), but working on the normal equations ``X^T X`` and ``X^T y``
instead of the design matrix itself.  They are accumulated configuration by
configuration, so a fit never holds the ~50 000 x n_functions design matrix,
and a refit on a subset (calibration) or with other configuration weights
(bootstrap) only re-accumulates a Gram matrix.

Columns are divided by their RMS before the fit so the isotropic prior treats
functions of very different magnitude alike; all-zero columns keep scale 1
and end with coefficient 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Gamma hyper-priors on alpha and lambda: sklearn's (uninformative) defaults.
_HYPER_PRIOR = 1.0e-6


@dataclass
class NormalEquations:
    """``X^T X``, ``X^T y``, ``y^T y`` and the row count of a weighted least-squares problem."""

    gram: np.ndarray
    rhs: np.ndarray
    yty: float
    n_rows: int

    @classmethod
    def from_blocks(cls, blocks, n_columns: int) -> NormalEquations:
        """Accumulate from ``(rows, targets)`` blocks (one or a few configurations each)."""
        gram = np.zeros((n_columns, n_columns))
        rhs = np.zeros(n_columns)
        yty = 0.0
        n_rows = 0
        pending_rows, pending_targets = [], []

        def flush():
            nonlocal yty, n_rows
            if pending_rows:
                rows = np.vstack(pending_rows)
                targets = np.concatenate(pending_targets)
                gram[:] += rows.T @ rows
                rhs[:] += rows.T @ targets
                yty += float(targets @ targets)
                n_rows += len(targets)
                pending_rows.clear()
                pending_targets.clear()

        # batches of ~4000 rows keep the BLAS calls efficient and the memory small
        size = 0
        for rows, targets in blocks:
            pending_rows.append(rows)
            pending_targets.append(targets)
            size += len(targets)
            if size >= 4000:
                flush()
                size = 0
        flush()
        return cls(gram, rhs, yty, n_rows)


@dataclass
class BayesianFit:
    """Posterior of a Bayesian linear fit, in raw (unscaled) coefficient units."""

    mean: np.ndarray
    covariance: np.ndarray
    alpha: float
    lam: float
    n_iter: int
    effective_parameters: float
    prior_precision: np.ndarray  # diagonal of the prior precision matrix, raw units

    def sample(self, size: int, seed: int) -> np.ndarray:
        """``size`` draws from N(mean, covariance); round-off negative eigenvalues are clipped."""
        covariance = 0.5 * (self.covariance + self.covariance.T)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
        normal = np.random.default_rng(seed).standard_normal((size, self.mean.size))
        return self.mean[None, :] + normal @ root.T


def bayesian_ridge(
    equations: NormalEquations,
    max_iter: int = 300,
    tol: float = 1e-8,
    alpha: float | None = None,
    lam: float | None = None,
    prior_weights: np.ndarray | None = None,
) -> BayesianFit:
    """Evidence-maximising Bayesian ridge regression on normal equations.

    Parameters
    ----------
    equations
        Accumulated normal equations.
    max_iter, tol
        Iteration limit and relative tolerance on the coefficients.
    alpha, lam
        Fixed noise and prior precisions (both given: no evidence iterations,
        e.g. for bootstrap members that reuse the hyper-parameters of the full fit).
    prior_weights
        Relative prior stiffness per column (default 1): the prior precision of
        column k is ``lambda * prior_weights[k]**2`` (after the RMS scaling),
        e.g. a smoothness prior that damps high-degree basis functions.

    Returns
    -------
    BayesianFit
    """
    scale = np.sqrt(np.clip(np.diag(equations.gram), 0.0, None) / max(equations.n_rows, 1))
    scale[scale == 0] = 1.0
    if prior_weights is not None:
        scale = scale * np.asarray(prior_weights, dtype=float)
    gram = equations.gram / np.outer(scale, scale)
    rhs = equations.rhs / scale
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (gram + gram.T))
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    projected = eigenvectors.T @ rhs
    fixed = alpha is not None and lam is not None
    if not fixed:
        variance = equations.yty / max(equations.n_rows, 1)
        alpha = 1.0 / variance if variance > 0 else 1.0
        lam = 1.0
    coef = np.zeros_like(rhs)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new_coef = eigenvectors @ (projected * alpha / (alpha * eigenvalues + lam))
        gamma = float(np.sum(alpha * eigenvalues / (alpha * eigenvalues + lam)))
        converged = n_iter > 1 and np.linalg.norm(new_coef - coef) <= tol * max(np.linalg.norm(new_coef), 1e-300)
        coef = new_coef
        if fixed or converged:
            break
        rss = max(equations.yty - 2.0 * coef @ rhs + coef @ gram @ coef, 0.0)
        lam = (gamma + 2 * _HYPER_PRIOR) / (float(coef @ coef) + 2 * _HYPER_PRIOR)
        alpha = (equations.n_rows - gamma + 2 * _HYPER_PRIOR) / (rss + 2 * _HYPER_PRIOR)
    covariance = (eigenvectors / (alpha * eigenvalues + lam)) @ eigenvectors.T
    return BayesianFit(
        mean=coef / scale,
        covariance=covariance / np.outer(scale, scale),
        alpha=float(alpha),
        lam=float(lam),
        n_iter=n_iter,
        effective_parameters=float(np.sum(alpha * eigenvalues / (alpha * eigenvalues + lam))),
        prior_precision=lam * scale**2,
    )
