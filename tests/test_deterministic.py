"""Same seed, same result: two runs with one seed give bit-identical parameters and predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from algorithms import ALGO_NAMES, env_id, make_model, supports
from stable_baselines3.common.envs import IdentityEnvBox


def _train(algo: str, seed: int, env_id: str) -> tuple[dict[str, th.Tensor], np.ndarray]:
    model = make_model(algo, env_id, seed=seed)
    model.learn(256)
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
    """The determinism test above would pass trivially if training ignored the seed or did nothing."""
    params_a, _ = _train(algo, 1, env_id(algo))
    params_b, _ = _train(algo, 2, env_id(algo))
    assert any(not th.equal(params_a[k], params_b[k]) for k in params_a)


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_training_changes_parameters(algo: str) -> None:
    model = make_model(algo, IdentityEnvBox(-1.0, 1.0, ep_length=32))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(256)
    after = model.policy.state_dict()
    assert any(not th.equal(before[k], after[k]) for k in before)
