"""The samples of one ACKTR update's K-FAC statistics, and where the rollout sits among them (details 5 and 8 of
:mod:`sb3_natgrad.acktr.acktr`).

An update records the statistics on one of three batches: the rollout itself; the rollouts since the last recording
pooled with it, the current one last (``stats_replay``); or ``stats_batch_size`` samples drawn from either at random.
The losses need the rollout's rows of a forward pass. When the rollout is the batch's tail (the rollout itself, or a
pool bounded by ``stats_batch_size``) the losses reuse the statistics' forward pass and read those rows from it;
otherwise (drawn samples, or an unbounded pool) they run a forward pass of their own on the rollout alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch as th

from sb3_natgrad.acktr.unrecorded import Observations


@dataclass(frozen=True)
class StatsBatch:
    """The samples the K-FAC statistics of one update are recorded on.

    :param observations: ``[M, ...]`` (or a dict of them).
    :param actions: ``[M, ...]``; the log-probabilities of the sampled Fisher loss do not use them.
    :param rollout_size: ``B``, the rows of the current rollout.
    :param shares_forward_pass: whether the losses read the rollout's rows from this batch's forward pass; only when
        the rollout is the batch's tail (its last ``B`` rows), never for samples drawn at random.
    """

    observations: Observations
    actions: th.Tensor
    rollout_size: int
    shares_forward_pass: bool

    @classmethod
    def rollout(cls, observations: Observations, actions: th.Tensor) -> StatsBatch:
        """The rollout itself (the same objects): its forward pass serves the losses too."""
        return cls(observations, actions, actions.shape[0], shares_forward_pass=True)

    @property
    def size(self) -> int:
        """``M``, the rows of the batch."""
        return self.actions.shape[0]

    @property
    def rollout_start(self) -> int:
        """First row of the rollout in the forward pass the losses use: ``M - B`` in this batch's when they share it
        (the rollout is its tail), else 0 in their own pass on the rollout."""
        return self.size - self.rollout_size if self.shares_forward_pass else 0

    @property
    def rollout_rows(self) -> slice:
        """The rollout's ``B`` rows in the forward pass the losses use (see :attr:`rollout_start`)."""
        return slice(self.rollout_start, None)
