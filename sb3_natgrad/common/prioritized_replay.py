"""Prioritized experience replay (Schaul et al. 2016, "Prioritized Experience Replay", ICLR), one-step or n-step.

Proportional prioritization (Sec. 3.3): transition ``i`` is sampled with probability ``P(i) = p_i / sum_k p_k``,
where ``p_i = (|delta_i| + eps) ** alpha`` is set from the learner's latest error on it, and new transitions get the
largest priority set so far (Algorithm 1, line 6), so each is replayed at least once soon. The bias of the non-uniform
sampling is corrected by importance-sampling weights ``w_i = (N P(i)) ** -beta / max_j w_j`` (Sec. 3.4), ``beta``
annealed to 1 over training by the algorithm; ``max_j w_j`` is the weight of the smallest priority (a min-tree).
Draws are stratified (Appendix B.2.1): one uniform draw in each of ``B`` equal segments of the total mass.

``PrioritizedReplayBuffer`` subclasses SB3's ``NStepReplayBuffer`` (storage, ``add``, ``n_steps``/``gamma``), so
``n_steps=1`` is plain PER and ``n_steps > 1`` is n-step PER (as in Ape-X and D4PG); ``PrioritizedDictReplayBuffer``
is the same for ``Dict`` observations, on ``NStepDictReplayBuffer``. The n-step targets are SB3's
(``sb3_natgrad/common/n_step_replay.py``); the priorities live in a ``SumMinTree`` with one leaf per
(position, env) pair, flat index ``position * n_envs + env``, which is what samples report in ``indices``.

Sampling uses NumPy's global RNG, as SB3's buffers do, so ``set_random_seed`` makes it deterministic. The tree is
plain NumPy arrays, so ``save_replay_buffer`` / ``load_replay_buffer`` (pickle) keep it exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples, TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_natgrad.common.n_step_replay import (
    NStepDictReplayBuffer,
    NStepMixin,
    check_n_step_args,
    flat_rows,
    fresh_to_torch,
)
from sb3_natgrad.common.sum_tree import SumMinTree
from sb3_natgrad.common.validation import check_number


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` (``discounts`` always set) plus the importance weights and the leaf indices."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor  # [B, 1] termination of the last transition of the n-step window
    rewards: th.Tensor  # [B, 1] n-step discounted return
    discounts: th.Tensor  # [B, 1] gamma ** k, k the number of rewards summed
    weights: th.Tensor  # [B, 1] float32 importance weights, max over the buffer = 1
    indices: np.ndarray  # [B] int64 flat indices position * n_envs + env, for update_priorities


class PrioritizedDictReplayBufferSamples(NamedTuple):
    """SB3's ``DictReplayBufferSamples`` (``discounts`` always set) plus the importance weights and leaf indices."""

    observations: TensorDict
    actions: th.Tensor
    next_observations: TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor
    weights: th.Tensor
    indices: np.ndarray


class PrioritizedMixin:
    """Priorities of a replay buffer's transitions: the sum/min tree, ``alpha``, ``beta``, ``eps``, new-transition
    priorities, importance weights and ``update_priorities``. Used by both prioritized buffers."""

    buffer_size: int
    n_envs: int
    pos: int
    device: th.device

    def _init_priorities(self, alpha: float, beta: float, eps: float) -> None:
        owner = type(self).__name__
        check_number(owner, "alpha", alpha, 0.0)
        check_number(owner, "eps", eps, 0.0)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.beta = beta
        self.tree = SumMinTree(self.buffer_size * self.n_envs)
        # Largest stored priority (p + eps) ** alpha so far: the priority of new transitions (Algorithm 1, line 6).
        self.max_priority = 1.0

    @property
    def beta(self) -> float:
        """Importance-sampling exponent (0: no correction, 1: full correction); the algorithm anneals it."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        check_number(type(self).__name__, "beta", value, 0.0)
        self._beta = float(value)

    def _prioritize_new(self, position: int) -> None:
        """Give the ``n_envs`` transitions just written at ``position`` the largest priority so far."""
        leaves = np.arange(position * self.n_envs, (position + 1) * self.n_envs)
        self.tree.update(leaves, np.full(self.n_envs, self.max_priority))

    def _sample_leaves(self, batch_size: int) -> tuple[np.ndarray, th.Tensor]:
        """Stratified draw of ``batch_size`` leaves and their importance weights.

        ``w_i = (N P(i)) ** -beta / max_j w_j = (p_i / min_j p_j) ** -beta``: ``N`` and the total cancel, and the largest
        weight over the buffer is the smallest priority's (the min-tree), so the weights are at most 1.

        :return: [B] int64 flat indices, [B, 1] float32 weights tensor on the buffer's device.
        """
        leaves, priorities = self.tree.sample(batch_size)  # [B], [B] all > 0
        weights = np.power(priorities * (1.0 / self.tree.min()), -self._beta, dtype=np.float32)  # [B]
        return leaves, fresh_to_torch(weights[:, None], self.device)

    def update_priorities(self, indices: np.ndarray | th.Tensor, priorities: np.ndarray | th.Tensor) -> None:
        """Set the priorities of the transitions at ``indices`` to ``(priorities + eps) ** alpha`` (Sec. 3.3).

        :param indices: [B] flat indices, as returned in the samples' ``indices``. With duplicates, the last wins.
        :param priorities: [B] raw non-negative errors (e.g. ``|TD error|`` or a per-sample loss), NumPy or torch
            (moved to the CPU once). NaN, inf or negative values raise ``ValueError`` naming them, and nothing is
            written.
        """
        if isinstance(priorities, th.Tensor):
            priorities = priorities.detach().cpu().numpy()
        if isinstance(indices, th.Tensor):
            indices = indices.cpu().numpy()
        errors = np.asarray(priorities, dtype=np.float64).reshape(-1)  # [B]
        indices = np.asarray(indices).reshape(-1)  # [B]
        owner = type(self).__name__
        if indices.shape != errors.shape:
            raise ValueError(f"{owner}: update_priorities got {indices.size} indices and {errors.size} priorities")
        if errors.size == 0:
            return
        # errors.min() >= 0 is False for NaN; errors.max() < inf catches +inf.
        largest = errors.max()
        if not (errors.min() >= 0.0 and largest < np.inf):
            bad = ~(np.isfinite(errors) & (errors >= 0.0))
            raise ValueError(
                f"{owner}: priorities must be finite and >= 0, got {errors[bad].tolist()} at indices {indices[bad].tolist()}"
            )
        indices = indices.astype(np.int64, copy=False)
        if indices.view(np.uint64).max() >= self.tree.capacity:  # negative indices are huge as unsigned
            raise ValueError(f"{owner}: indices must be in [0, {self.tree.capacity}), got {indices.min()}..{indices.max()}")
        stored = np.power(errors + self.eps, self.alpha)  # [B]
        self.tree.update(indices, stored)
        # max((e + eps) ** alpha) == (max(e) + eps) ** alpha: the power is non-decreasing, in floating point too.
        self.max_priority = max(self.max_priority, float(np.power(largest + self.eps, self.alpha)))


class PrioritizedReplayBuffer(PrioritizedMixin, NStepMixin, NStepReplayBuffer):
    """Prioritized (n-step) replay buffer (Schaul et al. 2016), on SB3's ``NStepReplayBuffer``: see the module.

    ``sample`` returns ``PrioritizedReplayBufferSamples``; call ``update_priorities(samples.indices, errors)`` after
    each gradient step.

    :param buffer_size: total transitions stored (divided among the ``n_envs`` envs, as in SB3).
    :param observation_space: observation space (not ``Dict``: see ``PrioritizedDictReplayBuffer``).
    :param action_space: action space.
    :param device: device of the sampled tensors.
    :param n_envs: number of parallel envs.
    :param optimize_memory_usage: must be ``False`` (``ValueError`` otherwise).
    :param handle_timeout_termination: bootstrap through time-limit truncations (SB3's).
    :param n_steps: number of rewards summed (``1``: plain PER).
    :param gamma: discount factor of the n-step returns.
    :param alpha: priority exponent (0: uniform).
    :param beta: initial importance-sampling exponent (settable attribute).
    :param eps: added to the errors, so no transition has priority 0.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 1,
        gamma: float = 0.99,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
    ) -> None:
        check_n_step_args(type(self).__name__, n_steps, gamma, optimize_memory_usage)
        if isinstance(observation_space, spaces.Dict):
            raise ValueError(f"{type(self).__name__}: Dict observation spaces need PrioritizedDictReplayBuffer")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=False,
            handle_timeout_termination=handle_timeout_termination,
            n_steps=n_steps,
            gamma=gamma,
        )
        self._init_priorities(alpha, beta, eps)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """SB3's ``add``; the new transitions get the largest priority so far."""
        position = self.pos
        super().add(*args, **kwargs)
        self._prioritize_new(position)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedReplayBufferSamples:  # type: ignore[override]
        """``batch_size`` transitions drawn with probability ``P(i)`` (stratified), with their weights and indices."""
        leaves, weights = self._sample_leaves(batch_size)
        data = self._flat_samples(leaves, env)
        assert data.discounts is not None
        return PrioritizedReplayBufferSamples(*data[:5], data.discounts, weights, leaves)

    def _flat_samples(self, flat: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """SB3's n-step samples at flat indices ``flat`` ([B] ``position * n_envs + env``)."""
        n_step = self._n_step_arrays(flat, env)
        obs = self._normalize_obs(flat_rows(self.observations).take(flat, axis=0), env)
        next_obs = self._normalize_obs(flat_rows(self.next_observations).take(n_step.last, axis=0), env)
        assert isinstance(obs, np.ndarray) and isinstance(next_obs, np.ndarray)
        return ReplayBufferSamples(
            observations=fresh_to_torch(obs, self.device),
            actions=fresh_to_torch(flat_rows(self.actions).take(flat, axis=0), self.device),
            next_observations=fresh_to_torch(next_obs, self.device),
            dones=fresh_to_torch(n_step.dones, self.device),
            rewards=fresh_to_torch(n_step.rewards, self.device),
            discounts=fresh_to_torch(n_step.discounts, self.device),
        )


class PrioritizedDictReplayBuffer(PrioritizedMixin, NStepDictReplayBuffer):
    """Prioritized (n-step) replay buffer for ``Dict`` observations: ``PrioritizedReplayBuffer`` on
    ``NStepDictReplayBuffer``. Same parameters; ``sample`` returns ``PrioritizedDictReplayBufferSamples``."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_steps: int = 1,
        gamma: float = 0.99,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
            n_steps=n_steps,
            gamma=gamma,
        )
        self._init_priorities(alpha, beta, eps)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """SB3's ``add``; the new transitions get the largest priority so far."""
        position = self.pos
        super().add(*args, **kwargs)
        self._prioritize_new(position)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedDictReplayBufferSamples:  # type: ignore[override]
        """``batch_size`` transitions drawn with probability ``P(i)`` (stratified), with their weights and indices."""
        leaves, weights = self._sample_leaves(batch_size)
        data = self._dict_samples(leaves, env)
        assert data.discounts is not None
        return PrioritizedDictReplayBufferSamples(
            data.observations, data.actions, data.next_observations, data.dones, data.rewards, data.discounts, weights, leaves
        )
