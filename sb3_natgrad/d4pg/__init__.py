from sb3_natgrad.d4pg.d4pg import D4PG
from sb3_natgrad.d4pg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["D4PG", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
