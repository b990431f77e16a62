"""n-step returns for replay buffers that pick both the position and the env of each sample, and an n-step
replay buffer for ``Dict`` observations (SB3's ``NStepReplayBuffer`` refuses them).

The n-step target follows SB3's ``NStepReplayBuffer._get_samples`` (stable_baselines3/common/buffers.py), term for
term: the rewards of the next ``n_steps`` transitions of the same env are summed with ``gamma^k`` until the first
termination or time-limit truncation (inclusive), the bootstrap discount is ``gamma^(steps used)``, ``dones`` is the
termination (not the truncation) of the last transition used, and the window never crosses the write head
(``pos - 1``, the newest transition). SB3's method cannot be called here: it draws the env of each sample itself
(``np.random.randint``), while a prioritized buffer samples (position, env) pairs from its sum-tree. It also marks the
write head by writing into ``timeouts`` and restoring it; here the mark is a comparison, so sampling never writes.
The tests check equality with SB3's method on the same (position, env) indices.

Samples are gathered by flat index ``position * n_envs + env`` into the ``[buffer_size * n_envs, ...]`` views of the
storage arrays with ``np.take``, which is faster than SB3's two-array fancy indexing; the arrays are fresh, so they
become tensors without a second copy.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_natgrad.common.validation import check_int, check_number


class NStepArrays(NamedTuple):
    """n-step quantities of a batch, as NumPy arrays (before the conversion to tensors)."""

    last: np.ndarray  # [B] int64 flat index of the last transition used (its next observation is the bootstrap state)
    rewards: np.ndarray  # [B, 1] float32 discounted sum of the rewards used
    dones: np.ndarray  # [B, 1] float32 termination of the last transition used (truncation bootstraps: 0)
    discounts: np.ndarray  # [B, 1] float32 gamma ** (number of rewards used)


def check_n_step_args(owner: str, n_steps: Any, gamma: Any, optimize_memory_usage: Any) -> None:
    """Validate the n-step arguments of a buffer; ``optimize_memory_usage`` is refused (``next_observations`` of the
    last step of a window are read directly)."""
    check_int(owner, "n_steps", n_steps, low=1)
    check_number(owner, "gamma", gamma, 0.0, 1.0)
    if optimize_memory_usage:
        raise ValueError(
            f"{owner}: optimize_memory_usage=True is not supported (n-step windows read next_observations directly); "
            "pass optimize_memory_usage=False"
        )


def fresh_to_torch(array: np.ndarray, device: th.device) -> th.Tensor:
    """A tensor on ``device`` from an array the buffer just built (nobody else holds it): shared, not copied, on the
    CPU (``th.from_numpy`` costs a third of SB3's ``to_torch(copy=False)``, which goes through ``th.as_tensor``)."""
    tensor = th.from_numpy(array)
    return tensor if device.type == "cpu" else tensor.to(device)


def flat_rows(array: np.ndarray) -> np.ndarray:
    """View a ``[buffer_size, n_envs, ...]`` storage array as ``[buffer_size * n_envs, ...]`` (no copy)."""
    return array.reshape(array.shape[0] * array.shape[1], *array.shape[2:])


class NStepMixin:
    """n-step targets of flat ``(position, env)`` indices, for SB3 replay buffers (``ReplayBuffer`` or
    ``DictReplayBuffer``) that store ``rewards``, ``dones`` and ``timeouts`` as ``[buffer_size, n_envs]``."""

    n_steps: int
    gamma: float
    buffer_size: int
    n_envs: int
    pos: int
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray

    _normalize_reward: Any  # from BaseBuffer

    def _n_step_arrays(self, flat: np.ndarray, env: VecNormalize | None = None) -> NStepArrays:
        """n-step returns, discounts and dones of the transitions at flat indices ``flat`` (see the module).

        :param flat: [B] int64 flat indices ``position * n_envs + env``.
        """
        n_envs, n_steps = self.n_envs, self.n_steps
        rewards, dones, timeouts = self.rewards.reshape(-1), self.dones.reshape(-1), self.timeouts.reshape(-1)
        if n_steps == 1:
            # The one-step case of the general formula below: one reward, discount gamma, the transition's own done.
            reward = self._normalize_reward(rewards.take(flat)[:, None], env)  # [B, 1]
            done = (dones.take(flat) * (1.0 - timeouts.take(flat)))[:, None]  # [B, 1]
            discount = np.full((flat.size, 1), self.gamma, dtype=np.float32)  # [B, 1]
            return NStepArrays(flat, reward, done, discount)
        position, env_index = np.divmod(flat, n_envs)  # [B], [B]
        window_pos = (position[:, None] + np.arange(n_steps)) % self.buffer_size  # [B, n]
        window = window_pos * n_envs + env_index[:, None]  # [B, n] flat indices of the n transitions
        rewards_seq = self._normalize_reward(rewards.take(window), env)  # [B, n]
        # Stop at the first termination or truncation (inclusive), and at the write head (SB3 marks pos - 1 as
        # truncated while it samples: the transition after it is older data, or not written yet). Stopping at the
        # last step when nothing stops earlier is SB3's "no done: keep the full sequence".
        stop = np.logical_or(dones.take(window), timeouts.take(window))  # [B, n]
        stop |= window_pos == (self.pos - 1) % self.buffer_size
        stop[:, -1] = True
        stop_idx = stop.argmax(axis=1)  # [B] index of the last reward used
        mask = np.arange(n_steps) <= stop_idx[:, None]  # [B, n] rewards used
        # Same float32 arithmetic as SB3, so the values are bit-identical: gamma ** k computed as float32.
        discounts = self.gamma ** np.arange(n_steps + 1, dtype=np.float32)  # [n + 1]
        n_step_returns = (rewards_seq * discounts[:n_steps] * mask).sum(axis=1, keepdims=True)  # [B, 1]
        target_discounts = discounts.take(stop_idx + 1)[:, None]  # [B, 1] gamma ** (rewards used)
        last = window.ravel().take(np.arange(flat.size) * n_steps + stop_idx)  # [B]
        done = (dones.take(last) * (1.0 - timeouts.take(last)))[:, None]  # [B, 1]
        return NStepArrays(last, n_step_returns, done, target_discounts)


class NStepDictReplayBuffer(NStepMixin, DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` with n-step returns (``discounts`` in the samples), for ``Dict`` observations,
    sampled uniformly. Same n-step semantics as SB3's ``NStepReplayBuffer`` (see the module).

    :param n_steps: number of rewards summed (``1``: one-step targets, ``discounts = gamma``).
    :param gamma: discount factor.

    Other parameters: as SB3's ``DictReplayBuffer``; ``optimize_memory_usage=True`` raises ``ValueError``.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 3,
        gamma: float = 0.99,
    ) -> None:
        check_n_step_args(type(self).__name__, n_steps, gamma, optimize_memory_usage)
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=False,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.n_steps = n_steps
        self.gamma = gamma

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> DictReplayBufferSamples:  # type: ignore[override]
        env_indices = np.random.randint(0, self.n_envs, size=batch_inds.shape)  # as SB3's NStepReplayBuffer
        return self._dict_samples(batch_inds * self.n_envs + env_indices, env)

    def _dict_samples(self, flat: np.ndarray, env: VecNormalize | None) -> DictReplayBufferSamples:
        """Samples at flat indices ``flat`` ([B] ``position * n_envs + env``)."""
        n_step = self._n_step_arrays(flat, env)
        obs = self._normalize_obs({key: flat_rows(obs).take(flat, axis=0) for key, obs in self.observations.items()}, env)
        next_obs = self._normalize_obs(
            {key: flat_rows(obs).take(n_step.last, axis=0) for key, obs in self.next_observations.items()}, env
        )
        assert isinstance(obs, dict) and isinstance(next_obs, dict)
        return DictReplayBufferSamples(
            observations={key: fresh_to_torch(value, self.device) for key, value in obs.items()},
            actions=fresh_to_torch(flat_rows(self.actions).take(flat, axis=0), self.device),
            next_observations={key: fresh_to_torch(value, self.device) for key, value in next_obs.items()},
            dones=fresh_to_torch(n_step.dones, self.device),
            rewards=fresh_to_torch(n_step.rewards, self.device),
            discounts=fresh_to_torch(n_step.discounts, self.device),
        )
