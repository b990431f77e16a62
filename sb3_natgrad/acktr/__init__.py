"""ACKTR: actor-critic using a Kronecker-factored trust region (Wu et al. 2017)."""

from sb3_natgrad.acktr.acktr import ACKTR, sampled_fisher_loss
from sb3_natgrad.acktr.policies import (
    ACKTRCnnPolicy,
    ACKTRMultiInputPolicy,
    ACKTRPolicy,
    CnnPolicy,
    MlpPolicy,
    MultiInputPolicy,
)

__all__ = [
    "ACKTR",
    "ACKTRCnnPolicy",
    "ACKTRMultiInputPolicy",
    "ACKTRPolicy",
    "CnnPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "sampled_fisher_loss",
]
