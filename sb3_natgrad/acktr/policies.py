"""Policies for ACKTR: SB3 actor-critic policies with two additions.

- ``vf_activation_fn``: the critic's hidden layers may use another activation than the actor's, as in
  the MuJoCo code of Wu et al. (2017) (tanh policy, ELU value network).
- :meth:`ACKTRPolicy.evaluate_actions_and_distribution`: ``evaluate_actions`` that also returns the
  action distribution, so that ACKTR can sample the Fisher loss from the same forward pass.

The K-FAC optimizers themselves are built by :class:`~sb3_natgrad.acktr.ACKTR` (they need the
algorithm's flat hyperparameters) and replace ``policy.optimizer`` (and ``policy.vf_optimizer``).
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import CombinedExtractor, MlpExtractor, NatureCNN
from torch import nn

from sb3_natgrad.optim.kfac import KFAC


class ACKTRPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` with an optional critic activation and an evaluation returning the
    distribution (see module docstring). Other arguments are those of ``ActorCriticPolicy``.

    :param vf_activation_fn: activation of the value network's hidden layers (default: ``activation_fn``).
        Only meaningful when ``net_arch`` gives the critic its own layers (``dict(pi=..., vf=...)``).
    """

    #: K-FAC optimizer of the critic when actor and critic are optimized separately.
    vf_optimizer: KFAC | None = None

    def __init__(self, *args: Any, vf_activation_fn: type[nn.Module] | None = None, **kwargs: Any) -> None:
        # Plain attribute, read by _build_mlp_extractor during super().__init__()
        self.vf_activation_fn = vf_activation_fn
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()
        if self.vf_activation_fn is not None:
            critic = MlpExtractor(self.features_dim, self.net_arch, self.vf_activation_fn, self.device)
            self.mlp_extractor.value_net = critic.value_net

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(vf_activation_fn=self.vf_activation_fn)
        return data

    def evaluate_actions_and_distribution(
        self, obs: th.Tensor | dict[str, th.Tensor], actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None, Distribution]:
        """``evaluate_actions`` (one forward pass) that also returns the action distribution.

        :return: values ``[B, 1]``, log-probabilities ``[B]``, entropy ``[B]`` (or None), distribution.
        """
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        distribution = self._get_action_dist_from_latent(latent_pi)
        log_prob = distribution.log_prob(actions)
        values = self.value_net(latent_vf)
        return values, log_prob, distribution.entropy(), distribution


class ACKTRCnnPolicy(ACKTRPolicy):
    """:class:`ACKTRPolicy` with SB3's ``NatureCNN`` features extractor (shared by actor and critic)."""

    def __init__(self, *args: Any, features_extractor_class: type[nn.Module] = NatureCNN, **kwargs: Any) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class ACKTRMultiInputPolicy(ACKTRPolicy):
    """:class:`ACKTRPolicy` with SB3's ``CombinedExtractor`` for dict observations."""

    def __init__(self, *args: Any, features_extractor_class: type[nn.Module] = CombinedExtractor, **kwargs: Any) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


MlpPolicy = ACKTRPolicy
CnnPolicy = ACKTRCnnPolicy
MultiInputPolicy = ACKTRMultiInputPolicy
