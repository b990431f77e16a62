"""Optuna samplers for ``python -m sb3_natgrad.train -optimize``, one per plugin algorithm.

Each sampler has rl-zoo3's signature ``(trial, n_actions, n_envs, additional_args) -> kwargs``.
Sampled options must be flat keyword arguments of the algorithm (the zoo evals ``policy_kwargs``
strings in its own namespace, where the plugin's classes are unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HYPERPARAMS_SAMPLER: dict[str, Callable[..., dict[str, Any]]] = {}
HYPERPARAMS_CONVERTER: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
