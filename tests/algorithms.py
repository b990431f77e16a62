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
