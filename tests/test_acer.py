"""ACER (Wang et al. 2017): Retrace targets, truncated importance sampling with bias correction, the trust-region
projection, the segment replay, argument checks and the replay plumbing. The shared conformance tests
(test_run, test_save_load, test_deterministic, test_cli) cover ACER through tests/algorithms.py."""

from __future__ import annotations

import json
import math
import re
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete

from sb3_natgrad import ACER
from sb3_natgrad.acer import (
    ACERPolicy,
    ACERReplayBuffer,
    continuous_retrace_targets,
    continuous_truncated_is_gain,
    retrace_targets,
    trace_coefficients,
    truncated_is_gain,
    trust_region_projection,
)
from sb3_natgrad.acer.policies import kl_divergence, kl_gradient

# -- Retrace ---------------------------------------------------------------------------------------------------


def _retrace_by_sum(rewards, dones, q, values, c, gamma):
    """Q^ret_t = Q_t + Σ_k gamma^k (Π_{i=1..k} (1 - d_{t+i-1}) c_{t+i}) δ_{t+k}, δ_j = r_j + gamma (1 - d_j) V_{j+1} - Q_j,
    written with explicit loops (no recursion), in float64."""
    n_steps, n_envs = rewards.shape
    out = np.zeros((n_steps, n_envs))
    for b in range(n_envs):
        for t in range(n_steps):
            total = q[t, b]
            for k in range(n_steps - t):
                weight = gamma**k
                for i in range(1, k + 1):
                    weight *= (1.0 - dones[t + i - 1, b]) * c[t + i, b]
                j = t + k
                delta = rewards[j, b] + gamma * (1.0 - dones[j, b]) * values[j + 1, b] - q[j, b]
                total += weight * delta
            out[t, b] = total
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrace_equals_explicit_sum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_steps, n_envs, gamma = 9, 6, 0.9
    rewards = rng.normal(size=(n_steps, n_envs))
    # Episode ends: terminations, and truncations whose reward already holds gamma V(final obs), as SB3 stores them
    dones = (rng.random((n_steps, n_envs)) < 0.2).astype(float)
    truncated = dones * (rng.random((n_steps, n_envs)) < 0.5)
    rewards += truncated * gamma * rng.normal(size=(n_steps, n_envs))
    dones[-1, 0], dones[3, 1] = 1.0, 1.0  # an end on the last step and one mid-segment, whatever the seed
    q = rng.normal(size=(n_steps, n_envs))
    values = rng.normal(size=(n_steps + 1, n_envs))
    rho = rng.exponential(size=(n_steps, n_envs))
    c = 0.95 * np.minimum(1.0, rho)  # λ min(1, rho)
    expected = _retrace_by_sum(rewards, dones, q, values, c, gamma)
    got = retrace_targets(*(th.as_tensor(x) for x in (rewards, dones, q, values, c)), gamma=gamma)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_retrace_one_step_and_on_policy_limit() -> None:
    """c = 0 gives the one-step target r + gamma (1 - d) V(x_{t+1}); c = 1 with Q = V gives the discounted return."""
    rewards = th.tensor([[1.0], [2.0], [3.0]], dtype=th.float64)
    dones = th.tensor([[0.0], [1.0], [0.0]], dtype=th.float64)
    values = th.tensor([[0.5], [0.7], [0.9], [10.0]], dtype=th.float64)
    q = values[:-1].clone()
    one_step = retrace_targets(rewards, dones, q, values, th.zeros_like(q), gamma=0.5)
    np.testing.assert_allclose(one_step.squeeze(1).numpy(), [1 + 0.5 * 0.7, 2.0, 3 + 0.5 * 10.0])
    full = retrace_targets(rewards, dones, q, values, th.ones_like(q), gamma=0.5)
    np.testing.assert_allclose(full.squeeze(1).numpy(), [1 + 0.5 * 2.0, 2.0, 3 + 0.5 * 10.0])


def test_retrace_rejects_bad_shapes() -> None:
    x = th.zeros(4, 2)
    with pytest.raises(ValueError, match="T \\+ 1 = 5 rows, got 4"):
        retrace_targets(x, x, x, x, x, gamma=0.9)
    with pytest.raises(ValueError, match=re.escape("c (4, 3)")):
        retrace_targets(x, x, x, th.zeros(5, 2), th.zeros(4, 3), gamma=0.9)


@pytest.mark.parametrize("action_dim", [1, 3])
def test_continuous_retrace_and_opc_equal_explicit_sums(action_dim: int) -> None:
    """Box actions: Q^ret with c_i = λ min(1, rho_i^{1/d}) and Q^opc with c_i = 1 (Section 5.1), against the
    explicit sum with the coefficients computed here in NumPy."""
    rng = np.random.default_rng(action_dim)
    n_steps, n_envs, gamma, lam = 8, 5, 0.95, 0.9
    rewards = rng.normal(size=(n_steps, n_envs))
    dones = (rng.random((n_steps, n_envs)) < 0.2).astype(float)
    dones[2, 0] = 1.0
    q = rng.normal(size=(n_steps, n_envs))
    values = rng.normal(size=(n_steps + 1, n_envs))
    # products of d per-dimension ratios, spread around 1 so that the d-th root matters
    rho = np.exp(rng.normal(scale=1.5, size=(n_steps, n_envs, action_dim)).sum(-1))
    c = np.array([[lam * min(1.0, r ** (1.0 / action_dim)) for r in row] for row in rho])
    assert 0 < (c < lam).mean() < 1  # both sides of the truncation occur
    q_ret, q_opc = continuous_retrace_targets(
        *(th.as_tensor(x) for x in (rewards, dones, q, values, rho)), action_dim=action_dim, gamma=gamma, retrace_lambda=lam
    )
    np.testing.assert_allclose(q_ret.numpy(), _retrace_by_sum(rewards, dones, q, values, c, gamma), rtol=1e-12, atol=1e-12)
    ones = np.ones_like(c)
    np.testing.assert_allclose(q_opc.numpy(), _retrace_by_sum(rewards, dones, q, values, ones, gamma), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trace_coefficients(th.as_tensor(rho), lam, action_dim).numpy(), c, rtol=1e-12)
    with pytest.raises(ValueError, match="action_dim must be a positive int or None, got 0"):
        trace_coefficients(th.as_tensor(rho), lam, 0)


# -- stochastic dueling network ------------------------------------------------------------------------------------


def _box_policy(action_dim: int = 2, **kwargs) -> ACERPolicy:
    th.manual_seed(0)
    obs_space = spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
    action_space = spaces.Box(-1, 1, shape=(action_dim,), dtype=np.float32)
    return ACERPolicy(obs_space, action_space, lambda _: 1e-3, net_arch=[4], **kwargs).double()


def test_sdn_q_by_hand() -> None:
    """Q̃(x, a) = V(x) + A(x, a) - (1/n) Σ_i A(x, u_i) (Section 5.1) with given u_i, against the layers' weights
    applied by hand, one state and one sample at a time."""
    policy = _box_policy(action_dim=2)
    gen = th.Generator().manual_seed(1)
    n_states, n, n_actions = 3, 4, 2
    latent = th.randn(n_states, 4, generator=gen, dtype=th.float64)
    phi = th.randn(n_states, 4, generator=gen, dtype=th.float64)
    u = th.randn(n, n_states, 2, generator=gen, dtype=th.float64)
    actions = th.randn(n_actions, n_states, 2, generator=gen, dtype=th.float64)
    w_v, b_v = policy.value_net.weight[0], policy.value_net.bias[0]
    first, second = policy.advantage_net[0], policy.advantage_net[2]

    def advantage(x: th.Tensor, a: th.Tensor) -> float:
        hidden = [math.tanh(float(first.weight[j] @ th.cat([x, a]) + first.bias[j])) for j in range(first.out_features)]
        return float(sum(second.weight[0, j] * hidden[j] for j in range(len(hidden))) + second.bias[0])

    with th.no_grad():
        got = policy.sdn_q(latent, phi, actions, u=u)  # [J, M]
        got_single = policy.sdn_q(latent, phi, actions[0], u=u)  # [M]
    with th.no_grad():
        by_hand = _sdn_by_hand(latent, u, actions, w_v, b_v, advantage)
    th.testing.assert_close(got, by_hand, rtol=0, atol=1e-12)
    th.testing.assert_close(got_single, by_hand[0], rtol=0, atol=1e-12)


def _sdn_by_hand(latent, u, actions, w_v, b_v, advantage) -> th.Tensor:
    n, n_states, _ = u.shape
    out = th.zeros(actions.shape[0], n_states, dtype=th.float64)
    for m in range(n_states):
        v = float(w_v @ latent[m] + b_v)
        baseline = sum(advantage(latent[m], u[i, m]) for i in range(n)) / n
        for j in range(actions.shape[0]):
            out[j, m] = v + advantage(latent[m], actions[j, m]) - baseline
    return out


def test_sdn_q_draws_its_samples_from_the_policy() -> None:
    """Without u, the u_i come from π(·|x) = N(mean, exp(log std)²): with A(x, a) = a_0 (a stand-in network),
    Q̃(x, a) - V(x) - a_0 = -(1/n) Σ_i u_i0, whose mean is -mean_0 within 5 standard errors."""
    n = 20_000
    policy = _box_policy(action_dim=2, n_sdn_samples=n)

    class FirstActionComponent(th.nn.Module):
        def forward(self, latent_and_action: th.Tensor) -> th.Tensor:
            return latent_and_action[..., -2:-1]  # a_0: the action follows the 4 latent features

    policy.advantage_net = FirstActionComponent()
    latent = th.zeros(2, 4, dtype=th.float64)
    phi = th.tensor([[1.5, -3.0, np.log(0.5), 0.0], [-0.7, 2.0, np.log(2.0), 1.0]], dtype=th.float64)
    actions = th.tensor([[0.3, 0.0], [-1.0, 0.0]], dtype=th.float64)
    th.manual_seed(3)
    with th.no_grad():
        q = policy.sdn_q(latent, phi, actions)
        v = policy.value(latent, phi)
    mean_u0 = -(q - v - actions[:, 0])
    for m, (mean, std) in enumerate([(1.5, 0.5), (-0.7, 2.0)]):
        assert abs(float(mean_u0[m]) - mean) < 5 * std / math.sqrt(n)


# -- truncated importance sampling with bias correction -------------------------------------------------------


def _expected_gradients(c: float, with_correction: bool = True) -> tuple[th.Tensor, th.Tensor]:
    """E_{a_t~μ}[∇_logits gain] (exact sum over a_t) and the untruncated E_{a~μ}[rho(a) A(a) ∇log π(a)]."""
    gen = th.Generator().manual_seed(0)
    n_states, n_actions = 5, 4
    logits = th.randn(n_states, n_actions, generator=gen, dtype=th.float64, requires_grad=True)
    mu = th.softmax(3 * th.randn(n_states, n_actions, generator=gen, dtype=th.float64), dim=1)  # far from π
    advantage = th.randn(n_states, n_actions, generator=gen, dtype=th.float64)
    pi = th.softmax(logits, dim=1)
    log_pi = th.log_softmax(logits, dim=1)
    rho = pi.detach() / mu
    expected_gain = th.zeros((), dtype=th.float64)
    for action in range(n_actions):
        actions = th.full((n_states,), action)
        gain = truncated_is_gain(
            log_pi, pi, rho, actions, advantage[:, action], advantage if with_correction else 0 * advantage, c
        )
        expected_gain = expected_gain + (mu[:, action] * gain).sum()
    (grad,) = th.autograd.grad(expected_gain, logits, retain_graph=True)
    untruncated = (mu * rho * advantage * log_pi).sum()  # Σ_a μ(a) rho(a) A(a) log π(a), weights constant
    (reference,) = th.autograd.grad(untruncated, logits)
    return grad, reference


@pytest.mark.parametrize("c", [0.5, 1.0, 3.0, 1e6])
def test_bias_correction_is_unbiased(c: float) -> None:
    grad, reference = _expected_gradients(c)
    th.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-12)


def test_truncation_without_correction_is_biased() -> None:
    """The check above is not vacuous: dropping the correction term changes the expectation."""
    grad, reference = _expected_gradients(0.5, with_correction=False)
    assert (grad - reference).abs().max() > 1e-3


def _gaussian_log_density(a: th.Tensor, mean: th.Tensor, log_std: th.Tensor) -> th.Tensor:
    return -0.5 * ((a - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


def _continuous_expected_gradients(c: float, with_correction: bool = True) -> tuple[th.Tensor, th.Tensor]:
    """1-D quadrature of E_{a_t~μ, a'~π}[∇_φ gain] for the Box estimator, φ = (mean, log std) of π, on a grid of
    (a_t, a') pairs weighted μ(a_t) π(a') da², and the true gradient ∇_φ ∫ π_φ(a) (Q(a) - V) da by quadrature."""
    mean = th.tensor(0.2, dtype=th.float64, requires_grad=True)
    log_std = th.tensor(-0.1, dtype=th.float64, requires_grad=True)
    mu_mean, mu_log_std = th.tensor(0.6, dtype=th.float64), th.tensor(math.log(0.5), dtype=th.float64)  # narrower
    grid = th.linspace(-8.0, 8.0, 1601, dtype=th.float64)
    da = float(grid[1] - grid[0])
    q = th.sin(2 * grid) + 0.3 * grid**2  # Q(a), any smooth function
    baseline = 0.4  # V, any constant
    log_pi = _gaussian_log_density(grid, mean, log_std)  # [G] with gradient
    log_mu = _gaussian_log_density(grid, mu_mean, mu_log_std)  # [G]
    rho = (log_pi.detach() - log_mu).exp()  # [G]
    assert float(rho.max()) > 100 * c  # the truncation is active in the tails
    weight_mu, weight_pi = log_mu.exp() * da, log_pi.detach().exp() * da  # [G]
    n = len(grid)
    taken, sampled = th.arange(n).repeat_interleave(n), th.arange(n).repeat(n)  # all (a_t, a') pairs [G²]
    gain = continuous_truncated_is_gain(
        log_pi[taken],
        log_pi[sampled],
        rho[taken],
        rho[sampled],
        q[taken] - baseline,
        (q[sampled] - baseline) if with_correction else th.zeros(n * n, dtype=th.float64),
        c,
    )  # [G²]
    expected = (weight_mu[taken] * weight_pi[sampled] * gain).sum()
    grad = th.stack(th.autograd.grad(expected, (mean, log_std), retain_graph=True))
    true_objective = (log_pi.exp() * (q - baseline)).sum() * da  # ∫ π_φ(a) (Q(a) - V) da
    reference = th.stack(th.autograd.grad(true_objective, (mean, log_std)))
    return grad, reference


@pytest.mark.parametrize("c", [0.5, 2.0, 1e6])
def test_continuous_bias_correction_is_unbiased(c: float) -> None:
    """Section 5.1: min(c, rho(a_t)) with the sampled-action correction [1 - c / rho(a')]_+ has the expectation of
    the untruncated estimator, i.e. the policy gradient ∇_φ E_π[Q]; 1-D quadrature, no sampling."""
    grad, reference = _continuous_expected_gradients(c)
    assert float(reference.abs().min()) > 0.05  # both components non-trivial
    th.testing.assert_close(grad, reference, rtol=1e-6, atol=1e-8)


def test_continuous_truncation_without_correction_is_biased() -> None:
    grad, reference = _continuous_expected_gradients(0.5, with_correction=False)
    assert float((grad - reference).abs().max()) > 1e-2


# -- trust region ------------------------------------------------------------------------------------------------


def test_projection_closed_form_and_constraint() -> None:
    gen = th.Generator().manual_seed(0)
    g = th.randn(64, 6, generator=gen, dtype=th.float64)
    k = th.randn(64, 6, generator=gen, dtype=th.float64)
    delta = 0.5
    z, scale = trust_region_projection(g, k, delta)
    for i in range(64):
        kg, kk = float(k[i] @ g[i]), float(k[i] @ k[i])
        expected = g[i] - max(0.0, (kg - delta) / kk) * k[i]
        th.testing.assert_close(z[i], expected)
        assert float(k[i] @ z[i]) <= delta + 1e-9
        if kg <= delta:  # inactive constraint: z* = g exactly
            assert th.equal(z[i], g[i]) and scale[i] == 0
        else:  # active: on the boundary, and no feasible point is closer to g (KKT)
            assert abs(float(k[i] @ z[i]) - delta) < 1e-9
            for _ in range(20):
                other = z[i] + 0.1 * th.randn(6, generator=gen, dtype=th.float64)
                if float(k[i] @ other) <= delta:
                    assert float((other - g[i]).norm()) >= float((z[i] - g[i]).norm()) - 1e-12
    assert 0 < int((scale > 0).sum()) < 64  # both cases were exercised


def test_projection_zero_k_and_bad_shapes() -> None:
    g = th.ones(3, 2)
    z, scale = trust_region_projection(g, th.zeros(3, 2), delta=1.0)
    assert th.equal(z, g) and th.equal(scale, th.zeros(3))
    with pytest.raises(ValueError, match="must be \\[N, D\\]"):
        trust_region_projection(g, th.ones(3, 3), delta=1.0)


def _kl_by_quadrature(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """∫ p log(p / q) for two 1-D Gaussians, trapezoid on a fine grid."""
    a = np.linspace(min(mean_p, mean_q) - 12 * max(std_p, std_q), max(mean_p, mean_q) + 12 * max(std_p, std_q), 200_001)
    log_p = -0.5 * ((a - mean_p) / std_p) ** 2 - np.log(std_p) - 0.5 * np.log(2 * np.pi)
    log_q = -0.5 * ((a - mean_q) / std_q) ** 2 - np.log(std_q) - 0.5 * np.log(2 * np.pi)
    return float(np.trapezoid(np.exp(log_p) * (log_p - log_q), a))


def test_gaussian_trust_region_statistics() -> None:
    """Box trust region (Section 3.3) on φ = (mean, log std) per dimension: the KL(f(·|φ_avg) ‖ f(·|φ)) against
    quadrature, k = ∇_φ KL against central finite differences of that quadrature, and the projected z* keeps the
    linearised KL increase kᵀz* within δ."""
    # two states, d = 2: φ = (m_0, m_1, s_0, s_1)
    phi_average = th.tensor([[0.3, -1.0, math.log(0.8), math.log(1.5)], [0.0, 0.5, math.log(0.3), 0.0]], dtype=th.float64)
    phi = th.tensor([[0.1, -0.4, math.log(1.1), math.log(0.9)], [0.4, 0.5, math.log(0.5), math.log(2.0)]], dtype=th.float64)
    kl, k = kl_gradient(phi_average, phi, discrete=False)

    def kl_quad(p_avg: np.ndarray, p: np.ndarray) -> float:
        return sum(
            _kl_by_quadrature(p_avg[i], np.exp(p_avg[2 + i]), p[i], np.exp(p[2 + i])) for i in range(2)
        )  # diagonal Gaussian: a sum over dimensions

    eps = 1e-4
    for m in range(2):
        p_avg, p = phi_average[m].numpy(), phi[m].numpy()
        assert float(kl[m]) == pytest.approx(kl_quad(p_avg, p), abs=1e-8)
        assert float(kl_divergence(phi_average[m : m + 1], phi[m : m + 1], discrete=False)) == pytest.approx(float(kl[m]))
        for j in range(4):
            step = np.eye(4)[j] * eps
            finite_difference = (kl_quad(p_avg, p + step) - kl_quad(p_avg, p - step)) / (2 * eps)
            assert float(k[m, j]) == pytest.approx(finite_difference, abs=1e-6)
    g = th.tensor([[-1.0, 2.0, 1.0, -1.0], [-0.1, 0.0, 0.2, 0.1]], dtype=th.float64)
    delta = 0.1
    z, scale = trust_region_projection(g, k, delta)
    k_dot_g = (k * g).sum(1)
    assert float(k_dot_g[0]) > delta and float(scale[0]) > 0  # active: projected onto kᵀz = δ
    assert float((k[0] * z[0]).sum()) == pytest.approx(delta)
    assert float(k_dot_g[1]) <= delta and th.equal(z[1], g[1])  # inactive: unchanged


# -- segment replay ------------------------------------------------------------------------------------------------


def _filled_buffer(n_segments_written: int, n_steps: int = 4, n_envs: int = 3, capacity_segments: int = 5):
    obs_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
    buffer = ACERReplayBuffer(
        capacity_segments * n_steps * n_envs, n_steps, obs_space, spaces.Discrete(2), stats_dim=2, n_envs=n_envs
    )
    for seg in range(n_segments_written):
        buffer.reset()
        for t in range(n_steps):
            # observation encodes (segment, step, env); action/reward/stats encode the same
            obs = np.array([[seg, t, e] for e in range(n_envs)], dtype=np.float32)
            code = 100 * seg + 10 * t + np.arange(n_envs)
            buffer.add(
                obs,
                code % 2,
                code.astype(np.float32),
                np.zeros(n_envs),
                th.zeros(n_envs, 1),
                th.tensor(np.stack([code, -code], axis=1), dtype=th.float32),
            )
        final = np.array([[seg, n_steps, e] for e in range(n_envs)], dtype=np.float32)
        buffer.finish_segment(final, np.zeros(n_envs))
    return buffer


def _check_columns(batch, n_steps: int) -> set[int]:
    obs = batch.observations.numpy()  # [T + 1, B, 3]
    segments = set()
    for b in range(obs.shape[1]):
        seg, env = obs[0, b, 0], obs[0, b, 2]
        np.testing.assert_array_equal(obs[:, b, 0], seg)  # one segment per column, final observation included
        np.testing.assert_array_equal(obs[:, b, 2], env)  # one env per column
        np.testing.assert_array_equal(obs[:, b, 1], np.arange(n_steps + 1))  # in time order, x_T last
        code = 100 * seg + 10 * np.arange(n_steps) + env
        np.testing.assert_array_equal(batch.rewards[:, b].numpy(), code)
        np.testing.assert_array_equal(batch.actions[:, b].numpy(), code % 2)
        np.testing.assert_array_equal(batch.behaviour_stats[:, b, 0].numpy(), code)
        segments.add(int(seg))
    return segments


def test_buffer_segments_consistent_across_envs() -> None:
    np.random.seed(0)
    buffer = _filled_buffer(8)  # 8 segments into 5 slots: wrapped around
    seen = _check_columns(buffer.sample(400), n_steps=4)
    assert seen == {3, 4, 5, 6, 7}  # the five most recent segments, nothing overwritten
    latest = buffer.latest()
    _check_columns(latest, n_steps=4)
    np.testing.assert_array_equal(latest.observations[0, :, 2].numpy(), [0, 1, 2])  # all envs in order
    assert int(latest.observations[0, 0, 0]) == 7
    assert buffer.n_transitions() == 5 * 4 * 3


def test_buffer_never_samples_the_segment_being_written() -> None:
    np.random.seed(0)
    buffer = _filled_buffer(8)
    buffer.reset()  # slot of segment 3 is being overwritten by segment 8
    buffer.add(np.full((3, 3), 8.0, dtype=np.float32), np.zeros(3), np.zeros(3), np.zeros(3), th.zeros(3, 1),
               th.zeros(3, 2))  # fmt: skip
    assert _check_columns(buffer.sample(400), n_steps=4) == {4, 5, 6, 7}
    assert buffer.n_transitions() == 4 * 4 * 3
    with pytest.raises(RuntimeError, match="1 of n_steps=4"):
        buffer.finish_segment(np.zeros((3, 3), dtype=np.float32), np.zeros(3))


def test_buffer_dones_from_episode_starts() -> None:
    obs_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)
    buffer = ACERReplayBuffer(6, 3, obs_space, spaces.Discrete(2), stats_dim=2, n_envs=2)
    buffer.reset()
    starts = [[1, 1], [0, 1], [1, 0]]  # x_t starts an episode
    for t in range(3):
        buffer.add(np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.array(starts[t]), th.zeros(2, 1), th.zeros(2, 2))
    buffer.finish_segment(np.zeros((2, 1)), np.array([0, 1]))
    # step t ended an episode iff x_{t+1} starts one
    np.testing.assert_array_equal(buffer.latest().dones.numpy(), [[0, 1], [1, 0], [0, 1]])


def test_buffer_keeps_uint8_frames_without_next_observations() -> None:
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    model = ACER("CnnPolicy", env, n_steps=4, buffer_size=40, seed=0,
                 policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=8)))  # fmt: skip
    obs = model.replay_buffer.observations
    assert isinstance(obs, np.ndarray) and obs.dtype == np.uint8
    # [S, T + 1, N, C, H, W] (SB3 transposes images): one final observation per segment, no next observations
    assert obs.shape == (10, 5, 1, 1, 36, 36)


def test_truncation_bootstraps_with_value_of_final_observation() -> None:
    """A time-limit end is stored as an episode end whose reward holds gamma V(final observation) (SB3's rule)."""
    env = make_vec_env(lambda: gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, max_episode_steps=3),
                       n_envs=2, seed=0)  # fmt: skip
    model = ACER("MlpPolicy", env, n_steps=7, gamma=0.9, seed=0)
    model._setup_learn(7 * 2)
    finals = []

    class Record:
        def __init__(self):
            self.original = env.step_wait

        def __call__(self):
            out = self.original()
            finals.append([info.get("terminal_observation") for info in out[3]])
            return out

    env.step_wait = Record()
    from stable_baselines3.common.callbacks import CallbackList

    callback = CallbackList([])
    callback.init_callback(model)
    assert model.collect_rollouts(env, callback, model.rollout_buffer, 7)
    batch = model.replay_buffer.latest()
    n_truncations = 0
    for t in range(7):
        for e in range(2):
            final = finals[t][e]
            if final is not None and batch.dones[t, e] == 1 and batch.rewards[t, e] != 1.0:
                with th.no_grad():
                    v = model.policy.predict_values(th.as_tensor(final[None]))[0, 0]
                assert float(batch.rewards[t, e]) == pytest.approx(1.0 + 0.9 * float(v), rel=1e-5)
                n_truncations += 1
    assert n_truncations >= 2


# -- the algorithm ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_steps", 0),
        ("gamma", 1.5),
        ("ent_coef", -0.1),
        ("q_coef", -1.0),
        ("max_grad_norm", 0.0),
        ("buffer_size", 0),
        ("replay_ratio", -1.0),
        ("replay_start", -1),
        ("correction_term", 0.0),
        ("retrace_lambda", 1.1),
        ("trust_region", 1),
        ("alpha", 1.0),
        ("delta", 0.0),
        ("learning_rate", -1e-3),
    ],
)
def test_bad_arguments_are_named(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^ACER: {name} must be .*, got {re.escape(repr(value))}$"):
        ACER("MlpPolicy", IdentityEnv(2), **{name: value})


def test_buffer_smaller_than_a_segment() -> None:
    env = make_vec_env("CartPole-v1", n_envs=4)
    with pytest.raises(ValueError, match=r"^ACER: buffer_size must be >= n_steps \* n_envs = 80 .*got 79$"):
        ACER("MlpPolicy", env, n_steps=20, buffer_size=79)


@pytest.mark.parametrize("env", [IdentityEnvMultiDiscrete(3), IdentityEnvMultiBinary(3)])
def test_unsupported_action_spaces_named(env: gym.Env) -> None:
    space = type(env.action_space).__name__
    with pytest.raises(ValueError, match=f"ACER supports only Discrete and Box action spaces, got {space}"):
        ACER("MlpPolicy", env)


def test_gsde_refused() -> None:
    with pytest.raises(ValueError, match="use_sde must be False"):
        ACER("MlpPolicy", IdentityEnv(2), policy_kwargs=dict(use_sde=True))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("trust_region", [True, False])
def test_replay_updates_happen(env_id: str, trust_region: bool) -> None:
    env = make_vec_env(env_id, n_envs=2, seed=0)
    model = ACER("MlpPolicy", env, n_steps=4, replay_start=40, buffer_size=200, trust_region=trust_region, seed=0)
    model.learn(400)
    iterations = 400 // 8
    # one on-policy update per iteration plus Poisson(4) replays once 40 transitions (5 segments) are stored
    assert model._n_updates > iterations + 2 * (iterations - 5)
    values = model.logger.name_to_value
    assert ("train/trust_region_active" in values) == trust_region
    assert np.isfinite(values["train/loss"])


def test_replay_count_is_poisson() -> None:
    """Algorithm 1: n ~ Poisson(r) off-policy updates per iteration (mean and variance r, P(n = 0) = e^-r), none
    before ``replay_start`` transitions are stored; the update itself is stubbed out to count cheaply."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = ACER("MlpPolicy", env, n_steps=4, buffer_size=80, replay_ratio=2.5, replay_start=16, seed=0)
    model.learn(8)  # one segment of 8 transitions: below replay_start
    model._update = lambda batch: {"loss": 0.0}  # type: ignore[method-assign]
    model.train()
    assert model.logger.name_to_value["train/n_replay_updates"] == 0
    model.learn(8, reset_num_timesteps=False)  # 16 transitions stored
    np.random.seed(0)
    counts = []
    for _ in range(1500):
        model.train()
        counts.append(model.logger.name_to_value["train/n_replay_updates"])
    counts_array = np.array(counts)
    assert abs(counts_array.mean() - 2.5) < 0.2  # 5 standard errors
    assert abs(counts_array.var() - 2.5) < 0.5
    assert abs((counts_array == 0).mean() - math.exp(-2.5)) < 0.035


def test_average_network_follows_polyak() -> None:
    model = ACER("MlpPolicy", IdentityEnv(3), n_steps=4, alpha=0.9, seed=0)
    average_before = [p.clone() for p in model.policy.average_actor.parameters()]
    model.learn(4)  # one iteration: one on-policy update (no replay yet)
    assert model._n_updates == 1
    for avg_old, avg, new in zip(average_before, model.policy.average_actor.parameters(), model.policy.actor.parameters(),
                                 strict=True):  # fmt: skip
        th.testing.assert_close(avg, 0.9 * avg_old + 0.1 * new)
    assert any(not th.equal(a, b) for a, b in zip(average_before, model.policy.average_actor.parameters(), strict=True))


def test_replay_buffer_save_load(tmp_path) -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = ACER("MlpPolicy", env, n_steps=4, buffer_size=80, seed=0)
    model.learn(80)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "replay.pkl")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        saved = json.loads(archive.read("data"))
    assert "rollout_buffer" not in saved and "replay_buffer" not in saved
    loaded = ACER.load(tmp_path / "model.zip", env=env)
    assert loaded.replay_buffer.n_transitions() == 0
    loaded.load_replay_buffer(tmp_path / "replay.pkl")
    assert loaded.replay_buffer.n_transitions() == 80
    np.testing.assert_array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)
    loaded.learn(16, reset_num_timesteps=False)
    other = ACER("MlpPolicy", env, n_steps=5, buffer_size=80)
    with pytest.raises(ValueError, match="n_steps=4"):
        other.load_replay_buffer(tmp_path / "replay.pkl")
