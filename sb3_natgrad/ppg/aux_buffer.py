"""The auxiliary phase's buffer (Cobbe et al. 2021, Algorithm 1: "add all (s_t, V_t^targ) to B").

Only what the auxiliary phase needs is kept: the observations and the value targets (the GAE(lambda) returns of
the rollout, computed with the value network at collection time, as the reference implementation's ``vtarg``).
Actions, log-probabilities, advantages and old values stay in SB3's rollout buffer, which is overwritten by the
next rollout; the policy that the clone term holds on to is snapshotted at the start of the auxiliary phase instead
of stored per sample.

Memory is preallocated for ``n_rollouts`` rollouts of ``n_steps x n_envs`` samples:
``nbytes = n_rollouts * n_steps * n_envs * (sum over observation keys of prod(shape) * itemsize + 4)``, with the
observation space's dtype, as SB3's rollout buffer stores them (images stay ``uint8``: 28224 B for an 84x84x4
Atari frame stack; CartPole 16 B). The arrays live in host memory (numpy); minibatches are moved to the device
when drawn.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.preprocessing import get_obs_shape

from sb3_natgrad.common.validation import check_int

#: Observations of one minibatch: a tensor ``[B, *obs_shape]`` or a dict of them.
TensorObs = th.Tensor | dict[str, th.Tensor]


class AuxiliaryBuffer:
    """Observations and value targets of the last ``n_rollouts`` rollouts (see the module docstring).

    :param observation_space: the environment's observation space (``Dict`` allowed).
    :param n_rollouts: capacity in rollouts (PPG's ``N_pi``).
    :param n_steps: steps per environment per rollout.
    :param n_envs: number of environments.
    """

    def __init__(self, observation_space: spaces.Space, n_rollouts: int, n_steps: int, n_envs: int) -> None:
        check_int("AuxiliaryBuffer", "n_rollouts", n_rollouts)
        check_int("AuxiliaryBuffer", "n_steps", n_steps)
        check_int("AuxiliaryBuffer", "n_envs", n_envs)
        self.n_rollouts = n_rollouts
        self.rollout_size = n_steps * n_envs
        self.capacity = n_rollouts * self.rollout_size
        subspaces = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {None: observation_space}
        self.is_dict = isinstance(observation_space, spaces.Dict)
        self.observations: dict[str | None, np.ndarray] = {
            key: np.empty((self.capacity, *get_obs_shape(space)), dtype=space.dtype)  # [capacity, *shape]
            for key, space in subspaces.items()
        }
        self.value_targets = np.empty(self.capacity, dtype=np.float32)  # [capacity]
        self.size = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays (the bound of the module docstring)."""
        return sum(array.nbytes for array in self.observations.values()) + self.value_targets.nbytes

    @property
    def n_stored_rollouts(self) -> int:
        return self.size // self.rollout_size

    def add(self, rollout_buffer: RolloutBuffer | DictRolloutBuffer) -> None:
        """Copy a full rollout's observations and returns (after ``compute_returns_and_advantage``)."""
        if self.size + self.rollout_size > self.capacity:
            raise ValueError(
                f"AuxiliaryBuffer: full ({self.n_stored_rollouts} of {self.n_rollouts} rollouts); clear() it first"
            )
        rows = slice(self.size, self.size + self.rollout_size)
        observations = rollout_buffer.observations
        for key, array in self.observations.items():
            source = observations[key] if isinstance(observations, dict) else observations  # type: ignore[index]
            # [n_steps, n_envs, *shape] -> [n_steps * n_envs, *shape]
            array[rows] = source.reshape(self.rollout_size, *array.shape[1:])
        self.value_targets[rows] = rollout_buffer.returns.reshape(-1)  # [n_steps * n_envs]
        self.size += self.rollout_size

    def clear(self) -> None:
        self.size = 0

    def minibatches(self, batch_size: int, device: th.device | str) -> Iterator[tuple[TensorObs, th.Tensor]]:
        """One epoch over the stored samples in a random order (torch's generator): ``(observations, targets [B])``."""
        order = th.randperm(self.size).numpy()
        for start in range(0, self.size, batch_size):
            idx = order[start : start + batch_size]
            obs = {key: th.as_tensor(array[idx], device=device) for key, array in self.observations.items()}
            targets = th.as_tensor(self.value_targets[idx], device=device)
            yield (obs if self.is_dict else obs[None]), targets  # type: ignore[misc]
