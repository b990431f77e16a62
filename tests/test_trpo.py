"""TRPO: parity with sb3-contrib, brute-force checks of the policy and critic steps, failure handling."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
import pytest
import torch as th
import yaml
from helpers import assert_trained, parameters
from sb3_contrib import TRPO as ContribTRPO
from stable_baselines3.common.envs import IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.func import functional_call

from sb3_natgrad import TRPO
from sb3_natgrad.common.policies import actor_parameters, critic_parameters, shared_parameters
from sb3_natgrad.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
from sb3_natgrad.zoo import hyperparams_dir

TINY = dict(n_steps=128, batch_size=64, n_critic_updates=2, policy_kwargs=dict(net_arch=[16, 16]), seed=0)

ENVS: dict[str, Callable[[], gym.Env]] = {
    "discrete": lambda: gym.make("CartPole-v1"),
    "box": lambda: gym.make("Pendulum-v1"),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(dim=3, ep_length=20),
    "multibinary": lambda: IdentityEnvMultiBinary(dim=3, ep_length=20),
}


def _flat(params: list[nn.Parameter]) -> th.Tensor:
    return th.cat([p.detach().reshape(-1) for p in params])


def _collect(model: Any) -> None:
    """Fill the rollout buffer without training (what ``learn`` does before ``train``)."""
    _, callback = model._setup_learn(model.n_steps, None)
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)


def _batch(model: TRPO) -> dict[str, th.Tensor]:
    """The whole rollout as tensors (order does not matter for batch means)."""
    data = next(iter(model.rollout_buffer.get(batch_size=None)))
    actions = data.actions.long().flatten() if isinstance(model.action_space, gym.spaces.Discrete) else data.actions
    adv = data.advantages
    return dict(
        obs=data.observations,
        actions=actions,
        old_log_prob=data.old_log_prob,
        advantages=(adv - adv.mean()) / (adv.std() + 1e-8),
        returns=data.returns,
    )


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize(
    "env_name, extra",
    [("discrete", {}), ("box", {}), ("box", dict(use_sde=True)), ("multidiscrete", {}), ("multibinary", {})],
)
def test_parity_with_sb3_contrib(env_name: str, extra: dict[str, Any]) -> None:
    """Same seed, same rollout: one update of fisher='hessian' gives sb3-contrib's parameters."""
    kwargs = {**TINY, **extra}
    contrib = ContribTRPO("MlpPolicy", ENVS[env_name](), **kwargs)
    ours = TRPO("MlpPolicy", ENVS[env_name](), fisher="hessian", **kwargs)
    analytic = TRPO("MlpPolicy", ENVS[env_name](), **kwargs)
    initial = _flat(list(contrib.policy.parameters()))
    th.testing.assert_close(_flat(list(ours.policy.parameters())), initial, rtol=0, atol=0)
    for model in (contrib, ours, analytic):
        model.set_random_seed(1)  # same global RNG state for each rollout and update
        model.learn(kwargs["n_steps"])  # one rollout, one train()

    expected = _flat(list(contrib.policy.parameters()))
    assert (expected - initial).abs().max() > 1e-3  # the update is far larger than the tolerance
    th.testing.assert_close(_flat(list(ours.policy.parameters())), expected, rtol=1e-4, atol=2e-5)
    # The analytic Fisher gives the same direction, up to round-off in the products.
    th.testing.assert_close(_flat(list(analytic.policy.parameters())), expected, rtol=1e-4, atol=5e-5)


# ------------------------------------------------------------------------------------ policy step checks
def _brute_force_step(model: TRPO, batch: dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
    """Dense (F + damping I)^-1 g and F for the actor, from autograd's Hessian/Jacobian of closed forms."""
    policy = model.policy
    params = actor_parameters(policy)
    names = {id(p): n for n, p in policy.named_parameters()}
    theta0 = _flat(params)

    class Dist(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, obs: th.Tensor) -> Any:
            return self.policy.get_distribution(obs)

    wrapper = Dist()

    def dist_of(theta: th.Tensor) -> Any:
        chunks = th.split(theta, [p.numel() for p in params])
        values = {f"policy.{names[id(p)]}": c.view_as(p) for p, c in zip(params, chunks, strict=True)}
        return functional_call(wrapper, values, (batch["obs"],), strict=False)

    with th.no_grad():
        old = dist_of(theta0)
        old_probs = old.distribution.probs.clone()

    def surrogate(theta: th.Tensor) -> th.Tensor:
        log_prob = dist_of(theta).log_prob(batch["actions"])
        return (batch["advantages"] * th.exp(log_prob - batch["old_log_prob"])).mean()

    def mean_kl(theta: th.Tensor) -> th.Tensor:
        new_probs = dist_of(theta).distribution.probs
        return (old_probs * (old_probs.log() - new_probs.log())).sum(-1).mean()

    fisher = th.autograd.functional.hessian(mean_kl, theta0)
    grad = th.autograd.functional.jacobian(surrogate, theta0)
    direction = th.linalg.solve(fisher + model.cg_damping * th.eye(len(theta0)), grad)
    return direction, fisher


def _no(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in ("n_steps", "n_critic_updates")}


def test_policy_step_is_the_closed_form_trust_region_step() -> None:
    model = TRPO("MlpPolicy", "CartPole-v1", n_steps=64, n_critic_updates=1, cg_max_steps=300, target_kl=0.005, **_no(TINY))
    _collect(model)
    batch = _batch(model)
    theta0 = _flat(actor_parameters(model.policy))
    direction, fisher = _brute_force_step(model, batch)
    with th.no_grad():
        old_probs = model.policy.get_distribution(batch["obs"]).distribution.probs.clone()  # [N, 2]
    model.train()
    values = model.logger.name_to_value
    assert values["train/is_line_search_success"] == 1.0 and values["train/line_search_steps"] == 1
    step = _flat(actor_parameters(model.policy)) - theta0
    # Accepted at the first try: exactly sqrt(2 delta / s^T (F + damping) s) s.
    shs = direction @ (fisher + model.cg_damping * th.eye(len(theta0))) @ direction
    expected = math.sqrt(2 * model.target_kl / float(shs)) * direction
    # float32 CG against a float64 dense solve: compare as vectors
    assert float((step - expected).norm() / expected.norm()) < 1e-3
    # The exact mean KL of the new policy is within the trust region, and is the logged one.
    with th.no_grad():
        new_probs = model.policy.get_distribution(batch["obs"]).distribution.probs
    kl = float((old_probs * (old_probs.log() - new_probs.log())).sum(-1).mean())
    assert kl <= model.target_kl and kl == pytest.approx(model.target_kl, rel=0.2)
    assert values["train/kl_divergence_loss"] == pytest.approx(kl, rel=1e-4)
    # The closed-form step puts the damped quadratic model of the KL exactly on the boundary.
    damped = fisher + model.cg_damping * th.eye(len(theta0))
    assert float(step @ damped @ step) / 2 == pytest.approx(model.target_kl, rel=2e-3)


@pytest.mark.parametrize(
    "env_id, kl_reduction, seed",
    [
        ("Pendulum-v1", "mean", 0),
        ("Pendulum-v1", "mean", 1),
        ("LunarLanderContinuous-v3", "mean", 0),
        ("LunarLanderContinuous-v3", "sum", 0),
        ("LunarLanderContinuous-v3", "sum", 1),
    ],
)
def test_accepted_steps_satisfy_the_kl_bound(env_id: str, kl_reduction: str, seed: int) -> None:
    model = TRPO(
        "MlpPolicy",
        env_id,
        target_kl=0.05,
        line_search_shrinking_factor=0.5,
        kl_reduction=kl_reduction,
        **{**TINY, "seed": seed},
    )
    for _ in range(3):
        _collect(model)
        batch = _batch(model)
        with th.no_grad():
            old = model.policy.get_distribution(batch["obs"]).distribution
            old = th.distributions.Normal(old.loc.clone(), old.scale.clone())
        theta0 = _flat(actor_parameters(model.policy))
        model.train()
        values = model.logger.name_to_value
        with th.no_grad():
            new = model.policy.get_distribution(batch["obs"]).distribution
            kl_per_dim = th.distributions.kl_divergence(old, new)  # [N, d]
            # "mean": sb3-contrib's KL averaged over action dimensions; "sum": KL of the joint distribution
            kl = kl_per_dim.mean() if kl_reduction == "mean" else kl_per_dim.sum(-1).mean()
            log_ratio = new.log_prob(batch["actions"]).sum(-1) - batch["old_log_prob"]
            surrogate = (batch["advantages"] * th.exp(log_ratio)).mean()
            old_surrogate = batch["advantages"].mean()  # ratio 1 at theta_old
        if values["train/is_line_search_success"]:
            assert float(kl) <= model.target_kl
            assert float(surrogate) > float(old_surrogate)
            assert values["train/kl_divergence_loss"] == pytest.approx(float(kl), rel=1e-4, abs=1e-7)
        else:
            assert th.equal(_flat(actor_parameters(model.policy)), theta0)


@pytest.mark.parametrize("case", ["no_improvement", "nan_advantages"])
def test_failed_step_leaves_policy_unchanged(case: str) -> None:
    model = TRPO("MlpPolicy", "Pendulum-v1", normalize_advantage=False, **TINY)
    _collect(model)
    model.rollout_buffer.advantages[:] = 0.0 if case == "no_improvement" else np.nan
    theta0 = _flat(actor_parameters(model.policy))
    model.train()
    assert th.equal(_flat(actor_parameters(model.policy)), theta0)
    values = model.logger.name_to_value
    assert values["train/is_line_search_success"] == 0.0 and values["train/kl_divergence_loss"] == 0.0
    if case == "nan_advantages":
        assert values["train/cg_breakdown"] == 1.0
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_natural_policy_gradient_variant() -> None:
    model = TRPO("MlpPolicy", "CartPole-v1", line_search=False, target_kl=0.02, **TINY)
    model.learn(3 * TINY["n_steps"])
    values = model.logger.name_to_value
    assert values["train/line_search_steps"] == 1 and values["train/step_fraction"] == 1.0
    assert values["train/is_line_search_success"] == 1.0
    # No backtracking: the KL is only approximately target_kl (quadratic model), not bounded by it.
    assert values["train/kl_divergence_loss"] == pytest.approx(0.02, rel=0.5)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


# ------------------------------------------------------------------------------------------ critic step
@pytest.mark.parametrize("vf_sigma", [None, 3.0])
def test_trust_region_critic_step(vf_sigma: float | None) -> None:
    model = TRPO(
        "MlpPolicy",
        "Pendulum-v1",
        critic="trust_region",
        vf_target_kl=0.02,
        vf_sigma=vf_sigma,
        **{**TINY, "n_critic_updates": 1},
    )
    _collect(model)
    batch = _batch(model)
    with th.no_grad():
        old_values = model.policy.predict_values(batch["obs"]).flatten()
    old_loss = float(((old_values - batch["returns"]) ** 2).mean())
    model.train()
    with th.no_grad():
        new_values = model.policy.predict_values(batch["obs"]).flatten()
    new_loss = float(((new_values - batch["returns"]) ** 2).mean())
    sigma_sq = old_loss if vf_sigma is None else vf_sigma**2
    kl = float(((new_values - old_values) ** 2).mean()) / (2 * sigma_sq)
    assert model.logger.name_to_value["train/vf_line_search_success"] == 1.0
    assert kl <= 0.02 * (1 + 1e-5)
    assert kl > 0.001  # it does move, up to the trust region
    assert new_loss < old_loss
    assert model.logger.name_to_value["train/vf_kl"] == pytest.approx(kl, rel=1e-3)


class LinearExtractor(BaseFeaturesExtractor):
    """A features extractor with parameters, to be shared by actor and critic."""

    def __init__(self, observation_space: gym.spaces.Box) -> None:
        super().__init__(observation_space, features_dim=8)
        self.linear = nn.Sequential(nn.Linear(int(np.prod(observation_space.shape)), 8), nn.Tanh())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(observations)


@pytest.mark.parametrize("critic", ["adam", "trust_region"])
def test_critic_never_moves_shared_layers(critic: str) -> None:
    policy_kwargs = dict(features_extractor_class=LinearExtractor, share_features_extractor=True, net_arch=[8])
    model = TRPO(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        critic=critic,
        normalize_advantage=False,
        policy_kwargs=policy_kwargs,
        seed=0,
    )
    shared = shared_parameters(model.policy)
    assert shared and {id(p) for p in shared} == {id(p) for p in model.policy.features_extractor.parameters()}
    assert not {id(p) for p in shared} & {id(p) for p in critic_parameters(model.policy)}
    _collect(model)
    # No policy improvement possible: the policy step is rejected, so only the critic step acts.
    model.rollout_buffer.advantages[:] = 0.0
    shared0 = _flat(shared)
    critic0 = _flat(critic_parameters(model.policy))
    model.train()
    assert model.logger.name_to_value["train/is_line_search_success"] == 0.0
    assert th.equal(_flat(shared), shared0)
    assert not th.equal(_flat(critic_parameters(model.policy)), critic0)
    # With a usable advantage, the policy step does move the shared extractor.
    _collect(model)
    model.train()
    assert model.logger.name_to_value["train/is_line_search_success"] == 1.0
    assert not th.equal(_flat(shared), shared0)


# ------------------------------------------------------------------------------------------- plumbing
@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize("options", [dict(critic="trust_region"), dict(line_search=False, kl_reduction="sum")])
def test_all_action_spaces(env_name: str, options: dict[str, Any]) -> None:
    model = TRPO("MlpPolicy", ENVS[env_name](), **{**TINY, "n_steps": 64}, **options)
    model.learn(128)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert model.logger.name_to_value["train/n_updates"] == 2


@pytest.mark.parametrize(
    "name, value",
    [
        ("fisher", "exact"),
        ("critic", "sgd"),
        ("kl_reduction", "max"),
        ("target_kl", 0.0),
        ("target_kl", -0.01),
        ("vf_target_kl", 0.0),
        ("vf_sigma", -1.0),
        ("cg_max_steps", 0),
        ("cg_damping", -0.1),
        ("line_search_shrinking_factor", 1.0),
        ("line_search_shrinking_factor", 0.0),
        ("line_search_max_iter", 0),
        ("n_critic_updates", -1),
        ("sub_sampling_factor", 0),
        ("batch_size", 0),
        ("batch_size", 32.0),
        ("gamma", 1.5),
        ("line_search", "yes"),
    ],
)
def test_invalid_hyperparameters(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^TRPO: {name} must be .*, got {re.escape(repr(value))}$"):
        TRPO("MlpPolicy", "CartPole-v1", **{name: value})


def test_normalize_advantage_refuses_a_one_sample_rollout() -> None:
    """The standard deviation of one advantage is NaN (the same check as ACKTR's and PPG's)."""
    with pytest.raises(ValueError, match=r"^TRPO: normalize_advantage needs n_steps \* n_envs >= 2, got n_steps=1"):
        TRPO("MlpPolicy", "CartPole-v1", n_steps=1, batch_size=1)
    TRPO("MlpPolicy", "CartPole-v1", n_steps=1, batch_size=1, normalize_advantage=False)


def test_sub_sampling() -> None:
    model = TRPO("MlpPolicy", "CartPole-v1", sub_sampling_factor=4, **TINY)
    model.learn(2 * TINY["n_steps"])
    assert model.logger.name_to_value["train/n_updates"] == 2


def test_hyperparams_file_and_sampler() -> None:
    entries = yaml.safe_load((hyperparams_dir() / "trpo.yml").read_text())
    zoo = yaml.safe_load(open(__import__("rl_zoo3").__path__[0] + "/hyperparams/trpo.yml"))
    assert set(zoo) <= set(entries) and all(entries[k] == v for k, v in zoo.items())
    assert {"default", "CartPole-v1", "Pendulum-v1", "LunarLander-v3", "HalfCheetah-v5", "Hopper-v5"} <= set(entries)

    params = dict(
        batch_size_pow=6,
        n_steps_pow=7,
        one_minus_gamma=0.01,
        one_minus_gae_lambda=0.05,
        learning_rate=1e-3,
        n_critic_updates=5,
        cg_max_steps=5,
        target_kl=0.02,
        net_arch="small",
        activation_fn="tanh",
        line_search=False,
        critic="trust_region",
        vf_target_kl=0.03,
    )
    sampled = HYPERPARAMS_SAMPLER["trpo"](optuna.trial.FixedTrial(params), 1, 1, {})
    assert sampled["critic"] == "trust_region" and sampled["vf_target_kl"] == 0.03 and sampled["line_search"] is False
    assert HYPERPARAMS_CONVERTER["trpo"](params) == sampled
    model = TRPO("MlpPolicy", "CartPole-v1", **sampled)
    assert model.critic == "trust_region" and model.n_steps == 128


# ------------------------------------------------------------------------------------ fused critic Adam
@pytest.mark.parametrize(
    "optimizer_kwargs, expect_fused",
    [(None, True), (dict(eps=1e-6), True), (dict(foreach=False), False), (dict(fused=False), False)],
)
def test_critic_adam_is_fused_unless_the_user_chose(optimizer_kwargs: dict[str, Any] | None, expect_fused: bool) -> None:
    model = TRPO("MlpPolicy", ENVS["discrete"](), **{**TINY, "policy_kwargs": dict(optimizer_kwargs=optimizer_kwargs)})
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, th.optim.Adam)
    group = optimizer.param_groups[0]
    assert bool(group["fused"]) is expect_fused
    # the user's keyword arguments survive, or SB3's default (eps=1e-5) when none are given
    assert group["eps"] == (1e-5 if optimizer_kwargs is None else optimizer_kwargs.get("eps", 1e-8))
    assert group["lr"] == model.learning_rate
    assert [id(p) for p in group["params"]] == [id(p) for p in model.policy.parameters()]


def test_other_critic_optimizers_are_kept() -> None:
    kwargs = {**TINY, "policy_kwargs": dict(optimizer_class=th.optim.RMSprop, net_arch=[16, 16])}
    model = TRPO("MlpPolicy", ENVS["discrete"](), **kwargs)
    assert type(model.policy.optimizer) is th.optim.RMSprop
    before = parameters(model)
    model.learn(kwargs["n_steps"])  # the critic phase runs with it
    assert_trained(model, before)


# ------------------------------------------------------------------------------ removed options
@pytest.mark.parametrize(("value", "warns"), [(None, False), ("kfac", True)])
def test_model_saved_with_the_removed_cg_preconditioner_loads(tmp_path: Any, value: str | None, warns: bool) -> None:
    """A model saved while ``cg_preconditioner`` existed stores it among its attributes, which SB3's ``load`` sets:
    dropped on load, with a warning when it was on; the loaded model trains."""
    model = TRPO("MlpPolicy", ENVS["discrete"](), **TINY)
    model.cg_preconditioner = value  # what such a save held
    model.save(tmp_path / "model.zip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = TRPO.load(tmp_path / "model.zip", env=ENVS["discrete"]())
    expected = (
        "TRPO: the option cg_preconditioner was removed; this model was saved with cg_preconditioner='kfac' and "
        "continues as with cg_preconditioner=None"
    )
    assert [str(w.message) for w in caught if "cg_preconditioner" in str(w.message)] == ([expected] if warns else [])
    assert not hasattr(loaded, "cg_preconditioner")
    loaded.learn(TINY["n_steps"])
    assert loaded.logger.name_to_value["train/cg_iterations"] >= 1


def test_removed_cg_preconditioner_is_not_an_argument() -> None:
    with pytest.raises(TypeError, match="cg_preconditioner"):
        TRPO("MlpPolicy", ENVS["discrete"](), cg_preconditioner="kfac", **TINY)  # type: ignore[call-arg]
