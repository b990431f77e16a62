"""The one list the conformance tests are parametrized over.

Adding an algorithm to the test-suite is adding its tiny-budget keyword arguments here; every key must
also be in ``sb3_natgrad.ALGOS``. Budgets are tiny: these tests check plumbing, not learning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvBox, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete

from sb3_natgrad import ALGOS

TINY_KWARGS: dict[str, dict[str, Any]] = {
    "trpo": dict(n_steps=64, batch_size=32, n_critic_updates=2, cg_max_steps=5, line_search_max_iter=5),
    "acktr": dict(n_steps=8),
    "d4pg": dict(
        learning_starts=32, batch_size=16, buffer_size=1000, n_steps=3, n_atoms=11, policy_kwargs=dict(net_arch=[32, 32])
    ),
    # 32-step rollouts, an auxiliary phase every 2: every conformance budget (64-256 steps) runs at least one, and
    # test_resume_identically saves right after one (its 128 steps are 4 rollouts), where PPG resumes exactly
    "ppg": dict(
        n_steps=32,
        batch_size=32,
        n_policy_iterations=2,
        n_policy_epochs=2,
        n_value_epochs=2,
        n_aux_epochs=2,
        aux_batch_size=32,
    ),
    "tqc": dict(learning_starts=32, batch_size=16, buffer_size=1000, policy_kwargs=dict(net_arch=[32, 32], n_quantiles=5)),
    # replay starts after 4 segments of 8 steps: the 64-256-step budgets make replay updates
    "acer": dict(n_steps=8, buffer_size=256, replay_start=32, policy_kwargs=dict(net_arch=[32, 32])),
}

#: Algorithms that exist in this checkout and have test settings.
ALGO_NAMES = [name for name in TINY_KWARGS if name in ALGOS]


def make_model(name: str, env: Any, policy: str = "MlpPolicy", **kwargs: Any) -> Any:
    return ALGOS[name](policy, env, **{**TINY_KWARGS[name], "seed": 0, **kwargs})


#: One small environment per action-space type the algorithms support.
ACTION_ENVS: dict[str, Callable[[], gym.Env]] = {
    "discrete": lambda: IdentityEnv(4),
    "box": lambda: IdentityEnvBox(-1.0, 1.0, ep_length=32),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "multibinary": lambda: IdentityEnvMultiBinary(3),
}

#: Action-space kinds (keys of ACTION_ENVS) of the algorithms that do not support all of them.
ACTION_SPACES: dict[str, tuple[str, ...]] = {"d4pg": ("box",), "tqc": ("box",), "acer": ("discrete", "box")}

#: Algorithms without generalized State-Dependent Exploration (``use_sde``), like SB3's TD3.
NO_SDE = {"d4pg", "acer"}


def supports(algo: str, space: str) -> bool:
    """Whether ``algo`` supports the action-space kind ``space`` (a key of ACTION_ENVS)."""
    return space in ACTION_SPACES.get(algo, tuple(ACTION_ENVS))


def env_id(algo: str) -> str:
    """A small registered environment ``algo`` supports: CartPole-v1, or Pendulum-v1 for Box-only algorithms."""
    return "CartPole-v1" if supports(algo, "discrete") else "Pendulum-v1"
