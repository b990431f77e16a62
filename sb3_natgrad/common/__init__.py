"""Shared natural-gradient mathematics: Fisher-vector products, conjugate gradient, line search."""
