"""Conjugate gradient against dense solves, and its behaviour on singular / indefinite operators."""

from __future__ import annotations

import pytest
import torch as th
from sb3_contrib.common.utils import conjugate_gradient_solver

from sb3_natgrad.common.cg import conjugate_gradient


def _spd(n: int, seed: int, condition: float = 100.0) -> th.Tensor:
    gen = th.Generator().manual_seed(seed)
    q, _ = th.linalg.qr(th.randn(n, n, dtype=th.float64, generator=gen))
    eigenvalues = th.logspace(0, float(th.log10(th.tensor(condition))), n, dtype=th.float64)
    return q @ th.diag(eigenvalues) @ q.T


@pytest.mark.parametrize("seed", range(4))
def test_solves_spd_systems(seed: int) -> None:
    n = 25
    a = _spd(n, seed)
    b = th.randn(n, dtype=th.float64, generator=th.Generator().manual_seed(100 + seed))
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=3 * n, residual_tol=1e-20)
    th.testing.assert_close(x, th.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert info.converged and not info.non_positive_curvature
    assert 1 <= info.iterations <= 3 * n
    assert info.residual_norm == pytest.approx(float((b - a @ x).norm()), abs=1e-8)


def test_exact_after_n_iterations_on_few_distinct_eigenvalues() -> None:
    # CG terminates in at most (number of distinct eigenvalues) iterations in exact arithmetic.
    gen = th.Generator().manual_seed(7)
    q, _ = th.linalg.qr(th.randn(30, 30, dtype=th.float64, generator=gen))
    a = q @ th.diag(th.tensor([1.0, 2.0, 5.0]).repeat_interleave(10).double()) @ q.T
    b = th.randn(30, dtype=th.float64, generator=gen)
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=3, residual_tol=1e-24)
    th.testing.assert_close(x, th.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert info.iterations == 3


def test_initial_guess_and_max_iter() -> None:
    a = _spd(20, 11, condition=1e4)
    b = th.randn(20, dtype=th.float64, generator=th.Generator().manual_seed(12))
    x_true = th.linalg.solve(a, b)
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=4, residual_tol=0.0)
    assert info.iterations == 4 and not info.converged
    # Starting from the exact solution: no iteration needed.
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=4, residual_tol=1e-18, x0=x_true)
    assert info.iterations == 0 and info.converged
    th.testing.assert_close(x, x_true)


def test_same_iterates_as_sb3_contrib() -> None:
    # sb3-contrib starts from 1e-4 * randn: with the same x0 and tolerance, the iterates coincide.
    a = _spd(15, 3).float()
    b = th.randn(15, generator=th.Generator().manual_seed(4))
    for max_iter in (1, 5, 10):
        th.manual_seed(5)
        expected = conjugate_gradient_solver(lambda v: a @ v, b, max_iter=max_iter)
        th.manual_seed(5)
        x, _ = conjugate_gradient(lambda v: a @ v, b, max_iter=max_iter, x0=1e-4 * th.randn_like(b))
        th.testing.assert_close(x, expected, rtol=1e-6, atol=1e-7)


def test_zero_right_hand_side() -> None:
    x, info = conjugate_gradient(lambda v: v, th.zeros(5), max_iter=5)
    assert th.equal(x, th.zeros(5)) and info.iterations == 0 and info.converged


def test_singular_psd_operator() -> None:
    # Rank-3 PSD matrix in 8 dimensions: b in its range is solved (minimum-norm solution from x0 = 0),
    # b outside its range never produces NaN.
    gen = th.Generator().manual_seed(21)
    u = th.randn(8, 3, dtype=th.float64, generator=gen)
    a = u @ u.T
    b_in = a @ th.randn(8, dtype=th.float64, generator=gen)
    x, info = conjugate_gradient(lambda v: a @ v, b_in, max_iter=20, residual_tol=1e-20)
    th.testing.assert_close(x, th.linalg.pinv(a) @ b_in, rtol=1e-6, atol=1e-8)
    assert info.converged

    b_out = th.randn(8, dtype=th.float64, generator=gen)
    x, info = conjugate_gradient(lambda v: a @ v, b_out, max_iter=20, residual_tol=1e-20)
    assert th.isfinite(x).all() and not info.converged
    assert info.non_positive_curvature  # the component of b outside the range has zero curvature


def test_zero_operator_stops_at_first_iteration() -> None:
    b = th.ones(4)
    x, info = conjugate_gradient(lambda v: th.zeros_like(v), b, max_iter=10)
    assert info.non_positive_curvature and info.iterations == 1
    assert th.equal(x, th.zeros(4))


def test_indefinite_operator() -> None:
    a = th.diag(th.tensor([2.0, 1.0, -1.0, -3.0], dtype=th.float64))
    # First direction b = e_0 + e_2 has curvature 2 - 1 = 1 > 0; the next one is negative.
    b = th.tensor([1.0, 0.0, 1.0, 0.0], dtype=th.float64)
    x, info = conjugate_gradient(lambda v: a @ v, b, max_iter=10)
    assert info.non_positive_curvature and info.iterations == 2
    # The returned iterate is the first CG iterate alpha * b with alpha = b^T b / b^T A b = 2.
    th.testing.assert_close(x, 2.0 * b)
    # Purely negative curvature: nothing is taken.
    x, info = conjugate_gradient(lambda v: -v, th.ones(3), max_iter=10)
    assert info.non_positive_curvature and th.equal(x, th.zeros(3))


def test_non_finite_operator() -> None:
    x, info = conjugate_gradient(lambda v: th.full_like(v, float("nan")), th.ones(3), max_iter=10)
    assert info.non_positive_curvature and th.isfinite(x).all()
    x, info = conjugate_gradient(lambda v: v * 1e300, th.ones(3, dtype=th.float64) * 1e10, max_iter=10)
    assert th.isfinite(x).all()


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="0"):
        conjugate_gradient(lambda v: v, th.ones(2), max_iter=0)
    with pytest.raises(ValueError, match="-1"):
        conjugate_gradient(lambda v: v, th.ones(2), residual_tol=-1.0)
