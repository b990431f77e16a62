"""PPG: phasic policy gradient (Cobbe et al. 2021)."""

from sb3_natgrad.ppg.aux_buffer import AuxiliaryBuffer
from sb3_natgrad.ppg.policies import (
    CnnPolicy,
    MlpPolicy,
    MultiInputPolicy,
    PPGCnnPolicy,
    PPGMultiInputPolicy,
    PPGPolicy,
)
from sb3_natgrad.ppg.ppg import PPG, clone_kl

__all__ = [
    "PPG",
    "AuxiliaryBuffer",
    "CnnPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "PPGCnnPolicy",
    "PPGMultiInputPolicy",
    "PPGPolicy",
    "clone_kl",
]
