"""Flat replay arguments shared by the off-policy algorithms (D4PG, TQC): buffer choice, ``beta`` annealing and the
priority update of prioritized replay (Schaul et al. 2016, "Prioritized Experience Replay").

The algorithms expose ``n_steps``, ``prioritized_replay``, ``per_alpha``, ``per_beta``, ``per_beta_final`` and
``per_eps`` as plain keyword arguments (usable from zoo YAML, where class names cannot be written) and use them so::

    # __init__, before super().__init__(...):
    replay_buffer_class, replay_buffer_kwargs = replay_buffer_for(
        "D4PG", env.observation_space, n_steps=n_steps, gamma=gamma, prioritized_replay=prioritized_replay,
        per_alpha=per_alpha, per_beta=per_beta, per_eps=per_eps,
        replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs)
    super().__init__(..., replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
                     n_steps=1, ...)
    self.per_beta_schedule = per_beta_schedule("D4PG", per_beta, per_beta_final)

    # train():
    anneal_per_beta(self.replay_buffer, self.per_beta_schedule, self._current_progress_remaining)
    ...
    critic_loss = importance_weighted_mean(per_sample_loss, replay_data)  # [B] -> scalar
    update_priorities(self.replay_buffer, replay_data, per_sample_loss)

Why ``n_steps=1`` is passed to ``OffPolicyAlgorithm``: SB3 uses its ``n_steps`` only to pick its own
``NStepReplayBuffer`` when ``replay_buffer_class`` is ``None``, and warns that ``n_steps`` is ignored otherwise (in
``_setup_model``, at construction and again at every ``load``). ``replay_buffer_for`` returns a class whenever
``n_steps > 1`` (SB3's ``NStepReplayBuffer``, ``NStepDictReplayBuffer`` for ``Dict`` observations, or a prioritized
buffer) with ``n_steps`` and ``gamma`` in its kwargs, so the n-step horizon is always the buffer's
(``model.replay_buffer.n_steps``, saved with the model in ``replay_buffer_kwargs``) and passing ``n_steps=1`` up is
never a loss and never warns. It returns ``None`` only when ``n_steps == 1`` without prioritization: SB3's own choice
(``ReplayBuffer`` / ``DictReplayBuffer``).
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import LinearSchedule

from sb3_natgrad.common.n_step_replay import NStepDictReplayBuffer, NStepMixin
from sb3_natgrad.common.prioritized_replay import (
    PrioritizedDictReplayBuffer,
    PrioritizedDictReplayBufferSamples,
    PrioritizedMixin,
    PrioritizedReplayBuffer,
    PrioritizedReplayBufferSamples,
)
from sb3_natgrad.common.validation import check_bool, check_int, check_number

AnySamples = (
    ReplayBufferSamples | DictReplayBufferSamples | PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples
)

_PER_KEYS = ("alpha", "beta", "eps")


def replay_buffer_for(
    owner: str,
    observation_space: spaces.Space,
    *,
    n_steps: int,
    gamma: float,
    prioritized_replay: bool,
    per_alpha: float,
    per_beta: float,
    per_eps: float,
    replay_buffer_class: type[ReplayBuffer] | None,
    replay_buffer_kwargs: dict[str, Any] | None,
) -> tuple[type[ReplayBuffer] | None, dict[str, Any]]:
    """The replay buffer class and kwargs for an algorithm's flat arguments (see the module for how to pass them).

    - ``prioritized_replay=True``: ``PrioritizedReplayBuffer`` (``PrioritizedDictReplayBuffer`` for ``Dict``
      observations) with ``n_steps``, ``gamma``, ``alpha=per_alpha``, ``beta=per_beta``, ``eps=per_eps``.
    - otherwise, ``n_steps > 1``: SB3's ``NStepReplayBuffer`` (``NStepDictReplayBuffer`` for ``Dict``).
    - otherwise ``None`` (SB3 picks ``ReplayBuffer`` or ``DictReplayBuffer``).
    - a user's ``replay_buffer_class`` is kept; if it computes n-step returns (a subclass of SB3's
      ``NStepReplayBuffer`` or of ``NStepMixin``) ``n_steps`` and ``gamma`` are added to its kwargs unless given.

    The PER values are validated even when ``prioritized_replay=False`` (a typo in a YAML file should not wait for the
    day PER is switched on). Raises ``ValueError`` naming the argument for a bad value, for ``prioritized_replay=True``
    together with a ``replay_buffer_class``, for ``alpha``/``beta``/``eps`` in ``replay_buffer_kwargs`` (use the flat
    arguments), and for ``n_steps > 1`` with a user class that does not compute n-step returns.

    :param owner: the algorithm's name, for error messages.
    :return: (class or ``None``, kwargs: a new dict, the caller's is not modified).
    """
    check_int(owner, "n_steps", n_steps, low=1)
    check_number(owner, "gamma", gamma, 0.0, 1.0)
    check_bool(owner, "prioritized_replay", prioritized_replay)
    check_number(owner, "per_alpha", per_alpha, 0.0)
    check_number(owner, "per_beta", per_beta, 0.0, 1.0)
    check_number(owner, "per_eps", per_eps, 0.0)
    kwargs = dict(replay_buffer_kwargs or {})
    is_dict = isinstance(observation_space, spaces.Dict)
    n_step_kwargs = {"n_steps": n_steps, "gamma": gamma}
    if replay_buffer_class is not None:
        if prioritized_replay:
            raise ValueError(
                f"{owner}: prioritized_replay=True chooses the replay buffer itself; do not also pass "
                f"replay_buffer_class={replay_buffer_class.__name__}"
            )
        if n_steps > 1 and "n_steps" not in kwargs:
            if not issubclass(replay_buffer_class, (NStepReplayBuffer, NStepMixin)):
                raise ValueError(
                    f"{owner}: n_steps={n_steps} needs a replay buffer that computes n-step returns, "
                    f"got replay_buffer_class={replay_buffer_class.__name__}"
                )
            kwargs = {**n_step_kwargs, **kwargs}
        return replay_buffer_class, kwargs
    if prioritized_replay:
        given = [key for key in (*_PER_KEYS, "n_steps", "gamma") if key in kwargs]
        if given:
            raise ValueError(
                f"{owner}: pass n_steps, gamma, per_alpha, per_beta and per_eps as arguments, not in "
                f"replay_buffer_kwargs (got {given})"
            )
        kwargs.update(n_step_kwargs, alpha=per_alpha, beta=per_beta, eps=per_eps)
        return (PrioritizedDictReplayBuffer if is_dict else PrioritizedReplayBuffer), kwargs
    if n_steps > 1:
        kwargs.update(n_step_kwargs)
        return (NStepDictReplayBuffer if is_dict else NStepReplayBuffer), kwargs
    return None, kwargs


def per_beta_schedule(owner: str, per_beta: float, per_beta_final: float = 1.0) -> Schedule:
    """``beta`` annealed linearly from ``per_beta`` to ``per_beta_final`` over training (Schaul et al. 2016,
    Sec. 3.4: the correction matters most at the end of learning), as a function of SB3's
    ``_current_progress_remaining`` (1 at the start, 0 at the end)."""
    check_number(owner, "per_beta", per_beta, 0.0, 1.0)
    check_number(owner, "per_beta_final", per_beta_final, 0.0, 1.0)
    return LinearSchedule(per_beta, per_beta_final, end_fraction=1.0)


def anneal_per_beta(replay_buffer: ReplayBuffer | None, schedule: Schedule, progress_remaining: float) -> None:
    """Set a prioritized buffer's ``beta`` from the schedule (call at the start of ``train()``); no-op otherwise."""
    if isinstance(replay_buffer, PrioritizedMixin):
        replay_buffer.beta = float(schedule(progress_remaining))


def importance_weighted_mean(per_sample_loss: th.Tensor, replay_data: AnySamples) -> th.Tensor:
    """Mean of a per-sample loss, weighted by the importance weights when the samples are prioritized.

    :param per_sample_loss: [B] or [B, 1].
    :return: scalar tensor.
    """
    if isinstance(replay_data, (PrioritizedReplayBufferSamples, PrioritizedDictReplayBufferSamples)):
        return (replay_data.weights.view(-1) * per_sample_loss.view(-1)).mean()
    return per_sample_loss.mean()


def update_priorities(replay_buffer: ReplayBuffer | None, replay_data: AnySamples, errors: th.Tensor) -> None:
    """Give the sampled transitions their new priorities (one transfer to the CPU); no-op for other buffers.

    :param errors: [B] or [B, 1] non-negative per-sample errors (a loss or ``|TD error|``), detached here.
    """
    if isinstance(replay_buffer, PrioritizedMixin) and isinstance(
        replay_data, (PrioritizedReplayBufferSamples, PrioritizedDictReplayBufferSamples)
    ):
        replay_buffer.update_priorities(replay_data.indices, errors.detach().reshape(-1))
