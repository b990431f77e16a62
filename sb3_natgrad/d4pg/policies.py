"""Policies for D4PG: TD3's deterministic actor with distributional critics.

The actor, its target, the optimizers and the features extractors are SB3's TD3 policy unchanged; only
the critic differs: each of ``n_critics`` networks outputs ``n_outputs`` values for ``(s, a)`` (the logits
of a categorical distribution over ``n_atoms`` fixed atoms, or ``n_quantiles`` quantile locations)
instead of one Q-value. The D4PG algorithm interprets them.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import TD3Policy
from torch import nn


class DistributionalCritic(BaseModel):
    """``n_critics`` MLPs on ``[features(s), a]``, each with ``n_outputs`` outputs (SB3's ``ContinuousCritic``
    with a distribution instead of a scalar per critic).

    :param n_critics: number of critic networks.
    :param n_outputs: outputs per critic: atoms' logits (categorical) or quantiles (quantile critic).
    :param share_features_extractor: the features extractor is the actor's; the critic's loss then does not
        train it (as in SB3's ``ContinuousCritic``).
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 1,
        n_outputs: int = 51,
        share_features_extractor: bool = False,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        action_dim = get_action_dim(self.action_space)
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.n_outputs = n_outputs
        self.q_networks = nn.ModuleList(
            nn.Sequential(*create_mlp(features_dim + action_dim, n_outputs, net_arch, activation_fn)) for _ in range(n_critics)
        )

    def _heads(self, features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        q_input = th.cat([features, actions], dim=1)  # [B, F + A]
        if self.n_critics == 1:
            return self.q_networks[0](q_input).unsqueeze(1)  # [B, 1, n_outputs]
        return th.stack([q_net(q_input) for q_net in self.q_networks], dim=1)  # [B, C, n_outputs]

    def forward(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """All critics' outputs, ``[B, n_critics, n_outputs]``."""
        # A shared features extractor is trained by the actor's loss only.
        with th.set_grad_enabled(not self.share_features_extractor):
            features = self.extract_features(obs, self.features_extractor)
        return self._heads(features, actions)

    def action_forward(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """All critics' outputs with the features extractor frozen (the actor's loss: gradients reach the
        actor through ``actions`` only, like TD3's ``q1_forward``). ``[B, n_critics, n_outputs]``."""
        with th.no_grad():
            features = self.extract_features(obs, self.features_extractor)
        return self._heads(features, actions)


class D4PGPolicy(TD3Policy):
    """TD3's policy (deterministic actor, target networks, Adam) with a :class:`DistributionalCritic`.

    :param n_critics: number of critic networks (1 for the categorical critic, as in D4PG).
    :param n_outputs: outputs per critic (``n_atoms`` or ``n_quantiles``); D4PG sets both from its own arguments.

    Other parameters: see SB3's ``TD3Policy`` (default ``net_arch`` [400, 300], as D4PG's and TD3's papers).
    """

    critic: DistributionalCritic  # type: ignore[assignment]
    critic_target: DistributionalCritic  # type: ignore[assignment]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 1,
        n_outputs: int = 51,
        share_features_extractor: bool = False,
    ):
        # Read by make_critic(), which TD3Policy.__init__ calls through _build().
        self.n_outputs = n_outputs
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "n_outputs": self.n_outputs}

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> DistributionalCritic:  # type: ignore[override]
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return DistributionalCritic(**critic_kwargs, n_outputs=self.n_outputs).to(self.device)


MlpPolicy = D4PGPolicy


class CnnPolicy(D4PGPolicy):
    """:class:`D4PGPolicy` on images: SB3's ``NatureCNN`` features extractor by default."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ):
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


class MultiInputPolicy(D4PGPolicy):
    """:class:`D4PGPolicy` on ``Dict`` observations: SB3's ``CombinedExtractor`` by default."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ):
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


__all__ = ["CnnPolicy", "D4PGPolicy", "DistributionalCritic", "MlpPolicy", "MultiInputPolicy"]
