"""ACER's network (Wang et al. 2017, arXiv:1611.01224): one shared trunk, a policy head and a value head.

- Discrete actions (Section 3): the policy head gives the logits of a categorical distribution, whose
  statistics φ_θ(x) are the action probabilities; the Q head gives Q_θv(x, ·) for all actions and
  ``V(x) = Σ_a π(a|x) Q_θv(x, a)``.
- Box actions (Section 5, the stochastic dueling network): a diagonal Gaussian policy with a state-dependent
  mean and a state-independent log standard deviation, φ_θ(x) = (mean, log std); a value head V(x) and an
  advantage network A(x, a) on the trunk's features and the action, giving
  ``Q̃(x, a) = V(x) + A(x, a) - (1/n) Σ_i A(x, u_i)``, ``u_i ~ π(·|x)`` (``n_sdn_samples``).

The average policy network θ_a of Section 3.3 is a copy of the actor (features extractor, trunk, policy head,
log std) updated by Polyak averaging (``ACER`` calls :meth:`ACERPolicy.update_average`); it only
enters the KL of the trust region, so it has no value head.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim, preprocess_obs
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.common.utils import polyak_update
from torch import nn

#: Probabilities below this are treated as this inside log π(a) (the statistics are probabilities).
PROB_EPS = 1e-8


def stats_dim(action_space: spaces.Space) -> int:
    """K, the size of the statistics φ: n_actions (Discrete) or 2d (Box: mean and log std)."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    return 2 * get_action_dim(action_space)


class ACERActor(nn.Module):
    """x ↦ (trunk features, φ_θ(x)): the part of the network the average policy network copies."""

    def __init__(
        self,
        features_extractor: BaseFeaturesExtractor,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        action_space: spaces.Space,
        log_std_init: float,
    ) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.trunk = nn.Sequential(*create_mlp(features_extractor.features_dim, -1, net_arch, activation_fn))
        self.latent_dim = net_arch[-1] if net_arch else features_extractor.features_dim
        self.discrete = isinstance(action_space, spaces.Discrete)
        n_out = int(action_space.n) if isinstance(action_space, spaces.Discrete) else get_action_dim(action_space)
        self.action_net = nn.Linear(self.latent_dim, n_out)
        self.log_std = None if self.discrete else nn.Parameter(th.full((n_out,), float(log_std_init)))

    def forward(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """:param obs: preprocessed observations ``[M, ...]``.
        :return: trunk features ``[M, latent]`` and φ ``[M, K]``."""
        latent = self.trunk(self.features_extractor(obs))  # [M, latent]
        out = self.action_net(latent)  # [M, A] logits or [M, d] mean
        if self.log_std is None:
            return latent, th.softmax(out, dim=-1)  # φ = π(·|x) [M, A]
        return latent, th.cat([out, self.log_std.expand_as(out)], dim=-1)  # φ = (mean, log std) [M, 2d]


def log_prob(phi: th.Tensor, actions: th.Tensor, discrete: bool) -> th.Tensor:
    """log f(a | φ) ``[M]`` for actions ``[M]`` (int) or ``[M, d]``."""
    if discrete:
        return th.log(phi.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).clamp_min(PROB_EPS))
    mean, log_std = phi.chunk(2, dim=-1)
    z = (actions - mean) * th.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def entropy(phi: th.Tensor, discrete: bool) -> th.Tensor:
    """``H(f(·|φ))`` ``[M]``."""
    if discrete:
        return -(phi * th.log(phi.clamp_min(PROB_EPS))).sum(dim=-1)
    _, log_std = phi.chunk(2, dim=-1)
    return (log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(dim=-1)


def kl_divergence(phi_p: th.Tensor, phi_q: th.Tensor, discrete: bool) -> th.Tensor:
    """``D_KL[f(·|φ_p) ‖ f(·|φ_q)]`` ``[M]``."""
    if discrete:
        return (phi_p * (th.log(phi_p.clamp_min(PROB_EPS)) - th.log(phi_q.clamp_min(PROB_EPS)))).sum(dim=-1)
    mean_p, log_std_p = phi_p.chunk(2, dim=-1)
    mean_q, log_std_q = phi_q.chunk(2, dim=-1)
    var_ratio = th.exp(2 * (log_std_p - log_std_q))
    mahalanobis = ((mean_p - mean_q) * th.exp(-log_std_q)).pow(2)
    return 0.5 * (var_ratio + mahalanobis - 1.0 - 2 * (log_std_p - log_std_q)).sum(dim=-1)


def kl_gradient(phi_average: th.Tensor, phi: th.Tensor, discrete: bool) -> tuple[th.Tensor, th.Tensor]:
    """The trust region's ``k = ∇_φ D_KL[f(·|φ_{θ_a}(x)) ‖ f(·|φ)]`` at φ = φ_θ(x), per state (Wang et al. 2017,
    Section 3.3), by autograd of :func:`kl_divergence`. For a Gaussian with φ = (mean m, log std s) against the
    average network's (m_a, s_a) it is ((m - m_a) / var, 1 - var_a / var - (m - m_a)² / var) per dimension, var = exp(2 s).

    :param phi_average: φ_{θ_a}(x) ``[M, K]`` (a constant).
    :param phi: φ_θ(x) ``[M, K]`` (k is taken at its value; its graph is not used).
    :return: the KL ``[M]`` and k ``[M, K]``.
    """
    phi_point = phi.detach().requires_grad_(True)
    with th.enable_grad():
        kl = kl_divergence(phi_average.detach(), phi_point, discrete)  # [M]
        (k,) = th.autograd.grad(kl.sum(), phi_point)  # [M, K]
    return kl.detach(), k


def sample(phi: th.Tensor, discrete: bool, deterministic: bool = False, n: int | None = None) -> th.Tensor:
    """Actions from ``f(·|φ)``: ``[M]`` / ``[M, d]``, or ``[n, M]`` / ``[n, M, d]`` with ``n``; no gradient."""
    with th.no_grad():
        shape = () if n is None else (n,)
        if discrete:
            if deterministic:
                return phi.argmax(dim=-1).expand(*shape, *phi.shape[:-1])
            return th.distributions.Categorical(probs=phi).sample(shape)
        mean, log_std = phi.chunk(2, dim=-1)
        if deterministic:
            return mean.expand(*shape, *mean.shape)
        return mean + th.exp(log_std) * th.randn((*shape, *mean.shape), device=mean.device)


class ACERPolicy(BasePolicy):
    """ACER's actor-critic network with the average policy network (see the module docstring).

    :param observation_space: observation space.
    :param action_space: Discrete or Box action space.
    :param lr_schedule: learning-rate schedule.
    :param net_arch: hidden sizes of the shared trunk (default ``[64, 64]`` after a flatten extractor,
        ``[]`` after a CNN or combined extractor).
    :param activation_fn: activation of the trunk.
    :param use_sde: not supported (must be False); accepted because ``OnPolicyAlgorithm`` passes it.
    :param log_std_init: initial log standard deviation (Box).
    :param n_sdn_samples: n, actions sampled from π for the stochastic dueling network's Q̃ (Box).
    :param features_extractor_class: features extractor.
    :param features_extractor_kwargs: its keyword arguments.
    :param normalize_images: divide uint8 images by 255.
    :param optimizer_class: optimizer (default RMSprop, as in the paper and baselines).
    :param optimizer_kwargs: its keyword arguments (default ``alpha=0.99, eps=1e-5`` for RMSprop).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        n_sdn_samples: int = 5,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.RMSprop,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if use_sde:
            raise ValueError("ACERPolicy: use_sde must be False (ACER has no state-dependent exploration), got True")
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"ACERPolicy supports only Discrete and Box action spaces, got {action_space}")
        if net_arch is not None and (
            not isinstance(net_arch, list) or not all(isinstance(h, int) and h > 0 for h in net_arch)
        ):
            raise ValueError(f"ACERPolicy: net_arch must be a list of positive ints (the shared trunk), got {net_arch!r}")
        if optimizer_kwargs is None:
            optimizer_kwargs = dict(alpha=0.99, eps=1e-5) if optimizer_class is th.optim.RMSprop else {}
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        if net_arch is None:
            net_arch = [64, 64] if features_extractor_class == FlattenExtractor else []
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.log_std_init = log_std_init
        self.n_sdn_samples = n_sdn_samples
        self.discrete = isinstance(action_space, spaces.Discrete)

        self.actor = ACERActor(self.make_features_extractor(), net_arch, activation_fn, action_space, log_std_init)
        latent_dim = self.actor.latent_dim
        if isinstance(action_space, spaces.Discrete):
            self.q_net = nn.Linear(latent_dim, int(action_space.n))
        else:
            action_dim = get_action_dim(action_space)
            self.value_net = nn.Linear(latent_dim, 1)
            self.advantage_net = nn.Sequential(*create_mlp(latent_dim + action_dim, 1, [latent_dim], activation_fn))
        # θ_a: trained only through update_average()
        self.average_actor = copy.deepcopy(self.actor).requires_grad_(False)
        trainable = [p for name, p in self.named_parameters() if not name.startswith("average_actor.")]
        self.optimizer = self.optimizer_class(trainable, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            log_std_init=self.log_std_init,
            n_sdn_samples=self.n_sdn_samples,
        )
        return data

    def _preprocess(self, obs: PyTorchObs) -> PyTorchObs:
        return preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)  # type: ignore[arg-type]

    def statistics(self, obs: PyTorchObs, average: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """Trunk features ``[M, latent]`` and φ ``[M, K]`` of the network (or of the average network θ_a)."""
        return (self.average_actor if average else self.actor)(self._preprocess(obs))

    def q_values(self, latent: th.Tensor) -> th.Tensor:
        """Discrete: Q_θv(x, ·) ``[M, A]``."""
        return self.q_net(latent)

    def value(self, latent: th.Tensor, phi: th.Tensor) -> th.Tensor:
        """V(x) ``[M]``: Σ_a π(a|x) Q(x, a) (Discrete) or the value head (Box)."""
        if self.discrete:
            return (phi * self.q_net(latent)).sum(dim=-1)
        return self.value_net(latent).squeeze(-1)

    def sdn_q(self, latent: th.Tensor, phi: th.Tensor, actions: th.Tensor, u: th.Tensor | None = None) -> th.Tensor:
        """Box: the stochastic dueling network's ``Q̃(x, a) = V(x) + A(x, a) - (1/n) Σ_i A(x, u_i)``, ``u_i ~ π(·|x)``
        (Wang et al. 2017, Section 5.1).

        :param latent: trunk features of x ``[M, latent]``.
        :param phi: π's statistics φ(x) ``[M, 2d]`` (the u_i are drawn from it, without gradient).
        :param actions: a ``[M, d]`` or ``[J, M, d]`` (J actions per state share the same u_i).
        :param u: the samples u_i ``[n, M, d]``; None draws ``n_sdn_samples`` of them from π.
        :return: Q̃ ``[M]`` or ``[J, M]``.
        """
        if u is None:
            u = sample(phi.detach(), discrete=False, n=self.n_sdn_samples)  # [n, M, d]
        latent_n = latent.expand(u.shape[0], *latent.shape)  # [n, M, latent]
        mean_advantage = self.advantage_net(th.cat([latent_n, u], dim=-1)).squeeze(-1).mean(dim=0)  # [M]
        latent_a = latent.expand(*actions.shape[:-1], latent.shape[-1])
        advantage = self.advantage_net(th.cat([latent_a, actions], dim=-1)).squeeze(-1)  # [M] or [J, M]
        return self.value(latent, phi) + advantage - mean_advantage

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """For ``collect_rollouts``: actions, V(x) ``[M, 1]`` and the behaviour statistics φ ``[M, K]``, which
        ``OnPolicyAlgorithm`` hands to the buffer in place of log-probabilities (ACER needs all of μ)."""
        latent, phi = self.statistics(obs)
        actions = sample(phi, self.discrete, deterministic)
        return actions, self.value(latent, phi).unsqueeze(-1), phi

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        _, phi = self.statistics(observation)
        return sample(phi, self.discrete, deterministic)

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        """V(x) ``[M, 1]`` (SB3 bootstraps time-limit truncations with it in ``collect_rollouts``)."""
        latent, phi = self.statistics(obs)
        return self.value(latent, phi).unsqueeze(-1)

    def update_average(self, alpha: float) -> None:
        """θ_a ← alpha θ_a + (1 - alpha) θ (Section 3.3)."""
        polyak_update(self.actor.parameters(), self.average_actor.parameters(), 1.0 - alpha)


class ACERCnnPolicy(ACERPolicy):
    """:class:`ACERPolicy` with SB3's ``NatureCNN`` trunk (Atari)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


class ACERMultiInputPolicy(ACERPolicy):
    """:class:`ACERPolicy` with SB3's ``CombinedExtractor`` for dict observations."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


MlpPolicy = ACERPolicy
CnnPolicy = ACERCnnPolicy
MultiInputPolicy = ACERMultiInputPolicy
