"""Truncated Quantile Critics (TQC) with prioritized and n-step replay and an optional K-FAC critic."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from sb3_contrib import TQC as ContribTQC
from sb3_contrib.tqc.policies import TQCPolicy
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import polyak_update

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
from sb3_natgrad.optim.kfac import KFAC
from sb3_natgrad.tqc.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_natgrad.tqc.quantile import quantile_huber_elementwise, sampled_quantile_fisher_loss

CRITIC_OPTIMIZERS = ("adam", "kfac")

SelfTQC = TypeVar("SelfTQC", bound="TQC")


class TQC(DistributedActorsMixin, ContribTQC):
    """
    Truncated Quantile Critics (TQC): sb3-contrib's ``TQC``, every argument with the same default and meaning, plus
    prioritized replay, n-step returns for ``Box`` and ``Dict`` observations, and a natural-gradient (K-FAC) critic.

    Paper: Kuznetsov et al., 2020, "Controlling Overestimation Bias with Truncated Mixture of Continuous
    Distributional Quantile Critics", https://arxiv.org/abs/2005.04269. The policies, the entropy tuning, the target
    truncation and the loss are contrib's (its policies are reused unchanged); with the defaults the updates are
    contrib's exactly (same parameters after the same updates from the same seed, tested). The variants:

    - ``prioritized_replay=True`` (Schaul et al., 2016, "Prioritized Experience Replay",
      https://arxiv.org/abs/1511.05952): transitions drawn with probability ``p_i^per_alpha / sum_k p_k^per_alpha``;
      the critic's quantile Huber loss of each sample (contrib's loss before its batch mean) is weighted by its
      importance weight ``(N P(i))^-beta / max_j w_j``, ``beta`` annealed from ``per_beta`` to ``per_beta_final``, and
      becomes the sample's new priority ``p_i``. The shared buffer of :mod:`sb3_natgrad.common.prioritized_replay`.
    - ``n_steps > 1``: the critic's target is ``sum_{k<n} gamma^k r_{t+k} + gamma^n (Z(s_{t+n}) - alpha log pi)``
      (cut at a termination or a truncation), computed by the replay buffer (:mod:`sb3_natgrad.common.off_policy`),
      also for ``Dict`` observations, which SB3's ``NStepReplayBuffer`` refuses. As in contrib, the entropy bonus
      enters at the bootstrap state only.
    - ``critic_optimizer="kfac"``: the critics are trained by :class:`sb3_natgrad.optim.KFAC` (Martens & Grosse, 2015,
      "Optimizing Neural Networks with Kronecker-factored Approximate Curvature", https://arxiv.org/abs/1503.05671)
      with the trust region of ACKTR. Its curvature is the Fisher of an asymmetric-Laplace model of each quantile
      output, which equals the Gauss-Newton curvature of the quantile regression (the reasoning is in
      :func:`~sb3_natgrad.tqc.quantile.sampled_quantile_fisher_loss`). The actor and the entropy coefficient keep
      Adam and ``learning_rate``; the K-FAC step size is ``critic_kfac_lr`` (``eta_max``), constant.
    - ``n_actors > 0``: the transitions come from that many Ray actors, each stepping its own copy of the environment
      with a copy of the actor network (:mod:`sb3_natgrad.common.actors`, the "Distributed actors" guide).

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str); Box actions only
    :param learning_rate: learning rate of Adam (actor, entropy coefficient, and critics unless K-FAC), a float or
        a schedule of the progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps (or ``(n, "step" | "episode")``)
    :param gradient_steps: How many gradient updates after each rollout (``-1``: as many as environment steps)
    :param action_noise: the action noise type (None by default)
    :param replay_buffer_class: Replay buffer class to use (for instance ``HerReplayBuffer``); None chooses one from
        ``n_steps`` and ``prioritized_replay``
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: SB3's memory efficient replay buffer variant
    :param n_steps: n of the n-step returns (1: one-step TD targets)
    :param ent_coef: Entropy regularization coefficient, or ``"auto"`` / ``"auto_<init>"`` to learn it
    :param target_update_interval: update the target network every ``target_update_interval`` gradient steps of a
        ``train()`` call (contrib's counting)
    :param target_entropy: target entropy when learning ``ent_coef`` (``"auto"``: ``-dim(A)``)
    :param top_quantiles_to_drop_per_net: Number of quantiles to drop per network from the pooled target
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE (-1: once per rollout)
    :param use_sde_at_warmup: Whether to use gSDE instead of uniform sampling during the warm up phase
    :param prioritized_replay: sample transitions in proportion to ``priority ** per_alpha`` (Schaul et al., 2016)
    :param per_alpha: prioritization exponent
    :param per_beta: importance-sampling exponent at the start of training
    :param per_beta_final: importance-sampling exponent at the end of training (annealed linearly)
    :param per_eps: added to the priorities so that no transition has probability 0
    :param critic_optimizer: ``"adam"`` (contrib's) or ``"kfac"``
    :param critic_kfac_lr: K-FAC's ``eta_max``, the largest step scale (1: a full Gauss-Newton step)
    :param critic_kfac_kl_clip: K-FAC's trust region ``delta`` on the quadratic model of the change of the critics'
        asymmetric-Laplace distributions; None: no trust region
    :param critic_kfac_damping: K-FAC's Tikhonov damping
    :param critic_kfac_momentum: K-FAC's momentum
    :param critic_kfac_stat_decay: decay of K-FAC's running averages of the Kronecker factors
    :param critic_kfac_inverse_interval: K-FAC recomputes the damped inverses every this many steps
    :param n_actors: Ray actors that step the environment (0: SB3's in-process loop; needs
        ``pip install "sb3_natgrad[distributed]"``; not with ``use_sde``)
    :param actor_sync_interval: the actors' copy of the actor network is refreshed after every this many gradient
        updates
    :param ray_address: a Ray cluster's address (e.g. ``"HEAD_IP:6379"``); None: the Ray instance of this process,
        else a new local one
    :param actor_kwargs: rarer actor options (``chunk_size``, ``timeout``, ``start_timeout``, ``max_restarts``,
        ``num_cpus``, ``env_fn``): see :class:`sb3_natgrad.common.actors.ActorOptions`
    :param stats_window_size: Window size for the rollout logging (episodes)
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation (``n_quantiles``,
        ``n_critics``, ``net_arch``, ...)
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

    def __init__(
        self,
        policy: str | type[TQCPolicy],
        env: GymEnv | str,
        learning_rate: float | Callable = 3e-4,
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
        n_steps: int = 1,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        top_quantiles_to_drop_per_net: int = 2,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        prioritized_replay: bool = False,
        per_alpha: float = 0.6,
        per_beta: float = 0.4,
        per_beta_final: float = 1.0,
        per_eps: float = 1e-6,
        critic_optimizer: str = "adam",
        critic_kfac_lr: float = 0.25,
        critic_kfac_kl_clip: float | None = 0.001,
        critic_kfac_damping: float = 0.01,
        critic_kfac_momentum: float = 0.9,
        critic_kfac_stat_decay: float = 0.95,
        critic_kfac_inverse_interval: int = 10,
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
        check_number(owner, "tau", tau, 0.0, 1.0)
        check_number(owner, "gamma", gamma, 0.0, 1.0)
        check_int(owner, "gradient_steps", gradient_steps, low=-1)
        check_int(owner, "n_steps", n_steps)
        check_int(owner, "target_update_interval", target_update_interval)
        check_int(owner, "top_quantiles_to_drop_per_net", top_quantiles_to_drop_per_net, low=0)
        n_quantiles = (policy_kwargs or {}).get("n_quantiles", 25)
        check_number(owner, "top_quantiles_to_drop_per_net", top_quantiles_to_drop_per_net, high=n_quantiles - 1)
        check_bool(owner, "prioritized_replay", prioritized_replay)
        check_choice(owner, "critic_optimizer", critic_optimizer, CRITIC_OPTIMIZERS)
        # K-FAC's own checks (same names without the prefix) run when the optimizer is built; these fail early.
        check_number(owner, "critic_kfac_lr", critic_kfac_lr, 0.0)
        check_number(owner, "critic_kfac_kl_clip", critic_kfac_kl_clip, 0.0, low_open=True, allow_none=True)
        check_number(owner, "critic_kfac_damping", critic_kfac_damping, 0.0, low_open=True)
        check_number(owner, "critic_kfac_momentum", critic_kfac_momentum, 0.0, 1.0, high_open=True)
        check_number(owner, "critic_kfac_stat_decay", critic_kfac_stat_decay, 0.0, 1.0, high_open=True)
        check_int(owner, "critic_kfac_inverse_interval", critic_kfac_inverse_interval)
        beta_schedule = per_beta_schedule(owner, per_beta, per_beta_final)  # validates both
        if env is not None:  # None while load() rebuilds the model
            env = maybe_make_env(env, verbose)
            if not isinstance(env.action_space, spaces.Box):
                raise ValueError(f"{owner} supports only Box action spaces, got {env.action_space}")

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
            n_steps=1,  # the replay buffer computes the n-step returns (sb3_natgrad.common.off_policy)
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            top_quantiles_to_drop_per_net=top_quantiles_to_drop_per_net,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
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
        self.prioritized_replay = prioritized_replay
        self.per_alpha = per_alpha
        self.per_beta = per_beta
        self.per_beta_final = per_beta_final
        self.per_eps = per_eps
        self.per_beta_schedule = beta_schedule
        self.critic_optimizer = critic_optimizer
        self.critic_kfac_lr = critic_kfac_lr
        self.critic_kfac_kl_clip = critic_kfac_kl_clip
        self.critic_kfac_damping = critic_kfac_damping
        self.critic_kfac_momentum = critic_kfac_momentum
        self.critic_kfac_stat_decay = critic_kfac_stat_decay
        self.critic_kfac_inverse_interval = critic_kfac_inverse_interval
        self._init_actors(n_actors, actor_sync_interval, ray_address, actor_kwargs)

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        with warnings.catch_warnings():
            if self.replay_buffer_kwargs.get("n_steps") == self.n_steps:
                # The buffer computes our n-step returns (replay_buffer_for): SB3's warning that n_steps is ignored
                # for a custom replay_buffer_class (self.n_steps is the user's n, not SB3's) does not apply.
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom")
            super()._setup_model()
        if self.critic_optimizer == "kfac":
            # Replaces the policy's Adam over the same parameters (without a features extractor shared with the actor,
            # which the actor's loss trains); every nn.Linear / nn.Conv2d among them gets Kronecker factors.
            critic_params = [p for group in self.critic.optimizer.param_groups for p in group["params"]]
            self.critic.optimizer = KFAC(
                self.critic,
                lr=self.critic_kfac_lr,
                params=critic_params,
                kl_clip=self.critic_kfac_kl_clip,
                damping=self.critic_kfac_damping,
                momentum=self.critic_kfac_momentum,
                stat_decay=self.critic_kfac_stat_decay,
                inverse_interval=self.critic_kfac_inverse_interval,
            )

    def learn(
        self: SelfTQC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "TQC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfTQC:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    # ------------------------------------------------------------------ CRITIC
    def _critic_forward(self, data: AnySamples) -> th.Tensor:
        """The critics' quantiles of the replayed actions, ``[B, C, N]``; with K-FAC, inside its recording context
        with the sampled Fisher loss backpropagated (statistics only: no ``.grad`` is written)."""
        optimizer = self.critic.optimizer
        if not isinstance(optimizer, KFAC):
            return self.critic(data.observations, data.actions)
        with optimizer.record_stats() as recording:
            current_quantiles = self.critic(data.observations, data.actions)  # [B, C, N]
            if recording:
                optimizer.fisher_backward(sampled_quantile_fisher_loss(current_quantiles))
        return current_quantiles

    @th.no_grad()
    def _target_quantiles(self, data: AnySamples, ent_coef: th.Tensor) -> th.Tensor:
        """The truncated mixture target (TQC Eq. 10, with the n-step return of the buffer): the ``C * N`` quantiles of
        the target critics at ``(s', a' ~ pi(s'))`` pooled and sorted, the ``d C`` largest dropped, the entropy term
        subtracted, then ``R + gamma^k (1 - done) (.)``. Draws ``a'`` (the only random operation). ``[B, 1, M]``."""
        # gamma^k (k rewards summed; gamma^n without an early end), or gamma for one-step buffers
        discounts = data.discounts if data.discounts is not None else self.gamma
        n_target_quantiles = self.critic.quantiles_total - self.top_quantiles_to_drop_per_net * self.critic.n_critics
        next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)  # [B, A], [B]
        next_quantiles = self.critic_target(data.next_observations, next_actions)  # [B, C, N]
        next_quantiles, _ = th.sort(next_quantiles.reshape(next_quantiles.shape[0], -1))  # [B, C * N]
        next_quantiles = next_quantiles[:, :n_target_quantiles]  # [B, M]
        target_quantiles = next_quantiles - ent_coef * next_log_prob.reshape(-1, 1)  # [B, M]
        target_quantiles = data.rewards + (1 - data.dones) * discounts * target_quantiles  # [B, M]
        return target_quantiles.unsqueeze(dim=1)  # [B, 1, M]

    def _critic_losses(self, data: AnySamples, target_quantiles: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
        """Contrib's quantile Huber loss; with prioritized samples, the importance-weighted mean of its per-sample
        values, which are returned too (the new priorities, ``[B]``, detached), else None."""
        elementwise = quantile_huber_elementwise(self._critic_forward(data), target_quantiles)  # [B, C, N, M]
        if not self.prioritized_replay:
            return elementwise.mean(), None  # contrib's quantile_huber_loss(..., sum_over_quantiles=False)
        per_sample = elementwise.mean(dim=(1, 2, 3))  # [B]
        return importance_weighted_mean(per_sample, data), per_sample.detach()

    # ------------------------------------------------------------------ TRAINING
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """Contrib's update, step for step and in the same random order, with the critic's loss importance-weighted
        (prioritized replay) and its optimizer possibly K-FAC. Logged values are read once, after the loop."""
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.actor.optimizer]
        if not isinstance(self.critic.optimizer, KFAC):  # K-FAC's step size is critic_kfac_lr, not the schedule's
            optimizers.append(self.critic.optimizer)
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        anneal_per_beta(self.replay_buffer, self.per_beta_schedule, self._current_progress_remaining)

        ent_coef_losses: list[th.Tensor] = []
        ent_coefs: list[th.Tensor] = []
        actor_losses: list[th.Tensor] = []
        critic_losses: list[th.Tensor] = []
        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            if self.use_sde:
                self.actor.reset_noise()
            actions_pi, log_prob = self.actor.action_log_prob(data.observations)  # [B, A], [B]
            log_prob = log_prob.reshape(-1, 1)  # [B, 1]

            # ENTROPY COEFFICIENT
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())  # [1]
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()  # type: ignore[operator]
                ent_coef_losses.append(ent_coef_loss.detach())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.reshape(()))

            # CRITIC
            critic_loss, priorities = self._critic_losses(data, self._target_quantiles(data, ent_coef))
            critic_losses.append(critic_loss.detach())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            if priorities is not None:
                update_priorities(self.replay_buffer, data, priorities)

            # ACTOR: maximise the mean of all quantiles minus the entropy penalty
            qf_pi = self.critic(data.observations, actions_pi).mean(dim=2).mean(dim=1, keepdim=True)  # [B, 1]
            actor_loss = (ent_coef * log_prob - qf_pi).mean()
            actor_losses.append(actor_loss.detach())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if gradient_steps == 0:
            return
        self.logger.record("train/ent_coef", th.stack(ent_coefs).mean().item())
        self.logger.record("train/actor_loss", th.stack(actor_losses).mean().item())
        self.logger.record("train/critic_loss", th.stack(critic_losses).mean().item())
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", th.stack(ent_coef_losses).mean().item())
        if isinstance(self.critic.optimizer, KFAC):
            for key, value in self.critic.optimizer.last_step_info.items():  # step_size, kl, fisher_norm, damping
                self.logger.record(f"train/critic_kfac_{key}", value)


__all__ = ["CRITIC_OPTIMIZERS", "TQC"]
