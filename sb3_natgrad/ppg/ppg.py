"""PPG: Phasic Policy Gradient.

Cobbe, Hilton, Klimov & Schulman (2021), "Phasic Policy Gradient", ICML (https://arxiv.org/abs/2009.04416).
Training alternates two phases (Algorithm 1):

- **Policy phase**, once per rollout, for ``n_policy_iterations`` (``N_pi``) rollouts: PPO's clipped objective
  ``L^clip`` (with the entropy bonus) for ``n_policy_epochs`` (``E_pi``) epochs and the value loss ``L^value`` for
  ``n_value_epochs`` (``E_V``) epochs.
- **Auxiliary phase**, after every ``N_pi`` rollouts: ``n_aux_epochs`` (``E_aux``) epochs over all observations of
  those rollouts of ``L^joint = L^aux + beta_clone * E_t[KL(pi_old(.|s_t) || pi_theta(.|s_t))]`` (§3, eq. 2), with
  ``L^aux = 0.5 E_t[(V_theta_pi(s_t) - V_t^targ)^2]`` on the policy network's auxiliary head and ``pi_old`` the
  policy frozen at the start of the phase, plus ``L^value`` on the value network ("we also take this opportunity
  to perform additional training on the value network", §3), in one loss and one optimizer as the reference code.

Why a subclass of SB3's ``PPO``: the policy phase *is* PPO's update, and SB3 keeps the clipped loss, the value
clipping, advantage normalisation, ``target_kl`` early stopping, gradient clipping, the schedules and PPO's logged
keys inside ``PPO.train()``, with no smaller function to call. Calling ``super().train()`` reuses all of it exactly
(rollouts, GAE, gSDE, callbacks, saving come from ``OnPolicyAlgorithm``); PPG adds the auxiliary head
(:class:`~sb3_natgrad.ppg.policies.PPGPolicy`), the buffer (:class:`~sb3_natgrad.ppg.aux_buffer.AuxiliaryBuffer`)
and the auxiliary phase, and overrides ``train()`` to run the phases.

Implementation details:

1. ``E_pi == E_V`` (the default and the paper's 1 / 1): one joint PPO update (``PPO.train()`` with
   ``n_epochs = E_pi``; the value term comes from the value network in ``"dual"``), as the reference code's
   ``train_pi_and_vf``. ``E_pi != E_V``: as the reference, ``E_V`` epochs of ``vf_coef * L^value`` first with an
   optimizer of their own (``vf_optimizer``), then ``E_pi`` epochs of PPO with the value term switched off
   (``vf_coef = 0`` during that call) and the policy optimizer restricted to the policy's parameters. ``target_kl``
   then stops the policy epochs only; in the joint update it stops both, as in SB3's PPO.
2. Auxiliary phase optimizer: an optimizer of its own over every parameter (the reference's ``aux_state``, kept
   across phases), with the ``aux_learning_rate`` schedule (default: ``learning_rate``'s), gradient clipping by
   ``max_grad_norm`` and ``aux_batch_size`` samples per minibatch. Value targets are the rollouts' returns.
3. ``pi_old``: a second policy object, built once with the model and loaded with the weights at the start of every
   auxiliary phase (no per-sample storage, any action distribution and gSDE alike); its distribution is recomputed
   on each minibatch without gradients. It costs one copy of the networks and one extra forward pass per auxiliary
   minibatch.
4. KL of the clone term: :func:`clone_kl`, the KL of the joint action distribution (summed over the independent
   action dimensions of MultiDiscrete, MultiBinary and Box actions).
5. Memory: the auxiliary buffer holds ``N_pi * n_steps * n_envs`` observations and value targets and no more
   (bound in :mod:`sb3_natgrad.ppg.aux_buffer`), preallocated in host memory at construction: e.g. CartPole-v1 with
   ``hyperparams/ppg.yml`` (8 envs x 32 steps, ``N_pi = 16``): 4096 x 20 B = 80 KiB; Atari (84x84x4 ``uint8``,
   8 x 128, ``N_pi = 32``) 32768 x 28228 B = 0.86 GiB.
6. Phase position and saving: the number of rollouts since the last auxiliary phase (``rollouts_since_aux``) and
   the count of auxiliary phases (``n_aux_phases``) are saved with the model and survive ``learn()`` calls
   (``reset_num_timesteps`` included); the auxiliary buffer is *not* saved. A model saved or loaded in the middle of
   a cycle resumes the count, and its next auxiliary phase runs after the remaining rollouts on the rollouts it has
   (those collected since loading, ``train/aux_samples`` logs how many). A model saved right after an auxiliary
   phase (every ``N_pi`` rollouts) resumes exactly.
7. Logged: PPO's keys for the policy phase; ``train/aux_loss`` (``L^aux``), ``train/clone_kl`` (the KL, unscaled),
   ``train/aux_value_loss`` (``L^value`` on the value network) and ``train/aux_joint_loss``, each averaged over every
   minibatch of the phase, ``train/aux_learning_rate`` and ``train/aux_samples`` after an auxiliary phase;
   ``train/n_aux_phases`` and ``train/rollouts_since_aux`` after every update.

Defaults. The paper's Procgen values are ``N_pi = 32``, ``E_pi = E_V = 1``, ``E_aux = 6``, ``beta_clone = 1`` with
16384-sample rollouts in 8 minibatches. Here the policy phase keeps SB3 PPO's defaults for small environments
(``n_steps=2048``, ``batch_size=64``, ``n_epochs=10``, so ``E_pi = E_V = 10``): at 64-sample minibatches one epoch
is far less optimisation than the paper's, and with ``E_pi = E_V = 1`` PPG would start from a weaker policy phase
than the PPO it is compared with. ``N_pi = 8`` (an auxiliary phase every 16384 steps per environment, ~61 per
million steps, a 16384 x n_envs-sample buffer), ``E_aux = 6``, ``beta_clone = 1`` and ``aux_batch_size = 256``
(aux minibatches cost one extra no-grad forward pass, so larger ones keep the phase's wall clock small; 64 x 6
epochs x 16384 samples per 8 rollouts would double PPO's updates). ``hyperparams/ppg.yml`` holds tuned-from-PPO
entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution, kl_divergence
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate
from torch.nn import functional as F

from sb3_natgrad.common.policies import actor_parameters
from sb3_natgrad.common.validation import (
    check_advantage_batch,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_rate,
)
from sb3_natgrad.ppg.aux_buffer import AuxiliaryBuffer
from sb3_natgrad.ppg.policies import ARCHS, CnnPolicy, MlpPolicy, MultiInputPolicy, PPGPolicy

SelfPPG = TypeVar("SelfPPG", bound="PPG")


def clone_kl(old: Distribution, new: Distribution) -> th.Tensor:
    """Per-state ``KL(old || new)`` of the joint action distribution, the clone term of ``L^joint`` (detail 4).

    :param old: the frozen policy's distribution (no gradient needed).
    :param new: the current policy's distribution, same type and batch.
    :return: ``[B]`` KL divergences; factorised distributions are summed over action dimensions.
    """
    kl = kl_divergence(old, new)  # [B] (Categorical, MultiCategorical) or [B, d] (Bernoulli, Gaussian, gSDE)
    return kl.sum(dim=-1) if kl.dim() > 1 else kl


class PPG(PPO):
    """Phasic Policy Gradient (Cobbe et al. 2021); see the module docstring.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a :class:`PPGPolicy` subclass.
    :param env: the environment (or its id).
    :param learning_rate: learning rate of the policy phase, a float or a schedule of the remaining progress.
    :param n_steps: steps per environment per rollout.
    :param batch_size: minibatch size of the policy phase.
    :param n_policy_iterations: ``N_pi``, rollouts (policy-phase updates) per auxiliary phase.
    :param n_policy_epochs: ``E_pi``, epochs of the clipped objective per rollout.
    :param n_value_epochs: ``E_V``, epochs of the value loss per rollout (detail 1).
    :param n_aux_epochs: ``E_aux``, epochs over the auxiliary buffer per auxiliary phase.
    :param beta_clone: ``beta_clone``, weight of ``KL(pi_old || pi)`` in the auxiliary phase.
    :param aux_batch_size: minibatch size of the auxiliary phase.
    :param aux_learning_rate: learning rate of the auxiliary phase (float or schedule; ``None``: ``learning_rate``).
    :param arch: ``"dual"`` (separate value network, the paper's default), ``"shared"`` or ``"detach"``.
    :param gamma: discount factor.
    :param gae_lambda: GAE lambda.
    :param clip_range: PPO clip range (float or schedule).
    :param clip_range_vf: value clipping in the policy phase (float or schedule; ``None``: off).
    :param normalize_advantage: standardise advantages per minibatch (as SB3's PPO).
    :param ent_coef: entropy coefficient.
    :param vf_coef: value loss coefficient of the policy phase.
    :param max_grad_norm: gradient-norm clipping in both phases.
    :param use_sde: generalized State-Dependent Exploration.
    :param sde_sample_freq: gSDE noise resampling frequency (-1: at rollout start only).
    :param rollout_buffer_class: rollout buffer class (default: ``RolloutBuffer`` / ``DictRolloutBuffer``).
    :param rollout_buffer_kwargs: its keyword arguments.
    :param target_kl: stop the policy epochs of a rollout when the approximate KL exceeds ``1.5 target_kl``.
    :param stats_window_size: episodes averaged in the rollout logs.
    :param tensorboard_log: tensorboard log folder.
    :param policy_kwargs: policy keyword arguments (``arch`` is given as PPG's own argument).
    :param verbose: verbosity level.
    :param seed: random seed.
    :param device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    :param _init_setup_model: build the networks at construction.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: PPGPolicy
    #: pi_old of the clone term (detail 3)
    policy_old: PPGPolicy
    aux_optimizer: th.optim.Optimizer
    vf_optimizer: th.optim.Optimizer | None

    def __init__(
        self,
        policy: str | type[PPGPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_policy_iterations: int = 8,
        n_policy_epochs: int = 10,
        n_value_epochs: int = 10,
        n_aux_epochs: int = 6,
        beta_clone: float = 1.0,
        aux_batch_size: int = 256,
        aux_learning_rate: float | Schedule | None = None,
        arch: str = "dual",
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        # Checked before PPO's constructor, whose asserts would otherwise come first
        check_rate("PPG", "learning_rate", learning_rate)
        check_rate("PPG", "aux_learning_rate", aux_learning_rate, allow_none=True)
        check_int("PPG", "n_steps", n_steps)
        check_bool("PPG", "normalize_advantage", normalize_advantage)
        check_int("PPG", "batch_size", batch_size, low=2 if normalize_advantage else 1)
        check_int("PPG", "n_policy_iterations", n_policy_iterations)
        check_int("PPG", "n_policy_epochs", n_policy_epochs)
        check_int("PPG", "n_value_epochs", n_value_epochs)
        check_int("PPG", "n_aux_epochs", n_aux_epochs)
        check_number("PPG", "beta_clone", beta_clone, 0.0)
        check_int("PPG", "aux_batch_size", aux_batch_size)
        check_choice("PPG", "arch", arch, ARCHS)
        check_number("PPG", "gamma", gamma, 0.0, 1.0)
        check_number("PPG", "gae_lambda", gae_lambda, 0.0, 1.0)
        check_rate("PPG", "clip_range", clip_range)
        check_rate("PPG", "clip_range_vf", clip_range_vf, allow_none=True)
        check_number("PPG", "ent_coef", ent_coef, 0.0)
        check_number("PPG", "vf_coef", vf_coef, 0.0)
        check_number("PPG", "max_grad_norm", max_grad_norm, 0.0, low_open=True)
        check_number("PPG", "target_kl", target_kl, 0.0, low_open=True, allow_none=True)
        if policy_kwargs is not None and "arch" in policy_kwargs:
            raise ValueError(f"PPG: give arch as PPG's argument, not in policy_kwargs (got {policy_kwargs['arch']!r})")

        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_policy_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=False,  # set below: PPO's assert on n_steps * n_envs is a ValueError here
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        check_advantage_batch("PPG", normalize_advantage, n_steps, self.env)
        self.normalize_advantage = normalize_advantage
        self.policy_kwargs = {**self.policy_kwargs, "arch": arch}  # a copy: the caller's dict may be reused
        self.n_policy_iterations = n_policy_iterations
        self.n_policy_epochs = n_policy_epochs  # == PPO's n_epochs
        self.n_value_epochs = n_value_epochs
        self.n_aux_epochs = n_aux_epochs
        self.beta_clone = beta_clone
        self.aux_batch_size = aux_batch_size
        self.aux_learning_rate = aux_learning_rate
        self.arch = arch
        # Phase position (detail 6): saved with the model, kept across learn() calls
        self.rollouts_since_aux = 0
        self.n_aux_phases = 0

        if _init_setup_model:
            self._setup_model()

    @property
    def separate_value_epochs(self) -> bool:
        """Whether the value loss has epochs of its own in the policy phase (``E_pi != E_V``, detail 1)."""
        return self.n_policy_epochs != self.n_value_epochs

    def _setup_model(self) -> None:
        super()._setup_model()
        policy = self.policy
        self.aux_lr_schedule = self.lr_schedule if self.aux_learning_rate is None else FloatSchedule(self.aux_learning_rate)
        make_optimizer: Any = policy.optimizer_class  # a torch optimizer class (SB3 types it as Optimizer)
        self.vf_optimizer = None
        if self.separate_value_epochs:  # detail 1: the policy epochs move the policy only
            policy.optimizer = make_optimizer(actor_parameters(policy), lr=self.lr_schedule(1), **policy.optimizer_kwargs)
            self.vf_optimizer = make_optimizer(
                policy.policy_phase_parameters(), lr=self.lr_schedule(1), **policy.optimizer_kwargs
            )
        self.aux_optimizer = make_optimizer(policy.parameters(), lr=self.aux_lr_schedule(1), **policy.optimizer_kwargs)
        # pi_old of the clone term (detail 3): built here, so that its initialisation does not consume the random
        # generator in the middle of training
        policy_old = self.policy_class(
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self.policy_kwargs
        )
        assert isinstance(policy_old, PPGPolicy)
        self.policy_old = policy_old.to(self.device)
        self.policy_old.requires_grad_(False)
        self.policy_old.set_training_mode(False)
        self.aux_buffer = AuxiliaryBuffer(self.observation_space, self.n_policy_iterations, self.n_steps, self.n_envs)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer", "aux_optimizer"]
        if self.vf_optimizer is not None:
            state_dicts.append("vf_optimizer")
        return state_dicts, []

    def _excluded_save_params(self) -> list[str]:
        # The auxiliary buffer is not saved (detail 6); pi_old is rebuilt and reloaded at every auxiliary phase
        return [*super()._excluded_save_params(), "aux_buffer", "policy_old"]

    def train(self) -> None:
        """The policy phase on the current rollout, then the auxiliary phase when ``N_pi`` rollouts are done."""
        # POLICY PHASE
        self.aux_buffer.add(self.rollout_buffer)
        if self.separate_value_epochs:
            self._train_value_function()
            with self._without_value_loss():
                super().train()
        else:
            super().train()  # joint PPO update, n_epochs = E_pi = E_V
        self.rollouts_since_aux += 1

        if self.rollouts_since_aux >= self.n_policy_iterations:
            # AUXILIARY PHASE
            self._auxiliary_phase()
            self.rollouts_since_aux = 0
        self.logger.record("train/n_aux_phases", self.n_aux_phases)
        self.logger.record("train/rollouts_since_aux", self.rollouts_since_aux)

    @contextmanager
    def _without_value_loss(self) -> Iterator[None]:
        """``vf_coef = 0`` for one ``PPO.train()`` call: its loss is then ``L^clip`` and the entropy bonus only."""
        vf_coef, self.vf_coef = self.vf_coef, 0.0
        try:
            yield
        finally:
            self.vf_coef = vf_coef

    def _train_value_function(self) -> None:
        """``E_V`` epochs of ``vf_coef * L^value`` on the rollout (detail 1), with PPO's value clipping if set."""
        assert self.vf_optimizer is not None
        lr = self.lr_schedule(self._current_progress_remaining)
        update_learning_rate(self.vf_optimizer, lr)
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        for _ in range(self.n_value_epochs):
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                values = self.policy.predict_values(rollout_data.observations).flatten()  # [B]
                if clip_range_vf is not None:
                    values = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = self.vf_coef * F.mse_loss(rollout_data.returns, values)
                self.vf_optimizer.zero_grad()
                value_loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.policy_phase_parameters(), self.max_grad_norm)
                self.vf_optimizer.step()
        self.vf_optimizer.zero_grad()  # no stale gradient in PPO.train()'s clipping norm

    def _auxiliary_phase(self) -> None:
        """``E_aux`` epochs of ``L^joint`` plus the value network's loss over the auxiliary buffer (details 2-4)."""
        policy = self.policy
        policy.set_training_mode(True)
        aux_lr = self.aux_lr_schedule(self._current_progress_remaining)
        update_learning_rate(self.aux_optimizer, aux_lr)
        # pi_old: the policy at the start of the phase
        self.policy_old.load_state_dict(policy.state_dict())
        aux_losses, clone_kls, value_losses, joint_losses = [], [], [], []
        for _ in range(self.n_aux_epochs):
            for obs, value_targets in self.aux_buffer.minibatches(self.aux_batch_size, self.device):
                with th.no_grad():
                    old_distribution = self.policy_old.get_distribution(obs)
                distribution, aux_values, values = policy.forward_aux(obs)  # dist, [B], [B]
                aux_loss = 0.5 * F.mse_loss(aux_values, value_targets)  # L^aux on V_theta_pi
                kl = clone_kl(old_distribution, distribution).mean()  # E_t[KL(pi_old || pi_theta)]
                value_loss = 0.5 * F.mse_loss(values, value_targets)  # extra training of V_theta_V
                joint_loss = aux_loss + self.beta_clone * kl + value_loss  # L^joint + L^value
                self.aux_optimizer.zero_grad()
                joint_loss.backward()
                th.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
                self.aux_optimizer.step()
                aux_losses.append(aux_loss.item())
                clone_kls.append(kl.item())
                value_losses.append(value_loss.item())
                joint_losses.append(joint_loss.item())
        self.aux_optimizer.zero_grad()  # no stale gradient in PPO.train()'s clipping norm
        self.n_aux_phases += 1
        self.logger.record("train/aux_loss", float(np.mean(aux_losses)))
        self.logger.record("train/clone_kl", float(np.mean(clone_kls)))
        self.logger.record("train/aux_value_loss", float(np.mean(value_losses)))
        self.logger.record("train/aux_joint_loss", float(np.mean(joint_losses)))
        self.logger.record("train/aux_learning_rate", aux_lr)
        self.logger.record("train/aux_samples", self.aux_buffer.size)
        self.aux_buffer.clear()

    def learn(
        self: SelfPPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPPG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
