"""ACKTR: actor-critic using a Kronecker-factored trust region.

Wu, Mansimov, Liao, Grosse & Ba (2017), "Scalable trust-region method for deep reinforcement learning
using Kronecker-factored approximation" (https://arxiv.org/abs/1708.05144). A2C's synchronous rollouts
and loss, optimized with K-FAC (Martens & Grosse 2015; Grosse & Martens 2016 for convolutions) and the
trust-region step size ``eta = min(eta_max, sqrt(2 delta / (dtheta^T F dtheta)))`` (§3.2), see
:class:`sb3_natgrad.optim.KFAC`.

Implementation details (each marked in the code):

1. Fisher of the actor: ``-log pi(a~ | s)`` with ``a~`` *sampled from the current policy* (§3.1), not
   the rollout actions (that would be the empirical Fisher).
2. Fisher of the critic (Gauss-Newton): the value output is read as ``N(v; V(s), 1)``; the sampled loss
   is ``0.5 (V(s) - v~)^2`` with ``v~ = V(s).detach() + N(0, 1)``, whose gradient is the score.
3. Shared trunk (e.g. ``CnnPolicy``): one K-FAC optimizer with the Fisher of
   ``p(a, v | s) = pi(a | s) N(v; V(s), 1)``; the critic term of the sampled loss is weighted by
   ``vf_fisher_coef`` (Fisher ``F_pi + vf_fisher_coef^2 F_v``). Baselines' loss has no 0.5, so its
   ``vf_fisher_coef=1`` corresponds to ``vf_fisher_coef=2`` here.
4. Separate networks (``MlpPolicy``: no shared parameters): two K-FAC optimizers with their own
   ``eta_max`` / ``delta`` / damping / weight decay (``vf_*``), as in the paper's MuJoCo code, whose
   critic uses ELU (``vf_activation_fn="elu"``) and weight decay (``vf_weight_decay``).
5. The statistics and the losses come from one forward pass; the Fisher backward requests gradients of
   the layer outputs only (:func:`sb3_natgrad.optim.fisher_backward`), then the A2C loss is backpropagated.
   With ``stats_batch_size=m`` smaller than the rollout, the statistics are recorded instead on ``m``
   samples drawn at random without replacement, by a forward pass of their own (as TF-KFAC's
   ``subsample_inputs``): the Fisher backward and the factors cost O(m) instead of O(batch), for one extra
   forward pass of ``m`` samples.
6. ``target_kl`` (off by default): the paper's MuJoCo code (baselines ``acktr_cont``, ``desired_kl=0.002``)
   adapts the actor's ``eta_max`` from the measured mean KL between the policies before and after each update:
   times 1.5 when it is below ``target_kl / 2``, divided by 1.5 when above ``2 target_kl``, kept within
   ``[1e-8, 1]``. Here the adapted factor multiplies the ``learning_rate`` schedule; it costs one actor forward
   pass per update. With ``kl_batch_size=k`` the KL is measured on ``k`` samples of the rollout drawn at random
   without replacement (an unbiased estimate of the same mean, whose forward pass costs O(k) instead of O(batch)).
   Its code also standardises the advantages over its ~2500-sample batch (``normalize_advantage``).
7. ``max_grad_norm`` (off by default) clips the raw gradient before preconditioning. With an active
   trust region the step does not depend on the gradient's scale; when ``eta = eta_max`` clipping
   shrinks the natural-gradient step, and since the critic's gradient dominates the joint norm it
   throttles both networks (on CartPole-v1 ``max_grad_norm=0.5`` kept the critic from learning).
8. ``stats_replay`` (off by default): with ``stats_interval=k > 1`` the factors are recorded every ``k`` updates on
   the observations (and, for the unused log-probabilities, actions) of the ``k`` rollouts since the last recording,
   the current one included, instead of the current rollout alone (:class:`~sb3_natgrad.acktr.unrecorded.UnrecordedRollouts`):
   every sample enters the statistics once, as with ``stats_interval=1``, with actions sampled from the policy at
   recording time, so the factors keep the sample count of ``stats_interval=1``. A recording on ``k`` rollouts costs
   more than one on a single rollout (little on 5-sample rollouts, more on tens of samples); ``stats_batch_size`` then
   draws from the pooled rollouts and bounds that cost. At A2C's batches of 5-64 samples the README recommends
   ``stats_interval=6, stat_decay=0.94, stats_replay=True, stats_batch_size=128, inverse_interval=12`` (the acktr
   benchmark's ``ACKTR replay/6 (128)``); with 64 samples drawn from LunarLander's 240 the returns fell.
9. ``damping_mode``: the paper's code (OpenAI baselines ``acktr/kfac.py``, its default ``factored_damping=False``)
   inverts ``A (x) G + lambda I`` exactly, in the eigenbasis of the factors (``"eigen"``); Martens & Grosse's
   factored Tikhonov damping (``"factored"``) inverts ``(A + pi sqrt(lambda) I) (x) (G + sqrt(lambda) / pi I)``, which
   also damps by the cross terms ``sqrt(lambda) (pi I (x) G + A (x) I / pi)``: more in the directions where one factor
   is large. At the same ``lambda`` the eigen form damps less, and in 3-seed probes at A2C's batches it did worse
   (docs/algorithms/acktr.md, "Damping"), so ``"factored"`` is the default. Baselines also starts with ``cold_iter``
   plain momentum-SGD updates, which cover the time before its asynchronous eigendecomposition delivers; here the
   inverses are computed synchronously from the first recorded statistics and K-FAC steps from the first update.
10. The critic's momentum (``vf_momentum``, separate mode) is 0 by default; the actor (or joint) optimizer keeps
    baselines' 0.9. With ``(1 - m)`` normalisation, heavy-ball momentum on a critic step that is a fraction ``eta`` of
    the Gauss-Newton step behaves, on the quadratic value loss, as ``x_{t+1} = (1 + m - (1 - m) eta) x_t - m x_{t-1}``:
    at ``m = 0.9, eta = 0.25`` its roots are complex with modulus ``sqrt(0.9) = 0.95``, so the value error rings and
    decays by 5% per update, where without momentum it decays by 25% and does not overshoot. The n-step targets
    bootstrap from that value, so the ringing feeds itself, and a batch whose advantages all share a sign reinforces
    whatever was sampled: on MountainCar-v0 at A2C's 16 x 5 batch the batch-mean advantage swung between +2.3 and -2.6
    and the policy's entropy fell from 1.10 to 0.001 within 100 updates (docs/algorithms/acktr.md, "Where the
    defaults lose"). A model saved before ``vf_momentum`` existed keeps the momentum its critic was trained with.
11. ``ent_coef=None`` (default) is 0 for ``Box`` actions and 0.01 for discrete ones. Under the natural gradient the
    entropy bonus moves each log-std by ``eta * ent_coef / F`` per update with ``F = 2`` the Fisher of a log-std: a fixed
    push however small the batch and whatever the advantages say. A Gaussian's entropy is unbounded, and once the
    actions saturate at the bounds the returns stop pushing back: on HalfCheetah-v5 at A2C's 1 env x 5 steps the mean
    log-std rose from 0 to 4.2 in 40k steps and to 28-40 by 150k-200k, where ``sigma^2`` overflows float32 and K-FAC
    refused the non-finite gradient (6 runs of the ``acktr_broad`` suite). Without the bonus it
    fell to -0.26 over the same 40k steps (docs/algorithms/acktr.md, "Where the defaults lose"). The paper's MuJoCo
    code (baselines ``acktr_cont``) has no entropy term, nor has SB3's A2C by default; a discrete policy's entropy is
    bounded by ``log K``.
12. The separate critic's ``eta_max`` (``vf_learning_rate``) is 0.02 by default, a twelfth of the actor's. Each critic
    step is ``eta`` times a Gauss-Newton step on the rollout's n-step targets, and at A2C's small batches the critic's
    trust region rarely binds (HalfCheetah-v5, 1 env x 5 steps: on 1 of 20 sampled updates), so ``eta_max`` sets how
    far each update moves the value towards a few neighbouring samples' targets. At 0.25 (learning_rate's, baselines'
    Atari value, where one network serves both; the default before issue 22) the policy learned little on HalfCheetah
    (-369.2 / 63.1 at 100k, seeds 0 / 1; with 0.05: 1116.0 / 907.3). At 0.05 (the next default) the critic fitted
    each 5-sample rollout's neighbourhood so closely that the advantages left to the policy were 3-5x smaller than
    A2C's (Hopper-v5: per-update KL 2.3e-6-2.4e-5 against A2C's 4.1e-3-6.3e-3); at 0.005 it lagged the returns
    VecNormalize keeps rescaling on MountainCar-v0, so nearly every advantage was negative. 0.02 kept most of both: in
    the ``acktr_broad`` suite it was above 0.05 on seven of ten envs (Acrobot at the goal on 10 of 10 seeds, Hopper
    525.6 against 216.2, HalfCheetah 1733.8 against 1022.5) and below on MountainCar, Pendulum and
    MountainCarContinuous (docs/algorithms/acktr.md, "Where the defaults lose"). The paper's MuJoCo critic (baselines
    ``acktr/value_functions.py``) steps with ``eta_max = 0.001`` and momentum 0.9, 25 times per ~2500-sample batch.
    Where the critic's trust region binds (LunarLander-v3 without reward normalisation: on 20 of 20 sampled updates)
    ``eta_max`` rarely acts. ``None`` makes it follow ``learning_rate``; a saved model keeps the value it was trained
    with.

Defaults follow OpenAI baselines' ``acktr`` (Atari): ``n_steps=20``, ``learning_rate=0.25`` (eta_max),
``kl_clip=0.001`` (here the paper's delta; baselines' ``kfac_clip=0.001`` bounds ``eta^2 v`` instead of
``0.5 eta^2 v``, i.e. delta = 0.0005), ``momentum=0.9`` (the actor's; the separate critic's is 0, detail 10),
``damping=0.01``, ``ent_coef=0.01`` (discrete actions; 0 for ``Box``, detail 11),
``vf_coef=0.5``, no gradient clipping. A separate critic (not in the Atari set-up) gets ``vf_learning_rate=0.02``
(detail 12) and ``vf_kl_clip=0.01``: with
the actor's 0.001 its RMS change per update is limited to sqrt(2 * 0.001) ~ 0.045 and it lagged far behind the
returns on CartPole-v1. Baselines records the statistics at every update and recomputes the eigendecompositions
every step asynchronously, off the critical path; here, synchronously, the defaults amortise both (detail 8):
statistics every ``stats_interval=4`` updates on at most ``stats_batch_size=256`` samples of the rollouts since the
last recording (``stats_replay=True``, so that on A2C-sized rollouts every sample still enters the factors once),
``stat_decay=0.96`` (= 0.99^4, baselines' memory in updates), inverses every ``inverse_interval=12`` updates. At 8 envs
x 128 steps on Pendulum-v1 this costs ~1.07x A2C's ``train()``, statistics at every update on the whole rollout
1.6-1.9x (the ``acktr_default_speed`` benchmark); ``damping_mode="factored"`` stays the default (detail 9).
"""

from __future__ import annotations

import math
import warnings
from contextlib import ExitStack
from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, update_learning_rate
from torch import nn
from torch.nn import functional as F

from sb3_natgrad.acktr.policies import ACKTRPolicy, CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_natgrad.acktr.stats_batch import StatsBatch
from sb3_natgrad.acktr.unrecorded import UnrecordedRollouts
from sb3_natgrad.common.fisher import detach_distribution, index_observations, mean_kl, sample_fisher_actions
from sb3_natgrad.common.policies import actor_parameters, critic_parameters, shared_parameters
from sb3_natgrad.common.validation import (
    check_advantage_batch,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_rate,
)
from sb3_natgrad.optim.kfac import FALLBACKS, KFAC, fisher_backward
from sb3_natgrad.optim.kfac_layers import DAMPING_MODES

SelfACKTR = TypeVar("SelfACKTR", bound="ACKTR")

KFAC_MODES = ("auto", "joint", "separate")
#: Range of the adapted eta_max with ``target_kl`` (baselines ``acktr_cont``'s step-size bounds).
ETA_MAX_BOUNDS = (1e-8, 1.0)
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
#: Options of earlier versions that were removed, each with the value whose behaviour remains. ``stats_warmup``
#: (equal weights for the first recordings of the factors) made them more accurate but lowered the returns.
REMOVED_OPTIONS: dict[str, Any] = {"stats_warmup": False}


def default_ent_coef(action_space: spaces.Space) -> float:
    """The entropy coefficient of ``ent_coef=None`` (detail 11): 0 for a Gaussian policy, whose entropy is unbounded,
    0.01 (baselines' Atari ACKTR) for the bounded entropy of discrete actions."""
    return 0.0 if isinstance(action_space, spaces.Box) else 0.01


def sampled_fisher_loss(distribution: Distribution, values: th.Tensor, vf_fisher_coef: float) -> th.Tensor:
    """Per-sample loss whose gradient outer products average to the Fisher of ``p(a, v | s)``.

    ``-log pi(a~ | s) + vf_fisher_coef * 0.5 (V(s) - v~)^2`` with ``a~ ~ pi(. | s)`` and
    ``v~ ~ N(V(s), 1)`` (details 1-3); its per-sample gradient is ``-(score_a + vf_fisher_coef score_v)``,
    and the cross term vanishes in expectation, so ``E[g g^T] = F_pi + vf_fisher_coef^2 F_v``.

    :param distribution: action distribution of the batch.
    :param values: ``[B]`` value predictions (with gradient).
    :param vf_fisher_coef: weight of the critic term; 0 gives the actor's Fisher alone (for an optimizer of the
        actor's parameters only).
    :return: ``[B]`` per-sample losses (average them for :func:`~sb3_natgrad.optim.fisher_backward`).
    """
    sampled_actions = sample_fisher_actions(distribution)
    actor_nll = -distribution.log_prob(sampled_actions)  # [B]
    if vf_fisher_coef == 0.0:
        return actor_nll
    sampled_values = values.detach() + th.randn_like(values)  # v~ ~ N(V(s), 1), [B]
    return actor_nll + vf_fisher_coef * 0.5 * (values - sampled_values).pow(2)


class ACKTR(OnPolicyAlgorithm):
    """Actor-critic using a Kronecker-factored trust region (Wu et al. 2017); see the module docstring.

    :param policy: ``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or an :class:`ACKTRPolicy` subclass.
    :param env: the environment (or its id).
    :param learning_rate: ``eta_max`` of the actor (or joint) K-FAC step, a float or a schedule.
    :param n_steps: steps per environment per update.
    :param gamma: discount factor.
    :param gae_lambda: GAE lambda (1.0: n-step returns, as the paper).
    :param ent_coef: entropy coefficient; ``None``: 0.01 for discrete actions (baselines' Atari ACKTR), 0 for
        ``Box`` actions (the paper's MuJoCo code has no entropy bonus; detail 11).
    :param vf_coef: value loss coefficient.
    :param vf_fisher_coef: weight of the critic term in the joint sampled Fisher loss (joint mode only; must be
        > 0 there, since it is the only curvature the critic-only layers get).
    :param max_grad_norm: clip the raw gradient's norm before preconditioning (``None``: no clipping, as
        baselines' ACKTR, whose ``max_grad_norm`` only applies to its SGD cold start).
    :param kl_clip: trust-region radius ``delta`` of the actor (or joint) step.
    :param damping: Tikhonov damping ``lambda``.
    :param damping_mode: how ``lambda`` enters the inverse of each layer's ``A (x) G`` (both optimizers): ``"factored"``
        (``(A + pi sqrt(lambda) I) (x) (G + sqrt(lambda) / pi I)``, Martens & Grosse 2015 §6.3) or ``"eigen"``
        (``A (x) G + lambda I`` inverted exactly in the factors' eigenbasis, OpenAI baselines' ACKTR); see detail 9.
    :param stat_decay: running-average decay of the Kronecker factors.
    :param momentum: K-FAC momentum of the actor (or joint) optimizer (with ``(1 - momentum)`` normalisation, as
        baselines).
    :param weight_decay: L2 coefficient of the actor (or joint) optimizer.
    :param stats_interval: record the Kronecker factors every this many updates (``T_s``).
    :param inverse_interval: recompute the damped factor inverses every this many updates (``T_f``).
    :param stats_batch_size: record the Kronecker factors on this many samples of the rollout, drawn at random
        without replacement at each recording (``None``: the whole rollout); see detail 5.
    :param stats_replay: with ``stats_interval > 1``, record the Kronecker factors on the observations of all rollouts
        since the last recording instead of the current rollout alone; see detail 8.
    :param kfac_mode: ``"joint"`` (one optimizer, Fisher of ``p(a, v | s)``), ``"separate"`` (actor and
        critic optimizers; needs no shared parameters) or ``"auto"`` (separate iff nothing is shared).
    :param vf_learning_rate: critic ``eta_max`` in separate mode (float or schedule; default 0.02, see detail 12;
        ``None``: the ``learning_rate`` schedule).
    :param vf_kl_clip: critic trust-region radius in separate mode, a bound on ``0.5 E[dV^2]``.
    :param vf_damping: critic damping in separate mode (default: ``damping``).
    :param vf_weight_decay: critic L2 coefficient in separate mode (default: ``weight_decay``).
    :param vf_momentum: critic K-FAC momentum in separate mode (default 0: none); see detail 10.
    :param vf_activation_fn: activation of the critic's hidden layers, one of ``tanh``, ``relu``, ``elu``,
        ``leaky_relu`` (default: the policy's ``activation_fn``); the paper's MuJoCo critic uses ``"elu"``.
    :param fisher_fallback: preconditioner of parameters without Kronecker factors (``log_std``):
        ``"diagonal"`` (diagonal Fisher) or ``"identity"`` (baselines).
    :param target_kl: adapt the actor's ``eta_max`` to keep the measured KL of each update near this value
        (``None``: fixed ``eta_max``); see detail 6.
    :param kl_batch_size: measure that KL on this many samples of the rollout, drawn at random without replacement
        at each update (``None``: the whole rollout); see detail 6.
    :param normalize_advantage: standardise the advantages over the batch (the paper's MuJoCo code does).
    :param use_sde: generalized State-Dependent Exploration.
    :param sde_sample_freq: gSDE noise resampling frequency (-1: at rollout start only).
    :param rollout_buffer_class: rollout buffer class (default: ``RolloutBuffer`` / ``DictRolloutBuffer``).
    :param rollout_buffer_kwargs: its keyword arguments.
    :param stats_window_size: episodes averaged in the rollout logs.
    :param tensorboard_log: tensorboard log folder.
    :param policy_kwargs: policy keyword arguments (not ``optimizer_class`` / ``optimizer_kwargs``).
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
    policy: ACKTRPolicy

    def __init__(
        self,
        policy: str | type[ACKTRPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 0.25,
        n_steps: int = 20,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        ent_coef: float | None = None,
        vf_coef: float = 0.5,
        vf_fisher_coef: float = 1.0,
        max_grad_norm: float | None = None,
        kl_clip: float = 0.001,
        damping: float = 0.01,
        damping_mode: str = "factored",
        stat_decay: float = 0.96,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        stats_interval: int = 4,
        inverse_interval: int = 12,
        stats_batch_size: int | None = 256,
        stats_replay: bool = True,
        kfac_mode: str = "auto",
        vf_learning_rate: float | Schedule | None = 0.02,
        vf_kl_clip: float = 0.01,
        vf_damping: float | None = None,
        vf_weight_decay: float | None = None,
        vf_momentum: float = 0.0,
        vf_activation_fn: str | None = None,
        fisher_fallback: str = "diagonal",
        target_kl: float | None = None,
        kl_batch_size: int | None = None,
        normalize_advantage: bool = False,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
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
            ent_coef=ent_coef,  # type: ignore[arg-type]  # None: resolved from the action space in _setup_model (11)
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
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
        # damping, weight_decay, momentum, stat_decay, stats_interval and inverse_interval (same names, same ranges)
        # are checked by the K-FAC optimizer that _setup_model builds; KFAC also allows a learning rate of 0 and
        # kl_clip=None, and knows the critic's options only as its own damping, kl_clip and weight_decay
        check_rate("ACKTR", "learning_rate", learning_rate)
        check_rate("ACKTR", "vf_learning_rate", vf_learning_rate, allow_none=True)
        check_int("ACKTR", "n_steps", n_steps)
        check_number("ACKTR", "gamma", gamma, 0.0, 1.0)
        check_number("ACKTR", "gae_lambda", gae_lambda, 0.0, 1.0)
        check_number("ACKTR", "ent_coef", ent_coef, 0.0, allow_none=True)
        check_number("ACKTR", "vf_coef", vf_coef, 0.0)
        check_number("ACKTR", "vf_fisher_coef", vf_fisher_coef, 0.0)
        check_number("ACKTR", "max_grad_norm", max_grad_norm, 0.0, low_open=True, allow_none=True)
        check_number("ACKTR", "kl_clip", kl_clip, 0.0, low_open=True)
        check_number("ACKTR", "vf_kl_clip", vf_kl_clip, 0.0, low_open=True)
        check_number("ACKTR", "vf_damping", vf_damping, 0.0, low_open=True, allow_none=True)
        check_number("ACKTR", "vf_weight_decay", vf_weight_decay, 0.0, allow_none=True)
        check_number("ACKTR", "vf_momentum", vf_momentum, 0.0, 1.0, high_open=True)
        check_number("ACKTR", "target_kl", target_kl, 0.0, low_open=True, allow_none=True)
        check_int("ACKTR", "stats_batch_size", stats_batch_size, allow_none=True)
        check_int("ACKTR", "kl_batch_size", kl_batch_size, allow_none=True)
        check_bool("ACKTR", "stats_replay", stats_replay)
        check_bool("ACKTR", "normalize_advantage", normalize_advantage)
        check_advantage_batch("ACKTR", normalize_advantage, n_steps, self.env)
        check_choice("ACKTR", "kfac_mode", kfac_mode, KFAC_MODES)
        check_choice("ACKTR", "vf_activation_fn", vf_activation_fn, [*ACTIVATIONS, None])
        check_choice("ACKTR", "fisher_fallback", fisher_fallback, FALLBACKS)
        check_choice("ACKTR", "damping_mode", damping_mode, DAMPING_MODES)
        for key in ("optimizer_class", "optimizer_kwargs"):
            if key in self.policy_kwargs:
                raise ValueError(
                    f"ACKTR: policy_kwargs['{key}'] is not supported, the optimizer is K-FAC; use ACKTR's arguments"
                )
        if vf_activation_fn is not None:
            if "vf_activation_fn" in self.policy_kwargs:
                raise ValueError("ACKTR: vf_activation_fn given both as an argument and in policy_kwargs")
            # a copy: the caller's dict may be passed to another constructor
            self.policy_kwargs = {**self.policy_kwargs, "vf_activation_fn": ACTIVATIONS[vf_activation_fn]}

        self.vf_fisher_coef = vf_fisher_coef
        self.kl_clip = kl_clip
        self.damping = damping
        self.damping_mode = damping_mode
        self.stat_decay = stat_decay
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.stats_interval = stats_interval
        self.inverse_interval = inverse_interval
        self.stats_batch_size = stats_batch_size
        self.stats_replay = stats_replay
        self.kfac_mode = kfac_mode
        self.vf_learning_rate = vf_learning_rate
        self.vf_kl_clip = vf_kl_clip
        self.vf_damping = vf_damping
        self.vf_weight_decay = vf_weight_decay
        self.vf_momentum = vf_momentum
        self.vf_activation_fn = vf_activation_fn
        self.fisher_fallback = fisher_fallback
        self.target_kl = target_kl
        self.kl_batch_size = kl_batch_size
        self.normalize_advantage = normalize_advantage
        # Factor applied to the actor's learning-rate schedule, adapted when target_kl is set (detail 6)
        self.eta_scale = 1.0

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._forget_removed_options()
        if self.ent_coef is None:  # (11) a loaded model keeps the value it was saved with
            self.ent_coef = default_ent_coef(self.action_space)
        super()._setup_model()
        if self.vf_learning_rate is None:  # (12) follow learning_rate (the default before issue 22)
            self.vf_lr_schedule = self.lr_schedule
        else:
            self.vf_lr_schedule = FloatSchedule(self.vf_learning_rate)
        self._build_kfac()
        # Rollouts not yet recorded, for stats_replay (8); saved with the model, see _get_torch_save_params
        self.unrecorded_rollouts = (
            UnrecordedRollouts(self.stats_interval - 1) if self.stats_replay and self.stats_interval > 1 else None
        )

    def _forget_removed_options(self) -> None:
        """Drop the :data:`REMOVED_OPTIONS` that ``load`` copied from a model saved by an earlier version (SB3's
        ``load`` sets every saved attribute), with a warning when the saved value is not the one that remains."""
        for name, remaining in REMOVED_OPTIONS.items():
            value = self.__dict__.pop(name, remaining)
            if value != remaining:
                warnings.warn(
                    f"ACKTR: the option {name} was removed; this model was saved with {name}={value!r} and "
                    f"continues as with {name}={remaining!r}",
                    UserWarning,
                    stacklevel=3,
                )

    def _build_kfac(self) -> None:
        """Replace the policy's optimizer with K-FAC: one joint optimizer or actor + critic (details 3, 4)."""
        policy = self.policy
        shared = shared_parameters(policy)
        separate = self.kfac_mode == "separate" or (self.kfac_mode == "auto" and not shared)
        if separate and shared:
            raise ValueError(
                f"ACKTR: kfac_mode='separate' needs an actor and a critic without shared parameters, but "
                f"{len(shared)} parameter tensors are shared (use kfac_mode='joint' or share_features_extractor=False)"
            )
        if not separate and self.vf_fisher_coef == 0.0:
            # The joint Fisher's critic term is all the curvature the critic-only layers (value head) get.
            raise ValueError(
                "ACKTR: vf_fisher_coef must be > 0 with a joint K-FAC optimizer (the critic's layers have no other "
                "curvature statistics), got 0.0; use kfac_mode='separate' for the actor's Fisher alone"
            )
        common = dict(
            stat_decay=self.stat_decay,
            stats_interval=self.stats_interval,
            inverse_interval=self.inverse_interval,
            fallback=self.fisher_fallback,
            damping_mode=self.damping_mode,
        )
        actor_params = actor_parameters(policy) if separate else list(policy.parameters())
        policy.optimizer = KFAC(
            policy,
            lr=self.lr_schedule(1.0),
            params=actor_params,
            kl_clip=self.kl_clip,
            damping=self.damping,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            **common,  # type: ignore[arg-type]
        )
        policy.vf_optimizer = None
        if separate:
            policy.vf_optimizer = KFAC(
                policy,
                lr=self.vf_lr_schedule(1.0),
                params=critic_parameters(policy),
                kl_clip=self.vf_kl_clip,
                damping=self.damping if self.vf_damping is None else self.vf_damping,
                weight_decay=self.weight_decay if self.vf_weight_decay is None else self.vf_weight_decay,
                momentum=self.vf_momentum,  # (10)
                **common,  # type: ignore[arg-type]
            )

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        if self.policy.vf_optimizer is not None:
            state_dicts.append("policy.vf_optimizer")
        if self.unrecorded_rollouts is not None:
            state_dicts.append("unrecorded_rollouts")
        return state_dicts, []

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "unrecorded_rollouts"]

    def set_parameters(
        self, load_path_or_dict: str | dict[str, Any], exact_match: bool = True, device: th.device | str = "auto"
    ) -> None:
        super().set_parameters(load_path_or_dict, exact_match=exact_match, device=device)
        # A loaded optimizer state brings its momentum with it: a model saved before vf_momentum existed continues
        # with the momentum its critic was trained with (10); keep the attribute saying what runs.
        if self.policy.vf_optimizer is not None:
            self.vf_momentum = self.policy.vf_optimizer.param_groups[0]["momentum"]

    @property
    def optimizers(self) -> list[KFAC]:
        """The K-FAC optimizers in use: ``[joint]`` or ``[actor, critic]``."""
        assert isinstance(self.policy.optimizer, KFAC)
        return [self.policy.optimizer] + ([self.policy.vf_optimizer] if self.policy.vf_optimizer is not None else [])

    def _scaled_eta(self, scale: float) -> float:
        """The actor's ``eta_max``: the learning-rate schedule times ``scale``, within :data:`ETA_MAX_BOUNDS`."""
        low, high = ETA_MAX_BOUNDS
        return min(max(self.lr_schedule(self._current_progress_remaining) * scale, low), high)

    def _adapt_eta_scale(self, measured_kl: float) -> None:
        """Baselines ``acktr_cont``'s rule (6): x1.5 below ``target_kl / 2``, /1.5 above ``2 target_kl``."""
        assert self.target_kl is not None
        if not math.isfinite(measured_kl):
            return
        scale = self.eta_scale
        if measured_kl > 2.0 * self.target_kl:
            scale /= 1.5
        elif measured_kl < 0.5 * self.target_kl:
            scale *= 1.5
        base = self.lr_schedule(self._current_progress_remaining)
        if base > 0.0:  # keep the scale where eta_max is not clamped, so that it can come back at once
            scale = self._scaled_eta(scale) / base
        self.eta_scale = scale

    def _forward_recording_stats(
        self, obs: th.Tensor | dict[str, th.Tensor], actions: th.Tensor, optimizers: list[KFAC], vf_fisher_coef: float
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None, Distribution, StatsBatch]:
        """The losses' forward pass, with the K-FAC statistics recorded when due (details 5, 8).

        :return: values ``[B]``, log-probabilities ``[B]``, entropy ``[B]`` (or None), the action distribution of the
            forward pass the losses used, and the statistics' batch, which says where the rollout's rows sit in that
            distribution (:attr:`StatsBatch.rollout_rows`).
        """
        # FISHER STATISTICS: forward pass and sampled Fisher backward inside the recording contexts
        with ExitStack() as stack:
            recording = any([stack.enter_context(opt.record_stats()) for opt in optimizers])
            batch = self._stats_batch(obs, actions, recording)
            values, log_prob, entropy, distribution = self.policy.evaluate_actions_and_distribution(
                batch.observations, batch.actions
            )
            values = values.flatten()
            if recording:  # the graph is kept when the losses share it
                fisher_loss = sampled_fisher_loss(distribution, values, vf_fisher_coef).mean()
                fisher_backward(fisher_loss, optimizers, retain_graph=batch.shares_forward_pass)
        if recording and self.unrecorded_rollouts is not None:  # folded into the factors: not kept after a failure
            self.unrecorded_rollouts.clear()
        if batch.shares_forward_pass:  # the rollout is the tail of the statistics' samples: one pass for both
            rows = batch.rollout_rows
            return values[rows], log_prob[rows], None if entropy is None else entropy[rows], distribution, batch
        # drawn or unbounded pooled samples: the losses' forward pass of their own, outside the contexts
        values, log_prob, entropy, distribution = self.policy.evaluate_actions_and_distribution(obs, actions)
        return values.flatten(), log_prob, entropy, distribution, batch

    def _stats_batch(self, obs: th.Tensor | dict[str, th.Tensor], actions: th.Tensor, recording: bool) -> StatsBatch:
        """The samples the statistics are recorded on: the rollout's ``obs`` and ``actions`` themselves (the same
        objects) unless, when recording, ``stats_replay`` pools the unrecorded rollouts with it (8) or
        ``stats_batch_size`` draws ``m`` of them at random without replacement (5). Keeps the rollout when not
        recording; the caller forgets the pooled ones once the recording has succeeded.

        The losses share the statistics' forward pass when the samples are the rollout, or a pool that ends with it and
        is bounded by ``stats_batch_size`` (on a CPU a forward pass of a small network costs about the same on 5 and on
        ~64-128 samples, ad hoc; an unbounded pool could make the losses' backward pass cost more than the forward pass
        it saves). Drawn samples get a pass of their own.
        """
        rollout = StatsBatch.rollout(obs, actions)
        if self.unrecorded_rollouts is not None:
            if not recording:
                self.unrecorded_rollouts.push(obs, actions)
                return rollout
            obs, actions = self.unrecorded_rollouts.pool(obs, actions)  # the rollout last
        batch_size = actions.shape[0]
        if recording and self.stats_batch_size is not None and self.stats_batch_size < batch_size:
            idx = th.randperm(batch_size, device=actions.device)[: self.stats_batch_size]  # [m], no replacement
            return StatsBatch(index_observations(obs, idx), actions[idx], rollout.size, shares_forward_pass=False)
        pooled = batch_size > rollout.size
        bounded = self.stats_batch_size is not None
        return StatsBatch(obs, actions, rollout.size, shares_forward_pass=bounded or not pooled)

    def _kl_samples(
        self, obs: th.Tensor | dict[str, th.Tensor], distribution: Distribution, batch: StatsBatch
    ) -> tuple[th.Tensor | dict[str, th.Tensor], Distribution]:
        """Observations on which ``target_kl``'s KL is measured, and the pre-update policy on them (detail 6).

        ``distribution`` is the loss forward pass's (pre-update) policy, with the rollout's rows at
        ``batch.rollout_rows`` (see :meth:`_forward_recording_stats`); the copy is detached and must be taken before the
        next forward pass, since SB3 policies reuse their distribution object.
        """
        if self.kl_batch_size is None or self.kl_batch_size >= batch.rollout_size:
            return obs, detach_distribution(distribution, batch.rollout_rows)
        idx = th.randperm(batch.rollout_size, device=self.device)[: self.kl_batch_size]  # [k], no replacement
        return index_observations(obs, idx), detach_distribution(distribution, idx + batch.rollout_start)

    def train(self) -> None:
        """One K-FAC update on the rollout buffer (the whole batch, as A2C)."""
        self.policy.set_training_mode(True)
        optimizers = self.optimizers
        self._update_learning_rate(optimizers[0])
        if self.target_kl is not None:  # adapted eta_max of the actor (6)
            eta_max = self._scaled_eta(self.eta_scale)
            update_learning_rate(optimizers[0], eta_max)
            self.logger.record("train/eta_max", eta_max)
        if len(optimizers) == 2:
            vf_lr = self.vf_lr_schedule(self._current_progress_remaining)
            update_learning_rate(optimizers[1], vf_lr)
            self.logger.record("train/vf_learning_rate", vf_lr)
        # Joint mode weighs the critic in p(a, v | s); separate critics have their own metric (weight 1).
        vf_fisher_coef = self.vf_fisher_coef if len(optimizers) == 1 else 1.0

        for rollout_data in self.rollout_buffer.get(batch_size=None):  # a single batch
            actions = rollout_data.actions
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.long().flatten()

            values, log_prob, entropy, distribution, stats_batch = self._forward_recording_stats(
                rollout_data.observations, actions, optimizers, vf_fisher_coef
            )

            # A2C LOSS
            advantages = rollout_data.advantages  # [B]
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = -(advantages * log_prob).mean()
            value_loss = F.mse_loss(rollout_data.returns, values)
            entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
            loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss  # ent_coef: (11)

            # K-FAC STEP (trust region inside the optimizer)
            for opt in optimizers:
                opt.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            for opt in optimizers:
                opt.step()

            if self.target_kl is not None:  # measured KL of the update -> next eta_max (6)
                kl_obs, old_distribution = self._kl_samples(rollout_data.observations, distribution, stats_batch)
                with th.no_grad():
                    new_distribution = self.policy.get_distribution(kl_obs)
                    measured_kl = float(mean_kl(old_distribution, new_distribution))  # summed over action dims
                self._adapt_eta_scale(measured_kl)
                self.logger.record("train/measured_kl", measured_kl)

        self._n_updates += 1
        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        for prefix, opt in zip(("", "vf_"), optimizers, strict=False):
            for key, value in opt.last_step_info.items():  # step_size, kl, fisher_norm, damping (floats)
                self.logger.record(f"train/{prefix}{key}", value)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def learn(
        self: SelfACKTR,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "ACKTR",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfACKTR:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
