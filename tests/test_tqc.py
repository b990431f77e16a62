"""TQC: parity with sb3-contrib, the importance-weighted loss and the n-step targets against hand computations, the
K-FAC critic's statistics and step against independent computations, save/load, Dict observations, errors, the
YAML fallback to the zoo and the Optuna sampler."""

from __future__ import annotations

import inspect
import math
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
import pytest
import torch as th
import yaml
from gymnasium import spaces
from helpers import assert_trained, parameters
from sb3_contrib import TQC as ContribTQC
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvMultiDiscrete, SimpleMultiObsEnv
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_natgrad import ALGOS, TQC
from sb3_natgrad.common.prioritized_replay import (
    PrioritizedDictReplayBuffer,
    PrioritizedReplayBuffer,
    PrioritizedReplayBufferSamples,
)
from sb3_natgrad.hyperparams_opt import HYPERPARAMS_SAMPLER
from sb3_natgrad.optim.kfac import KFAC
from sb3_natgrad.tqc.quantile import quantile_fractions, sampled_quantile_fisher_loss
from sb3_natgrad.zoo import conf_file_for, hyperparams_dir, tuned_hyperparams, with_default_conf_file, zoo_hyperparams_file


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    th.set_num_threads(1)  # as tests/conftest.py does (this file also runs with --noconftest)


TINY: dict[str, Any] = dict(
    learning_starts=64, batch_size=32, buffer_size=1000, seed=0, policy_kwargs=dict(net_arch=[32, 32], n_quantiles=5)
)
KFAC_TINY: dict[str, Any] = dict(TINY, critic_optimizer="kfac")


# ------------------------------------------------------------------ PARITY
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(ent_coef=0.05, train_freq=4, gradient_steps=4, target_update_interval=2, top_quantiles_to_drop_per_net=1),
        dict(n_steps=3, gamma=0.9),
        dict(use_sde=True, sde_sample_freq=4),
    ],
    ids=["default", "fixed_ent_coef_target_interval", "n_steps", "sde"],
)
def test_parity_with_contrib(kwargs: dict[str, Any]) -> None:
    """Every variant off: the same parameters as sb3-contrib's TQC after the same updates from the same seed."""
    # One after the other: each construction seeds torch's global generator, which learn() then draws from.
    ours = TQC("MlpPolicy", "Pendulum-v1", **TINY, **kwargs)
    before = parameters(ours)
    ours.learn(150)
    theirs = ContribTQC("MlpPolicy", "Pendulum-v1", **TINY, **kwargs)
    theirs.learn(150)
    assert type(ours.replay_buffer) is type(theirs.replay_buffer)
    assert_trained(ours, before)
    assert ours._n_updates == theirs._n_updates > 0
    ours_params, theirs_params = parameters(ours), parameters(theirs)
    assert ours_params.keys() == theirs_params.keys()
    for name, value in theirs_params.items():
        th.testing.assert_close(ours_params[name], value, rtol=1e-6, atol=1e-7, msg=name)
    if theirs.log_ent_coef is not None:
        th.testing.assert_close(ours.log_ent_coef, theirs.log_ent_coef, rtol=1e-6, atol=1e-7)
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef"):
        assert ours.logger.name_to_value[key] == pytest.approx(theirs.logger.name_to_value[key], rel=1e-5)


# ------------------------------------------------------------------ PRIORITIZED REPLAY
def brute_weighted_quantile_huber(
    current: list[list[list[float]]], target: list[list[float]], weights: list[float]
) -> tuple[float, list[float]]:
    """The importance-weighted TQC critic loss by loops: per sample, the mean over critics ``c``, quantiles ``i`` and
    targets ``j`` of ``|tau_i - 1{u < 0}| huber(u)``, ``u = y_j - theta_ci``, ``tau_i = (2 i + 1) / (2 N)``; then the
    mean over samples of ``w_b * loss_b``."""
    per_sample = []
    for theta_b, y_b in zip(current, target, strict=True):
        total, count = 0.0, 0
        for theta_c in theta_b:
            n_quantiles = len(theta_c)
            for i, theta in enumerate(theta_c):
                tau = (2 * i + 1) / (2 * n_quantiles)
                for y in y_b:
                    u = y - theta
                    huber = abs(u) - 0.5 if abs(u) > 1 else 0.5 * u * u
                    total += abs(tau - (1.0 if u < 0 else 0.0)) * huber
                    count += 1
        per_sample.append(total / count)
    return sum(w * loss for w, loss in zip(weights, per_sample, strict=True)) / len(per_sample), per_sample


def test_importance_weighted_loss_matches_brute_force() -> None:
    model = TQC("MlpPolicy", "Pendulum-v1", prioritized_replay=True, **TINY)
    gen = th.Generator().manual_seed(3)
    current = (2 * th.randn(4, 2, 3, generator=gen)).requires_grad_(True)  # [B, C, N]
    target = 2 * th.randn(4, 1, 5, generator=gen)  # [B, 1, M]
    weights = th.rand(4, 1, generator=gen) + 0.1  # [B, 1], far from uniform
    data = PrioritizedReplayBufferSamples(
        *(th.zeros(4, 1),) * 6,
        weights=weights,
        indices=np.arange(4),  # only weights matter here
    )
    model._critic_forward = lambda _data: current  # type: ignore[method-assign]
    loss, priorities = model._critic_losses(data, target)  # type: ignore[arg-type]
    expected_loss, expected_per_sample = brute_weighted_quantile_huber(
        current.tolist(), target[:, 0].tolist(), weights[:, 0].tolist()
    )
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5)
    assert priorities is not None
    np.testing.assert_allclose(priorities.numpy(), expected_per_sample, rtol=1e-5)
    # The gradient w.r.t. each quantile: d/dtheta of the same loops (u < 0 and |u| > 1 regimes both present).
    (grad,) = th.autograd.grad(loss, current)
    expected_grad = np.zeros((4, 2, 3))
    for b in range(4):
        for c in range(2):
            for i in range(3):
                tau = (2 * i + 1) / 6
                for y in target[b, 0].tolist():
                    u = y - current[b, c, i].item()
                    dhuber = float(np.sign(u)) if abs(u) > 1 else u
                    expected_grad[b, c, i] -= weights[b, 0].item() * abs(tau - (u < 0)) * dhuber / (2 * 3 * 5 * 4)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-4, atol=1e-7)


def test_priorities_are_the_per_sample_losses() -> None:
    """After an update the sampled transitions' priorities are ``(loss_b + eps) ** alpha`` of their per-sample loss."""
    model = TQC("MlpPolicy", "Pendulum-v1", prioritized_replay=True, per_alpha=0.7, **TINY)
    model.learn(100)
    buffer = model.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    seen: dict[str, Any] = {}
    critic_losses = model._critic_losses

    def spy(data: Any, target: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
        loss, per_sample = critic_losses(data, target)
        seen.update(indices=data.indices.copy(), per_sample=per_sample)
        return loss, per_sample

    model._critic_losses = spy  # type: ignore[method-assign]
    model.train(gradient_steps=1, batch_size=32)
    indices, per_sample = seen["indices"], seen["per_sample"].numpy().astype(np.float64)
    _, last = np.unique(indices[::-1], return_index=True)  # duplicates: the last write wins
    unique = indices[::-1][last]
    expected = np.power(per_sample[::-1][last] + model.per_eps, 0.7)
    np.testing.assert_allclose(buffer.tree[unique], expected, rtol=1e-6)


def test_prioritized_replay_end_to_end_and_beta_annealing() -> None:
    model = TQC("MlpPolicy", "Pendulum-v1", prioritized_replay=True, per_beta=0.3, per_beta_final=0.9, **TINY)
    before = parameters(model)
    model.learn(300)
    assert_trained(model, before)
    buffer = model.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    assert buffer.beta == pytest.approx(0.3 + 0.6 * (1 - model._current_progress_remaining), abs=1e-6) and buffer.beta > 0.85
    priorities = buffer.tree[np.arange(model.num_timesteps)]
    assert np.isfinite(priorities).all() and len(np.unique(priorities)) > 100


def test_save_replay_buffer_keeps_the_priorities(tmp_path: Any) -> None:
    model = TQC("MlpPolicy", "Pendulum-v1", prioritized_replay=True, **TINY)
    model.learn(150)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = TQC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    old, new = model.replay_buffer, loaded.replay_buffer
    assert isinstance(old, PrioritizedReplayBuffer) and isinstance(new, PrioritizedReplayBuffer)
    leaves = np.arange(model.num_timesteps)
    np.testing.assert_array_equal(new.tree[leaves], old.tree[leaves])
    assert new.max_priority == old.max_priority and new.tree.total() == old.tree.total()
    assert loaded.prioritized_replay and loaded.per_beta_final == model.per_beta_final
    loaded.learn(50, reset_num_timesteps=False)
    assert not np.array_equal(new.tree[leaves], old.tree[leaves])


# ------------------------------------------------------------------ N-STEP TARGETS
class CountingDictEnv(gym.Env):
    """``Dict`` observations that name the time step: ``{"t": [t], "x": [t / 10, -t / 10]}``; the reward of step ``t``
    is ``1 + t``; every episode terminates after 5 steps."""

    observation_space = spaces.Dict({"t": spaces.Box(0, 10, (1,)), "x": spaces.Box(-1, 1, (2,))})
    action_space = spaces.Box(-1, 1, (1,))

    def _obs(self) -> dict[str, np.ndarray]:
        return {"t": np.array([self.t], np.float32), "x": np.array([self.t / 10, -self.t / 10], np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        reward = 1.0 + self.t
        self.t += 1
        return self._obs(), reward, self.t == 5, False, {}


@pytest.mark.parametrize("prioritized_replay", [False, True])
def test_n_step_targets_with_dict_observations_match_a_hand_computation(prioritized_replay: bool) -> None:
    gamma, n_steps = 0.9, 3
    model = TQC(
        "MultiInputPolicy", CountingDictEnv(), n_steps=n_steps, gamma=gamma, prioritized_replay=prioritized_replay,
        **{**TINY, "learning_starts": 1000},
    )  # fmt: skip
    model.learn(40)  # 8 episodes, no update
    assert model.replay_buffer is not None and model.replay_buffer.n_steps == n_steps  # type: ignore[attr-defined]
    data = model.replay_buffer.sample(64)
    ent_coef = th.tensor(0.3)
    th.manual_seed(7)
    targets = model._target_quantiles(data, ent_coef)[:, 0]  # [B, M]

    th.manual_seed(7)  # the same draw of a' ~ pi(s')
    with th.no_grad():
        next_actions, next_log_prob = model.actor.action_log_prob(data.next_observations)
        next_quantiles = model.critic_target(data.next_observations, next_actions)  # [B, C, N]
    n_kept = 2 * 5 - 2 * 2  # C * N - d * C
    for b, t in enumerate(data.observations["t"][:, 0].long().tolist()):
        k = min(n_steps, 5 - t)  # rewards summed: cut at the termination at t = 5
        reward_sum = sum(gamma**i * (1.0 + t + i) for i in range(k))
        terminated = t + k == 5
        assert data.next_observations["t"][b, 0].item() == t + k
        kept = sorted(next_quantiles[b].flatten().tolist())[:n_kept]
        bootstrap = 0.0 if terminated else gamma**k
        expected = [reward_sum + bootstrap * (z - 0.3 * next_log_prob[b].item()) for z in kept]
        np.testing.assert_allclose(targets[b].numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("prioritized_replay", "critic_optimizer"), [(False, "adam"), (True, "kfac")])
def test_dict_observations_with_n_step_returns_learn(prioritized_replay: bool, critic_optimizer: str) -> None:
    env = SimpleMultiObsEnv(random_start=True, discrete_actions=False)
    model = TQC(
        "MultiInputPolicy", env, n_steps=4, prioritized_replay=prioritized_replay, critic_optimizer=critic_optimizer,
        **{**TINY, "learning_starts": 32, "batch_size": 16},
    )  # fmt: skip
    buffer = model.replay_buffer
    assert buffer is not None and buffer.n_steps == 4  # type: ignore[attr-defined]
    assert isinstance(buffer, PrioritizedDictReplayBuffer) == prioritized_replay
    before = parameters(model)
    model.learn(60)
    assert_trained(model, before)
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])


# ------------------------------------------------------------------ K-FAC CRITIC
def test_sampled_fisher_loss_has_the_asymmetric_laplace_fisher() -> None:
    """Per-sample output scores: mean 0 and covariance ``diag(tau (1 - tau)) / (C N)``."""
    n_samples, n_critics, n_quantiles = 200_000, 2, 3
    th.manual_seed(0)
    quantiles = th.randn(n_samples, n_critics, n_quantiles).requires_grad_(True)
    (grad,) = th.autograd.grad(sampled_quantile_fisher_loss(quantiles), quantiles)
    scores = (n_samples * grad).reshape(n_samples, -1)  # per-sample gradients, [B, C * N]
    tau = quantile_fractions(n_quantiles).repeat(n_critics)
    expected = th.diag(tau * (1 - tau)) / (n_critics * n_quantiles)
    th.testing.assert_close(scores.mean(0), th.zeros(6), rtol=0, atol=2e-3)
    th.testing.assert_close(scores.T @ scores / n_samples, expected, rtol=0, atol=1e-3)


def _kfac_model(**kwargs: Any) -> TQC:
    return TQC(
        "MlpPolicy", "Pendulum-v1", critic_optimizer="kfac",
        **{**TINY, "policy_kwargs": dict(net_arch=[4], n_quantiles=3, n_critics=2), **kwargs},
    )  # fmt: skip


def _layer(optimizer: KFAC, module: th.nn.Module) -> Any:
    return next(layer for layer in optimizer.layers if layer.module is module)


def test_kfac_factors_match_the_expected_gauss_newton_factors() -> None:
    """One recording on a tiny critic (4 inputs, a hidden layer of 4, 3 quantiles, 2 critics), against the factors
    computed independently: ``A`` exactly from the layer inputs, ``G`` from the expected Gauss-Newton matrix
    ``E[g g^T] = J^T diag(tau (1 - tau)) J / (C N)`` backpropagated by hand (statistically, at B = 8192)."""
    model = _kfac_model()
    optimizer = model.critic.optimizer
    assert isinstance(optimizer, KFAC) and len(optimizer.layers) == 4
    gen = th.Generator().manual_seed(1)
    batch = 8192
    obs, actions = th.randn(batch, 3, generator=gen), th.rand(batch, 1, generator=gen) * 2 - 1
    data = ReplayBufferSamples(obs, actions, obs, th.zeros(batch, 1), th.zeros(batch, 1))
    model.policy.set_training_mode(True)
    th.manual_seed(0)
    model._critic_forward(data)
    tau = quantile_fractions(3)
    output_fisher = th.diag(tau * (1 - tau)).double() / 6  # [N, N]
    ones = th.ones(batch, 1, dtype=th.float64)
    for qf in (model.critic.qf0, model.critic.qf1):
        hidden, out = qf[0], qf[2]
        x = th.cat([obs, actions], dim=1).double()  # [B, 4]
        pre = x @ hidden.weight.double().T + hidden.bias.double()  # [B, 4]
        h = pre.relu()
        x1, h1 = th.cat([x, ones], 1), th.cat([h, ones], 1)
        first, last = _layer(optimizer, hidden), _layer(optimizer, out)
        th.testing.assert_close(first.a_factor.double(), x1.T @ x1 / batch, rtol=1e-5, atol=1e-6)
        th.testing.assert_close(last.a_factor.double(), h1.T @ h1 / batch, rtol=1e-5, atol=1e-6)
        th.testing.assert_close(last.g_factor.double(), output_fisher, rtol=0, atol=3e-3)
        # hidden layer: g = D W^T g_out with D = diag(relu'(pre)): E[g g^T] = mean_n D_n W^T F_out W D_n
        back = out.weight.double().T @ output_fisher @ out.weight.double()  # [4, 4]
        active = (pre > 0).double()  # [B, 4]
        expected = (active.T @ active / batch) * back  # mean_n D_n back D_n, entrywise
        error = (first.g_factor.double() - expected).norm() / expected.norm()
        assert error < 0.05, f"hidden G factor off by {error:.3f} (relative Frobenius)"


def test_kfac_step_is_the_preconditioned_gradient_from_the_recorded_factors() -> None:
    """Each K-FAC step of train() equals ``-eta (G + d_G I)^-1 V (A + d_A I)^-1`` per layer, with the pi-corrected
    damping and ``eta = min(lr, sqrt(2 kl_clip / v))``, computed here in float64 from the factors and gradients
    recorded just before the step."""
    lr, kl_clip, damping = 0.3, 2e-3, 0.02
    model = _kfac_model(
        critic_kfac_lr=lr, critic_kfac_kl_clip=kl_clip, critic_kfac_damping=damping, critic_kfac_momentum=0.0,
        critic_kfac_inverse_interval=1,
    )  # fmt: skip
    optimizer = model.critic.optimizer
    assert isinstance(optimizer, KFAC)
    records: list[dict[str, Any]] = []
    step = optimizer.step

    def recording_step() -> None:
        layers = optimizer.layers
        records.append(
            dict(
                factors=[(layer.a_factor.double().clone(), layer.g_factor.double().clone()) for layer in layers],
                grads=[[p.grad.double().clone() for p in layer.params] for layer in layers],
                params=[[p.detach().double().clone() for p in layer.params] for layer in layers],
            )
        )
        step()
        records[-1]["after"] = [[p.detach().double().clone() for p in layer.params] for layer in layers]

    optimizer.step = recording_step  # type: ignore[method-assign]
    model.learn(70)  # 6 updates
    assert len(records) == 6
    clipped = 0
    for record in records:
        deltas, fisher_norm = [], 0.0
        for (a, g), grads in zip(record["factors"], record["grads"], strict=True):
            v = th.cat([grads[0], grads[1][:, None]], dim=1)  # [out, in + 1]
            pi = math.sqrt((a.trace() / a.shape[0]) / (g.trace() / g.shape[0]))
            gamma = math.sqrt(damping)
            a_damped = a + pi * gamma * th.eye(a.shape[0], dtype=th.float64)
            g_damped = g + gamma / pi * th.eye(g.shape[0], dtype=th.float64)
            delta = th.linalg.solve(g_damped, v) @ th.linalg.inv(a_damped)
            deltas.append(delta)
            fisher_norm += float((v * delta).sum())
        eta = min(lr, math.sqrt(2 * kl_clip / fisher_norm))
        clipped += eta < lr
        for delta, before, after in zip(deltas, record["params"], record["after"], strict=True):
            expected = th.cat([before[0], before[1][:, None]], dim=1) - eta * delta
            th.testing.assert_close(th.cat([after[0], after[1][:, None]], dim=1), expected, rtol=1e-4, atol=1e-6)
    assert clipped > 0  # the trust region's branch is exercised


def test_kfac_critic_learns() -> None:
    model = TQC("MlpPolicy", "Pendulum-v1", **KFAC_TINY)
    assert isinstance(model.critic.optimizer, KFAC) and isinstance(model.actor.optimizer, th.optim.Adam)
    critic_before = {k: v.clone() for k, v in model.critic.state_dict().items()}
    before = parameters(model)
    model.learn(300)
    assert_trained(model, before)
    assert all(not th.equal(critic_before[k], v) for k, v in model.critic.state_dict().items() if k.startswith("qf")), (
        "some critic layer did not move"
    )
    logged = model.logger.name_to_value
    assert 0 < logged["train/critic_kfac_step_size"] <= 0.25 and np.isfinite(logged["train/critic_kfac_kl"])
    assert model.critic.optimizer.param_groups[0]["lr"] == 0.25  # not the Adam schedule's 3e-4
    assert model.critic.optimizer.steps == model._n_updates


def test_kfac_state_survives_save_and_load(tmp_path: Any) -> None:
    model = TQC("MlpPolicy", "Pendulum-v1", critic_kfac_damping=0.03, **KFAC_TINY)
    model.learn(150)
    model.save(tmp_path / "model.zip")
    loaded = TQC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    old, new = model.critic.optimizer, loaded.critic.optimizer
    assert isinstance(old, KFAC) and isinstance(new, KFAC)
    assert new.steps == old.steps > 0 and new.param_groups[0]["damping"] == 0.03
    for old_layer, new_layer in zip(old.layers, new.layers, strict=True):
        assert old_layer.name == new_layer.name
        for key in ("a_factor", "g_factor", "a_inverse", "g_inverse"):
            th.testing.assert_close(getattr(new_layer, key), getattr(old_layer, key), rtol=0, atol=0)
    old_momentum = [old.state[p]["momentum_buffer"] for p in old.param_groups[0]["params"]]
    new_momentum = [new.state[p]["momentum_buffer"] for p in new.param_groups[0]["params"]]
    for old_buffer, new_buffer in zip(old_momentum, new_momentum, strict=True):
        th.testing.assert_close(new_buffer, old_buffer, rtol=0, atol=0)
    loaded.learn(50, reset_num_timesteps=False)
    assert new.steps == old.steps + 50


# ------------------------------------------------------------------ CONSTRUCTION
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(critic_optimizer="sgd"), "critic_optimizer must be one of \\['adam', 'kfac'\\], got 'sgd'"),
        (dict(n_steps=0), "n_steps must be an integer >= 1, got 0"),
        (dict(prioritized_replay="yes"), "prioritized_replay must be a bool, got 'yes'"),
        (dict(per_alpha=-0.1), "per_alpha must be a finite number >= 0.0, got -0.1"),
        (dict(per_beta=1.5), "per_beta must be a finite number >= 0.0 and <= 1.0, got 1.5"),
        (dict(per_beta_final=-1.0), "per_beta_final must be a finite number >= 0.0 and <= 1.0, got -1.0"),
        (dict(critic_kfac_damping=0.0), "critic_kfac_damping must be a finite number > 0.0, got 0.0"),
        (dict(critic_kfac_kl_clip=-1.0), "critic_kfac_kl_clip must be a finite number > 0.0 or None, got -1.0"),
        (dict(critic_kfac_momentum=1.0), "critic_kfac_momentum must be a finite number >= 0.0 and < 1.0, got 1.0"),
        (dict(critic_kfac_inverse_interval=0), "critic_kfac_inverse_interval must be an integer >= 1, got 0"),
        (
            dict(policy_kwargs=dict(n_quantiles=5), top_quantiles_to_drop_per_net=5),
            "top_quantiles_to_drop_per_net .*<= 4, got 5",
        ),
        (dict(gamma=1.5), "gamma must be a finite number >= 0.0 and <= 1.0, got 1.5"),
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(learning_rate=-1e-3), "learning_rate must be a finite number > 0.0, got -0.001"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"TQC: {message}"):
        TQC("MlpPolicy", "Pendulum-v1", **kwargs)


def test_prioritized_replay_with_a_replay_buffer_class_is_refused() -> None:
    with pytest.raises(ValueError, match="prioritized_replay=True chooses the replay buffer itself"):
        TQC("MlpPolicy", "Pendulum-v1", prioritized_replay=True, replay_buffer_class=PrioritizedReplayBuffer)


@pytest.mark.parametrize(("env", "space"), [(IdentityEnv(4), "Discrete"), (IdentityEnvMultiDiscrete(3), "MultiDiscrete")])
def test_non_box_action_spaces_are_refused(env: gym.Env, space: str) -> None:
    with pytest.raises(ValueError, match=f"TQC supports only Box action spaces, got {space}"):
        TQC("MlpPolicy", env)


def test_contrib_defaults_and_signature_are_kept() -> None:
    """Every sb3-contrib argument, with the same default."""
    ours = inspect.signature(TQC.__init__).parameters
    for name, parameter in inspect.signature(ContribTQC.__init__).parameters.items():
        assert name in ours, name
        assert ours[name].default == parameter.default, name
    assert ALGOS["tqc"] is TQC


# ------------------------------------------------------------------ ZOO
def test_yaml_falls_back_to_the_zoo_per_environment() -> None:
    ours, zoo = hyperparams_dir() / "tqc.yml", zoo_hyperparams_file("tqc")
    our_entries, zoo_entries = yaml.safe_load(ours.read_text()), yaml.safe_load(zoo.read_text())
    assert "Pendulum-v1" not in our_entries and "Pendulum-v1" in zoo_entries  # the premise of the next lines
    assert conf_file_for("tqc", "Pendulum-v1") == zoo
    assert tuned_hyperparams("tqc", "Pendulum-v1") == zoo_entries["Pendulum-v1"]
    assert with_default_conf_file(["--algo", "tqc", "--env", "Pendulum-v1"])[-1] == str(zoo)
    assert conf_file_for("tqc", "Hopper-v5") == ours  # an entry of ours
    assert tuned_hyperparams("tqc", "Hopper-v5") == our_entries["Hopper-v5"]
    assert conf_file_for("tqc", "NoSuchEnv-v0") == ours  # in neither: our default
    assert tuned_hyperparams("tqc", "NoSuchEnv-v0") == our_entries["default"]
    assert conf_file_for("d4pg", "Pendulum-v1") == hyperparams_dir() / "d4pg.yml"  # other algorithms: no fallback
    # An entry of ours is not a copy of the zoo's entry for the same env.
    assert all(zoo_entries.get(env) != entry for env, entry in our_entries.items() if env != "default")


def test_zoo_entries_are_accepted() -> None:
    """Drop-in: every key of every entry of the zoo's tqc.yml is a zoo key or an argument of our constructor."""
    zoo_keys = {"n_timesteps", "n_envs", "policy", "normalize", "env_wrapper", "frame_stack", "callback",
                "vec_env_wrapper", "normalize_kwargs", "policy_kwargs", "env_kwargs", "noise_type", "noise_std"}  # fmt: skip
    arguments = inspect.signature(TQC.__init__).parameters
    for env, entry in yaml.safe_load(zoo_hyperparams_file("tqc").read_text()).items():
        unknown = [key for key in entry if key not in zoo_keys and key not in arguments]
        assert not unknown, f"zoo tqc.yml[{env}]: {unknown}"


def test_optuna_sampler_gives_constructor_arguments() -> None:
    sampler = HYPERPARAMS_SAMPLER["tqc"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    arguments = inspect.signature(TQC.__init__).parameters
    seen = set()
    for _ in range(12):
        trial = study.ask()
        kwargs = sampler(trial, 1, 1, {"using_her_replay_buffer": False})
        assert all(key in arguments for key in kwargs), kwargs
        seen.update((kwargs["critic_optimizer"], kwargs["prioritized_replay"]))
        model = TQC("MlpPolicy", "Pendulum-v1", **{**kwargs, "buffer_size": 1000})
        assert model.critic_optimizer == kwargs["critic_optimizer"]
        study.tell(trial, 0.0)
    assert {"adam", "kfac", True, False} <= seen
