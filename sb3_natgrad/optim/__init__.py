"""Optimizers usable outside RL (K-FAC)."""
