"""Checks shared by the tests: what a ``learn()`` call exercised."""

from __future__ import annotations

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm


def parameters(model: BaseAlgorithm) -> dict[str, th.Tensor]:
    """A copy of every parameter of the model's policy (networks and, off-policy, target networks), by name."""
    return {name: param.detach().clone() for name, param in model.policy.named_parameters()}


def assert_trained(model: BaseAlgorithm, before: dict[str, th.Tensor]) -> None:
    """Every parameter is finite and at least one moved from ``before`` (:func:`parameters` before ``learn()``)."""
    after = parameters(model)
    assert after.keys() == before.keys()
    not_finite = [name for name, param in after.items() if not bool(th.isfinite(param).all())]
    assert not not_finite, f"non-finite parameters after training: {not_finite}"
    assert any(not th.equal(before[name], after[name]) for name in after), "training changed no parameter"
