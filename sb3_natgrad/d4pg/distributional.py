"""Distributional Bellman targets and losses for D4PG's critics, as small pure functions.

- Categorical critic (C51): Bellemare, Dabney and Munos, 2017, "A Distributional Perspective on
  Reinforcement Learning", Algorithm 1 (https://arxiv.org/abs/1707.06887), used by D4PG
  (Barth-Maron et al., 2018, Sec. 3, https://arxiv.org/abs/1804.08617) with N-step targets.
- Quantile critics with truncation: Kuznetsov et al., 2020, "Controlling Overestimation Bias with Truncated
  Mixture of Continuous Distributional Quantile Critics" (TQC), Sec. 3 (https://arxiv.org/abs/2005.04269),
  here on a deterministic actor (no entropy term).

Notation: ``B`` batch, ``K`` atoms, ``C`` critics, ``N`` quantiles per critic, ``M`` kept target quantiles.
``bootstrap`` is the discount of the N-step target, ``gamma^k`` where the n-step transition was cut after
``k`` rewards, and 0 where it ended in a termination (time-limit truncations keep their ``gamma^k``).
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.utils import quantile_huber_loss
from torch.nn import functional as F


def categorical_support(v_min: float, v_max: float, n_atoms: int, device: th.device | str = "cpu") -> th.Tensor:
    """The fixed support ``z_i = v_min + i * (v_max - v_min) / (n_atoms - 1)``, ``i = 0..n_atoms-1``. Shape ``[K]``."""
    return th.linspace(v_min, v_max, n_atoms, device=device)


def categorical_projection(
    next_probs: th.Tensor, rewards: th.Tensor, bootstrap: th.Tensor, atoms: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """Project the target distribution ``r + bootstrap * Z(s', mu'(s'))`` onto the fixed support (C51, Alg. 1).

    Each target atom ``Tz_j = r + bootstrap * z_j`` is clipped to ``[v_min, v_max]``, and its probability
    ``p_j`` is split between the two neighbouring support points ``z_l <= Tz_j <= z_u`` in proportion to
    its distance from them (``l == u`` when ``Tz_j`` lies on a support point: all of ``p_j`` goes there).
    A terminal transition (``bootstrap == 0``) puts all mass at ``r``.

    :param next_probs: target critic's probabilities ``p_j(s', mu'(s'))``, ``[B, K]``.
    :param rewards: N-step discounted reward sums, ``[B, 1]``.
    :param bootstrap: discount of the bootstrapped value, ``[B, 1]`` (0 where terminal).
    :param atoms: the support ``z``, evenly spaced, ``[K]``.
    :return: the projected target probabilities ``[B, K]`` (rows sum to 1) and, per sample, the mass
        whose target atom fell outside ``[v_min, v_max]`` before clipping, ``[B]``.
    """
    n_atoms = atoms.shape[0]
    v_min, v_max = atoms[0], atoms[-1]
    delta_z = (v_max - v_min) / (n_atoms - 1)
    target_atoms = rewards + bootstrap * atoms  # [B, K]: Tz_j
    outside = (target_atoms < v_min) | (target_atoms > v_max)  # [B, K]
    clipped_mass = (next_probs * outside).sum(dim=1)  # [B]
    # b_j in [0, K-1]: position of the clipped Tz_j on the support, in atoms. Clamping b (not only Tz)
    # keeps ceil(b) a valid index when rounding puts (v_max - v_min) / delta_z a hair above K-1.
    b = ((target_atoms - v_min) / delta_z).clamp(0, n_atoms - 1)  # [B, K]
    lower, upper = b.floor(), b.ceil()  # [B, K]: l, u
    # m_l += p_j (u - b_j), m_u += p_j (b_j - l); when l == u both are 0, so l gets the whole p_j.
    lower_weight = next_probs * (upper - b + (lower == upper).to(b.dtype))  # [B, K]
    upper_weight = next_probs * (b - lower)  # [B, K]
    projected = th.zeros_like(next_probs)  # [B, K]
    # scatter_add_ accumulates repeated indices (several Tz_j falling between the same support points).
    projected.scatter_add_(1, lower.long(), lower_weight)
    projected.scatter_add_(1, upper.long(), upper_weight)
    return projected, clipped_mass


def categorical_cross_entropy(logits: th.Tensor, target_probs: th.Tensor) -> th.Tensor:
    """Per-sample cross-entropy ``-sum_i m_i log p_i(s, a)`` of the projected target ``m`` (C51's loss).

    :param logits: current critic's logits, ``[B, K]``.
    :param target_probs: projected target probabilities ``m``, ``[B, K]`` (no gradient).
    :return: ``[B]``.
    """
    return F.cross_entropy(logits, target_probs, reduction="none")


def truncated_quantile_target(next_quantiles: th.Tensor, rewards: th.Tensor, bootstrap: th.Tensor, n_drop: int) -> th.Tensor:
    """TQC's target: pool the target critics' quantiles, drop the ``n_drop`` largest, apply the Bellman update.

    :param next_quantiles: target critics' quantiles at ``(s', mu'(s'))``, ``[B, C, N]``.
    :param rewards: N-step discounted reward sums, ``[B, 1]``.
    :param bootstrap: discount of the bootstrapped value, ``[B, 1]`` (0 where terminal).
    :param n_drop: quantiles dropped from the top of the pooled ``C * N`` (``C`` times TQC's ``d``).
    :return: target quantiles ``r + bootstrap * z_(m)`` for the ``M = C * N - n_drop`` smallest, ``[B, M]``.
    """
    pooled, _ = next_quantiles.flatten(start_dim=1).sort(dim=1)  # [B, C * N], ascending
    kept = pooled[:, : pooled.shape[1] - n_drop]  # [B, M]
    return rewards + bootstrap * kept  # [B, M]


def _one_sample_quantile_loss(current: th.Tensor, target: th.Tensor) -> th.Tensor:
    # current [C, N], target [M] -> sb3-contrib's TQC shapes [1, C, N] and [1, 1, M] (a batch of one).
    return quantile_huber_loss(current.unsqueeze(0), target.view(1, 1, -1), sum_over_quantiles=True)


def quantile_huber_per_sample(current_quantiles: th.Tensor, target_quantiles: th.Tensor) -> th.Tensor:
    """sb3-contrib's quantile Huber loss (TQC, Eq. 9 with ``kappa = 1``) per sample, for PER priorities.

    ``quantile_huber_loss`` averages over the batch; ``vmap`` runs it on each sample as a batch of one,
    vectorised, so its mean over the batch equals contrib's loss on the whole batch.

    :param current_quantiles: current critics' quantiles, ``[B, C, N]``.
    :param target_quantiles: target quantiles, ``[B, M]`` (no gradient).
    :return: ``[B]``.
    """
    return th.func.vmap(_one_sample_quantile_loss)(current_quantiles, target_quantiles)
