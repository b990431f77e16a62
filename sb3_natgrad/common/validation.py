"""Hyperparameter validation in one style for every algorithm and optimizer of the package.

Each check raises ``ValueError("<Owner>: <name> must be <what>, got <value!r>")`` at construction, so a bad
value is named before any network or buffer is built. ``owner`` is the class name (``"ACKTR"``, ``"KFAC"``).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number between ``low`` and ``high``.

    :param low_open: exclude ``low`` (``value > low``) instead of including it.
    :param high_open: exclude ``high`` (``value < high``) instead of including it.
    :param allow_none: accept ``None`` (an option that is off).
    """
    if value is None and allow_none:
        return
    valid = (
        _is_number(value) and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    )
    if not valid:
        bounds = []
        if low != -math.inf:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high != math.inf:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        what = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        raise ValueError(f"{owner}: {name} must be {what}{' or None' if allow_none else ''}, got {value!r}")


def check_int(owner: str, name: str, value: Any, low: int = 1, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) ``>= low``."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}{' or None' if allow_none else ''}, got {value!r}")


def check_rate(owner: str, name: str, value: Any, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a schedule (callable) or a finite number ``> 0``."""
    if callable(value):
        return
    check_number(owner, name, value, 0.0, low_open=True, allow_none=allow_none)


def check_choice(owner: str, name: str, value: Any, choices: Collection[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {sorted(choices, key=str)}, got {value!r}")


def check_bool(owner: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be a bool, got {value!r}")


def check_advantage_batch(owner: str, normalize_advantage: bool, n_steps: int, env: VecEnv | None) -> None:
    """Raise ``ValueError`` when ``normalize_advantage`` would standardise a one-sample rollout (its std is NaN).

    :param env: the algorithm's environment; ``None`` (no environment yet) passes, the check runs when one is set.
    """
    if normalize_advantage and env is not None and n_steps * env.num_envs < 2:
        raise ValueError(
            f"{owner}: normalize_advantage needs n_steps * n_envs >= 2, got n_steps={n_steps!r}, n_envs={env.num_envs!r}"
        )
