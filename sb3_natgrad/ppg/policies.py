"""Policies for PPG (Cobbe et al. 2021, "Phasic Policy Gradient", https://arxiv.org/abs/2009.04416).

:class:`PPGPolicy` is SB3's ``ActorCriticPolicy`` with an *auxiliary value head* on the policy network's last
hidden layer (``aux_value_net``, the paper's ``V_theta_pi``) and a choice of where the true value head reads from
(``arch``, the paper's §3 / Appendix "shared", "detach" and "dual"):

- ``"dual"`` (default, the paper's PPG): the value function ``V_theta_V`` is a separate network: SB3's
  separate ``mlp_extractor.value_net`` and, for ``CnnPolicy`` / ``MultiInputPolicy``, its own features extractor
  (``share_features_extractor=False``).
- ``"shared"``: one trunk; the value head reads the policy network's last hidden layer and its loss trains the trunk.
- ``"detach"``: as ``"shared"``, but the value head's input is detached, so the value loss trains the head only and
  the trunk learns value features through the auxiliary phase alone.

The switch only chooses the ``mlp_extractor`` class (:data:`EXTRACTORS`), which decides which layers feed the value
head; SB3's ``forward``, ``evaluate_actions`` and ``predict_values`` run unchanged.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import CombinedExtractor, MlpExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_natgrad.common.validation import check_choice

ARCHS = ("dual", "shared", "detach")


class SharedTrunkExtractor(MlpExtractor):
    """``MlpExtractor`` whose value latent is the policy latent: the ``"shared"`` architecture.

    The value branch SB3 builds is emptied (no parameters), so ``latent_dim_vf == latent_dim_pi``.
    """

    def __init__(self, feature_dim: int, net_arch: Any, activation_fn: type[nn.Module], device: th.device | str) -> None:
        super().__init__(feature_dim, net_arch, activation_fn, device)
        self.value_net = nn.Sequential()
        self.latent_dim_vf = self.latent_dim_pi

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        latent_pi = self.policy_net(features)  # [B, latent_dim_pi]
        return latent_pi, latent_pi

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(features)


class DetachedTrunkExtractor(SharedTrunkExtractor):
    """:class:`SharedTrunkExtractor` with the value latent detached: the ``"detach"`` architecture."""

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        latent_pi = self.policy_net(features)  # [B, latent_dim_pi]
        return latent_pi, latent_pi.detach()

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(features).detach()


#: ``arch`` -> the ``mlp_extractor`` class that wires the value head.
EXTRACTORS: dict[str, type[MlpExtractor]] = {
    "dual": MlpExtractor,
    "shared": SharedTrunkExtractor,
    "detach": DetachedTrunkExtractor,
}


class PPGPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` with PPG's auxiliary value head and ``arch`` switch (see the module docstring).
    Other arguments are those of ``ActorCriticPolicy``.

    :param arch: ``"dual"`` (separate value network), ``"shared"`` or ``"detach"``.
    :param share_features_extractor: must be ``False`` for ``"dual"`` and ``True`` otherwise (``None``: follow
        ``arch``).
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        lr_schedule: Schedule,
        arch: str = "dual",
        share_features_extractor: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("PPGPolicy", "arch", arch, ARCHS)
        shared = arch != "dual"
        if share_features_extractor is not None and share_features_extractor != shared:
            raise ValueError(
                f"PPGPolicy: share_features_extractor={share_features_extractor!r} contradicts arch={arch!r} "
                f"(dual: separate networks, so False; shared / detach: one trunk, so True)"
            )
        net_arch = kwargs.get("net_arch")
        if shared and isinstance(net_arch, dict) and net_arch.get("vf", net_arch.get("pi")) != net_arch.get("pi"):
            raise ValueError(
                f"PPGPolicy: with arch={arch!r} the value head reads the policy network, so net_arch cannot give the "
                f"value function its own layers, got net_arch={net_arch!r}"
            )
        self.arch = arch  # read by _build_mlp_extractor during super().__init__()
        super().__init__(observation_space, action_space, lr_schedule, share_features_extractor=shared, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = EXTRACTORS[self.arch](
            self.features_dim, net_arch=self.net_arch, activation_fn=self.activation_fn, device=self.device
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        # The auxiliary value head V_theta_pi on the policy network. Added after SB3 built ``self.optimizer``: the
        # policy phase never trains it; PPG's auxiliary optimizer covers every parameter.
        self.aux_value_net = nn.Linear(self.mlp_extractor.latent_dim_pi, 1)
        if self.ortho_init:
            self.init_weights(self.aux_value_net, gain=1.0)  # as SB3's value head
        self.aux_value_net.to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(arch=self.arch)
        data.pop("share_features_extractor", None)  # follows arch
        return data

    def forward_aux(self, obs: th.Tensor | dict[str, th.Tensor]) -> tuple[Distribution, th.Tensor, th.Tensor]:
        """One forward pass for the auxiliary phase.

        :return: the action distribution, the auxiliary head's values ``[B]`` and the value function's ``[B]``.
        """
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        distribution = self._get_action_dist_from_latent(latent_pi)
        aux_values = self.aux_value_net(latent_pi).flatten()  # [B]
        values = self.value_net(latent_vf).flatten()  # [B]
        return distribution, aux_values, values

    def aux_parameters(self) -> list[nn.Parameter]:
        """Parameters of the auxiliary head (trained in the auxiliary phase only)."""
        return list(self.aux_value_net.parameters())

    def policy_phase_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the auxiliary head's: the ones the policy phase can move."""
        aux = {id(p) for p in self.aux_parameters()}
        return [p for p in self.parameters() if id(p) not in aux]


class PPGCnnPolicy(PPGPolicy):
    """:class:`PPGPolicy` with SB3's ``NatureCNN`` features extractor (one per network in ``"dual"``)."""

    def __init__(self, *args: Any, features_extractor_class: type[nn.Module] = NatureCNN, **kwargs: Any) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class PPGMultiInputPolicy(PPGPolicy):
    """:class:`PPGPolicy` with SB3's ``CombinedExtractor`` for dict observations."""

    def __init__(self, *args: Any, features_extractor_class: type[nn.Module] = CombinedExtractor, **kwargs: Any) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


MlpPolicy = PPGPolicy
CnnPolicy = PPGCnnPolicy
MultiInputPolicy = PPGMultiInputPolicy
