"""Fisher-vector products against brute force.

The reference Fisher is built independently of ``sb3_natgrad.common.fisher``: per-sample Jacobians of
the distribution parameters (``torch.autograd.functional.jacobian``), per-sample Hessians of the KL
divergence wrt those parameters (``torch.autograd.functional.hessian`` of ``torch.distributions``' KL,
with a different parametrization: log-std instead of std), assembled densely in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.distributions import Distribution, SquashedDiagGaussianDistribution, kl_divergence
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn
from torch.distributions import Bernoulli, Categorical, Normal
from torch.func import functional_call

from sb3_natgrad.common.fisher import (
    FisherVectorProduct,
    KLHessianVectorProduct,
    analytic_fisher_supported,
    detach_distribution,
    distribution_outputs,
    mean_kl,
)
from sb3_natgrad.common.policies import actor_parameters

N_STATES = 6
OBS_DIM = 3


class SquashedGaussianActor(nn.Module):
    """Tiny SAC-style actor: state-dependent mean and log-std, tanh-squashed Gaussian."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(OBS_DIM, 5), nn.Tanh())
        self.mu = nn.Linear(5, 2)
        self.log_std = nn.Linear(5, 2)
        self.action_dist = SquashedDiagGaussianDistribution(2)

    def get_distribution(self, obs: th.Tensor) -> Distribution:
        latent = self.net(obs)
        return self.action_dist.proba_distribution(self.mu(latent), self.log_std(latent))


class Float64Policy(ActorCriticPolicy):
    """SB3's policy without the float32 cast of Box observations, to compare in float64."""

    def get_distribution(self, obs: th.Tensor) -> Distribution:  # type: ignore[override]
        latent_pi = self.mlp_extractor.forward_actor(self.pi_features_extractor(obs))
        return self._get_action_dist_from_latent(latent_pi)


def _make_policy(kind: str) -> nn.Module:
    th.manual_seed(0)
    if kind == "squashed":
        return SquashedGaussianActor().double()
    obs_space = gym.spaces.Box(-1, 1, (OBS_DIM,), np.float32)
    spaces = {
        "categorical": gym.spaces.Discrete(4),
        "gaussian": gym.spaces.Box(-1, 1, (2,), np.float32),
        "multicategorical": gym.spaces.MultiDiscrete([2, 3]),
        "bernoulli": gym.spaces.MultiBinary(3),
        "gsde": gym.spaces.Box(-1, 1, (2,), np.float32),
    }
    policy = Float64Policy(obs_space, spaces[kind], lambda _: 1e-3, net_arch=[7, 5], use_sde=kind == "gsde", log_std_init=-0.3)
    if hasattr(policy, "log_std"):
        with th.no_grad():  # make the std differ between dimensions
            policy.log_std.add_(0.2 * th.randn_like(policy.log_std))
    return policy.double()


def _params_of(policy: nn.Module) -> list[nn.Parameter]:
    return list(policy.parameters()) if isinstance(policy, SquashedGaussianActor) else actor_parameters(policy)


def _phi(dist: Distribution) -> th.Tensor:
    """Distribution parameters, [N, k]: (mean, log std) for Gaussians, logits otherwise."""
    inner = dist.distribution
    if isinstance(inner, Normal):
        return th.cat([inner.loc, inner.scale.log()], dim=-1)
    if isinstance(inner, list):
        return th.cat([c.logits for c in inner], dim=-1)
    return inner.logits


def _kl_from_phi(kind: str, dist: Distribution) -> Callable[[th.Tensor, th.Tensor], th.Tensor]:
    """KL(p(phi_old) || p(phi)) for one state, with torch.distributions."""

    def build(phi: th.Tensor) -> list[th.distributions.Distribution]:
        if kind in ("gaussian", "gsde", "squashed"):
            d = phi.shape[-1] // 2
            return [Normal(phi[:d], phi[d:].exp())]
        if kind == "categorical":
            return [Categorical(logits=phi)]
        if kind == "bernoulli":
            return [Bernoulli(logits=phi)]
        return [Categorical(logits=part) for part in th.split(phi, list(dist.action_dims))]

    def kl(phi_old: th.Tensor, phi: th.Tensor) -> th.Tensor:
        return sum(th.distributions.kl_divergence(p, q).sum() for p, q in zip(build(phi_old), build(phi), strict=True))

    return kl


def _functional(policy: nn.Module, params: list[nn.Parameter], obs: th.Tensor) -> Callable[[th.Tensor], Distribution]:
    """theta (flat) -> distribution, by swapping the given parameters."""
    names = {id(p): n for n, p in policy.named_parameters()}
    shapes = [p.shape for p in params]

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, o: th.Tensor) -> Distribution:
            return self.policy.get_distribution(o)

    wrapper = Wrapper()

    def dist_of(theta: th.Tensor) -> Distribution:
        chunks = th.split(theta, [int(np.prod(s)) for s in shapes])
        values = {f"policy.{names[id(p)]}": c.view(s) for p, c, s in zip(params, chunks, shapes, strict=True)}
        return functional_call(wrapper, values, (obs,), strict=False)

    return dist_of


def _brute_force(kind: str, policy: nn.Module, params: list[nn.Parameter], obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Exact Fisher (1/N) sum_n J_n^T M_n J_n and double-backprop Hessian of the mean KL, dense [P, P]."""
    theta0 = th.cat([p.detach().reshape(-1) for p in params])
    dist_of = _functional(policy, params, obs)
    phi0 = _phi(dist_of(theta0)).detach()  # [N, k]
    jac = th.autograd.functional.jacobian(lambda t: _phi(dist_of(t)), theta0)  # [N, k, P]
    kl = _kl_from_phi(kind, dist_of(theta0))
    fisher = th.zeros(theta0.numel(), theta0.numel(), dtype=th.float64)
    for n in range(obs.shape[0]):  # brute force: one state at a time
        metric = th.autograd.functional.hessian(lambda phi, n=n: kl(phi0[n], phi), phi0[n])  # [k, k]
        fisher += jac[n].T @ metric @ jac[n]
    fisher /= obs.shape[0]

    def mean_kl(theta: th.Tensor) -> th.Tensor:
        new = dist_of(theta)
        phi_new = _phi(new)
        return th.stack([kl(phi0[n], phi_new[n]) for n in range(obs.shape[0])]).mean()

    hessian = th.autograd.functional.hessian(mean_kl, theta0)
    return fisher, hessian


def _joint(kl: th.Tensor) -> th.Tensor:
    """KL of the joint action distribution from SB3's per-dimension KL."""
    return kl.sum(dim=-1) if kl.dim() > 1 else kl


KINDS = ["categorical", "gaussian", "multicategorical", "bernoulli", "gsde", "squashed"]


@pytest.mark.parametrize("kind", KINDS)
def test_fvp_matches_exact_fisher(kind: str) -> None:
    policy = _make_policy(kind)
    params = _params_of(policy)
    obs = th.randn(N_STATES, OBS_DIM, dtype=th.float64, generator=th.Generator().manual_seed(1))
    fisher, hessian = _brute_force(kind, policy, params, obs)
    # The KL Hessian at theta_old is the Fisher (sanity of the reference itself).
    th.testing.assert_close(hessian, fisher, rtol=1e-6, atol=1e-9)

    dist = policy.get_distribution(obs)
    assert analytic_fisher_supported(dist)
    fvp = FisherVectorProduct.from_distribution(dist, params)
    vectors = th.randn(3, fvp.n_params, dtype=th.float64, generator=th.Generator().manual_seed(2))
    for v in vectors:
        th.testing.assert_close(fvp(v), fisher @ v, rtol=1e-5, atol=1e-10)
    assert fvp.n_products == 3

    # Generic fallback: double backprop of the mean KL at theta_old.
    dist = policy.get_distribution(obs)
    old = detach_distribution(dist)
    kl = kl_divergence(old, dist)  # SB3: [N] or, for factorized distributions, [N, d]
    hvp = KLHessianVectorProduct(_joint(kl).mean(), params)
    for v in vectors:
        th.testing.assert_close(hvp(v), hessian @ v, rtol=1e-5, atol=1e-10)

    # sb3-contrib's convention: SB3's per-dimension KL averaged over the action dimensions too.
    dist = policy.get_distribution(obs)
    n_dims = kl.shape[-1] if kl.dim() > 1 else 1
    fvp_mean = FisherVectorProduct.from_distribution(dist, params, kl_reduction="mean")
    hvp_mean = KLHessianVectorProduct(kl_divergence(old, dist).mean(), params)
    for v in vectors:
        th.testing.assert_close(fvp_mean(v), fisher @ v / n_dims, rtol=1e-5, atol=1e-10)
        th.testing.assert_close(hvp_mean(v), fisher @ v / n_dims, rtol=1e-5, atol=1e-10)
    th.testing.assert_close(mean_kl(old, dist, "mean"), kl.mean())
    th.testing.assert_close(mean_kl(old, dist, "sum"), _joint(kl).mean())


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_damping_and_sub_sampling(kind: str) -> None:
    policy = _make_policy(kind)
    params = _params_of(policy)
    obs = th.randn(2 * N_STATES, OBS_DIM, dtype=th.float64, generator=th.Generator().manual_seed(3))
    v = th.randn(sum(p.numel() for p in params), dtype=th.float64, generator=th.Generator().manual_seed(4))
    fisher_sub, _ = _brute_force(kind, policy, params, obs[::3])

    fvp = FisherVectorProduct.from_policy(policy, obs, params, damping=0.25, sub_sampling_factor=3)
    assert fvp.n_samples == len(obs[::3])
    th.testing.assert_close(fvp(v), fisher_sub @ v + 0.25 * v, rtol=1e-5, atol=1e-10)

    dist = policy.get_distribution(obs[::3])
    hvp = KLHessianVectorProduct(_joint(kl_divergence(dist, detach_distribution(dist))).mean(), params, damping=0.25)
    th.testing.assert_close(hvp(v), fisher_sub @ v + 0.25 * v, rtol=1e-5, atol=1e-10)


def test_parameters_outside_the_policy_get_zeros() -> None:
    policy = _make_policy("categorical")
    assert isinstance(policy, ActorCriticPolicy)
    value_params = list(policy.value_net.parameters())
    params = actor_parameters(policy) + value_params
    obs = th.randn(N_STATES, OBS_DIM, dtype=th.float64)
    fvp = FisherVectorProduct.from_distribution(policy.get_distribution(obs), params, damping=0.5)
    v = th.randn(fvp.n_params, dtype=th.float64)
    out = fvp(v)
    n_value = sum(p.numel() for p in value_params)
    # Value parameters do not change the policy: only the damping acts on them.
    th.testing.assert_close(out[-n_value:], 0.5 * v[-n_value:])


def test_detach_distribution_keeps_values() -> None:
    for kind in ["categorical", "gaussian", "multicategorical", "bernoulli", "gsde"]:
        policy = _make_policy(kind)
        obs = th.randn(N_STATES, OBS_DIM, dtype=th.float64)
        dist = policy.get_distribution(obs)
        old = detach_distribution(dist)
        phi = _phi(dist)
        assert not _phi(old).requires_grad and phi.requires_grad
        th.testing.assert_close(_phi(old), phi.detach())
        # The copy survives the policy overwriting its distribution object.
        policy.get_distribution(obs + 1.0)
        th.testing.assert_close(_phi(old), phi.detach())


def test_detach_distribution_rows_match_a_forward_pass_of_those_rows() -> None:
    """``detach_distribution(dist, index)`` equals the distribution computed from the indexed observations alone."""
    index = th.tensor([4, 0, 2])
    for kind in ["categorical", "gaussian", "multicategorical", "bernoulli", "gsde"]:
        policy = _make_policy(kind)
        obs = th.randn(N_STATES, OBS_DIM, dtype=th.float64)
        rows = detach_distribution(policy.get_distribution(obs), index)
        direct = _phi(policy.get_distribution(obs[index])).detach()
        assert _phi(rows).shape == direct.shape
        th.testing.assert_close(_phi(rows), direct)
        assert float(mean_kl(rows, policy.get_distribution(obs[index]))) == pytest.approx(0.0, abs=1e-12)


def test_invalid_arguments() -> None:
    policy = _make_policy("categorical")
    params = actor_parameters(policy)
    obs = th.randn(N_STATES, OBS_DIM, dtype=th.float64)
    outputs, metrics = distribution_outputs(policy.get_distribution(obs))
    with pytest.raises(ValueError, match="-1"):
        FisherVectorProduct(outputs, metrics, params, damping=-1.0)
    with pytest.raises(ValueError, match="one metric per output"):
        FisherVectorProduct(outputs, [], params)
    with pytest.raises(ValueError, match="'max'"):
        distribution_outputs(policy.get_distribution(obs), kl_reduction="max")
    with pytest.raises(ValueError, match="sub_sampling_factor"):
        FisherVectorProduct.from_policy(policy, obs, params, sub_sampling_factor=0)

    class Unknown(Distribution):
        def proba_distribution_net(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def proba_distribution(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def log_prob(self, x):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def entropy(self):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def sample(self):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def mode(self):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def actions_from_params(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def log_prob_from_params(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    unknown = Unknown()
    assert not analytic_fisher_supported(unknown)
    with pytest.raises(ValueError, match="Unknown"):
        distribution_outputs(unknown)
