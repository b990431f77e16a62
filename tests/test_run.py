"""Smoke runs: every plugin algorithm on every supported action and observation space; each run trains (some
parameter moves) and leaves every parameter finite."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from algorithms import ACTION_ENVS, ALGO_NAMES, NO_SDE, env_id, make_model, supports
from helpers import assert_trained, parameters
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnvBox,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize


@pytest.mark.parametrize(("algo", "space"), [(a, s) for a in ALGO_NAMES for s in ACTION_ENVS if supports(a, s)])
def test_action_spaces(algo: str, space: str) -> None:
    env = ACTION_ENVS[space]()
    model = make_model(algo, env)
    before = parameters(model)
    model.learn(128)
    assert_trained(model, before)
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))


@pytest.mark.parametrize("algo", [a for a in ALGO_NAMES if a not in NO_SDE])
def test_gsde(algo: str) -> None:
    model = make_model(algo, IdentityEnvBox(-1.0, 1.0, ep_length=32), use_sde=True, sde_sample_freq=4)
    before = parameters(model)
    model.learn(128)
    assert_trained(model, before)


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_image_observations(algo: str) -> None:
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=supports(algo, "discrete"))
    model = make_model(algo, env, policy="CnnPolicy", policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)))
    before = parameters(model)
    model.learn(64)
    assert_trained(model, before)


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_dict_observations(algo: str) -> None:
    env = SimpleMultiObsEnv(random_start=True, discrete_actions=supports(algo, "discrete"))
    model = make_model(algo, env, policy="MultiInputPolicy")
    before = parameters(model)
    model.learn(64)
    assert_trained(model, before)


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_multiple_envs_and_vecnormalize(algo: str) -> None:
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), gamma=0.99)
    model = make_model(algo, env)
    before = parameters(model)
    model.learn(256)
    assert_trained(model, before)
    assert model.n_envs == 2
    assert env.obs_rms.count > 100  # normalisation statistics were updated during the rollouts


class _CountingCallback(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.n_steps = 0
        self.n_rollouts = 0
        self.started = self.ended = False

    def _on_training_start(self) -> None:
        self.started = True

    def _on_rollout_end(self) -> None:
        self.n_rollouts += 1

    def _on_step(self) -> bool:
        self.n_steps += 1
        return True

    def _on_training_end(self) -> None:
        self.ended = True


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_callbacks(algo: str, tmp_path) -> None:
    env = DummyVecEnv([lambda: gym.make(env_id(algo))])
    model = make_model(algo, env)
    counter = _CountingCallback()
    eval_cb = EvalCallback(gym.make(env_id(algo)), eval_freq=64, n_eval_episodes=2, log_path=str(tmp_path), warn=False)
    before = parameters(model)
    model.learn(256, callback=[counter, eval_cb])
    assert_trained(model, before)
    assert counter.started and counter.ended
    assert counter.n_steps == model.num_timesteps
    assert counter.n_rollouts >= 1
    assert (tmp_path / "evaluations.npz").exists()


class _StopAfter(BaseCallback):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def _on_step(self) -> bool:
        return self.num_timesteps < self.n


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_callback_can_stop_training(algo: str) -> None:
    model = make_model(algo, env_id(algo))
    model.learn(10_000, callback=_StopAfter(20))
    assert model.num_timesteps <= 64


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_unsupported_action_space(algo: str) -> None:
    class TupleActionEnv(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(2)])

    with pytest.raises((AssertionError, ValueError), match="support"):
        make_model(algo, TupleActionEnv())


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_tensorboard_logging(algo: str, tmp_path) -> None:
    model = make_model(algo, env_id(algo), tensorboard_log=str(tmp_path), verbose=0)
    before = parameters(model)
    model.learn(128)
    assert_trained(model, before)
    assert any(tmp_path.rglob("events.out.tfevents.*"))
