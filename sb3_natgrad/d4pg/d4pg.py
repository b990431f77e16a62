"""Distributed Distributional Deterministic Policy Gradients (D4PG)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from stable_baselines3.td3.policies import Actor

from sb3_natgrad.common.actors import DistributedActorsMixin
from sb3_natgrad.common.off_policy import (
    AnySamples,
    anneal_per_beta,
    importance_weighted_mean,
    per_beta_schedule,
    replay_buffer_for,
    update_priorities,
)
from sb3_natgrad.common.validation import check_bool, check_choice, check_int, check_number, check_rate
from sb3_natgrad.d4pg.distributional import (
    categorical_cross_entropy,
    categorical_projection,
    categorical_support,
    quantile_huber_per_sample,
    truncated_quantile_target,
)
from sb3_natgrad.d4pg.policies import CnnPolicy, D4PGPolicy, DistributionalCritic, MlpPolicy, MultiInputPolicy

SelfD4PG = TypeVar("SelfD4PG", bound="D4PG")

CRITICS = ("categorical", "quantile")


class D4PG(DistributedActorsMixin, OffPolicyAlgorithm):
    """
    Distributed Distributional Deterministic Policy Gradients (D4PG).

    Paper: Barth-Maron et al., 2018, "Distributed Distributional Deterministic Policy Gradients",
    https://arxiv.org/abs/1804.08617 (Algorithm 1). DDPG's deterministic actor and target networks (SB3's
    TD3 policy) with a distributional critic, N-step returns, ``K`` parallel actors (``n_envs`` through
    SB3's VecEnvs) and optionally prioritized replay (Schaul et al., 2016, https://arxiv.org/abs/1511.05952).

    - ``critic="categorical"`` (the paper's): ``n_atoms`` atoms evenly spaced on ``[v_min, v_max]``; the N-step
      target distribution ``r + gamma^N Z'(s', mu'(s'))`` is projected onto them (Bellemare et al., 2017,
      Alg. 1) and the critic minimises the cross-entropy to it. ``train/clipped_target_mass`` is the fraction of
      target probability that fell outside ``[v_min, v_max]`` before clipping: well above 0, the support is too
      narrow for the returns. Reward scale matters: the defaults ``v_min=-100``, ``v_max=100`` cover the
      discounted returns of rewards in ``[-1, 1]`` at ``gamma=0.99`` (``1 / (1 - gamma) = 100``); set them from
      the environment's return scale (``hyperparams/d4pg.yml`` does) or normalise rewards.
    - ``critic="quantile"``: ``n_critics`` critics of ``n_quantiles`` quantiles each; the target pools the target
      critics' quantiles and drops the ``top_quantiles_to_drop_per_net * n_critics`` largest (TQC, Kuznetsov et
      al., 2020, https://arxiv.org/abs/2005.04269) on this deterministic actor; sb3-contrib's quantile Huber loss.

    In both, the actor follows the gradient of the expected value of the critics' distribution at
    ``(s, mu(s))`` (the paper's Eq. 7). With ``prioritized_replay=True`` the critic's per-sample losses are
    weighted by the importance weights and become the transitions' new priorities.

    With ``n_actors > 0`` the transitions come from that many Ray actors, each stepping its own copy of the
    environment with a copy of the actor network (the paper's distributed actors; :mod:`sb3_natgrad.common.actors`
    and the "Distributed actors" guide); ``n_actors=0`` is SB3's in-process loop.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str); Box actions only
    :param learning_rate: learning rate of Adam for actor and critic; a float or a schedule of the progress remaining
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps (or ``(n, "step" | "episode")``)
    :param gradient_steps: gradient steps after each rollout (``-1``: as many as environment steps)
    :param action_noise: exploration noise added to the deterministic actions (None by default, as SB3's TD3;
        the paper uses Gaussian noise, e.g. ``NormalActionNoise``)
    :param replay_buffer_class: Replay buffer class to use; None chooses one from ``n_steps`` and
        ``prioritized_replay``. A custom class must be configured through ``replay_buffer_kwargs``.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: SB3's memory efficient replay buffer variant
    :param n_steps: N of the N-step returns (the paper uses 5)
    :param policy_delay: the actor and the target networks are updated once every ``policy_delay`` critic updates
    :param critic: ``"categorical"`` (C51, the paper's) or ``"quantile"`` (truncated quantile critics)
    :param n_atoms: atoms of the categorical critic
    :param v_min: lowest atom of the categorical critic
    :param v_max: highest atom of the categorical critic
    :param n_quantiles: quantiles per network of the quantile critic
    :param n_critics: critic networks; None: 1 for ``"categorical"`` (the only value it accepts), 2 for ``"quantile"``
    :param top_quantiles_to_drop_per_net: quantiles dropped per network from the quantile critic's pooled target
    :param prioritized_replay: sample transitions in proportion to ``priority ** per_alpha`` (Schaul et al., 2016)
    :param per_alpha: prioritization exponent
    :param per_beta: importance-sampling exponent at the start of training
    :param per_beta_final: importance-sampling exponent at the end of training (annealed linearly)
    :param per_eps: added to the priorities so that no transition has probability 0
    :param n_actors: Ray actors that step the environment (0: SB3's in-process loop; needs
        ``pip install "sb3_natgrad[distributed]"``)
    :param actor_sync_interval: the actors' copy of the actor network is refreshed after every this many gradient
        updates
    :param ray_address: a Ray cluster's address (e.g. ``"HEAD_IP:6379"``); None: the Ray instance of this process,
        else a new local one
    :param actor_kwargs: rarer actor options (``chunk_size``, ``timeout``, ``max_restarts``, ``num_cpus``,
        ``env_fn``): see :class:`sb3_natgrad.common.actors.ActorOptions`
    :param stats_window_size: Window size for the rollout logging (episodes)
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: D4PGPolicy
    actor: Actor
    actor_target: Actor
    critic: DistributionalCritic
    critic_target: DistributionalCritic

    def __init__(
        self,
        policy: str | type[D4PGPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 5,
        policy_delay: int = 1,
        critic: str = "categorical",
        n_atoms: int = 51,
        v_min: float = -100.0,
        v_max: float = 100.0,
        n_quantiles: int = 25,
        n_critics: int | None = None,
        top_quantiles_to_drop_per_net: int = 2,
        prioritized_replay: bool = False,
        per_alpha: float = 0.6,
        per_beta: float = 0.4,
        per_beta_final: float = 1.0,
        per_eps: float = 1e-6,
        n_actors: int = 0,
        actor_sync_interval: int = 100,
        ray_address: str | None = None,
        actor_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        owner = type(self).__name__
        check_rate(owner, "learning_rate", learning_rate)
        check_int(owner, "buffer_size", buffer_size)
        check_int(owner, "learning_starts", learning_starts, low=0)
        check_int(owner, "batch_size", batch_size)
        check_number(owner, "tau", tau, 0.0, 1.0, low_open=True)
        check_number(owner, "gamma", gamma, 0.0, 1.0)
        check_int(owner, "gradient_steps", gradient_steps, low=-1)
        check_int(owner, "n_steps", n_steps)
        check_int(owner, "policy_delay", policy_delay)
        check_choice(owner, "critic", critic, CRITICS)
        check_int(owner, "n_atoms", n_atoms, low=2)
        check_number(owner, "v_min", v_min)
        check_number(owner, "v_max", v_max, low=v_min, low_open=True)
        check_int(owner, "n_quantiles", n_quantiles)
        check_int(owner, "top_quantiles_to_drop_per_net", top_quantiles_to_drop_per_net, low=0)
        check_number(owner, "top_quantiles_to_drop_per_net", top_quantiles_to_drop_per_net, high=n_quantiles - 1)
        if critic == "categorical":
            check_choice(owner, "n_critics (categorical critic)", n_critics, (None, 1))
        check_int(owner, "n_critics", n_critics, allow_none=True)
        check_bool(owner, "prioritized_replay", prioritized_replay)
        beta_schedule = per_beta_schedule(owner, per_beta, per_beta_final)  # validates both
        policy_kwargs = dict(policy_kwargs or {})
        for key in ("n_critics", "n_outputs"):
            if key in policy_kwargs:
                raise ValueError(
                    f"{owner}: policy_kwargs must not set {key!r} (set by critic, n_atoms, n_quantiles, n_critics)"
                )

        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=1,  # the replay buffer computes the N-step returns (sb3_natgrad.common.off_policy)
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=None,  # checked below, with a ValueError naming the space
            support_multi_env=True,
        )
        action_space = getattr(self, "action_space", None)  # unset while load() builds the model without env
        if action_space is not None and not isinstance(action_space, spaces.Box):
            raise ValueError(f"{owner} supports only Box action spaces, got {self.action_space}")

        if getattr(self, "observation_space", None) is not None:  # load() restores the buffer choice instead
            self.replay_buffer_class, self.replay_buffer_kwargs = replay_buffer_for(
                owner,
                self.observation_space,
                n_steps=n_steps,
                gamma=gamma,
                prioritized_replay=prioritized_replay,
                per_alpha=per_alpha,
                per_beta=per_beta,
                per_eps=per_eps,
                replay_buffer_class=replay_buffer_class,
                replay_buffer_kwargs=replay_buffer_kwargs,
            )
        self.n_steps = n_steps
        self.per_beta_schedule = beta_schedule
        self.policy_delay = policy_delay
        self.critic_type = critic
        self.n_atoms = n_atoms
        self.v_min = float(v_min)
        self.v_max = float(v_max)
        self.n_quantiles = n_quantiles
        self.n_critics = n_critics if n_critics is not None else (1 if critic == "categorical" else 2)
        self.top_quantiles_to_drop_per_net = top_quantiles_to_drop_per_net
        self.prioritized_replay = prioritized_replay
        self.per_alpha = per_alpha
        self.per_beta = per_beta
        self.per_beta_final = per_beta_final
        self.per_eps = per_eps
        n_outputs = n_atoms if critic == "categorical" else n_quantiles
        self.policy_kwargs.update(n_critics=self.n_critics, n_outputs=n_outputs)
        self._init_actors(n_actors, actor_sync_interval, ray_address, actor_kwargs)

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        with warnings.catch_warnings():
            if self.replay_buffer_kwargs.get("n_steps") == self.n_steps:
                # The buffer computes our N-step returns (replay_buffer_for): SB3's warning that n_steps is ignored
                # for a custom replay_buffer_class (self.n_steps is the user's N, not SB3's) does not apply.
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom")
            super()._setup_model()
        self._create_aliases()
        # The categorical critic's fixed support z, [K] (rebuilt from v_min, v_max after loading).
        self.atoms = categorical_support(self.v_min, self.v_max, self.n_atoms, device=self.device)
        # Running mean and running var (batch norm), copied to the targets as in SB3's TD3.
        self.actor_batch_norm_stats = get_parameters_by_name(self.actor, ["running_"])
        self.critic_batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.actor_batch_norm_stats_target = get_parameters_by_name(self.actor_target, ["running_"])
        self.critic_batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.actor_target = self.policy.actor_target
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    # ------------------------------------------------------------------ CRITIC LOSSES
    def _critic_loss(self, data: AnySamples) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor | None]:
        """The critic's loss on a batch: the per-sample losses averaged, weighted by prioritized replay's
        importance weights when the samples carry them.

        :return: the loss, the per-sample losses ``[B]`` (detached: the new priorities), the mean Q of the
            replayed actions, and (categorical critic) the clipped target mass, else None.
        """
        # N-step discount gamma^k (k < N where the episode ended early), 0 after a termination.
        discounts = data.discounts if data.discounts is not None else self.gamma
        bootstrap = (1.0 - data.dones) * discounts  # [B, 1]
        clipped_mass = None
        if self.critic_type == "categorical":
            losses, mean_q, clipped_mass = self._categorical_losses(data, bootstrap)
        else:
            losses, mean_q = self._quantile_losses(data, bootstrap)
        return importance_weighted_mean(losses, data), losses.detach(), mean_q, clipped_mass

    def _categorical_losses(self, data: AnySamples, bootstrap: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Per-sample cross-entropy to the projected N-step target ``[B]``, mean Q, clipped target mass."""
        with th.no_grad():
            next_actions = self.actor_target(data.next_observations)  # [B, A]
            next_logits = self.critic_target(data.next_observations, next_actions)[:, 0]  # [B, K]
            target_probs, clipped_mass = categorical_projection(
                next_logits.softmax(dim=1), data.rewards, bootstrap, self.atoms
            )
        logits = self.critic(data.observations, data.actions)[:, 0]  # [B, K]
        losses = categorical_cross_entropy(logits, target_probs)  # [B]
        with th.no_grad():
            mean_q = (logits.softmax(dim=1) @ self.atoms).mean()
        return losses, mean_q, clipped_mass.mean()

    def _quantile_losses(self, data: AnySamples, bootstrap: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Per-sample quantile Huber loss to the truncated N-step target ``[B]``, and mean Q."""
        with th.no_grad():
            next_actions = self.actor_target(data.next_observations)  # [B, A]
            next_quantiles = self.critic_target(data.next_observations, next_actions)  # [B, C, N]
            n_drop = self.top_quantiles_to_drop_per_net * self.n_critics
            target_quantiles = truncated_quantile_target(next_quantiles, data.rewards, bootstrap, n_drop)  # [B, M]
        quantiles = self.critic(data.observations, data.actions)  # [B, C, N]
        losses = quantile_huber_per_sample(quantiles, target_quantiles)  # [B]
        return losses, quantiles.detach().mean()

    def _expected_value(self, critic_outputs: th.Tensor) -> th.Tensor:
        """``Q = E[Z]`` from the critics' outputs ``[B, C, n_outputs]``, averaged over critics. ``[B]``."""
        if self.critic_type == "categorical":
            return (critic_outputs.softmax(dim=2) @ self.atoms).mean(dim=1)  # sum_i p_i z_i, [B]
        return critic_outputs.mean(dim=(1, 2))  # mean of all quantiles (TQC's actor objective), [B]

    # ------------------------------------------------------------------ TRAINING
    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        anneal_per_beta(self.replay_buffer, self.per_beta_schedule, self._current_progress_remaining)

        # Logged values stay on the device until the end of train(): one synchronisation, not one per step.
        actor_losses: list[th.Tensor] = []
        critic_losses: list[th.Tensor] = []
        mean_qs: list[th.Tensor] = []
        clipped_masses: list[th.Tensor] = []
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]

            # CRITIC
            critic_loss, losses, mean_q, clipped_mass = self._critic_loss(data)
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            critic_losses.append(critic_loss.detach())
            mean_qs.append(mean_q)
            if clipped_mass is not None:
                clipped_masses.append(clipped_mass)
            update_priorities(self.replay_buffer, data, losses)  # prioritized replay only: the per-sample losses

            # ACTOR (and targets), every policy_delay critic updates
            if self._n_updates % self.policy_delay == 0:
                q_values = self._expected_value(self.critic.action_forward(data.observations, self.actor(data.observations)))
                actor_loss = -q_values.mean()
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()
                actor_losses.append(actor_loss.detach())

                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if gradient_steps == 0:
            return
        self.logger.record("train/critic_loss", th.stack(critic_losses).mean().item())
        self.logger.record("train/mean_q", th.stack(mean_qs).mean().item())
        if actor_losses:
            self.logger.record("train/actor_loss", th.stack(actor_losses).mean().item())
        if clipped_masses:
            self.logger.record("train/clipped_target_mass", th.stack(clipped_masses).mean().item())

    def learn(
        self: SelfD4PG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "D4PG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfD4PG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "actor_target",
            "critic_target",
            "atoms",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "actor.optimizer", "critic.optimizer"], []


__all__ = ["CRITICS", "D4PG"]
