"""Optimizers usable outside RL (K-FAC)."""

from sb3_natgrad.optim.kfac import KFAC, fisher_backward

__all__ = ["KFAC", "fisher_backward"]
