"""sb3_natgrad: natural-gradient and trust-region algorithms for Stable-Baselines3."""

from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_natgrad.acktr import ACKTR
from sb3_natgrad.trpo import TRPO

__version__ = (Path(__file__).parent / "version.txt").read_text().strip()

#: rl-zoo key -> algorithm class, for every algorithm this plugin provides.
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "acktr": ACKTR,
    "trpo": TRPO,
}

__all__ = ["ACKTR", "ALGOS", "TRPO", "__version__"]
