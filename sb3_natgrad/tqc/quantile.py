"""TQC's quantile regression as small pure functions: the per-sample quantile Huber loss (for prioritized replay)
and the sampled Fisher loss of the quantile critics (for the K-FAC critic).

- Kuznetsov et al., 2020, "Controlling Overestimation Bias with Truncated Mixture of Continuous Distributional
  Quantile Critics" (TQC), https://arxiv.org/abs/2005.04269, Eq. 9-10: each critic ``c`` outputs the locations
  ``theta_{c,i}`` of ``N`` atoms at the quantile fractions ``tau_i = (2 i + 1) / (2 N)`` and regresses them onto the
  ``M`` kept target atoms ``y_j`` with the quantile Huber loss ``rho^1_tau(u) = |tau - 1{u < 0}| Huber_1(u)``,
  ``u = y_j - theta_{c,i}``.
- Schaul et al., 2016, "Prioritized Experience Replay", https://arxiv.org/abs/1511.05952: a sample's loss is its
  priority, and the loss is weighted by the importance weights.
- Martens & Grosse, 2015, "Optimizing Neural Networks with Kronecker-factored Approximate Curvature",
  https://arxiv.org/abs/1503.05671, Sec. 5: K-FAC's curvature is the Fisher of the model's predictive distribution,
  estimated by backpropagating the log-likelihood of targets *sampled from the model*.

Notation: ``B`` batch, ``C`` critics, ``N`` quantiles per critic, ``M`` kept target quantiles.
"""

from __future__ import annotations

import math

import torch as th


def quantile_fractions(n_quantiles: int, device: th.device | str = "cpu") -> th.Tensor:
    """The quantile midpoints ``tau_i = (i + 0.5) / N``, ``i = 0..N-1`` (sb3-contrib's ``cum_prob``). ``[N]``."""
    return (th.arange(n_quantiles, device=device, dtype=th.float) + 0.5) / n_quantiles


def quantile_huber_elementwise(current_quantiles: th.Tensor, target_quantiles: th.Tensor) -> th.Tensor:
    """``rho^1_{tau_i}(y_j - theta_{c,i})`` for every sample, critic, quantile and target (TQC's Eq. 9, ``kappa = 1``).

    The same operations as sb3-contrib's ``quantile_huber_loss`` before its reduction, so that ``.mean()`` of the
    result is contrib's ``quantile_huber_loss(..., sum_over_quantiles=False)`` bit for bit.

    :param current_quantiles: ``theta``, ``[B, C, N]``.
    :param target_quantiles: ``y``, ``[B, 1, M]`` (no gradient).
    :return: ``[B, C, N, M]``.
    """
    fractions = quantile_fractions(current_quantiles.shape[-1], current_quantiles.device).view(1, 1, -1, 1)  # [1, 1, N, 1]
    pairwise_delta = target_quantiles.unsqueeze(-2) - current_quantiles.unsqueeze(-1)  # u, [B, C, N, M]
    abs_pairwise_delta = th.abs(pairwise_delta)
    huber_loss = th.where(abs_pairwise_delta > 1, abs_pairwise_delta - 0.5, pairwise_delta**2 * 0.5)  # [B, C, N, M]
    return th.abs(fractions - (pairwise_delta.detach() < 0).float()) * huber_loss  # [B, C, N, M]


def quantile_huber_per_sample(current_quantiles: th.Tensor, target_quantiles: th.Tensor) -> th.Tensor:
    """sb3-contrib TQC's critic loss per sample (mean over critics, quantiles and targets): the PER priority.

    Its mean over the batch is contrib's loss (up to the order of the float sums).

    :param current_quantiles: ``[B, C, N]``.
    :param target_quantiles: ``[B, 1, M]``.
    :return: ``[B]``.
    """
    return quantile_huber_elementwise(current_quantiles, target_quantiles).mean(dim=(1, 2, 3))


def sampled_quantile_fisher_loss(current_quantiles: th.Tensor) -> th.Tensor:
    """A loss whose per-sample output gradients ``g`` have ``E[g g^T]`` = the Fisher (= Gauss-Newton matrix) of the
    quantile regression, for K-FAC's statistics (:meth:`sb3_natgrad.optim.KFAC.fisher_backward`).

    **The model.** Quantile regression is maximum likelihood under the asymmetric Laplace distribution
    ``ALD(theta, tau, sigma)``, density ``tau (1 - tau) / sigma * exp(-rho_tau((y - theta) / sigma))`` with the pinball
    loss ``rho_tau(u) = u (tau - 1{u < 0})`` (Koenker & Machado, 1999; Yu & Moyeed, 2001): TQC's quantile Huber loss
    is its negative log-likelihood with the kink at ``u = 0`` smoothed over ``|u| <= kappa = 1``. Each output
    ``theta_{c,i}`` is treated as the location of ``ALD(theta_{c,i}, tau_i, 1)``, independently, as ACKTR's critic
    treats ``V`` as the mean of ``N(V, 1)`` (Wu et al., 2017); ``sigma = 1`` is the Huber threshold, the scale at
    which TQC's loss turns from quadratic to linear.

    **The sample.** For ``y ~ ALD(theta, tau, 1)`` the score is ``d/dtheta rho_tau(y - theta) = 1{y < theta} - tau``
    and ``P(y < theta) = tau``: the score depends on the sampled target only through ``b = 1{y < theta} ~
    Bernoulli(tau)``, so ``b`` is drawn directly. ``E[score] = 0`` and ``E[score^2] = tau (1 - tau)``, the location
    Fisher of the ALD. It is also the model-expected Hessian of the pinball loss in ``theta`` (that Hessian is a unit
    point mass at ``y = theta``, whose expectation is the ALD density at its mode, ``tau (1 - tau)``): the Fisher
    and the Gauss-Newton curvature of the quantile regression coincide, as K-FAC's sampled Fisher assumes (Martens &
    Grosse, 2015, Sec. 5). The Huber smoothing is ignored: its curvature, inside ``|u| <= 1`` only, would depend on
    the targets rather than on the model, and vanish where they are far from ``theta``.

    **The scale.** TQC's critic loss averages over the ``C N`` outputs, so its curvature per output is
    ``tau_i (1 - tau_i) / (C N)``: the scores are multiplied by ``1 / sqrt(C N)``, and the returned loss is a mean
    over the batch (as ``fisher_backward`` requires). The output Fisher of one sample is then
    ``diag(tau (1 - tau)) / (C N)``, diagonal since the ``b`` are independent; a K-FAC step of size 1 is a
    Gauss-Newton step on the critic loss.

    :param current_quantiles: ``theta``, ``[B, C, N]`` (with the graph to the critic's layers).
    :return: scalar, ``mean_b sum_{c,i} (b_{c,i} - tau_i) theta_{c,i} / sqrt(C N)`` with ``b`` sampled.
    """
    n_critics, n_quantiles = current_quantiles.shape[1:]
    fractions = quantile_fractions(n_quantiles, current_quantiles.device)  # tau, [N]
    below = th.rand_like(current_quantiles) < fractions  # b = 1{y < theta}, y ~ ALD(theta, tau, 1); [B, C, N]
    scores = (below.to(current_quantiles.dtype) - fractions) / math.sqrt(n_critics * n_quantiles)  # [B, C, N]
    return (scores * current_quantiles).sum(dim=(1, 2)).mean()
