"""Trust-region line search on a small softmax policy, checked with dense brute-force quantities."""

from __future__ import annotations

import math

import pytest
import torch as th
from torch import nn

from sb3_natgrad.common.line_search import (
    backtracking_line_search,
    closed_form_step_size,
    natural_gradient_step,
)

N_STATES, OBS_DIM, N_ACTIONS = 32, 3, 4


class Problem:
    """Linear softmax policy logits = obs W + b with a TRPO surrogate; everything dense and float64."""

    def __init__(self, seed: int) -> None:
        gen = th.Generator().manual_seed(seed)
        self.obs = th.randn(N_STATES, OBS_DIM, dtype=th.float64, generator=gen)
        self.weight = nn.Parameter(0.5 * th.randn(OBS_DIM, N_ACTIONS, dtype=th.float64, generator=gen))
        self.bias = nn.Parameter(0.1 * th.randn(N_ACTIONS, dtype=th.float64, generator=gen))
        self.params = [self.weight, self.bias]
        self.theta0 = self.flat().clone()
        self.old_log_probs = self.log_probs(self.theta0).detach()  # [N, A]
        self.actions = th.randint(N_ACTIONS, (N_STATES,), generator=gen)
        self.advantages = th.randn(N_STATES, dtype=th.float64, generator=gen)

    def flat(self) -> th.Tensor:
        return th.cat([p.detach().reshape(-1) for p in self.params])

    def log_probs(self, theta: th.Tensor) -> th.Tensor:
        weight = theta[: OBS_DIM * N_ACTIONS].view(OBS_DIM, N_ACTIONS)
        return th.log_softmax(self.obs @ weight + theta[OBS_DIM * N_ACTIONS :], dim=-1)

    def surrogate(self, theta: th.Tensor) -> th.Tensor:
        log_prob = self.log_probs(theta).gather(1, self.actions[:, None]).squeeze(1)
        old = self.old_log_probs.gather(1, self.actions[:, None]).squeeze(1)
        return (self.advantages * th.exp(log_prob - old)).mean()

    def kl(self, theta: th.Tensor) -> th.Tensor:
        old = self.old_log_probs
        return (old.exp() * (old - self.log_probs(theta))).sum(-1).mean()

    def evaluate(self) -> tuple[th.Tensor, th.Tensor]:
        theta = self.flat()
        return self.surrogate(theta), self.kl(theta)

    def natural_direction(self) -> tuple[th.Tensor, float]:
        """s = F^-1 g with the dense KL Hessian (+ tiny damping, F is singular: logits are shift-invariant)."""
        fisher = th.autograd.functional.hessian(self.kl, self.theta0) + 1e-6 * th.eye(self.theta0.numel())
        grad = th.autograd.functional.jacobian(self.surrogate, self.theta0)
        direction = th.linalg.solve(fisher, grad)
        return direction, float(direction @ fisher @ direction)


def test_accepted_at_first_try_is_the_closed_form_step() -> None:
    problem = Problem(0)
    direction, shs = problem.natural_direction()
    max_kl = 1e-4
    result = backtracking_line_search(
        problem.params, direction, shs, problem.evaluate, problem.surrogate(problem.theta0), max_kl
    )
    assert result.accepted and result.n_steps == 1 and result.step_fraction == 1.0
    beta = math.sqrt(2 * max_kl / shs)
    assert result.step_size == pytest.approx(beta)
    th.testing.assert_close(problem.flat(), problem.theta0 + beta * direction)
    kl = float(problem.kl(problem.flat()))
    # Quadratic model: the KL of the closed-form step is close to delta (and below it here).
    assert kl <= max_kl and kl == pytest.approx(max_kl, rel=0.05)
    assert result.kl == pytest.approx(kl)
    assert result.improvement == pytest.approx(float(problem.surrogate(problem.flat()) - problem.surrogate(problem.theta0)))
    assert result.improvement > 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_kl", [0.05, 0.5, 3.0])
def test_never_violates_the_trust_region(seed: int, max_kl: float) -> None:
    problem = Problem(seed)
    direction, shs = problem.natural_direction()
    old_objective = problem.surrogate(problem.theta0)
    # Large radii make the quadratic model wrong: backtracking is needed.
    result = backtracking_line_search(
        problem.params, direction, shs, problem.evaluate, old_objective, max_kl, shrinking_factor=0.5, max_iter=15
    )
    theta = problem.flat()
    if result.accepted:
        assert float(problem.kl(theta)) <= max_kl
        assert float(problem.surrogate(theta)) > float(old_objective)
        assert result.step_fraction == 0.5 ** (result.n_steps - 1)
        th.testing.assert_close(theta, problem.theta0 + result.step_fraction * math.sqrt(2 * max_kl / shs) * direction)
    else:
        assert th.equal(theta, problem.theta0)


def test_backtracking_happens_and_stays_in_region() -> None:
    problem = Problem(1)
    direction, shs = problem.natural_direction()
    result = backtracking_line_search(
        problem.params, direction, shs, problem.evaluate, problem.surrogate(problem.theta0), 3.0, shrinking_factor=0.5
    )
    assert result.accepted and result.n_steps > 1
    assert float(problem.kl(problem.flat())) <= 3.0


def test_failure_restores_parameters_bitwise() -> None:
    problem = Problem(2)
    direction, shs = problem.natural_direction()
    calls = []

    def worse() -> tuple[th.Tensor, th.Tensor]:
        calls.append(problem.flat())
        surrogate, kl = problem.evaluate()
        return surrogate - 1.0, kl  # never an improvement

    result = backtracking_line_search(
        problem.params, direction, shs, worse, problem.surrogate(problem.theta0), 0.01, shrinking_factor=0.7, max_iter=6
    )
    assert not result.accepted and result.n_steps == 6 and len(calls) == 6
    assert all(not th.equal(theta, problem.theta0) for theta in calls)  # the parameters did move
    assert th.equal(problem.flat(), problem.theta0)
    assert result.kl == 0.0 and result.improvement == 0.0


def test_kl_violation_and_nan_are_rejected() -> None:
    for bad in (lambda kl: kl + 1.0, lambda kl: kl * float("nan")):
        problem = Problem(3)
        direction, shs = problem.natural_direction()

        def evaluate(bad=bad, problem=problem) -> tuple[th.Tensor, th.Tensor]:  # type: ignore[no-untyped-def]
            surrogate, kl = problem.evaluate()
            return surrogate, bad(kl)

        result = backtracking_line_search(
            problem.params, direction, shs, evaluate, problem.surrogate(problem.theta0), 0.01, max_iter=3
        )
        assert not result.accepted and th.equal(problem.flat(), problem.theta0)

    problem = Problem(3)
    direction, shs = problem.natural_direction()
    result = backtracking_line_search(
        problem.params,
        direction,
        shs,
        lambda: (th.tensor(float("nan")), th.tensor(0.0)),
        problem.surrogate(problem.theta0),
        0.01,
    )
    assert not result.accepted and th.equal(problem.flat(), problem.theta0)


@pytest.mark.parametrize("shs", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_curvature_is_a_no_op(shs: float) -> None:
    problem = Problem(4)
    direction, _ = problem.natural_direction()

    def never() -> tuple[th.Tensor, th.Tensor]:
        raise AssertionError("must not evaluate")

    for step in (
        lambda: backtracking_line_search(problem.params, direction, shs, never, 0.0, 0.01),
        lambda: natural_gradient_step(problem.params, direction, shs, never, 0.0, 0.01),
    ):
        result = step()
        assert not result.accepted and result.n_steps == 0 and result.step_size == 0.0
        assert th.equal(problem.flat(), problem.theta0)
    assert closed_form_step_size(0.01, shs) == 0.0


def test_natural_gradient_step_takes_the_full_step() -> None:
    problem = Problem(0)
    direction, shs = problem.natural_direction()
    max_kl = 3.0  # far outside the quadratic regime: the KL will exceed it, NPG does not check
    result = natural_gradient_step(problem.params, direction, shs, problem.evaluate, problem.surrogate(problem.theta0), max_kl)
    assert result.accepted and result.n_steps == 1
    th.testing.assert_close(problem.flat(), problem.theta0 + math.sqrt(2 * max_kl / shs) * direction)
    assert result.kl == pytest.approx(float(problem.kl(problem.flat())))

    problem = Problem(0)
    result = natural_gradient_step(
        problem.params, direction, shs, lambda: (th.tensor(1.0), th.tensor(float("inf"))), 0.0, max_kl
    )
    assert not result.accepted and th.equal(problem.flat(), problem.theta0)


def test_invalid_arguments() -> None:
    problem = Problem(0)
    direction, shs = problem.natural_direction()
    with pytest.raises(ValueError, match=r"1\.5"):
        backtracking_line_search(problem.params, direction, shs, problem.evaluate, 0.0, 0.01, shrinking_factor=1.5)
    with pytest.raises(ValueError, match="0"):
        backtracking_line_search(problem.params, direction, shs, problem.evaluate, 0.0, 0.01, max_iter=0)
    with pytest.raises(ValueError, match=r"-0\.1"):
        backtracking_line_search(problem.params, direction, shs, problem.evaluate, 0.0, -0.1)
    with pytest.raises(ValueError, match="3 elements"):
        natural_gradient_step(problem.params, direction[:3], shs, problem.evaluate, 0.0, 0.01)
