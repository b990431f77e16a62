"""The three pieces of ACER's update as small pure functions (Wang et al. 2017, arXiv:1611.01224).

- :func:`retrace_targets`: the backward recursion of Q^ret (Section 3.1, Eq. 5; Retrace of Munos et al. 2016
  with c_i = λ min(1, rho_i)), also used for the continuous variants (c_i = λ min(1, rho_i^{1/d}) for Q^ret and
  c_i = 1 for Q^opc, Section 5.1).
- :func:`trace_coefficients`: the Retrace coefficients c_i = λ min(1, rho_i), or λ min(1, rho_i^{1/d}) for
  d-dimensional Box actions (Section 5.1).
- :func:`continuous_retrace_targets`: Q^ret with those d-th-root coefficients and Q^opc (c_i = 1) for the
  policy gradient of Box actions (Section 5.1).
- :func:`truncated_is_gain`: importance-weight truncation with bias correction, discrete case (Section 3.2):
  min(c, rho_t) (Q^ret - V) log π(a_t) + Σ_a π(a) [1 - c / rho_t(a)]_+ (Q(x_t, a) - V) log π(a).
- :func:`continuous_truncated_is_gain`: the same for Box actions (Section 5.1), the expectation over actions
  replaced by one sample a'_t ~ π and Q^ret by Q^opc:
  min(c, rho_t) (Q^opc - V) log f(a_t) + [1 - c / rho_t(a'_t)]_+ (Q̃(x_t, a'_t) - V) log f(a'_t).
- :func:`trust_region_projection`: the closed-form solution of the linearised KL trust region (Section 3.3),
  z* = g - max(0, (kᵀg - δ) / ‖k‖²) k, per sample in the space of the distribution statistics φ.

Shapes: ``T`` time steps of a segment, ``B`` segments (environments) in the batch, ``A`` actions, ``D``
dimension of the statistics φ.
"""

from __future__ import annotations

import torch as th


def retrace_targets(
    rewards: th.Tensor, dones: th.Tensor, q_taken: th.Tensor, values: th.Tensor, c: th.Tensor, gamma: float
) -> th.Tensor:
    """Q^ret for every step of a batch of segments, computed backwards (Wang et al. 2017, Section 3.1, Eq. 5).

    Q^ret(x_t, a_t) = r_t + gamma (1 - d_t) [c_{t+1} (Q^ret(x_{t+1}, a_{t+1}) - Q(x_{t+1}, a_{t+1})) + V(x_{t+1})],
    started from V(x_T) of the segment's final observation, so the last step's target is r + gamma (1 - d) V(x_T).
    ``d_t`` ends the trace at episode boundaries: after a termination nothing is bootstrapped; after a
    time-limit truncation the reward already holds gamma V(final observation) (as SB3's ``collect_rollouts``
    stores it), so treating it as a termination bootstraps correctly.

    Equivalently (what tests/test_acer.py checks), with δ_j = r_j + gamma (1 - d_j) V_{j+1} - Q_j:
    Q^ret_t = Q_t + Σ_{k≥0} gamma^k (Π_{i=1..k} (1 - d_{t+i-1}) c_{t+i}) δ_{t+k}, over k < T - t.

    :param rewards: r_t ``[T, B]``.
    :param dones: d_t ``[T, B]``: 1.0 where the episode ended after step t (terminated or truncated).
    :param q_taken: Q(x_t, a_t) ``[T, B]`` (no gradient needed: targets are constants).
    :param values: V(x_t) ``[T + 1, B]``, the last row for the segment's final observation x_T.
    :param c: trace coefficients c_t ``[T, B]`` (only rows 1..T-1 are used: c_0 never multiplies anything).
    :param gamma: discount gamma.
    :return: Q^ret ``[T, B]``.
    """
    n_steps = rewards.shape[0]
    if not (dones.shape == q_taken.shape == c.shape == rewards.shape and values.shape[1:] == rewards.shape[1:]):
        raise ValueError(
            f"retrace_targets: shapes must be [T, B] and values [T + 1, B], got rewards {tuple(rewards.shape)}, "
            f"dones {tuple(dones.shape)}, q_taken {tuple(q_taken.shape)}, c {tuple(c.shape)}, values {tuple(values.shape)}"
        )
    if values.shape[0] != n_steps + 1:
        raise ValueError(f"retrace_targets: values must have T + 1 = {n_steps + 1} rows, got {values.shape[0]}")
    q_ret = th.empty_like(rewards)  # [T, B]
    carry = values[n_steps]  # [B]: what step T-1 bootstraps from, V(x_T)
    for t in reversed(range(n_steps)):
        carry = rewards[t] + gamma * (1.0 - dones[t]) * carry  # [B]: Q^ret(x_t, a_t)
        q_ret[t] = carry
        # What step t-1 bootstraps from: c_t (Q^ret_t - Q_t) + V_t
        carry = c[t] * (carry - q_taken[t]) + values[t]  # [B]
    return q_ret


def trace_coefficients(rho: th.Tensor, retrace_lambda: float = 1.0, action_dim: int | None = None) -> th.Tensor:
    """Retrace's trace coefficients (Wang et al. 2017, Section 3.1 and Section 5.1).

    c_i = λ min(1, rho_i) for discrete actions (``action_dim=None``); c_i = λ min(1, rho_i^{1/d}) for
    d-dimensional Box actions, where rho_i is a product of d per-dimension ratios and its d-th root keeps the
    traces from being cut almost everywhere as d grows (Section 5.1).

    :param rho: importance weights rho_i = π(a_i | x_i) / μ(a_i | x_i), any shape (no gradient needed).
    :param retrace_lambda: λ in [0, 1] (1 in the paper).
    :param action_dim: d for Box actions, None for discrete ones.
    :return: c, the shape of ``rho``.
    """
    if action_dim is not None and action_dim < 1:
        raise ValueError(f"trace_coefficients: action_dim must be a positive int or None, got {action_dim}")
    rho = rho.detach()
    ratio = rho if action_dim is None else rho.pow(1.0 / action_dim)
    return retrace_lambda * th.clamp(ratio, max=1.0)


def continuous_retrace_targets(
    rewards: th.Tensor,
    dones: th.Tensor,
    q_tilde: th.Tensor,
    values: th.Tensor,
    rho: th.Tensor,
    action_dim: int,
    gamma: float,
    retrace_lambda: float = 1.0,
) -> tuple[th.Tensor, th.Tensor]:
    """Q^ret and Q^opc for Box actions (Wang et al. 2017, Section 5.1 and Algorithm 3 of the appendix).

    Q^ret is :func:`retrace_targets` with c_i = λ min(1, rho_i^{1/d}); Q^opc is the same recursion with c_i = 1
    (no importance weights): the policy gradient uses Q^opc - V, the critic Q^ret.

    :param rewards: r_t ``[T, B]``.
    :param dones: d_t ``[T, B]`` (see :func:`retrace_targets`).
    :param q_tilde: Q̃(x_t, a_t) of the stochastic dueling network ``[T, B]``.
    :param values: V(x_t) ``[T + 1, B]``.
    :param rho: rho_t = f(a_t | φ_θ(x_t)) / μ(a_t | x_t) ``[T, B]``.
    :param action_dim: d.
    :param gamma: discount gamma.
    :param retrace_lambda: λ.
    :return: Q^ret and Q^opc, each ``[T, B]``.
    """
    c = trace_coefficients(rho, retrace_lambda, action_dim)  # [T, B]
    q_ret = retrace_targets(rewards, dones, q_tilde, values, c, gamma)  # [T, B]
    q_opc = retrace_targets(rewards, dones, q_tilde, values, th.ones_like(c), gamma)  # [T, B]
    return q_ret, q_opc


def truncated_is_gain(
    log_pi: th.Tensor,
    pi: th.Tensor,
    rho: th.Tensor,
    actions: th.Tensor,
    advantage_taken: th.Tensor,
    advantage_all: th.Tensor,
    correction_term: float,
) -> th.Tensor:
    """Per-sample surrogate whose gradient is ACER's truncated-IS policy gradient with bias correction (discrete).

    Wang et al. 2017, Section 3.2 (and its use with Q^ret in Section 3.3)::

        ĝ = min(c, rho_t) ∇log π(a_t) (Q^ret(x_t, a_t) - V(x_t))
            + E_{a~π} [ [(rho_t(a) - c) / rho_t(a)]_+ ∇log π(a) (Q(x_t, a) - V(x_t)) ],

    with the expectation over actions computed exactly. The weights and advantages are constants; only
    ``log_pi`` carries the gradient, so E_{a_t~μ}[∇ gain] = E_{a_t~μ}[rho_t ∇log π(a_t) A(a_t)] when
    ``advantage_taken`` is ``advantage_all`` at a_t (the unbiasedness that tests/test_acer.py checks).

    :param log_pi: log π(a | x_t) ``[N, A]`` (with gradient).
    :param pi: π(a | x_t) ``[N, A]`` (its gradient is ignored).
    :param rho: rho_t(a) = π(a | x_t) / μ(a | x_t) ``[N, A]`` (its gradient is ignored).
    :param actions: a_t ``[N]`` (int64).
    :param advantage_taken: Q^ret(x_t, a_t) - V(x_t) ``[N]`` (its gradient is ignored).
    :param advantage_all: Q(x_t, a) - V(x_t) ``[N, A]`` (its gradient is ignored).
    :param correction_term: truncation constant c.
    :return: gain ``[N]`` (to be maximised).
    """
    pi, rho = pi.detach(), rho.detach()
    log_pi_taken = log_pi.gather(1, actions.long().unsqueeze(1)).squeeze(1)  # [N]
    rho_taken = rho.gather(1, actions.long().unsqueeze(1)).squeeze(1)  # [N]
    truncated = th.clamp(rho_taken, max=correction_term) * advantage_taken.detach() * log_pi_taken  # [N]
    # [1 - c / rho(a)]_+ = [(rho(a) - c) / rho(a)]_+; rho(a) = 0 only where π(a) = 0, which the π(a) factor zeroes
    correction_weight = th.relu(1.0 - correction_term / rho.clamp_min(1e-12))  # [N, A]
    correction = (pi * correction_weight * advantage_all.detach() * log_pi).sum(dim=1)  # [N]
    return truncated + correction


def trust_region_projection(g: th.Tensor, k: th.Tensor, delta: float) -> tuple[th.Tensor, th.Tensor]:
    """z* = g - max(0, (kᵀg - δ) / ‖k‖²) k, per row (Wang et al. 2017, Section 3.3).

    The solution of min_z ½ ‖g - z‖² s.t. kᵀz ≤ δ, where g is the ACER gradient and
    ``k = ∇_φ D_KL[f(·|φ_{θ_a}(x)) ‖ f(·|φ_θ(x))]`` the KL gradient, both w.r.t. the statistics φ of one state.

    :param g: ĝ^acer ``[N, D]`` (ascent direction).
    :param k: KL gradient ``[N, D]``.
    :param delta: trust-region radius δ > 0.
    :return: z* ``[N, D]`` and the scale max(0, (kᵀg - δ) / ‖k‖²) ``[N]`` (0 where the constraint is inactive).
    """
    if g.shape != k.shape or g.dim() != 2:
        raise ValueError(f"trust_region_projection: g and k must be [N, D], got {tuple(g.shape)} and {tuple(k.shape)}")
    k_dot_g = (k * g).sum(dim=1)  # [N]
    k_norm_sq = (k * k).sum(dim=1)  # [N]
    # ‖k‖ = 0 gives kᵀg = 0 ≤ δ: inactive; the clamp only avoids 0 / 0
    scale = th.relu(k_dot_g - delta) / k_norm_sq.clamp_min(1e-12)  # [N]
    return g - scale.unsqueeze(1) * k, scale


def continuous_truncated_is_gain(
    log_pi_taken: th.Tensor,
    log_pi_sampled: th.Tensor,
    rho_taken: th.Tensor,
    rho_sampled: th.Tensor,
    advantage_taken: th.Tensor,
    advantage_sampled: th.Tensor,
    correction_term: float,
) -> th.Tensor:
    """Per-sample surrogate whose gradient is ACER's policy gradient for Box actions (Wang et al. 2017, Section 5.1)::

        ĝ = min(c, rho_t) ∇log f(a_t|φ) (Q^opc(x_t, a_t) - V(x_t))
            + [1 - c / rho_t(a'_t)]_+ ∇log f(a'_t|φ) (Q̃(x_t, a'_t) - V(x_t)),   a'_t ~ f(·|φ_θ(x_t)),

    the discrete estimator (:func:`truncated_is_gain`) with the expectation over actions replaced by the one
    sample a'_t. Weights and advantages are constants; only the log-densities carry the gradient. For
    a_t ~ μ and a'_t ~ π drawn independently, ``E[∇ gain] = E_{a~μ}[rho(a) ∇log f(a|φ) A(a)]`` when both
    advantages are the same function A of the action (tests/test_acer.py checks it by quadrature).

    :param log_pi_taken: log f(a_t | φ_θ(x_t)) ``[N]`` (with gradient).
    :param log_pi_sampled: log f(a'_t | φ_θ(x_t)) ``[N]`` (with gradient; a'_t itself is a constant).
    :param rho_taken: rho_t(a_t) = f(a_t | φ_θ) / μ(a_t) ``[N]``.
    :param rho_sampled: rho_t(a'_t) = f(a'_t | φ_θ) / μ(a'_t) ``[N]``.
    :param advantage_taken: Q^opc(x_t, a_t) - V(x_t) ``[N]``.
    :param advantage_sampled: Q̃(x_t, a'_t) - V(x_t) ``[N]``.
    :param correction_term: truncation constant c.
    :return: gain ``[N]`` (to be maximised).
    """
    truncated = th.clamp(rho_taken.detach(), max=correction_term) * advantage_taken.detach() * log_pi_taken  # [N]
    # [1 - c / rho]_+; rho(a') > 0 always for a Gaussian, the clamp only guards an underflowed density
    correction_weight = th.relu(1.0 - correction_term / rho_sampled.detach().clamp_min(1e-12))  # [N]
    correction = correction_weight * advantage_sampled.detach() * log_pi_sampled  # [N]
    return truncated + correction
