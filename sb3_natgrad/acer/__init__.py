"""ACER: actor-critic with experience replay (Wang et al. 2017)."""

from sb3_natgrad.acer.acer import ACER
from sb3_natgrad.acer.buffer import ACERReplayBuffer, ACERSegments
from sb3_natgrad.acer.functional import (
    continuous_retrace_targets,
    continuous_truncated_is_gain,
    retrace_targets,
    trace_coefficients,
    truncated_is_gain,
    trust_region_projection,
)
from sb3_natgrad.acer.policies import (
    ACERCnnPolicy,
    ACERMultiInputPolicy,
    ACERPolicy,
    CnnPolicy,
    MlpPolicy,
    MultiInputPolicy,
)

__all__ = [
    "ACER",
    "ACERCnnPolicy",
    "ACERMultiInputPolicy",
    "ACERPolicy",
    "ACERReplayBuffer",
    "ACERSegments",
    "CnnPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "continuous_retrace_targets",
    "continuous_truncated_is_gain",
    "retrace_targets",
    "trace_coefficients",
    "truncated_is_gain",
    "trust_region_projection",
]
