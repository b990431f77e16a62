"""Explicit actor / critic parameter selection for SB3 actor-critic policies.

sb3-contrib's TRPO finds the actor's parameters by matching ``"value" in name``; a renamed or custom
module silently ends up in the wrong set. Here the sets are built from the policy's module tree:

- actor: the policy's features extractor (``pi_features_extractor``, which *is* the shared one when
  ``share_features_extractor=True``), ``mlp_extractor.policy_net``, ``action_net`` and ``log_std``
  (present for Gaussian and gSDE distributions).
- critic: ``vf_features_extractor`` only when it is *not* shared with the actor,
  ``mlp_extractor.value_net`` and ``value_net``.
- shared: parameters that belong to both (the shared features extractor).

A custom policy whose module tree differs can define ``actor_parameters()`` and
``critic_parameters()`` methods returning lists of parameters; they take precedence.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy


def _unique(params: Iterable[th.nn.Parameter]) -> list[th.nn.Parameter]:
    seen: set[int] = set()
    out = []
    for param in params:
        if id(param) not in seen:
            seen.add(id(param))
            out.append(param)
    return out


def _module_parameters(policy: ActorCriticPolicy, *names: str) -> list[th.nn.Parameter]:
    params: list[th.nn.Parameter] = []
    for name in names:
        obj = policy
        for attr in name.split("."):
            if not hasattr(obj, attr):
                raise ValueError(
                    f"Cannot select parameters of {type(policy).__name__}: it has no '{name}'. "
                    "Define actor_parameters() and critic_parameters() on the custom policy."
                )
            obj = getattr(obj, attr)
        if isinstance(obj, th.nn.Parameter):
            params.append(obj)
        elif isinstance(obj, th.nn.Module):
            params.extend(obj.parameters())
        else:
            raise ValueError(f"'{name}' of {type(policy).__name__} is neither a module nor a parameter")
    return params


def actor_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """Parameters that define the action distribution pi(a|s), shared layers included."""
    custom = getattr(policy, "actor_parameters", None)
    if callable(custom):
        return _unique(custom())
    names = ["pi_features_extractor", "mlp_extractor.policy_net", "action_net"]
    params = _module_parameters(policy, *names)
    log_std = getattr(policy, "log_std", None)
    if isinstance(log_std, th.nn.Parameter):
        params.append(log_std)
    return _unique(params)


def critic_parameters(policy: ActorCriticPolicy, include_shared: bool = False) -> list[th.nn.Parameter]:
    """Parameters that define V(s).

    :param include_shared: also return the layers shared with the actor (shared features extractor).
    """
    custom = getattr(policy, "critic_parameters", None)
    if callable(custom):
        params = _unique(custom())
    else:
        params = _unique(_module_parameters(policy, "vf_features_extractor", "mlp_extractor.value_net", "value_net"))
    if include_shared:
        return params
    actor_ids = {id(p) for p in actor_parameters(policy)}
    return [p for p in params if id(p) not in actor_ids]


def shared_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """Parameters used by both the actor and the critic."""
    critic_ids = {id(p) for p in critic_parameters(policy, include_shared=True)}
    return [p for p in actor_parameters(policy) if id(p) in critic_ids]
