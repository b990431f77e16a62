"""Shared by the tests: what a ``learn()`` call exercised, and a tiny env whose observations alone matter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm


class RandomObsEnv(gym.Env):
    """2-d uniform observations from the env's generator (seeded by ``reset(seed=...)``, so a seeded model sees the
    same data), a given action space, no reward, no episode end."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, action_space: spaces.Space) -> None:
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._observation(), 0.0, False, False, {}

    def _observation(self) -> np.ndarray:
        return self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)


def parameters(model: BaseAlgorithm) -> dict[str, th.Tensor]:
    """A copy of every parameter of the model's policy (networks and, off-policy, target networks), by name."""
    return {name: param.detach().clone() for name, param in model.policy.named_parameters()}


def assert_trained(model: BaseAlgorithm, before: dict[str, th.Tensor]) -> None:
    """Every parameter is finite and at least one moved from ``before`` (:func:`parameters` before ``learn()``)."""
    after = parameters(model)
    assert after.keys() == before.keys()
    not_finite = [name for name, param in after.items() if not bool(th.isfinite(param).all())]
    assert not not_finite, f"non-finite parameters after training: {not_finite}"
    assert any(not th.equal(before[name], after[name]) for name in after), "training changed no parameter"
