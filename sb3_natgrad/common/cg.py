"""Conjugate gradient for ``A x = b`` with a matrix-free symmetric positive (semi-)definite ``A``.

Hestenes & Stiefel (1952), "Methods of conjugate gradients for solving linear systems"; used by
TRPO (Schulman et al., 2015, Appendix C) to approximate ``F^-1 g`` with a few Fisher-vector products.
The stopping rule on the squared residual norm follows modular_rl / sb3-contrib, so that the same
``residual_tol`` gives the same iterates.

Unlike the usual loop, the solver checks the curvature ``p^T A p`` before dividing by it: a damped
Fisher is positive definite in exact arithmetic, but a Hessian of the KL away from ``theta_old``, an
undamped singular Fisher or round-off can give ``p^T A p <= 0``, where the textbook update divides by
zero or walks uphill. It then stops and returns the last iterate computed with positive curvature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch as th

from sb3_natgrad.common.validation import check_int, check_number


@dataclass(frozen=True)
class CGInfo:
    """Diagnostics of a :func:`conjugate_gradient` solve.

    :param iterations: number of CG iterations (products ``A p``; the product for a non-zero ``x0`` is not counted)
    :param residual_norm: ``||b - A x||`` of the returned ``x`` (recursively updated residual)
    :param converged: the squared residual norm fell below ``residual_tol``
    :param non_positive_curvature: stopped because ``p^T A p <= 0`` (or non-finite, or the residual overflowed)
    """

    iterations: int
    residual_norm: float
    converged: bool
    non_positive_curvature: bool


def conjugate_gradient(
    matrix_vector_product: Callable[[th.Tensor], th.Tensor],
    b: th.Tensor,
    max_iter: int = 10,
    residual_tol: float = 1e-10,
    x0: th.Tensor | None = None,
) -> tuple[th.Tensor, CGInfo]:
    """Approximately solve ``A x = b`` by conjugate gradient.

    :param matrix_vector_product: ``v -> A v`` for flat vectors, ``A`` symmetric
    :param b: right-hand side, flat ``[n]``
    :param max_iter: maximum number of iterations (products ``A p``)
    :param residual_tol: stop once the squared residual norm ``r^T r`` is below it
    :param x0: initial guess (default: zero, which saves one product)
    :return: the solution ``x`` (``[n]``, never containing NaN when ``b`` is finite) and :class:`CGInfo`
    """
    check_int("conjugate_gradient", "max_iter", max_iter)
    check_number("conjugate_gradient", "residual_tol", residual_tol, 0.0)
    if x0 is None:
        x = th.zeros_like(b)
        residual = b.clone()
    else:
        x = x0.clone()
        residual = b - matrix_vector_product(x)
    residual_sq = residual.dot(residual)
    if residual_sq < residual_tol:
        return x, CGInfo(0, float(residual_sq.sqrt()), converged=True, non_positive_curvature=False)

    direction = residual.clone()
    iterations = 0
    converged = False
    non_positive_curvature = False
    for _ in range(max_iter):
        a_direction = matrix_vector_product(direction)
        iterations += 1
        curvature = direction.dot(a_direction)  # p^T A p
        # Never divide by a non-positive or non-finite curvature.
        if not _positive(curvature):
            non_positive_curvature = True
            break
        alpha = residual_sq / curvature
        new_x = x + alpha * direction
        new_residual = residual - alpha * a_direction
        new_residual_sq = new_residual.dot(new_residual)
        if not bool(th.isfinite(new_residual_sq)):
            # Overflow: keep the last finite iterate.
            non_positive_curvature = True
            break
        x, residual = new_x, new_residual
        if new_residual_sq < residual_tol:
            residual_sq = new_residual_sq
            converged = True
            break
        beta = new_residual_sq / residual_sq
        residual_sq = new_residual_sq
        direction = residual + beta * direction
    return x, CGInfo(iterations, float(residual_sq.sqrt()), converged, non_positive_curvature)


def _positive(value: th.Tensor) -> bool:
    """``value > 0`` and finite (``not (NaN > 0)``, so NaN is not positive)."""
    return bool(value > 0) and bool(th.isfinite(value))
