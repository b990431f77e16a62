"""ACKTR (Wu et al. 2017) checked against brute-force computations.

- The sampled Fisher loss: its per-sample gradient outer products, averaged over many samples, match the
  exact Fisher of ``p(a, v | s) = pi(a | s) N(v; V(s), vf_fisher_coef^-2)`` computed from per-state
  Jacobians (``torch.func.jacrev``) and the closed-form output Fisher of each distribution.
- The applied step: ``0.5 dtheta^T F dtheta <= delta`` with ``F`` the dense block-diagonal K-FAC Fisher
  (``kron(G, A)`` per layer, row-major vec) built from the optimizer's factors.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from algorithms import ACTION_ENVS
from gymnasium import spaces
from helpers import RandomObsEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.func import functional_call, jacrev

from sb3_natgrad import ACKTR
from sb3_natgrad.acktr import sampled_fisher_loss
from sb3_natgrad.optim import KFAC


class TinyTrunk(BaseFeaturesExtractor):
    """A features extractor with parameters: a trunk shared by the actor and the critic."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 3) -> None:
        super().__init__(observation_space, features_dim)
        self.linear = nn.Linear(int(np.prod(observation_space.shape)), features_dim)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return th.tanh(self.linear(obs.flatten(1)))


def per_sample_fisher(model: ACKTR, obs: th.Tensor, coef: float, params: list[nn.Parameter], chunk: int = 500) -> th.Tensor:
    """Mean over samples of g g^T, g = gradient of one row of the sampled Fisher loss."""
    policy = model.policy
    n_params = sum(p.numel() for p in params)
    total = th.zeros(n_params, n_params, dtype=th.float64)
    for batch in obs.split(chunk):
        dummy_actions = th.zeros(batch.shape[0], *model.action_space.shape)
        if isinstance(model.action_space, spaces.Discrete):
            dummy_actions = dummy_actions.long().flatten()
        values, _, _, distribution = policy.evaluate_actions_and_distribution(batch, dummy_actions)
        losses = sampled_fisher_loss(distribution, values.flatten(), coef)  # [b]
        # independent per-sample gradients: one-hot grad_outputs, batched
        one_hot = th.eye(batch.shape[0])
        grads = th.autograd.grad(losses, params, grad_outputs=one_hot, is_grads_batched=True, allow_unused=True)
        per_sample = th.cat(
            [
                (g if g is not None else th.zeros(batch.shape[0], *p.shape)).reshape(batch.shape[0], -1)
                for g, p in zip(grads, params, strict=True)
            ],
            dim=1,
        ).double()  # [b, P]
        total += per_sample.T @ per_sample
    return total / obs.shape[0]


def exact_fisher(model: ACKTR, obs: th.Tensor, coef: float, params: list[nn.Parameter]) -> th.Tensor:
    """mean_s [J_out^T F_out J_out + coef^2 J_v^T J_v], from per-state Jacobians of the policy outputs."""
    policy = model.policy
    names = [n for p in params for n, q in policy.named_parameters() if q is p]
    sizes = [p.numel() for p in params]
    shapes = [p.shape for p in params]
    flat0 = th.cat([p.detach().flatten() for p in params])
    gaussian = isinstance(model.action_space, spaces.Box)

    def outputs(flat: th.Tensor, state: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        tensors = {n: t.reshape(s) for n, t, s in zip(names, flat.split(sizes), shapes, strict=True)}
        features = functional_call(policy.features_extractor, _sub(tensors, "features_extractor."), (state[None],))
        latent_pi, latent_vf = functional_call(policy.mlp_extractor, _sub(tensors, "mlp_extractor."), (features,))
        dist_out = functional_call(policy.action_net, _sub(tensors, "action_net."), (latent_pi,))[0]
        if gaussian:  # (mean, log_std): the log-probability depends on both
            log_std = tensors.get("log_std", policy.log_std)
            if model.use_sde:
                log_std = gsde_log_std(latent_pi, log_std)[0]
            dist_out = th.cat([dist_out, log_std])
        value = functional_call(policy.value_net, _sub(tensors, "value_net."), (latent_vf,))[0]
        return dist_out, value

    fisher = th.zeros(flat0.numel(), flat0.numel(), dtype=th.float64)
    for state in obs:
        j_out, j_v = jacrev(outputs)(flat0, state)  # [n_out, P], [1, P]
        dist_out, _ = outputs(flat0, state)
        if gaussian:
            n = dist_out.shape[0] // 2
            sigma2 = th.exp(2 * dist_out[n:].detach())
            # Fisher of N(mu, sigma): 1/sigma^2 for mu, 2 for log sigma, no cross terms
            out_fisher = th.diag(th.cat([1.0 / sigma2, 2.0 * th.ones(n)]))
        else:
            p = th.softmax(dist_out.detach(), dim=0)
            out_fisher = th.diag(p) - th.outer(p, p)
        fisher += (j_out.T.double() @ out_fisher.double() @ j_out.double()) + coef**2 * (j_v.T.double() @ j_v.double())
    return fisher / obs.shape[0]


def gsde_log_std(latent_pi: th.Tensor, log_std: th.Tensor) -> th.Tensor:
    """``[B, d]`` log std of gSDE's Gaussian (SB3's ``StateDependentNoiseDistribution``, full std, features not
    learnt): ``sigma(s)^2 = latent(s)^2 @ exp(log_std)^2 + eps`` from ``[B, h]`` latents and the ``[h, d]`` parameter."""
    return 0.5 * th.log(latent_pi.detach() ** 2 @ log_std.exp() ** 2 + 1e-6)


def _sub(tensors: dict[str, th.Tensor], prefix: str) -> dict[str, th.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def relative_error(estimate: th.Tensor, exact: th.Tensor) -> float:
    return (th.linalg.norm(estimate - exact) / th.linalg.norm(exact)).item()


# ----------------------------------------------------------------------------------- Fisher loss
@pytest.mark.parametrize("coef", [1.0, 2.0])
def test_joint_fisher_loss_matches_exact_fisher_shared_trunk(coef: float) -> None:
    th.manual_seed(0)
    model = ACKTR(
        "MlpPolicy",
        RandomObsEnv(spaces.Discrete(3)),
        vf_fisher_coef=coef,
        policy_kwargs=dict(features_extractor_class=TinyTrunk, net_arch=[]),
        seed=0,
    )
    assert model.policy.vf_optimizer is None  # shared trunk -> joint K-FAC
    params = list(model.policy.parameters())
    states = th.tensor([[0.5, -0.3], [-0.8, 0.2], [0.1, 0.9]])
    obs = states.repeat_interleave(8000, dim=0)
    estimate = per_sample_fisher(model, obs, coef, params)
    exact = exact_fisher(model, states, coef, params)
    assert relative_error(estimate, exact) < 0.04
    # the weighting is coef^2 on F_v: the other natural reading (coef) is far off
    wrong = exact_fisher(model, states, math.sqrt(coef), params) if coef != 1.0 else exact_fisher(model, states, 0.0, params)
    assert relative_error(estimate, wrong) > 0.15


@pytest.mark.parametrize("use_sde", [False, True])
def test_separate_fisher_losses_match_exact_fishers_gaussian(use_sde: bool) -> None:
    """Both Gaussian policies: a state-independent std and gSDE's state-dependent one."""
    th.manual_seed(0)
    model = ACKTR(
        "MlpPolicy",
        RandomObsEnv(spaces.Box(-1.0, 1.0, (2,), np.float32)),
        use_sde=use_sde,
        policy_kwargs=dict(net_arch=dict(pi=[3], vf=[3]), log_std_init=-0.5),
        seed=0,
    )
    actor_opt, critic_opt = model.optimizers
    actor_params = list(actor_opt.param_groups[0]["params"])
    critic_params = list(critic_opt.param_groups[0]["params"])
    params = actor_params + critic_params
    assert any(p is model.policy.log_std for p in actor_params)
    states = th.tensor([[0.5, -0.3], [-0.8, 0.2]])
    obs = states.repeat_interleave(8000, dim=0)
    estimate = per_sample_fisher(model, obs, 1.0, params)
    exact = exact_fisher(model, states, 1.0, params)
    n_actor = sum(p.numel() for p in actor_params)
    assert relative_error(estimate[:n_actor, :n_actor], exact[:n_actor, :n_actor]) < 0.06
    assert relative_error(estimate[n_actor:, n_actor:], exact[n_actor:, n_actor:]) < 0.04
    # cross block vanishes in expectation (independent samples of a and v)
    assert th.linalg.norm(estimate[:n_actor, n_actor:]) < 0.02 * th.linalg.norm(exact)


# ----------------------------------------------------------------------------------- trust region
def dense_kfac_quadratic(opt: KFAC, before: dict[int, th.Tensor], damped: bool) -> float:
    """dtheta^T F dtheta with F = blockdiag(kron(G, A), diag(D)) built densely from the optimizer."""
    group = opt.param_groups[0]
    total = 0.0
    for layer in opt.layers:
        step = [(before[id(p)] - p.detach()) for p in layer.params]
        mat = step[0].reshape(step[0].shape[0], -1)
        if len(step) == 2:
            mat = th.cat([mat, step[1][:, None]], dim=1)
        a, g = layer.a_factor.double(), layer.g_factor.double()
        if damped:
            gamma = math.sqrt(group["damping"] + group["weight_decay"])
            pi = math.sqrt((th.trace(a) / a.shape[0]) / (th.trace(g) / g.shape[0]))
            a, g = a + pi * gamma * th.eye(a.shape[0]), g + gamma / pi * th.eye(g.shape[0])
        vec = mat.double().flatten()
        total += (vec @ th.kron(g, a) @ vec).item()
    for p in opt.fallback_params:
        d = opt.state[p]["diag_fisher"].double()
        if damped:
            d = d + group["damping"] + group["weight_decay"]
        total += ((before[id(p)] - p.detach()).double().pow(2) * d).sum().item()
    return total


class StepRecorder(BaseCallback):
    """Parameters before each update, to inspect the applied steps."""

    def __init__(self, model: ACKTR) -> None:
        super().__init__()
        self.records: list[tuple[float, float, float, float]] = []
        self.optimizers = model.optimizers
        self.before: dict[int, th.Tensor] = {}

    def _on_rollout_end(self) -> None:
        self.before = {id(p): p.detach().clone() for p in self.model.policy.parameters()}

    def _on_rollout_start(self) -> None:
        if self.before:
            for opt in self.optimizers:
                bound = opt.param_groups[0]["kl_clip"]
                eta = float(opt.last_step_info["step_size"])
                self.records.append(
                    (
                        0.5 * dense_kfac_quadratic(opt, self.before, False),
                        0.5 * dense_kfac_quadratic(opt, self.before, True),
                        bound,
                        eta,
                    )
                )

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize(
    "policy_kwargs", [dict(net_arch=dict(pi=[8], vf=[8])), dict(features_extractor_class=TinyTrunk, net_arch=[4])]
)
def test_applied_step_within_trust_region(policy_kwargs: dict) -> None:
    model = ACKTR(
        "MlpPolicy",
        IdentityEnvBox(-1.0, 1.0, ep_length=16),
        n_steps=16,
        momentum=0.0,
        inverse_interval=1,  # the bound is w.r.t. the factors of the last inverse update: make them current
        kl_clip=1e-4,
        vf_kl_clip=3e-4,
        learning_rate=10.0,
        vf_learning_rate=10.0,  # both eta_max far above the trust regions
        policy_kwargs=policy_kwargs,
        seed=0,
    )
    recorder = StepRecorder(model)
    model.learn(16 * 6, callback=recorder)
    assert len(recorder.records) >= 4
    assert any(eta < 10.0 for *_, eta in recorder.records)  # the trust region was exercised
    # steps are measured as float32 parameter differences: relative rounding ~1e-4
    for kl_kfac, kl_damped, bound, eta in recorder.records:
        assert kl_kfac <= bound * (1 + 1e-3)
        assert kl_damped <= bound * (1 + 1e-3)
        if eta < 10.0:  # trust region active: the damped quadratic model sits on the boundary
            assert kl_damped == pytest.approx(bound, rel=5e-3)


# ----------------------------------------------------------------------------------- save / load
def test_save_load_round_trips_kfac_state_and_resumes_identically(tmp_path) -> None:
    model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=8, seed=0, inverse_interval=3)
    model.learn(8 * 4)
    model.save(tmp_path / "acktr")
    loaded = ACKTR.load(tmp_path / "acktr", env=model.get_env())
    for opt, opt2 in zip(model.optimizers, loaded.optimizers, strict=True):
        assert opt.steps == opt2.steps == 4
        for layer, layer2 in zip(opt.layers, opt2.layers, strict=True):
            assert layer.name == layer2.name
            assert th.equal(layer.a_factor, layer2.a_factor) and th.equal(layer.g_inverse, layer2.g_inverse)
    # same rollout and random stream -> the same update
    loaded.rollout_buffer = copy.deepcopy(model.rollout_buffer)
    for algo in (model, loaded):
        algo.set_logger(configure(None, []))
        th.manual_seed(123)  # Fisher samples
        np.random.seed(123)  # rollout buffer permutation
        algo.train()
    for (name, p), p2 in zip(model.policy.named_parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(p, p2), name


# ----------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("name", "value", "owner"),
    [
        ("learning_rate", 0.0, "ACKTR"),
        ("vf_learning_rate", -1.0, "ACKTR"),
        ("kl_clip", 0.0, "ACKTR"),
        ("kl_clip", None, "ACKTR"),  # KFAC accepts None (no trust region), ACKTR does not
        ("vf_kl_clip", -0.1, "ACKTR"),
        ("vf_kl_clip", None, "ACKTR"),
        ("vf_damping", 0.0, "ACKTR"),
        ("vf_weight_decay", -1.0, "ACKTR"),
        ("vf_momentum", 1.0, "ACKTR"),
        ("vf_momentum", -0.1, "ACKTR"),
        ("ent_coef", -0.01, "ACKTR"),
        ("damping", 0.0, "KFAC"),  # checked once, by the K-FAC optimizer built at construction
        ("stat_decay", 1.0, "KFAC"),
        ("momentum", 1.0, "KFAC"),
        ("weight_decay", -1.0, "KFAC"),
        ("stats_interval", 0, "KFAC"),
        ("inverse_interval", 1.5, "KFAC"),
        ("kfac_mode", "both", "ACKTR"),
        ("vf_activation_fn", "gelu", "ACKTR"),
        ("fisher_fallback", "adam", "ACKTR"),
        ("damping_mode", "tikhonov", "ACKTR"),
        ("vf_fisher_coef", -1.0, "ACKTR"),
        ("max_grad_norm", 0.0, "ACKTR"),
        ("n_steps", 0, "ACKTR"),
        ("gae_lambda", 1.5, "ACKTR"),
        ("stats_batch_size", 0, "ACKTR"),
        ("stats_batch_size", 2.5, "ACKTR"),
        ("kl_batch_size", 0, "ACKTR"),
        ("kl_batch_size", "all", "ACKTR"),
        ("target_kl", 0.0, "ACKTR"),
        ("target_kl", float("nan"), "ACKTR"),
        ("stats_replay", "yes", "ACKTR"),
        ("normalize_advantage", 1, "ACKTR"),
    ],
)
def test_invalid_hyperparameters_raise(name: str, value: Any, owner: str) -> None:
    """The error names the argument and its value; the K-FAC optimizer's arguments are checked by KFAC alone."""
    with pytest.raises(ValueError, match=f"^{owner}: {name} must be .*, got {re.escape(repr(value))}$"):
        ACKTR("MlpPolicy", IdentityEnv(3), **{name: value})


def test_normalize_advantage_refuses_a_one_sample_rollout() -> None:
    """The standard deviation of one advantage is NaN: refused at construction (it used to stop the first update with
    K-FAC's FloatingPointError); two samples train."""
    message = r"^ACKTR: normalize_advantage needs n_steps \* n_envs >= 2, got n_steps=1, n_envs=1$"
    with pytest.raises(ValueError, match=message):
        ACKTR("MlpPolicy", "Pendulum-v1", n_steps=1, normalize_advantage=True)
    ACKTR("MlpPolicy", "Pendulum-v1", n_steps=2, normalize_advantage=True, seed=0).learn(4)


def test_joint_mode_refuses_vf_fisher_coef_zero() -> None:
    """With one joint optimizer the critic-only layers get curvature only from the critic term: 0 is refused at
    construction (it used to raise a RuntimeError in the first update); separate mode accepts it."""
    with pytest.raises(ValueError, match=r"^ACKTR: vf_fisher_coef must be > 0 with a joint K-FAC optimizer.*got 0\.0"):
        ACKTR("MlpPolicy", "CartPole-v1", kfac_mode="joint", vf_fisher_coef=0.0)
    model = ACKTR("MlpPolicy", "CartPole-v1", kfac_mode="separate", vf_fisher_coef=0.0, n_steps=8, seed=0)
    model.learn(16)


def test_policy_optimizer_is_rejected() -> None:
    with pytest.raises(ValueError, match="optimizer_class"):
        ACKTR("MlpPolicy", IdentityEnv(3), policy_kwargs=dict(optimizer_class=th.optim.Adam))


def test_separate_mode_rejects_shared_trunk() -> None:
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    with pytest.raises(ValueError, match="shared"):
        ACKTR("CnnPolicy", env, kfac_mode="separate")


@pytest.mark.parametrize(("value", "warns"), [(False, False), (True, True)])
def test_model_saved_with_the_removed_stats_warmup_loads(tmp_path: Path, value: bool, warns: bool) -> None:
    """A model saved while ``stats_warmup`` existed stores it among its attributes (which SB3's ``load`` sets) and in
    its K-FAC states: dropped on load, with a warning when it was on; the loaded model trains."""
    model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=4, seed=0)
    model.learn(8)
    model.stats_warmup = value  # what such a save held
    model.save(tmp_path / "model.zip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ACKTR.load(tmp_path / "model.zip", env=IdentityEnv(3))
    expected = (
        "ACKTR: the option stats_warmup was removed; this model was saved with stats_warmup=True and continues as "
        "with stats_warmup=False"
    )
    assert [str(w.message) for w in caught if "stats_warmup" in str(w.message)] == ([expected] if warns else [])
    assert not hasattr(loaded, "stats_warmup")
    before = [p.detach().clone() for p in loaded.policy.parameters()]
    loaded.learn(8)
    assert any(not th.equal(b, p) for b, p in zip(before, loaded.policy.parameters(), strict=True))


def test_removed_stats_warmup_is_not_an_argument() -> None:
    with pytest.raises(TypeError, match="stats_warmup"):
        ACKTR("MlpPolicy", IdentityEnv(3), stats_warmup=True)  # type: ignore[call-arg]


def test_mode_selection_and_elu_critic() -> None:
    model = ACKTR("MlpPolicy", IdentityEnv(3), vf_activation_fn="elu", vf_weight_decay=3e-4, vf_kl_clip=0.01)
    actor_opt, critic_opt = model.optimizers
    assert critic_opt.param_groups[0]["weight_decay"] == 3e-4 and critic_opt.param_groups[0]["kl_clip"] == 0.01
    assert actor_opt.param_groups[0]["weight_decay"] == 0.0
    assert any(isinstance(m, nn.ELU) for m in model.policy.mlp_extractor.value_net.modules())
    assert not any(isinstance(m, nn.ELU) for m in model.policy.mlp_extractor.policy_net.modules())
    joint = ACKTR("MlpPolicy", IdentityEnv(3), kfac_mode="joint")
    assert len(joint.optimizers) == 1 and len(joint.optimizers[0].layers) == 6


@pytest.mark.parametrize("kfac_mode", ["joint", "separate"])
def test_damping_mode_reaches_every_optimizer_and_survives_save_load(kfac_mode: str, tmp_path: Path) -> None:
    """``damping_mode="eigen"`` builds eigenbasis preconditioners (:mod:`tests.test_kfac` checks their mathematics) in
    every optimizer, and a saved model comes back with them."""
    model = ACKTR("MlpPolicy", IdentityEnv(3), kfac_mode=kfac_mode, damping_mode="eigen", n_steps=4, seed=0)
    model.learn(8)
    for opt in model.optimizers:
        assert opt.damping_mode == "eigen"
        assert all(layer.eigen_scale is not None for layer in opt.layers)
    model.save(tmp_path / "model.zip")
    loaded = ACKTR.load(tmp_path / "model.zip", env=IdentityEnv(3))
    assert loaded.damping_mode == "eigen" and all(opt.damping_mode == "eigen" for opt in loaded.optimizers)
    factored = ACKTR("MlpPolicy", IdentityEnv(3), kfac_mode=kfac_mode, n_steps=4, seed=0)
    factored.learn(8)
    assert all(layer.eigen_scale is None for opt in factored.optimizers for layer in opt.layers)


def test_critic_momentum_is_its_own_and_survives_save_load(tmp_path: Path) -> None:
    """``vf_momentum`` reaches the critic's optimizer only: with the default 0 two consecutive critic steps are each
    the step of their own gradient (no buffer carries the first into the second), the actor keeps ``momentum``."""
    model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=4, seed=0)
    actor_opt, critic_opt = model.optimizers
    assert model.vf_momentum == 0.0 and critic_opt.param_groups[0]["momentum"] == 0.0
    assert actor_opt.param_groups[0]["momentum"] == 0.9
    model.learn(8)
    assert all("momentum_buffer" not in critic_opt.state[p] for p in critic_opt.param_groups[0]["params"])
    assert all("momentum_buffer" in actor_opt.state[p] for p in actor_opt.param_groups[0]["params"])
    model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=4, seed=0, vf_momentum=0.5)
    model.learn(8)
    model.save(tmp_path / "model.zip")
    loaded = ACKTR.load(tmp_path / "model.zip", env=IdentityEnv(3))
    assert loaded.vf_momentum == 0.5 and loaded.optimizers[1].param_groups[0]["momentum"] == 0.5


def test_model_saved_before_vf_momentum_keeps_its_critic_momentum(tmp_path: Path) -> None:
    """A model saved before ``vf_momentum`` existed (critic trained with ``momentum``, no such attribute) loads with
    the momentum its critic optimizer state holds, and the attribute says so."""
    model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=4, seed=0, vf_momentum=0.9)
    model.learn(8)
    del model.vf_momentum  # what such a save held: no attribute, the critic optimizer's state at 0.9
    model.save(tmp_path / "model.zip")
    loaded = ACKTR.load(tmp_path / "model.zip", env=IdentityEnv(3))
    assert loaded.vf_momentum == 0.9 and loaded.optimizers[1].param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (IdentityEnvBox(eps=0.5), 0.0),
        (IdentityEnv(3), 0.01),
        (IdentityEnvMultiDiscrete(3), 0.01),
        (IdentityEnvMultiBinary(3), 0.01),
    ],
)
def test_entropy_bonus_by_default_only_for_bounded_entropies(env: gym.Env, expected: float, tmp_path: Path) -> None:
    """``ent_coef=None`` is 0 for a Gaussian policy (detail 11) and 0.01 for discrete actions; an explicit value is
    kept, and a loaded model keeps the value it was saved with (not the one its action space would get now)."""
    model = ACKTR("MlpPolicy", env, n_steps=4, seed=0)
    assert model.ent_coef == expected
    assert ACKTR("MlpPolicy", env, n_steps=4, ent_coef=0.05).ent_coef == 0.05
    model.ent_coef = 0.03  # a model saved with another value, e.g. before the default depended on the space
    model.save(tmp_path / "model.zip")
    assert ACKTR.load(tmp_path / "model.zip", env=env).ent_coef == 0.03


def test_policy_kwargs_reusable_with_elu_critic() -> None:
    # vf_activation_fn goes into the model's policy_kwargs, not into the caller's dict
    policy_kwargs = dict(net_arch=dict(pi=[8], vf=[8]))
    for _ in range(2):
        model = ACKTR("MlpPolicy", IdentityEnv(3), policy_kwargs=policy_kwargs, vf_activation_fn="elu")
        assert model.policy_kwargs["vf_activation_fn"] is nn.ELU
    assert policy_kwargs == dict(net_arch=dict(pi=[8], vf=[8]))


def test_learning_rate_schedules_reach_the_optimizers() -> None:
    model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=8, learning_rate=lambda p: 0.5 * p, vf_learning_rate=lambda p: 0.1 * p)
    model.learn(64)
    progress = model._current_progress_remaining
    actor_opt, critic_opt = model.optimizers
    assert actor_opt.param_groups[0]["lr"] == pytest.approx(0.5 * progress)
    assert critic_opt.param_groups[0]["lr"] == pytest.approx(0.1 * progress)


def test_critic_eta_max_by_default_and_when_loaded(tmp_path: Path) -> None:
    """The separate critic's ``eta_max`` is 0.02 by default (detail 12), ``None`` makes it follow ``learning_rate``, and
    a model saved with another value (``None``, the first default; 0.05, the second) keeps it when loaded."""
    model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=8, learning_rate=0.3)
    model.learn(8)
    assert [opt.param_groups[0]["lr"] for opt in model.optimizers] == [pytest.approx(0.3), pytest.approx(0.02)]
    for saved_with, critic_lr in ((None, 0.3), (0.05, 0.05)):
        model = ACKTR("MlpPolicy", IdentityEnv(3), n_steps=8, learning_rate=0.3, vf_learning_rate=saved_with)
        model.save(tmp_path / "model.zip")
        loaded = ACKTR.load(tmp_path / "model.zip", env=IdentityEnv(3))
        loaded.learn(8)
        assert [opt.param_groups[0]["lr"] for opt in loaded.optimizers] == [pytest.approx(0.3), pytest.approx(critic_lr)]


@pytest.mark.parametrize("space", list(ACTION_ENVS))
def test_action_spaces_run_and_update(space: str) -> None:
    model = ACKTR("MlpPolicy", ACTION_ENVS[space](), n_steps=8, seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(32)
    assert all(opt.steps == 4 for opt in model.optimizers)
    changed = [not th.equal(p, q) for p, q in zip(model.policy.parameters(), before, strict=True)]
    assert all(changed)


def test_cnn_policy_preconditions_convolutions() -> None:
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    model = ACKTR("CnnPolicy", env, n_steps=4, seed=0, policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)))
    (opt,) = model.optimizers  # shared NatureCNN trunk -> joint
    conv_layers = [layer for layer in opt.layers if isinstance(layer.module, nn.Conv2d)]
    assert len(conv_layers) == 3
    model.learn(8)
    assert all(layer.a_factor is not None for layer in opt.layers)


def test_multi_input_policy_runs() -> None:
    model = ACKTR("MultiInputPolicy", SimpleMultiObsEnv(random_start=True), n_steps=8, seed=0)
    model.learn(16)
    assert all(opt.steps == 2 for opt in model.optimizers)
    # dict observations subsampled for the statistics and for target_kl's measured KL
    kwargs = dict(stats_batch_size=3, target_kl=0.01, kl_batch_size=5)
    model = ACKTR("MultiInputPolicy", SimpleMultiObsEnv(random_start=True), n_steps=8, seed=0, **kwargs)
    model.learn(16)
    assert all(opt.steps == 2 for opt in model.optimizers) and model.logger.name_to_value["train/measured_kl"] >= 0.0


def _record_drawn_rows(monkeypatch: pytest.MonkeyPatch) -> list[th.Tensor]:
    """Make ACKTR's ``index_observations`` append every batch of observation rows it draws to the returned list."""
    import sb3_natgrad.acktr.acktr as acktr_module

    drawn: list[th.Tensor] = []
    index_observations = acktr_module.index_observations

    def recording_index(obs: th.Tensor, idx: th.Tensor) -> th.Tensor:
        rows = index_observations(obs, idx)
        assert isinstance(rows, th.Tensor)
        drawn.append(rows.clone())
        return rows

    monkeypatch.setattr(acktr_module, "index_observations", recording_index)
    return drawn


def _assert_distinct_rollout_rows(rows: th.Tensor, rollout: th.Tensor) -> None:
    """Every row of ``rows`` ``[k, d]`` is a row of ``rollout`` ``[B, d]``, and no two are the same one."""
    matches = (rows[:, None, :] == rollout[None, :, :]).all(-1)  # [k, B]
    assert (matches.sum(1) >= 1).all() and len({int(j) for j in matches.float().argmax(1)}) == rows.shape[0]


@pytest.mark.parametrize("kfac_mode", ["separate", "joint"])
def test_stats_batch_size_records_factors_on_the_drawn_rows_only(kfac_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``stats_batch_size=m`` the first input factor is ``E[a a^T]`` over exactly ``m`` distinct rows of
    the rollout (explicit sum over them), and every layer saw a batch of ``m``."""
    drawn = _record_drawn_rows(monkeypatch)
    env = RandomObsEnv(spaces.Discrete(3))
    model = ACKTR("MlpPolicy", env, n_steps=16, stats_batch_size=5, kfac_mode=kfac_mode, seed=0)
    model.learn(16)  # one rollout of 16 samples, one update
    assert len(drawn) == 1 and drawn[0].shape == (5, 2)
    _assert_distinct_rollout_rows(drawn[0], th.as_tensor(model.rollout_buffer.observations.reshape(16, 2)))
    a_rows = th.cat([drawn[0], th.ones(5, 1)], dim=1)  # [5, 3], the bias as a ones column
    expected = sum(th.outer(a, a) for a in a_rows) / 5  # explicit sum over the drawn samples
    first_actor_layer = next(layer for layer in model.optimizers[0].layers if layer.name.endswith("policy_net.0"))
    assert first_actor_layer.a_factor is not None
    th.testing.assert_close(first_actor_layer.a_factor, expected, rtol=1e-5, atol=1e-6)
    assert all(layer.batch_size == 5 for opt in model.optimizers for layer in opt.layers)


def test_stats_batch_size_at_least_the_rollout_is_the_default_path() -> None:
    params = []
    for stats_batch_size in (None, 16, 100):
        model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=16, stats_batch_size=stats_batch_size, seed=0)
        model.learn(32)
        params.append(th.nn.utils.parameters_to_vector(model.policy.parameters()))
    th.testing.assert_close(params[0], params[1], rtol=0, atol=0)
    th.testing.assert_close(params[0], params[2], rtol=0, atol=0)


class _SnapshotPolicy(BaseCallback):
    """Copies the policy's parameters at the end of each rollout (the parameters ``train()`` starts from)."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[dict[str, th.Tensor]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.snapshots.append(copy.deepcopy(self.model.policy.state_dict()))


def _closed_form_update_kl(model: ACKTR, before: dict[str, th.Tensor], obs: th.Tensor) -> float:
    """Mean over ``obs`` of KL(pi_before || pi_now) for a diagonal Gaussian policy, in float64:
    ``sum_d log(s1 / s0) + (s0^2 + (m0 - m1)^2) / (2 s1^2) - 1/2``."""
    mu0, log_std0 = _gaussian_mean_log_std(model, before, obs)
    mu1, log_std1 = _gaussian_mean_log_std(model, model.policy.state_dict(), obs)
    mu0, log_std0, mu1, log_std1 = mu0.double(), log_std0.double(), mu1.double(), log_std1.double()
    var0, var1 = (2 * log_std0).exp(), (2 * log_std1).exp()
    return float((log_std1 - log_std0 + (var0 + (mu0 - mu1) ** 2) / (2 * var1) - 0.5).sum(-1).mean())


def _gaussian_mean_log_std(model: ACKTR, state: dict[str, th.Tensor], obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Mean and log std of the policy with parameters ``state`` at ``obs`` (flat observations)."""
    policy = model.policy
    with th.no_grad():
        latent_pi, _ = functional_call(policy.mlp_extractor, _sub(state, "mlp_extractor."), (obs,))  # [B, h]
        mean = functional_call(policy.action_net, _sub(state, "action_net."), (latent_pi,))  # [B, d]
        log_std = gsde_log_std(latent_pi, state["log_std"]) if model.use_sde else state["log_std"].expand_as(mean)
    return mean, log_std


@pytest.mark.parametrize("use_sde", [False, True])
@pytest.mark.parametrize("env", ["Pendulum-v1", "box3"])
@pytest.mark.parametrize("target_kl, factor", [(1e3, 1.5), (1e-12, 1 / 1.5)])
def test_target_kl_measures_the_update_kl_and_adapts_eta_max(env: str, target_kl: float, factor: float, use_sde: bool) -> None:
    """The logged KL of an update equals the closed-form KL between the diagonal Gaussians before and after
    it (a state-independent std or gSDE's state-dependent one); the next update's eta_max is the
    schedule times 1.5 (KL below target_kl / 2) or divided by 1.5."""
    snapshot = _SnapshotPolicy()
    # a large step (KL ~ 1e-2), so that float32 rounding in the measured KL stays far below the tolerance
    kwargs = dict(learning_rate=0.5, kl_clip=0.05, momentum=0.0, target_kl=target_kl)
    # box3: 3-d actions, whose KL is the sum over the dimensions
    env_or_id = RandomObsEnv(spaces.Box(-1.0, 1.0, (3,), np.float32)) if env == "box3" else env
    model = ACKTR("MlpPolicy", env_or_id, n_steps=32, seed=0, use_sde=use_sde, **kwargs)
    model.learn(32, callback=snapshot)  # one rollout, one update
    obs = th.as_tensor(model.rollout_buffer.observations.reshape(32, -1))
    closed_form = _closed_form_update_kl(model, snapshot.snapshots[0], obs)
    measured = model.logger.name_to_value["train/measured_kl"]
    assert measured > 1e-3 and math.isclose(measured, closed_form, rel_tol=1e-4)
    assert model.eta_scale == pytest.approx(factor)
    model.learn(32, reset_num_timesteps=False)
    assert model.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.5 * factor)
    assert model.logger.name_to_value["train/eta_max"] == pytest.approx(0.5 * factor)


def test_kl_batch_size_measures_the_kl_on_the_drawn_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``kl_batch_size=k`` the logged KL is the closed-form Gaussian KL averaged over exactly ``k`` distinct
    rows of the rollout (the ones passed to the post-update forward pass)."""
    drawn = _record_drawn_rows(monkeypatch)
    snapshot = _SnapshotPolicy()
    kwargs = dict(learning_rate=0.5, kl_clip=0.05, momentum=0.0, target_kl=1e3, kl_batch_size=7)
    model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=32, seed=0, **kwargs)
    model.learn(32, callback=snapshot)  # one rollout, one update
    assert len(drawn) == 1 and drawn[0].shape == (7, 3)
    _assert_distinct_rollout_rows(drawn[0], th.as_tensor(model.rollout_buffer.observations.reshape(32, 3)))
    closed_form = _closed_form_update_kl(model, snapshot.snapshots[0], drawn[0])
    measured = model.logger.name_to_value["train/measured_kl"]
    assert measured > 1e-4 and math.isclose(measured, closed_form, rel_tol=1e-4)


def test_kl_batch_size_at_least_the_rollout_is_the_default_path() -> None:
    params = []
    for kl_batch_size in (None, 16, 100):
        model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=16, target_kl=0.01, kl_batch_size=kl_batch_size, seed=0)
        model.learn(48)
        params.append(th.nn.utils.parameters_to_vector(model.policy.parameters()))
    th.testing.assert_close(params[0], params[1], rtol=0, atol=0)
    th.testing.assert_close(params[0], params[2], rtol=0, atol=0)


def test_target_kl_keeps_eta_max_within_bounds() -> None:
    model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=8, learning_rate=0.9, target_kl=1e3, seed=0)
    model.learn(24)  # three updates, each KL far below target: 0.9 * 1.5 is clamped to 1
    assert model._scaled_eta(model.eta_scale) == pytest.approx(1.0)
    assert model.eta_scale == pytest.approx(1 / 0.9)


def test_default_statistics_are_amortised(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the class defaults (issue 22: the cost at rollouts of >= 1,000 samples) the factors are recorded at every 4th
    update only, on 256 samples drawn from the rollouts since the last recording, and inverted every 12th update."""
    recordings: list[tuple[int, int | None]] = []
    fold = KFAC._fold

    def spy(self: KFAC, batch_size: int | None) -> None:
        recordings.append((self.steps, self.layers[0]._a_sum is not None and self.layers[0].batch_size))
        fold(self, batch_size)

    monkeypatch.setattr(KFAC, "_fold", spy)
    model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=80, seed=0)  # 80-sample rollouts; the pool of 4 at update 4: 320
    model.learn(80 * 5)
    actor, critic = model.optimizers
    assert (actor.stats_interval, actor.inverse_interval, model.stats_replay) == (4, 12, True)
    assert actor.param_groups[0]["stat_decay"] == critic.param_groups[0]["stat_decay"] == 0.96
    assert recordings == [(0, 80), (0, 80), (4, 256), (4, 256)]  # actor and critic at updates 0 (the rollout) and 4
