"""sb3_natgrad: natural-gradient and trust-region algorithms for Stable-Baselines3."""

from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_natgrad.acer import ACER
from sb3_natgrad.acktr import ACKTR
from sb3_natgrad.d4pg import D4PG
from sb3_natgrad.ppg import PPG
from sb3_natgrad.tqc import TQC
from sb3_natgrad.trpo import TRPO

__version__ = (Path(__file__).parent / "version.txt").read_text().strip()

#: rl-zoo key -> algorithm class, for every algorithm this plugin provides.
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "acer": ACER,
    "acktr": ACKTR,
    "d4pg": D4PG,
    "ppg": PPG,
    "tqc": TQC,
    "trpo": TRPO,
}

__all__ = ["ACER", "ACKTR", "ALGOS", "D4PG", "PPG", "TQC", "TRPO", "__version__"]
