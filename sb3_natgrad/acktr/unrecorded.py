"""The rollouts since the last recording of ACKTR's Kronecker factors, for ``stats_replay`` (detail 8 of
:mod:`sb3_natgrad.acktr.acktr`).

With ``stats_interval=k > 1`` the factors are recorded on every ``k``-th update only. By default that recording sees
the current rollout alone, so on A2C-sized batches (5-64 samples) the factors average ``k`` times fewer samples for the
same memory in updates. With ``stats_replay`` the recording instead sees the observations of all ``k`` rollouts since
the previous one (the current one included): every sample of the run enters the factors once, each with actions
sampled afresh from the policy at recording time. On tiny rollouts a recording's cost is mostly per operation, not per
sample, so pooling is nearly free there; on tens of samples per rollout it is not (ad hoc, LunarLander's networks: one
recording took 0.71 ms on 40 rows, 1.16 ms on 240), which is what ``stats_batch_size`` bounds.
"""

from __future__ import annotations

from typing import Any

import torch as th

from sb3_natgrad.common.fisher import concat_observations
from sb3_natgrad.common.validation import check_int

Observations = th.Tensor | dict[str, th.Tensor]


class UnrecordedRollouts:
    """Observations and actions of the last ``capacity`` rollouts that were not recorded.

    Has ``state_dict`` / ``load_state_dict`` so that SB3's save and load (``_get_torch_save_params``) carry it, and a
    loaded model resumes training exactly as the saved one would have.

    :param capacity: rollouts kept, ``stats_interval - 1`` (>= 1).
    """

    def __init__(self, capacity: int) -> None:
        check_int("UnrecordedRollouts", "capacity", capacity)
        self.capacity = capacity
        self.observations: list[Observations] = []
        self.actions: list[th.Tensor] = []

    def __len__(self) -> int:
        return len(self.actions)

    def push(self, observations: Observations, actions: th.Tensor) -> None:
        """Keep a rollout that was not recorded (the oldest is dropped beyond ``capacity``)."""
        self.observations.append(observations)
        self.actions.append(actions)
        del self.observations[: -self.capacity], self.actions[: -self.capacity]

    def pool(self, observations: Observations, actions: th.Tensor) -> tuple[Observations, th.Tensor]:
        """The kept rollouts followed by this one, ``[sum_i B_i, ...]`` (the same objects if none is kept)."""
        if not self.actions:
            return observations, actions
        return concat_observations([*self.observations, observations]), th.cat([*self.actions, actions])

    def clear(self) -> None:
        """Forget the kept rollouts, once a recording has folded them into the factors."""
        self.observations, self.actions = [], []

    def state_dict(self) -> dict[str, Any]:
        return {"observations": list(self.observations), "actions": list(self.actions)}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore the kept rollouts (``strict`` is accepted for SB3's ``set_parameters`` and has no effect)."""
        self.observations = list(state["observations"])[-self.capacity :]
        self.actions = list(state["actions"])[-self.capacity :]
