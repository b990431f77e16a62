"""save -> load gives identical predictions and optimizer state, and training resumes from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from algorithms import ALGO_NAMES, env_id, make_model, supports
from helpers import assert_trained, parameters
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvBox
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_natgrad import ALGOS


def _state_equal(a: object, b: object) -> bool:
    if isinstance(a, th.Tensor):
        return isinstance(b, th.Tensor) and a.shape == b.shape and bool(th.equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


_ENVS = {"discrete": lambda: IdentityEnv(4), "box": lambda: IdentityEnvBox(-1.0, 1.0, ep_length=32)}


@pytest.mark.parametrize(("algo", "space"), [(a, s) for a in ALGO_NAMES for s in _ENVS if supports(a, s)])
def test_save_load_predictions(algo: str, space: str, tmp_path) -> None:
    env = _ENVS[space]()
    model = make_model(algo, env)
    model.learn(192)
    obs = np.stack([env.observation_space.sample() for _ in range(16)])
    expected, _ = model.predict(obs, deterministic=True)
    params = model.get_parameters()
    model.save(tmp_path / "model.zip")
    del model

    loaded = ALGOS[algo].load(tmp_path / "model.zip", env=env)
    actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, expected)
    # Every torch object SB3 saves (policy weights and every optimizer's state) survives the round trip.
    assert params.keys() == loaded.get_parameters().keys()
    assert _state_equal(params, loaded.get_parameters())
    before = parameters(loaded)
    loaded.learn(64, reset_num_timesteps=False)
    assert_trained(loaded, before)


def _continue(model, steps: int, env_id: str) -> dict:
    """Continue training from a fixed RNG and env state, so two runs differ only by the model state."""
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(env_id, n_envs=1, seed=7)
    model.set_env(env)
    model.set_random_seed(3)
    model._last_obs = None  # reset the new env at the start of learn()
    model.learn(steps, reset_num_timesteps=False)
    return model.policy.state_dict()


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_resume_identically(algo: str, tmp_path) -> None:
    """Training after save/load (and, off-policy, save/load of the replay buffer) continues exactly like
    training without interruption.

    Fails if any state that influences training (optimizer moments, K-FAC factors, step counters,
    schedules' progress) is not saved.
    """
    model = make_model(algo, env_id(algo))
    model.learn(128)
    model.save(tmp_path / "model.zip")
    # ACER is on-policy in SB3's hierarchy but has a replay, saved separately like the off-policy ones
    off_policy = isinstance(model, OffPolicyAlgorithm) or hasattr(model, "save_replay_buffer")
    if off_policy:  # the replay buffer is saved separately
        model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = ALGOS[algo].load(tmp_path / "model.zip")
    if off_policy:
        loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    uninterrupted = _continue(model, 128, env_id(algo))
    resumed = _continue(loaded, 128, env_id(algo))
    assert _state_equal(uninterrupted, resumed)
