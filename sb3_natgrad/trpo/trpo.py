"""Trust Region Policy Optimization (TRPO), a drop-in superset of sb3-contrib's TRPO."""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, RolloutBufferSamples, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from torch import nn
from torch.nn import functional as F

from sb3_natgrad.common.cg import CGInfo, conjugate_gradient
from sb3_natgrad.common.fisher import (
    KL_REDUCTIONS,
    FisherVectorProduct,
    KLHessianVectorProduct,
    analytic_fisher_supported,
    detach_distribution,
    flatten,
    mean_kl,
    subsample,
)
from sb3_natgrad.common.fused import use_fused_adam
from sb3_natgrad.common.line_search import LineSearchResult, backtracking_line_search, natural_gradient_step
from sb3_natgrad.common.policies import actor_parameters, critic_parameters
from sb3_natgrad.common.validation import check_advantage_batch, check_bool, check_choice, check_int, check_number
from sb3_natgrad.trpo.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

SelfTRPO = TypeVar("SelfTRPO", bound="TRPO")

FISHER_MODES = ("analytic", "hessian")
CRITIC_MODES = ("adam", "trust_region")
#: Options of earlier versions that were removed, each with the value whose behaviour remains.
#: ``cg_preconditioner="kfac"`` helped only at 1-3 CG steps, below any tuned ``cg_max_steps``.
REMOVED_OPTIONS: dict[str, Any] = {"cg_preconditioner": None}


class TRPO(OnPolicyAlgorithm):
    """
    Trust Region Policy Optimization (TRPO).

    Paper: Schulman et al., 2015, "Trust Region Policy Optimization", https://arxiv.org/abs/1502.05477;
    the constrained value regression is from Schulman et al., 2016, "High-Dimensional Continuous Control
    Using Generalized Advantage Estimation", Sec. 5, https://arxiv.org/abs/1506.02438. The natural policy
    gradient variant (``line_search=False``) is Kakade, 2002, "A Natural Policy Gradient".

    Accepts every argument of ``sb3_contrib.TRPO`` with the same default and meaning, so rl-zoo's tuned
    ``trpo.yml`` works unchanged, and with ``fisher="hessian"`` one update gives the same parameters as
    sb3-contrib on the same rollout and seed. Differences and additions:

    - ``fisher="analytic"`` (default) computes Fisher-vector products from the distribution's closed-form
      Fisher (``sb3_natgrad.common.fisher``), a Jacobian-vector and a vector-Jacobian product each,
      instead of differentiating the KL twice; the search direction is the same up to round-off.
    - The actor's parameters come from the policy's module tree (``actor_parameters``, shared features
      extractor included), not from parameter names.
    - The critic never moves layers shared with the actor. (sb3-contrib achieves the same for SB3's
      policies by clearing the gradients of the actor's parameters before its Adam step; here the loss is
      differentiated with respect to the critic's own parameters only, which also skips the backward pass
      through the shared extractor.)
    - A CG breakdown (non-positive curvature, non-finite values) or a failed line search leaves the
      policy exactly as it was, and is logged.
    - The line search bounds the paper's ``KL(pi_old || pi_new)`` (Schulman et al. 2015, Eq. 12);
      sb3-contrib evaluates ``KL(pi_new || pi_old)``. Both have the same Hessian at ``theta_old`` (so the same
      search direction and closed-form step); they differ at third order in the step, i.e. only in which
      borderline steps the line search accepts.
    - The critic's Adam runs PyTorch's fused kernel (``fused=True``; same update rule, results equal up to
      rounding) unless ``policy_kwargs["optimizer_kwargs"]`` chooses the implementation (``fused`` or
      ``foreach``) or the optimizer is not Adam; its minibatches are sb3-contrib's (same permutations),
      indexing only observations and returns.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate for the value function (Adam critic), it can be a function
        of the current progress remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update
        (i.e. rollout buffer size is n_steps * n_envs where n_envs is number of environment copies running in parallel)
    :param batch_size: Minibatch size for the value function (Adam critic)
    :param gamma: Discount factor
    :param cg_max_steps: maximum number of steps in the Conjugate Gradient algorithm
    :param cg_damping: damping added to the Fisher (and Gauss-Newton) vector products
    :param line_search_shrinking_factor: step-size reduction factor for the line-search
        (i.e., ``theta_new = theta + alpha^i * step``)
    :param line_search_max_iter: maximum number of iteration for the backtracking line-search
    :param n_critic_updates: number of critic updates per policy update (epochs of minibatch Adam steps,
        or trust-region steps with ``critic="trust_region"``)
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
        instead of action noise exploration (default: False)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        Default: -1 (only sample at the beginning of the rollout)
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``, it will be automatically selected.
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param normalize_advantage: Whether to normalize or not the advantage
    :param target_kl: Target Kullback-Leibler divergence between updates (trust-region radius).
    :param sub_sampling_factor: Sub-sample the batch of the policy step to make computation faster
        (Schulman's thesis, p. 40-42)
    :param fisher: ``"analytic"``: closed-form Fisher of the action distribution (Gauss-Newton products,
        falls back to ``"hessian"`` for distributions without one); ``"hessian"``: double-backprop Hessian
        of the mean KL, as sb3-contrib
    :param line_search: backtracking line search (TRPO); ``False`` takes the closed-form step
        ``sqrt(2 target_kl / s^T F s) s`` unchecked (natural policy gradient), undone only if non-finite
    :param critic: ``"adam"``: minibatch Adam regression of the returns (sb3-contrib); ``"trust_region"``:
        constrained regression, each step minimizing the squared error subject to
        ``mean (V_new - V_old)^2 / (2 sigma^2) <= vf_target_kl`` (the KL between Gaussians ``N(V, sigma^2)``)
        with a Gauss-Newton conjugate-gradient step on the full batch and a backtracking line search on
        the loss
    :param vf_target_kl: trust-region radius of each critic step (``critic="trust_region"``)
    :param vf_sigma: ``sigma`` of the Gaussian value model; ``None``: ``sigma^2`` is the mean squared error
        of the current value function, as in the GAE paper (``critic="trust_region"``)
    :param kl_reduction: how the KL of factorized action distributions (Gaussian, gSDE, Bernoulli) is
        reduced over action dimensions: ``"mean"`` (sb3-contrib's ``kl_divergence(...).mean()``:
        ``target_kl`` bounds the average KL per action dimension) or ``"sum"`` (the KL of the joint action
        distribution, as in the paper). Categorical and MultiCategorical are the same under both.
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: the verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 2048,
        batch_size: int = 128,
        gamma: float = 0.99,
        cg_max_steps: int = 15,
        cg_damping: float = 0.1,
        line_search_shrinking_factor: float = 0.8,
        line_search_max_iter: int = 10,
        n_critic_updates: int = 10,
        gae_lambda: float = 0.95,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        normalize_advantage: bool = True,
        target_kl: float = 0.01,
        sub_sampling_factor: int = 1,
        fisher: str = "analytic",
        line_search: bool = True,
        critic: str = "adam",
        vf_target_kl: float = 0.01,
        vf_sigma: float | None = None,
        kl_reduction: str = "mean",
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=0.0,  # no entropy bonus in TRPO
            vf_coef=0.0,  # the value function is optimized separately
            max_grad_norm=0.0,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        )
        check_int("TRPO", "batch_size", batch_size)
        check_number("TRPO", "gamma", gamma, 0.0, 1.0)
        check_number("TRPO", "gae_lambda", gae_lambda, 0.0, 1.0)
        check_int("TRPO", "cg_max_steps", cg_max_steps)
        check_number("TRPO", "cg_damping", cg_damping, 0.0)
        check_number(
            "TRPO", "line_search_shrinking_factor", line_search_shrinking_factor, 0.0, 1.0, low_open=True, high_open=True
        )
        check_int("TRPO", "line_search_max_iter", line_search_max_iter)
        check_int("TRPO", "n_critic_updates", n_critic_updates, low=0)
        check_number("TRPO", "target_kl", target_kl, 0.0, low_open=True)
        check_int("TRPO", "sub_sampling_factor", sub_sampling_factor)
        check_choice("TRPO", "fisher", fisher, FISHER_MODES)
        check_bool("TRPO", "line_search", line_search)
        check_choice("TRPO", "critic", critic, CRITIC_MODES)
        check_number("TRPO", "vf_target_kl", vf_target_kl, 0.0, low_open=True)
        check_number("TRPO", "vf_sigma", vf_sigma, 0.0, low_open=True, allow_none=True)
        check_choice("TRPO", "kl_reduction", kl_reduction, KL_REDUCTIONS)
        check_bool("TRPO", "normalize_advantage", normalize_advantage)

        self.normalize_advantage = normalize_advantage
        if self.env is not None:
            buffer_size = self.env.num_envs * self.n_steps
            check_advantage_batch("TRPO", normalize_advantage, self.n_steps, self.env)
            if critic == "adam" and buffer_size % batch_size > 0:
                warnings.warn(
                    f"You have specified a mini-batch size of {batch_size}, but because the `RolloutBuffer` is of size "
                    f"`n_steps * n_envs = {buffer_size}`, after every {buffer_size // batch_size} untruncated mini-batches,"
                    f" there will be a truncated mini-batch of size {buffer_size % batch_size}\n"
                    f"We recommend using a `batch_size` that is a factor of `n_steps * n_envs`.\n"
                    f"Info: (n_steps={self.n_steps} and n_envs={self.env.num_envs})"
                )
        self.batch_size = batch_size
        self.cg_max_steps = cg_max_steps
        self.cg_damping = cg_damping
        self.line_search_shrinking_factor = line_search_shrinking_factor
        self.line_search_max_iter = line_search_max_iter
        self.target_kl = target_kl
        self.n_critic_updates = n_critic_updates
        self.sub_sampling_factor = sub_sampling_factor
        self.fisher = fisher
        self.line_search = line_search
        self.critic = critic
        self.vf_target_kl = vf_target_kl
        self.vf_sigma = vf_sigma
        self.kl_reduction = kl_reduction

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._forget_removed_options()
        super()._setup_model()
        # The critic's many small Adam steps dominate train() on small networks: same rule, fused kernel.
        use_fused_adam(self.policy)

    def _forget_removed_options(self) -> None:
        """Drop the :data:`REMOVED_OPTIONS` that ``load`` copied from a model saved by an earlier version (SB3's
        ``load`` sets every saved attribute), with a warning when the saved value is not the one that remains."""
        for name, remaining in REMOVED_OPTIONS.items():
            value = self.__dict__.pop(name, remaining)
            if value != remaining:
                warnings.warn(
                    f"TRPO: the option {name} was removed; this model was saved with {name}={value!r} and "
                    f"continues as with {name}={remaining!r}",
                    UserWarning,
                    stacklevel=3,
                )

    # ------------------------------------------------------------------ POLICY STEP
    def _old_distribution(self, distribution: Distribution, observations: PyTorchObs) -> Distribution:
        """pi_old: a detached copy of the current distribution (the policy overwrites its own on each call)."""
        try:
            return detach_distribution(distribution)
        except ValueError:  # unknown distribution type: recompute without graph, as sb3-contrib
            with th.no_grad():
                return copy.copy(self.policy.get_distribution(observations))

    def _policy_step(self, data: RolloutBufferSamples) -> tuple[LineSearchResult, CGInfo | None, float]:
        """One natural-gradient / trust-region step of the actor. Returns the step, CG diagnostics, old surrogate."""
        observations, old_log_prob = data.observations, data.old_log_prob
        actions = data.actions.long().flatten() if isinstance(self.action_space, spaces.Discrete) else data.actions
        advantages = data.advantages  # [N]
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        params = actor_parameters(self.policy)

        distribution = self.policy.get_distribution(observations)
        old_distribution = self._old_distribution(distribution, observations)
        # Surrogate L(theta) = E[pi_theta(a|s) / pi_old(a|s) A] (Schulman et al., 2015, Eq. 14)
        ratio = th.exp(distribution.log_prob(actions) - old_log_prob)  # [N]
        objective = (advantages * ratio).mean()
        grad = flatten(th.autograd.grad(objective, params, retain_graph=True, allow_unused=True, materialize_grads=True))

        fisher_product: FisherVectorProduct | KLHessianVectorProduct
        if self.fisher == "analytic" and analytic_fisher_supported(distribution):
            fisher_product = FisherVectorProduct.from_distribution(distribution, params, self.cg_damping, self.kl_reduction)
        else:
            kl = mean_kl(old_distribution, distribution, self.kl_reduction)
            fisher_product = KLHessianVectorProduct(kl, params, self.cg_damping)

        # s ~ F^-1 g (Appendix C). Started from small noise, as sb3-contrib: same iterates and RNG consumption.
        x0 = 1e-4 * th.randn_like(grad)
        direction, cg_info = conjugate_gradient(fisher_product, grad, max_iter=self.cg_max_steps, x0=x0)
        shs = direction.dot(fisher_product(direction))  # s^T F s (damped, as sb3-contrib)
        del fisher_product, distribution  # free the retained graphs
        old_objective = objective.detach()
        if cg_info.non_positive_curvature or not bool(th.isfinite(direction).all() & th.isfinite(old_objective)):
            return LineSearchResult(False, 0.0, 0, 0.0, 0.0, 0.0), cg_info, float(old_objective)

        def evaluate() -> tuple[th.Tensor, th.Tensor]:
            # Surrogate and KL from one forward pass at the current parameters.
            new_distribution = self.policy.get_distribution(observations)
            new_ratio = th.exp(new_distribution.log_prob(actions) - old_log_prob)
            return (advantages * new_ratio).mean(), mean_kl(old_distribution, new_distribution, self.kl_reduction)

        if self.line_search:
            result = backtracking_line_search(
                params,
                direction,
                shs,
                evaluate,
                old_objective,
                self.target_kl,
                self.line_search_shrinking_factor,
                self.line_search_max_iter,
            )
        else:
            result = natural_gradient_step(params, direction, shs, evaluate, old_objective, self.target_kl)
        return result, cg_info, float(old_objective)

    # ------------------------------------------------------------------ CRITIC STEP
    def _critic_adam(self, params: list[nn.Parameter]) -> list[th.Tensor]:
        """Minibatch Adam regression of the returns (sb3-contrib's critic), on the critic's parameters only.

        The minibatches are sb3-contrib's: one ``np.random.permutation`` of the flattened rollout per epoch
        (the global RNG use of ``RolloutBuffer.get``), cut into ``batch_size`` slices; only the observations
        and returns are indexed, from tensors converted once per update.
        """
        buffer = self.rollout_buffer
        assert buffer.generator_ready, "train() flattens the buffer (rollout_buffer.get) before the critic phase"
        n_samples = buffer.buffer_size * buffer.n_envs
        observations = obs_as_tensor(buffer.observations, self.device)  # [N, *obs_shape] (or a dict of them)
        returns = th.as_tensor(buffer.returns, device=self.device).flatten()  # [N]
        losses = []
        # Only the critic's parameters get gradients: Adam skips every other parameter (grad None).
        self.policy.optimizer.zero_grad(set_to_none=True)
        for _ in range(self.n_critic_updates):
            permutation = th.as_tensor(np.random.permutation(n_samples), device=self.device)
            for start in range(0, n_samples, self.batch_size):
                indices = permutation[start : start + self.batch_size]  # [B]
                if isinstance(observations, dict):
                    batch_obs: PyTorchObs = {key: obs[indices] for key, obs in observations.items()}
                else:
                    batch_obs = observations[indices]
                values = self.policy.predict_values(batch_obs).flatten()  # [B]
                value_loss = F.mse_loss(returns[indices], values)
                grads = th.autograd.grad(value_loss, params, allow_unused=True)
                for param, grad in zip(params, grads, strict=True):
                    param.grad = grad
                self.policy.optimizer.step()
                losses.append(value_loss.detach())
        self.policy.optimizer.zero_grad(set_to_none=True)
        return losses

    def _critic_trust_region(
        self, observations: PyTorchObs, returns: th.Tensor, params: list[nn.Parameter]
    ) -> tuple[list[th.Tensor], list[LineSearchResult]]:
        """Constrained value regression (GAE paper, Sec. 5): Gauss-Newton CG step, closed-form size, backtracking."""
        losses, results = [], []
        for _ in range(self.n_critic_updates):
            values = self.policy.predict_values(observations)  # [N, 1]
            value_loss = F.mse_loss(returns, values.flatten())
            losses.append(value_loss.detach())
            old_values = values.detach()
            # sigma^2: the fixed one, or the current mean squared error (GAE paper); floored against zero error.
            sigma_sq = self.vf_sigma**2 if self.vf_sigma is not None else max(float(value_loss.detach()), 1e-8)
            grad = flatten(th.autograd.grad(value_loss, params, retain_graph=True, allow_unused=True, materialize_grads=True))
            # G = (1/N) J^T J: Gauss-Newton matrix of the regression; the KL constraint's Hessian is G / sigma^2.
            gauss_newton = FisherVectorProduct([values], [lambda u: u], params, damping=self.cg_damping)
            direction, _ = conjugate_gradient(gauss_newton, -grad, max_iter=self.cg_max_steps)
            # Step size from the undamped quadratic model of the constraint: s^T G s / sigma^2 = ||J s||^2 / (N sigma^2)
            (j_direction,) = gauss_newton.jvp(direction)  # [N, 1]
            shs = j_direction.pow(2).mean() / sigma_sq
            del gauss_newton, values

            def evaluate(old_values: th.Tensor = old_values, sigma_sq: float = sigma_sq) -> tuple[th.Tensor, th.Tensor]:
                new_values = self.policy.predict_values(observations)  # [N, 1]
                kl = (new_values - old_values).pow(2).mean() / (2.0 * sigma_sq)
                return -F.mse_loss(returns, new_values.flatten()), kl

            results.append(
                backtracking_line_search(
                    params,
                    direction,
                    shs,
                    evaluate,
                    -value_loss.detach(),
                    self.vf_target_kl,
                    self.line_search_shrinking_factor,
                    self.line_search_max_iter,
                )
            )
        return losses, results

    def train(self) -> None:
        """Update policy using the currently gathered rollout buffer."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        # The whole rollout in one batch (the buffer shuffles it: same RNG use as sb3-contrib).
        full_data = next(iter(self.rollout_buffer.get(batch_size=None)))
        data = full_data
        if self.sub_sampling_factor > 1:
            k = self.sub_sampling_factor
            data = full_data._replace(
                observations=subsample(data.observations, k),  # type: ignore[arg-type]  # dict for DictRolloutBuffer
                actions=data.actions[::k],
                old_log_prob=data.old_log_prob[::k],
                advantages=data.advantages[::k],
            )

        # POLICY PHASE
        result, cg_info, old_objective = self._policy_step(data)

        # CRITIC PHASE: never moves the layers shared with the actor
        critic_params = critic_parameters(self.policy)
        vf_results: list[LineSearchResult] = []
        if self.critic == "adam":
            value_losses = self._critic_adam(critic_params)
        else:
            value_losses, vf_results = self._critic_trust_region(full_data.observations, full_data.returns, critic_params)

        self._n_updates += 1
        self._log(result, cg_info, old_objective, value_losses, vf_results)

    def _log(
        self,
        result: LineSearchResult,
        cg_info: CGInfo | None,
        old_objective: float,
        value_losses: list[th.Tensor],
        vf_results: list[LineSearchResult],
    ) -> None:
        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/policy_objective", old_objective + result.improvement)
        self.logger.record("train/surrogate_improvement", result.improvement)
        self.logger.record("train/kl_divergence_loss", result.kl)
        self.logger.record("train/is_line_search_success", float(result.accepted))
        self.logger.record("train/line_search_steps", result.n_steps)
        self.logger.record("train/step_fraction", result.step_fraction)
        if cg_info is not None:
            self.logger.record("train/cg_iterations", cg_info.iterations)
            self.logger.record("train/cg_residual", cg_info.residual_norm)
            self.logger.record("train/cg_breakdown", float(cg_info.non_positive_curvature))
        if value_losses:
            self.logger.record("train/value_loss", float(th.stack(value_losses).mean()))
        if vf_results:
            self.logger.record("train/vf_kl", float(np.mean([r.kl for r in vf_results])))
            self.logger.record("train/vf_line_search_success", float(np.mean([r.accepted for r in vf_results])))
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def learn(
        self: SelfTRPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "TRPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfTRPO:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
