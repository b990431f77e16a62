"""Trust-region step along a natural-gradient direction: closed-form step size and backtracking.

TRPO (Schulman et al., 2015, "Trust Region Policy Optimization", Sec. 6 and Appendix C): with ``s`` the
(approximate) solution of ``F s = g``, the largest step along ``s`` that satisfies the quadratic model of
the constraint ``(1/2) (beta s)^T F (beta s) <= delta`` is ``beta = sqrt(2 delta / s^T F s)``. Because the
quadratic model is only local, the step is shrunk geometrically until the *exact* constraint holds
(mean ``KL(pi_old || pi_new) <= delta``) and the surrogate objective improves. The natural policy
gradient (Kakade, 2002) takes the closed-form step without any check: :func:`natural_gradient_step`.

Both functions work on an explicit list of parameters and a flat direction, and evaluate the objective
and the constraint through a caller-supplied closure; on failure they restore the exact original values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch as th
from torch import nn

from sb3_natgrad.common.fisher import flatten, unflatten
from sb3_natgrad.common.validation import check_int, check_number

#: Closure evaluated at the current parameter values (called under ``torch.no_grad()``):
#: returns the objective to *maximize* (scalar tensor) and the constraint value, e.g. the mean KL (scalar tensor).
Evaluate = Callable[[], tuple[th.Tensor, th.Tensor]]


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of :func:`backtracking_line_search` / :func:`natural_gradient_step`.

    :param accepted: the parameters were moved (otherwise they hold their exact original values)
    :param step_fraction: fraction of the closed-form step that was applied (0 when not accepted)
    :param n_steps: number of evaluations of the objective and constraint
    :param step_size: the closed-form step size ``beta = sqrt(2 delta / s^T F s)`` (0 when undefined)
    :param kl: constraint value at the returned parameters (0 when not accepted)
    :param improvement: objective increase at the returned parameters (0 when not accepted)
    """

    accepted: bool
    step_fraction: float
    n_steps: int
    step_size: float
    kl: float
    improvement: float


def closed_form_step_size(max_kl: float, shs: float | th.Tensor) -> float:
    """``sqrt(2 delta / s^T F s)``, or ``0.0`` when ``s^T F s`` is not positive and finite.

    :param max_kl: trust-region radius ``delta`` (mean KL)
    :param shs: the curvature ``s^T F s`` of the search direction
    """
    shs = float(shs)
    if not math.isfinite(shs) or shs <= 0.0:
        return 0.0
    step_size = math.sqrt(2.0 * max_kl / shs)
    return step_size if math.isfinite(step_size) else 0.0


def _check(owner: str, max_kl: float, params: Sequence[nn.Parameter], search_direction: th.Tensor) -> None:
    check_number(owner, "max_kl", max_kl, 0.0, low_open=True)
    n_params = sum(p.numel() for p in params)
    if search_direction.numel() != n_params:
        raise ValueError(f"search_direction has {search_direction.numel()} elements, the parameters have {n_params}")


@th.no_grad()
def _set(params: Sequence[nn.Parameter], values: Sequence[th.Tensor]) -> None:
    for param, value in zip(params, values, strict=True):
        param.copy_(value)


def backtracking_line_search(
    params: Sequence[nn.Parameter],
    search_direction: th.Tensor,
    shs: float | th.Tensor,
    evaluate: Evaluate,
    old_objective: float | th.Tensor,
    max_kl: float,
    shrinking_factor: float = 0.8,
    max_iter: int = 10,
) -> LineSearchResult:
    """Backtracking line search from the closed-form trust-region step.

    Tries ``theta = theta_0 + shrinking_factor^i * beta * s`` for ``i = 0, 1, ...`` and accepts the first
    point where the objective is finite and strictly larger than ``old_objective`` and the constraint is
    ``<= max_kl``. If none is accepted (or ``s^T F s`` is not positive and finite), the parameters get back
    their exact original values.

    :param params: the parameters to move, in the layout of ``search_direction``
    :param search_direction: ``s ~ F^-1 g``, flat ``[n_params]``
    :param shs: ``s^T F s``
    :param evaluate: returns ``(objective, constraint)`` at the current parameters
    :param old_objective: objective at the original parameters
    :param max_kl: trust-region radius ``delta``
    :param shrinking_factor: geometric step reduction, in ``(0, 1)``
    :param max_iter: maximum number of evaluations
    """
    _check("backtracking_line_search", max_kl, params, search_direction)
    check_number("backtracking_line_search", "shrinking_factor", shrinking_factor, 0.0, 1.0, low_open=True, high_open=True)
    check_int("backtracking_line_search", "max_iter", max_iter)

    def accept(improvement: float, kl_value: float) -> bool:
        # NaN fails both comparisons, so a non-finite objective or KL is never accepted.
        return improvement > 0 and kl_value <= max_kl and math.isfinite(improvement)

    fractions = [1.0]
    for _ in range(max_iter - 1):  # repeated products, as sb3-contrib (not shrinking_factor**i)
        fractions.append(fractions[-1] * shrinking_factor)
    return _try_steps(params, search_direction, closed_form_step_size(max_kl, shs), evaluate, old_objective, fractions, accept)


def natural_gradient_step(
    params: Sequence[nn.Parameter],
    search_direction: th.Tensor,
    shs: float | th.Tensor,
    evaluate: Evaluate,
    old_objective: float | th.Tensor,
    max_kl: float,
) -> LineSearchResult:
    """Natural policy gradient step of the closed-form size, without backtracking.

    The step is always kept unless the objective or the constraint is non-finite there (or ``s^T F s`` is
    not positive and finite), in which case the exact original parameters are restored. The KL can
    therefore exceed ``max_kl``: the quadratic model of the constraint is only trusted.
    """
    _check("natural_gradient_step", max_kl, params, search_direction)

    def accept(improvement: float, kl_value: float) -> bool:
        return math.isfinite(improvement) and math.isfinite(kl_value)

    return _try_steps(params, search_direction, closed_form_step_size(max_kl, shs), evaluate, old_objective, [1.0], accept)


def _try_steps(
    params: Sequence[nn.Parameter],
    search_direction: th.Tensor,
    step_size: float,
    evaluate: Evaluate,
    old_objective: float | th.Tensor,
    fractions: Sequence[float],
    accept: Callable[[float, float], bool],
) -> LineSearchResult:
    """Set ``theta_0 + fraction * step_size * s`` for each fraction in turn; keep the first that ``accept`` approves
    (improvement, KL), else restore the exact original parameters. ``step_size == 0`` (undefined) tries nothing."""
    if step_size == 0.0:
        return LineSearchResult(False, 0.0, 0, 0.0, 0.0, 0.0)
    old_objective = float(old_objective)
    original = [p.detach().clone() for p in params]
    original_flat = flatten(original)
    with th.no_grad():
        for i, fraction in enumerate(fractions):
            _set(params, unflatten(original_flat + (fraction * step_size) * search_direction, params))
            objective, kl = evaluate()
            improvement, kl_value = float(objective) - old_objective, float(kl)
            if accept(improvement, kl_value):
                return LineSearchResult(True, fraction, i + 1, step_size, kl_value, improvement)
        _set(params, original)
    return LineSearchResult(False, 0.0, len(fractions), step_size, 0.0, 0.0)
