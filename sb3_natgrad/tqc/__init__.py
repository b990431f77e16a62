from sb3_natgrad.tqc.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_natgrad.tqc.tqc import TQC

__all__ = ["TQC", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
