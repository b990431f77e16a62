from sb3_natgrad.trpo.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_natgrad.trpo.trpo import TRPO

__all__ = ["TRPO", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
