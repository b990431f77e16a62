"""PyTorch's fused Adam kernel for an SB3 policy's optimizer.

SB3 builds ``policy.optimizer = optimizer_class(policy.parameters(), lr, **optimizer_kwargs)``; for
``th.optim.Adam`` PyTorch picks its per-tensor Python loop on CPU. ``fused=True`` runs the same update
rule in one kernel per step (the results differ only by floating-point rounding), which matters for
TRPO's critic: hundreds of small Adam steps per update.
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.policies import BasePolicy

#: ``optimizer_kwargs`` keys by which a user has chosen the Adam implementation themselves.
_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")


def use_fused_adam(policy: BasePolicy) -> bool:
    """Rebuild ``policy.optimizer`` with ``fused=True`` when that is a pure implementation change.

    It is when the optimizer is exactly ``th.optim.Adam`` (or ``AdamW``), holds no state yet, and
    ``policy.optimizer_kwargs`` leaves the implementation to PyTorch; the learning rate, the other keyword
    arguments and the parameter order are kept. Devices or dtypes without a fused kernel keep the
    original optimizer.

    :return: whether the optimizer was replaced.
    """
    optimizer = policy.optimizer
    kwargs = dict(policy.optimizer_kwargs or {})
    if type(optimizer) not in (th.optim.Adam, th.optim.AdamW) or optimizer.state or len(optimizer.param_groups) != 1:
        return False
    if any(key in kwargs for key in _IMPLEMENTATION_KEYS):
        return False
    group = optimizer.param_groups[0]
    adam_class: type[th.optim.Adam] | type[th.optim.AdamW] = type(optimizer)  # type: ignore[assignment]
    try:
        policy.optimizer = adam_class(group["params"], lr=group["lr"], **kwargs, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device / dtype
        return False
    return True
