"""Code shared by the algorithms.

Natural-gradient mathematics: Fisher-vector products and sampled-Fisher actions (``fisher``), conjugate
gradient (``cg``), trust-region line search (``line_search``), actor / critic parameter selection
(``policies``), the fused-Adam switch (``fused``). Replay: prioritized and n-step replay buffers
(``prioritized_replay``, ``n_step_replay``, on the sum/min tree of ``sum_tree``) and the flat
``prioritized_replay`` / ``per_*`` arguments of the off-policy algorithms (``off_policy``). Hyperparameter
checks in one style (``validation``).
"""

from sb3_natgrad.common.n_step_replay import NStepDictReplayBuffer
from sb3_natgrad.common.prioritized_replay import (
    PrioritizedDictReplayBuffer,
    PrioritizedDictReplayBufferSamples,
    PrioritizedReplayBuffer,
    PrioritizedReplayBufferSamples,
)

__all__ = [
    "NStepDictReplayBuffer",
    "PrioritizedDictReplayBuffer",
    "PrioritizedDictReplayBufferSamples",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
]
