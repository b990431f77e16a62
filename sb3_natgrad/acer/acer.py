"""ACER: actor-critic with experience replay (Wang et al. 2017, "Sample Efficient Actor-Critic with Experience
Replay", ICLR, arXiv:1611.01224).

Algorithm 1 of the paper on SB3's ``OnPolicyAlgorithm``: each iteration collects a segment of ``n_steps`` from
``n_envs`` environments with SB3's ``collect_rollouts`` (the policy hands the behaviour statistics μ to the
buffer), stores it in a segment replay (:class:`~sb3_natgrad.acer.buffer.ACERReplayBuffer`), makes one on-policy
update on it, then n ~ Poisson(``replay_ratio``) off-policy updates on segments drawn from the replay once
``replay_start`` transitions are stored. Each update:

- Q^ret by the Retrace recursion (Section 3.1, Eq. 5), c_i = λ min(1, rho_i); for Box actions
  c_i = λ min(1, rho_i^{1/d}) and Q^opc (c_i = 1) for the policy gradient (Section 5.1).
- the truncated importance weight min(c, rho_t) with the bias correction over all actions (discrete) or one
  action sampled from π (Box) (Section 3.2), plus ``ent_coef`` times the entropy;
- critic: ½ (Q^ret - Q(x_t, a_t))², and for Box the value target
  V^target = min(1, rho_t) (Q^ret - Q̃(x_t, a_t)) + V(x_t) (Section 5.1), weighted by ``q_coef``;
- efficient trust region (Section 3.3): the policy gradient g w.r.t. the statistics φ is replaced by
  z* = g - max(0, (kᵀg - δ)/‖k‖²) k, k = ∇_φ D_KL[f(·|φ_{θ_a}) ‖ f(·|φ_θ)], then backpropagated through the
  network; the average network θ_a follows θ with Polyak ``alpha``;
- gradient clipping at ``max_grad_norm``; one optimizer (RMSprop by default) for the whole network.

Peers read for the layout of the update (not copied): OpenAI baselines ``acer``, Stable-Baselines ``ACER``
(both discrete only).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_natgrad.acer.buffer import ACERReplayBuffer, ACERSegments
from sb3_natgrad.acer.functional import (
    continuous_retrace_targets,
    continuous_truncated_is_gain,
    retrace_targets,
    trace_coefficients,
    truncated_is_gain,
    trust_region_projection,
)
from sb3_natgrad.acer.policies import (
    ACERPolicy,
    CnnPolicy,
    MlpPolicy,
    MultiInputPolicy,
    entropy,
    kl_gradient,
    log_prob,
    sample,
    stats_dim,
)
from sb3_natgrad.common.validation import check_bool, check_int, check_number, check_rate

SelfACER = TypeVar("SelfACER", bound="ACER")


class ACER(OnPolicyAlgorithm):
    """Actor-critic with experience replay (Wang et al. 2017); see the module docstring.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or an :class:`ACERPolicy` class.
    :param env: environment (Discrete or Box actions).
    :param learning_rate: learning rate (or schedule).
    :param n_steps: k, steps per environment in each segment.
    :param gamma: discount gamma.
    :param ent_coef: entropy coefficient.
    :param q_coef: weight of the critic loss.
    :param max_grad_norm: gradient-norm clipping.
    :param buffer_size: replay capacity in transitions (``buffer_size // (n_steps * n_envs)`` segments).
    :param replay_ratio: r, mean of the Poisson-distributed number of off-policy updates per on-policy one
        (0: on-policy ACER).
    :param replay_start: transitions stored before off-policy updates begin.
    :param correction_term: c, the truncation constant of the importance weights.
    :param retrace_lambda: λ of the Retrace coefficients c_i = λ min(1, rho_i) (1 in the paper).
    :param trust_region: use the efficient trust region (False: plain gradient of the ACER objective).
    :param alpha: Polyak weight of the average policy network, θ_a ← alpha θ_a + (1 - alpha) θ.
    :param delta: δ, the trust-region radius.
    :param stats_window_size: episodes in the rollout/ logs' averages.
    :param tensorboard_log: tensorboard log folder.
    :param policy_kwargs: keyword arguments of the policy.
    :param verbose: verbosity.
    :param seed: random seed.
    :param device: torch device.
    :param _init_setup_model: build the network and the buffer now.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: ACERPolicy  # type: ignore[assignment]
    rollout_buffer: ACERReplayBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[ACERPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 7e-4,
        n_steps: int = 20,
        gamma: float = 0.99,
        ent_coef: float = 0.01,
        q_coef: float = 0.5,
        max_grad_norm: float = 10.0,
        buffer_size: int = 50_000,
        replay_ratio: float = 4.0,
        replay_start: int = 1_000,
        correction_term: float = 10.0,
        retrace_lambda: float = 1.0,
        trust_region: bool = True,
        alpha: float = 0.99,
        delta: float = 1.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        owner = "ACER"
        check_rate(owner, "learning_rate", learning_rate)
        check_int(owner, "n_steps", n_steps)
        check_number(owner, "gamma", gamma, 0.0, 1.0)
        check_number(owner, "ent_coef", ent_coef, 0.0)
        check_number(owner, "q_coef", q_coef, 0.0)
        check_number(owner, "max_grad_norm", max_grad_norm, 0.0, low_open=True)
        check_int(owner, "buffer_size", buffer_size)
        check_number(owner, "replay_ratio", replay_ratio, 0.0)
        check_int(owner, "replay_start", replay_start, low=0)
        check_number(owner, "correction_term", correction_term, 0.0, low_open=True)
        check_number(owner, "retrace_lambda", retrace_lambda, 0.0, 1.0)
        check_bool(owner, "trust_region", trust_region)
        check_number(owner, "alpha", alpha, 0.0, 1.0, high_open=True)
        check_number(owner, "delta", delta, 0.0, low_open=True)
        super().__init__(
            policy,  # type: ignore[arg-type]
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=1.0,  # unused: ACER's targets are Retrace's
            ent_coef=ent_coef,
            vf_coef=q_coef,
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=None,  # checked below, with a ValueError naming the space
        )
        action_space = getattr(self, "action_space", None)  # unset while load() builds the model without env
        if action_space is not None and not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"{owner} supports only Discrete and Box action spaces, got {action_space}")
        if getattr(self, "n_envs", None) is not None and buffer_size < n_steps * self.n_envs:
            raise ValueError(
                f"{owner}: buffer_size must be >= n_steps * n_envs = {n_steps * self.n_envs} (one segment), got {buffer_size}"
            )
        self.q_coef = q_coef
        self.buffer_size = buffer_size
        self.replay_ratio = replay_ratio
        self.replay_start = replay_start
        self.correction_term = correction_term
        self.retrace_lambda = retrace_lambda
        self.trust_region = trust_region
        self.alpha = alpha
        self.delta = delta
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # OnPolicyAlgorithm._setup_model would build a RolloutBuffer: ACER's buffer is its replay
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.rollout_buffer = ACERReplayBuffer(
            self.buffer_size,
            self.n_steps,
            self.observation_space,
            self.action_space,
            stats_dim(self.action_space),
            device=self.device,
            n_envs=self.n_envs,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)

    @property
    def replay_buffer(self) -> ACERReplayBuffer:
        """The segment replay (also SB3's ``rollout_buffer``: ``collect_rollouts`` writes into it)."""
        return self.rollout_buffer

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """SB3's collection loop, then the segment's final observation x_T closes it in the replay."""
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False  # unfinished segment: its slot stays unsampled
        self.rollout_buffer.finish_segment(self._last_obs, self._last_episode_starts)  # type: ignore[arg-type]
        return True

    def train(self) -> None:
        """One on-policy update on the fresh segment, then n ~ Poisson(``replay_ratio``) off-policy updates."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        # ON-POLICY UPDATE
        logs = [self._update(self.rollout_buffer.latest())]
        # OFF-POLICY UPDATES (Algorithm 1: n ← Poisson(r))
        n_replay = 0
        if self.replay_ratio > 0 and self.rollout_buffer.n_transitions() >= self.replay_start:
            n_replay = int(np.random.poisson(self.replay_ratio))
            for _ in range(n_replay):
                logs.append(self._update(self.rollout_buffer.sample(self.n_envs)))
        self._n_updates += 1 + n_replay
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/n_replay_updates", n_replay)
        self.logger.record("train/replay_transitions", self.rollout_buffer.n_transitions())
        for key in logs[0]:
            self.logger.record(f"train/{key}", float(np.mean([log[key] for log in logs])))

    def _update(self, batch: ACERSegments) -> dict[str, float]:
        """One ACER gradient step on a batch of segments ``[T, B]``; returns the logged quantities."""
        n_steps, n_seg = batch.rewards.shape  # T, B
        n_samples = n_steps * n_seg
        discrete = isinstance(self.action_space, spaces.Discrete)
        obs = _flatten_time(batch.observations)  # [(T + 1) B, ...]
        latent_flat, phi_flat = self.policy.statistics(obs)  # [(T + 1) B, latent], [(T + 1) B, K]
        latent = latent_flat.view(n_steps + 1, n_seg, -1)  # [T + 1, B, latent]
        phi = phi_flat.view(n_steps + 1, n_seg, -1)  # [T + 1, B, K]
        mu = batch.behaviour_stats  # [T, B, K]
        value = self.policy.value(latent, phi)  # V(x_t) [T + 1, B]

        if discrete:
            # DISCRETE (Section 3): Q(x, ·) for all actions, V = Σ π Q
            q_all = self.policy.q_values(latent[:-1])  # [T, B, A]
            actions = batch.actions.long()  # [T, B]
            q_taken = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [T, B]
            rho_all = phi[:-1].detach() / mu.clamp_min(1e-8)  # rho_t(a) = π(a|x_t) / μ(a|x_t) [T, B, A]
            rho = rho_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [T, B]
            c = trace_coefficients(rho, self.retrace_lambda)  # λ min(1, rho_t) [T, B]
            q_ret = retrace_targets(batch.rewards, batch.dones, q_taken.detach(), value.detach(), c, self.gamma)
            advantage_all = q_all.detach() - value[:-1].detach().unsqueeze(-1)  # [T, B, A]
            gain = truncated_is_gain(
                th.log(phi[:-1].clamp_min(1e-8)).reshape(n_samples, -1),
                phi[:-1].reshape(n_samples, -1),
                rho_all.reshape(n_samples, -1),
                actions.reshape(n_samples),
                (q_ret - value[:-1].detach()).reshape(n_samples),
                advantage_all.reshape(n_samples, -1),
                self.correction_term,
            )  # [T B]
            critic_loss = 0.5 * (q_ret - q_taken).pow(2).mean()
        else:
            # CONTINUOUS (Section 5): stochastic dueling network, Q^opc, d-th-root truncation
            actions = batch.actions  # [T, B, d]
            action_dim = actions.shape[-1]
            sampled = sample(phi[:-1].detach(), discrete=False)  # a'_t ~ π(·|x_t) [T, B, d]
            log_pi = log_prob(phi[:-1], actions, discrete=False)  # [T, B]
            log_pi_sampled = log_prob(phi[:-1], sampled, discrete=False)  # [T, B]
            rho = th.exp(log_pi.detach() - log_prob(mu, actions, discrete=False))  # [T, B]
            rho_sampled = th.exp(log_pi_sampled.detach() - log_prob(mu, sampled, discrete=False))  # [T, B]
            q_tilde = self.policy.sdn_q(latent[:-1], phi[:-1], th.stack([actions, sampled]))  # [2, T, B]
            q_taken, q_sampled = q_tilde[0], q_tilde[1]  # Q̃(x_t, a_t), Q̃(x_t, a'_t) [T, B]
            # Q^ret with c = λ min(1, rho^{1/d}); Q^opc with c = 1 [T, B]
            q_ret, q_opc = continuous_retrace_targets(
                batch.rewards, batch.dones, q_taken.detach(), value.detach(), rho, action_dim, self.gamma, self.retrace_lambda
            )
            v_now = value[:-1]  # [T, B]
            gain = continuous_truncated_is_gain(
                log_pi.reshape(n_samples),
                log_pi_sampled.reshape(n_samples),
                rho.reshape(n_samples),
                rho_sampled.reshape(n_samples),
                (q_opc - v_now.detach()).reshape(n_samples),
                (q_sampled.detach() - v_now.detach()).reshape(n_samples),
                self.correction_term,
            )  # [T B]
            v_target = th.clamp(rho, max=1.0) * (q_ret - q_taken.detach()) + v_now.detach()  # [T, B]
            critic_loss = 0.5 * (q_ret - q_taken).pow(2).mean() + 0.5 * (v_target - v_now).pow(2).mean()

        ent = entropy(phi[:-1], discrete).reshape(n_samples)  # [T B]
        objective = (gain + self.ent_coef * ent).sum()  # Σ over samples of the per-sample objective
        logs = {
            "policy_gain": float(gain.detach().mean()),
            "entropy": float(ent.detach().mean()),
            "critic_loss": float(critic_loss.detach()),
            "rho_mean": float(rho.detach().mean()),
            "q_ret_mean": float(q_ret.detach().mean()),
        }
        if self.trust_region:
            # EFFICIENT TRUST REGION (Section 3.3), per state, in the space of the statistics φ
            g = th.autograd.grad(objective, phi_flat, retain_graph=True)[0][:n_samples]  # ĝ [T B, K]
            with th.no_grad():
                _, phi_average = self.policy.statistics(_flatten_time(batch.observations, n_steps), average=True)
            kl, k = kl_gradient(phi_average, phi_flat[:n_samples], discrete)  # [T B], [T B, K]
            z, scale = trust_region_projection(g, k, self.delta)
            # ∇_θ of Σ φ · (-z*) / N is -(1/N) Σ z*ᵀ ∂φ/∂θ: backprop z* through the network
            policy_loss = -(phi_flat[:n_samples] * z.detach()).sum() / n_samples
            logs.update(
                kl=float(kl.detach().mean()),
                k_norm=float(k.norm(dim=1).mean()),
                g_norm=float(g.norm(dim=1).mean()),
                k_dot_g=float((k * g).sum(dim=1).mean()),
                trust_region_active=float((scale > 0).float().mean()),
            )
        else:
            policy_loss = -objective / n_samples
        loss = policy_loss + self.q_coef * critic_loss

        self.policy.optimizer.zero_grad()
        loss.backward()
        grad_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        self.policy.update_average(self.alpha)
        logs.update(loss=float(loss.detach()), grad_norm=float(grad_norm))
        return logs

    def save_replay_buffer(self, path: str) -> None:
        """Pickle the segment replay (it is left out of the model zip, as in SB3's off-policy algorithms)."""
        save_to_pkl(path, self.rollout_buffer, self.verbose)

    def load_replay_buffer(self, path: str) -> None:
        """Load a replay saved by :meth:`save_replay_buffer`; its ``n_steps`` and ``n_envs`` must match."""
        buffer = load_from_pkl(path, self.verbose)
        if not isinstance(buffer, ACERReplayBuffer):
            raise ValueError(f"ACER: {path} holds a {type(buffer).__name__}, not an ACERReplayBuffer")
        if (buffer.n_steps, buffer.n_envs) != (self.n_steps, self.n_envs):
            raise ValueError(
                f"ACER: the replay has n_steps={buffer.n_steps}, n_envs={buffer.n_envs}; "
                f"the model n_steps={self.n_steps}, n_envs={self.n_envs}"
            )
        buffer.device = self.device
        self.rollout_buffer = buffer

    def learn(
        self: SelfACER,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 100,
        tb_log_name: str = "ACER",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfACER:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


def _flatten_time(observations: th.Tensor | dict[str, th.Tensor], n_rows: int | None = None) -> Any:
    """``[T + 1, B, ...]`` → ``[(T + 1) B, ...]`` (only the first ``n_rows`` time steps with ``n_rows``)."""
    if isinstance(observations, dict):
        return {key: _flatten_time(value, n_rows) for key, value in observations.items()}
    if n_rows is not None:
        observations = observations[:n_rows]
    return observations.reshape(-1, *observations.shape[2:])
