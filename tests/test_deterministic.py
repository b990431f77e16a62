"""Same seed, same result: two runs with one seed give bit-identical parameters and predictions, after training that
moved them (identical parameters would also come from a ``train()`` that does nothing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from algorithms import ALGO_NAMES, env_id, make_model, supports
from helpers import assert_trained, parameters


def _train(algo: str, seed: int, env_id: str) -> tuple[dict[str, th.Tensor], np.ndarray]:
    model = make_model(algo, env_id, seed=seed)
    before = parameters(model)
    model.learn(256)
    assert_trained(model, before)
    obs = np.linspace(-0.1, 0.1, 4 * model.observation_space.shape[0], dtype=np.float32).reshape(4, -1)
    actions, _ = model.predict(obs, deterministic=True)
    return model.policy.state_dict(), actions


_ENV_SPACES = {"CartPole-v1": "discrete", "Pendulum-v1": "box"}


@pytest.mark.parametrize(
    ("algo", "env_id"), [(a, e) for a in ALGO_NAMES for e, space in _ENV_SPACES.items() if supports(a, space)]
)
def test_same_seed_same_result(algo: str, env_id: str) -> None:
    params_a, actions_a = _train(algo, 1, env_id)
    params_b, actions_b = _train(algo, 1, env_id)
    for key in params_a:
        assert th.equal(params_a[key], params_b[key]), key
    np.testing.assert_array_equal(actions_a, actions_b)


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_other_seed_other_result(algo: str) -> None:
    """The determinism test above would pass trivially if training ignored the seed."""
    params_a, _ = _train(algo, 1, env_id(algo))
    params_b, _ = _train(algo, 2, env_id(algo))
    assert any(not th.equal(params_a[k], params_b[k]) for k in params_a)
