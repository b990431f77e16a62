"""Trajectory-segment replay for ACER (Wang et al. 2017, Section 3 and Algorithm 1: each rollout of ``n_steps``
from ``n_envs`` environments is stored whole, with the behaviour policy μ, and replayed as a segment).

Memory layout, for ``S = buffer_size // (n_steps * n_envs)`` segment slots, ``T = n_steps``, ``N = n_envs``:

- ``observations``: ``[S, T + 1, N, *obs_shape]`` in the observation space's dtype (uint8 frames stay uint8).
  Row ``T`` is the segment's final observation x_T (the bootstrap state of Q^ret); next observations are
  never stored twice. Dict observations hold one such array per key.
- ``actions``: ``[S, T, N]`` int64 (Discrete) or ``[S, T, N, d]`` float32 (Box, the unclipped samples).
- ``rewards``: ``[S, T, N]`` float32; after a time-limit truncation the reward already includes
  gamma V(final observation), added by SB3's ``collect_rollouts``.
- ``episode_starts``: ``[S, T + 1, N]`` float32: row t says x_t begins an episode, so step t ended one
  (terminated or truncated) iff row t + 1 is 1.
- ``behaviour_stats``: ``[S, T, N, K]`` float32: μ's statistics: the action probabilities (K = n_actions) or
  the Gaussian mean and log standard deviation (K = 2d).

Bytes per stored transition: (1 + 1/T) · obs bytes + action + 4 (reward) + 4 (1 + 1/T) (episode start) + 4 K;
for Atari (4 x 84 x 84 uint8, 6 actions, T = 20): ~29.7 kB, so 50 000 transitions take ~1.5 GB.

The slot being written is never sampled: ``reset()`` (called by ``collect_rollouts``) marks it invalid and
only :meth:`finish_segment` makes it valid again, so a sampled segment never straddles the write position.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape

from sb3_natgrad.common.validation import check_int


class ACERSegments(NamedTuple):
    """A batch of ``B`` segments, time-major."""

    observations: th.Tensor | dict[str, th.Tensor]  # [T + 1, B, *obs_shape] (per key for dict observations)
    actions: th.Tensor  # [T, B] int64 or [T, B, d]
    rewards: th.Tensor  # [T, B]
    dones: th.Tensor  # [T, B]: 1.0 where the episode ended after step t
    behaviour_stats: th.Tensor  # [T, B, K]


class ACERReplayBuffer:
    """Replay of whole segments (see the module docstring for the layout).

    Filled through the rollout-buffer interface that SB3's ``OnPolicyAlgorithm.collect_rollouts`` uses
    (``reset``, ``add``, ``compute_returns_and_advantage``), closed by :meth:`finish_segment`.

    :param buffer_size: capacity in transitions; ``buffer_size // (n_steps * n_envs)`` segments are kept.
    :param n_steps: T, steps per segment.
    :param observation_space: observation space.
    :param action_space: Discrete or Box action space.
    :param stats_dim: K, the size of the behaviour statistics per step.
    :param device: where sampled tensors go.
    :param n_envs: N, environments per segment.
    """

    def __init__(
        self,
        buffer_size: int,
        n_steps: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        stats_dim: int,
        device: th.device | str = "cpu",
        n_envs: int = 1,
    ) -> None:
        owner = "ACERReplayBuffer"
        for name, value in (("n_steps", n_steps), ("n_envs", n_envs), ("stats_dim", stats_dim)):
            check_int(owner, name, value)
        check_int(owner, "buffer_size", buffer_size, low=n_steps * n_envs)
        self.n_segments = buffer_size // (n_steps * n_envs)  # S
        self.buffer_size = buffer_size
        self.n_steps = n_steps
        self.n_envs = n_envs
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = th.device(device)
        shape = (self.n_segments, n_steps + 1, n_envs)
        self.observations: np.ndarray | dict[str, np.ndarray]
        if isinstance(observation_space, spaces.Dict):
            self.observations = {
                key: np.zeros((*shape, *obs_shape), dtype=observation_space[key].dtype)
                for key, obs_shape in get_obs_shape(observation_space).items()  # type: ignore[union-attr]
            }
        else:
            self.observations = np.zeros((*shape, *get_obs_shape(observation_space)), dtype=observation_space.dtype)  # type: ignore[misc]
        step_shape = (self.n_segments, n_steps, n_envs)
        if isinstance(action_space, spaces.Discrete):
            self.actions = np.zeros(step_shape, dtype=np.int64)
        else:
            self.actions = np.zeros((*step_shape, get_action_dim(action_space)), dtype=np.float32)
        self.rewards = np.zeros(step_shape, dtype=np.float32)
        self.episode_starts = np.zeros(shape, dtype=np.float32)
        self.behaviour_stats = np.zeros((*step_shape, stats_dim), dtype=np.float32)
        #: valid[s]: slot s holds a finished segment that may be sampled
        self.valid = np.zeros(self.n_segments, dtype=bool)
        self.pos = 0  # slot being (or next to be) written
        self.step = 0  # next step of that slot
        self.last_finished = -1  # slot of the most recently finished segment

    # -- the rollout-buffer interface of OnPolicyAlgorithm.collect_rollouts -------------------------------------

    def reset(self) -> None:
        """Start writing the next segment into slot ``pos``, which stops being sampled until finished."""
        self.valid[self.pos] = False
        self.step = 0

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        behaviour_stats: th.Tensor,
    ) -> None:
        """Store step ``t`` of the current segment for all envs (``value`` is not needed: ACER recomputes V).

        :param behaviour_stats: μ's statistics ``[N, K]``, the third output of ``ACERPolicy.forward``.
        """
        if self.step >= self.n_steps:
            raise RuntimeError(f"ACERReplayBuffer: segment already has n_steps={self.n_steps} steps")
        s, t = self.pos, self.step
        if isinstance(self.observations, dict):
            for key, array in self.observations.items():
                array[s, t] = obs[key]  # type: ignore[index]
        else:
            self.observations[s, t] = obs
        self.actions[s, t] = np.asarray(action).reshape(self.actions.shape[2:])
        self.rewards[s, t] = reward
        self.episode_starts[s, t] = episode_start
        self.behaviour_stats[s, t] = behaviour_stats.cpu().numpy()
        self.step += 1

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Called by ``collect_rollouts``; ACER computes its targets (Q^ret) at update time, with the current
        network, so nothing is computed here. :meth:`finish_segment` stores the final state."""

    # -- segments ---------------------------------------------------------------------------------------------

    def finish_segment(self, last_obs: np.ndarray | dict[str, np.ndarray], last_episode_starts: np.ndarray) -> None:
        """Store the final observation x_T and whether it starts an episode; the segment becomes sampleable."""
        if self.step != self.n_steps:
            raise RuntimeError(f"ACERReplayBuffer: segment has {self.step} of n_steps={self.n_steps} steps")
        s, t = self.pos, self.n_steps
        if isinstance(self.observations, dict):
            for key, array in self.observations.items():
                array[s, t] = last_obs[key]  # type: ignore[index]
        else:
            self.observations[s, t] = last_obs
        self.episode_starts[s, t] = last_episode_starts
        self.valid[s] = True
        self.last_finished = s
        self.pos = (self.pos + 1) % self.n_segments

    def n_transitions(self) -> int:
        """Transitions in finished segments."""
        return int(self.valid.sum()) * self.n_steps * self.n_envs

    def latest(self) -> ACERSegments:
        """The most recently finished segment, all envs in order (the on-policy update)."""
        if not self.valid.any():
            raise RuntimeError("ACERReplayBuffer: no finished segment")
        return self._gather(np.full(self.n_envs, self.last_finished), np.arange(self.n_envs))

    def sample(self, batch_size: int) -> ACERSegments:
        """``batch_size`` (segment, env) columns drawn uniformly from the finished segments (NumPy's global RNG,
        seeded by SB3's ``set_random_seed``)."""
        slots = np.flatnonzero(self.valid)
        if len(slots) == 0:
            raise RuntimeError("ACERReplayBuffer: no finished segment")
        segment_idx = slots[np.random.randint(0, len(slots), size=batch_size)]
        env_idx = np.random.randint(0, self.n_envs, size=batch_size)
        return self._gather(segment_idx, env_idx)

    def _gather(self, segment_idx: np.ndarray, env_idx: np.ndarray) -> ACERSegments:
        # Fancy indexing [s_b, :, e_b] puts the batch first: [B, T(+1), ...] -> swap to time-major
        def column(array: np.ndarray) -> th.Tensor:
            return th.as_tensor(np.swapaxes(array[segment_idx, :, env_idx], 0, 1), device=self.device)

        observations: th.Tensor | dict[str, th.Tensor]
        if isinstance(self.observations, dict):
            observations = {key: column(array) for key, array in self.observations.items()}
        else:
            observations = column(self.observations)
        return ACERSegments(
            observations=observations,
            actions=column(self.actions),
            rewards=column(self.rewards),
            dones=column(self.episode_starts)[1:],
            behaviour_stats=column(self.behaviour_stats),
        )
