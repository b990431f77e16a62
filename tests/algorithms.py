"""The one list the conformance tests are parametrized over.

Adding an algorithm to the test-suite is adding its tiny-budget keyword arguments here; every key must
also be in ``sb3_natgrad.ALGOS``. Budgets are tiny: these tests check plumbing, not learning.
"""

from __future__ import annotations

from typing import Any

from sb3_natgrad import ALGOS

TINY_KWARGS: dict[str, dict[str, Any]] = {
    "trpo": dict(n_steps=64, batch_size=32, n_critic_updates=2, cg_max_steps=5, line_search_max_iter=5),
    "acktr": dict(n_steps=8),
}

#: Algorithms that exist in this checkout and have test settings.
ALGO_NAMES = [name for name in TINY_KWARGS if name in ALGOS]


def make_model(name: str, env: Any, policy: str = "MlpPolicy", **kwargs: Any) -> Any:
    return ALGOS[name](policy, env, **{**TINY_KWARGS[name], "seed": 0, **kwargs})
