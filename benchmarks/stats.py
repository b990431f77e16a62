"""Interquartile mean over seeds with a 95% stratified bootstrap confidence interval.

Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the Statistical Precipice": report the
interquartile mean (IQM, the 25% trimmed mean) of the runs with a percentile bootstrap interval, resampling
runs within each task (*stratified*). The point estimate is rliable's ``metrics.aggregate_iqm``
(``scipy.stats.trim_mean(scores, 0.25)``: ``int(0.25 n)`` runs cut at each end, so with fewer than 4 seeds the
IQM is the mean). Each report row or curve is one task, so the bootstrap resamples its seeds, keeping a
seed's curve whole, as rliable's ``StratifiedBootstrap`` does per task.

The resampling is written here rather than taken from ``rliable.library``: that module imports ``arch``,
whose releases that rliable 1.2 accepts (< 8) do not import under pandas 3, and arch 8 rejects the
``random_state`` rliable passes. A seeded NumPy generator keeps every report reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rliable import metrics
from scipy.stats import trim_mean

#: Bootstrap resamples per interval: enough for stable 2.5/97.5 percentiles, a report still builds in seconds.
BOOTSTRAP_REPS = 2000
CONFIDENCE = 0.95
#: Seed of every bootstrap, so that a report rebuilt from the same JSONL is identical.
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class IQMEstimate:
    """IQM over runs and its confidence interval (arrays: one value per column of the scores, or scalars)."""

    iqm: np.ndarray
    low: np.ndarray
    high: np.ndarray


def iqm(scores: np.ndarray) -> np.ndarray:
    """IQM over runs (axis 0) of each column, by rliable's ``aggregate_iqm``.

    :param scores: ``[n_runs]`` or ``[n_runs, n_points]``.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        return np.asarray(metrics.aggregate_iqm(scores))
    return np.array([metrics.aggregate_iqm(scores[:, column]) for column in range(scores.shape[1])])


def iqm_with_ci(
    scores: np.ndarray, reps: int = BOOTSTRAP_REPS, confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED
) -> IQMEstimate:
    """IQM over runs (axis 0) and its percentile bootstrap interval, resampling whole runs.

    :param scores: ``[n_runs]`` (final returns) or ``[n_runs, n_points]`` (learning curves on one grid).
    :raises ValueError: without any run.
    """
    scores = np.asarray(scores, dtype=float)
    n_runs = scores.shape[0]
    if n_runs == 0:
        raise ValueError("IQM of no run")
    rng = np.random.default_rng(seed)
    resampled = scores[rng.integers(0, n_runs, size=(reps, n_runs))]  # [reps, n_runs, (n_points)]
    estimates = trim_mean(resampled, 0.25, axis=1)  # rliable's IQM of each resample, [reps, (n_points)]
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail], axis=0)
    return IQMEstimate(iqm=iqm(scores), low=low, high=high)
