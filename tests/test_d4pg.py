"""D4PG: the distributional targets and losses against brute force, hyperparameter checks, training."""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3.common.envs import (
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_natgrad import D4PG
from sb3_natgrad.common.prioritized_replay import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from sb3_natgrad.d4pg.distributional import (
    categorical_cross_entropy,
    categorical_projection,
    categorical_support,
    quantile_huber_per_sample,
    truncated_quantile_target,
)

TINY: dict[str, Any] = dict(
    learning_starts=32, batch_size=16, buffer_size=1000, n_steps=3, n_atoms=11, policy_kwargs=dict(net_arch=[32, 32])
)


# ------------------------------------------------------------------ BRUTE FORCE REFERENCES
def brute_projection(
    probs: list[list[float]], rewards: list[float], bootstrap: list[float], v_min: float, v_max: float
) -> tuple[list[list[float]], list[float]]:
    """Projection by the triangular kernel, one target atom and one support point at a time: target atom
    ``Tz`` (clipped) gives support point ``z_i`` the share ``max(0, 1 - |Tz - z_i| / dz)`` of its mass
    (the dense form of Rowland et al., 2018 / acme's ``l2_project``), no floor/ceil involved."""
    n_atoms = len(probs[0])
    dz = (v_max - v_min) / (n_atoms - 1)
    support = [v_min + i * dz for i in range(n_atoms)]
    projected, clipped = [], []
    for row, r, d in zip(probs, rewards, bootstrap, strict=True):
        out, outside = [0.0] * n_atoms, 0.0
        for p_j, z_j in zip(row, support, strict=True):
            tz = r + d * z_j
            if tz < v_min or tz > v_max:
                outside += p_j
            tz = min(max(tz, v_min), v_max)
            for i, z_i in enumerate(support):
                out[i] += p_j * max(0.0, 1.0 - abs(tz - z_i) / dz)
        projected.append(out)
        clipped.append(outside)
    return projected, clipped


def brute_cross_entropy(logits: list[float], target: list[float]) -> float:
    log_z = math.log(sum(math.exp(x) for x in logits))
    return -sum(m * (x - log_z) for m, x in zip(target, logits, strict=True))


def brute_quantile_huber(current: list[list[float]], target: list[float]) -> float:
    """TQC's loss for one sample: sum over current quantiles, mean over critics and target quantiles."""
    total = 0.0
    for critic in current:
        n = len(critic)
        for k, theta in enumerate(critic):
            tau = (k + 0.5) / n
            for y in target:
                u = y - theta
                huber = 0.5 * u * u if abs(u) <= 1 else abs(u) - 0.5
                total += abs(tau - (1.0 if u < 0 else 0.0)) * huber
    return total / (len(current) * len(target))


# ------------------------------------------------------------------ CATEGORICAL PROJECTION
V_MIN, V_MAX, N_ATOMS = -2.0, 2.0, 5  # support -2, -1, 0, 1, 2 (dz = 1)
PROJECTION_CASES = {
    "identity (every atom on a support point, l == u)": ([0.0], [1.0]),
    "shift by whole atoms (l == u), top atoms clipped": ([1.0], [1.0]),
    "between support points": ([0.25], [1.0]),
    "contraction, some atoms land between": ([0.0], [0.5]),
    "below the support": ([-7.0], [0.9]),
    "above the support": ([9.0], [0.3]),
    "terminal: all mass at r, between support points": ([0.6], [0.0]),
    "terminal on a support point": ([-1.0], [0.0]),
    "terminal beyond the support": ([-3.5], [0.0]),
    "n-step discount gamma^k": ([0.3], [0.99**3]),
}


@pytest.mark.parametrize("case", list(PROJECTION_CASES))
def test_projection_matches_brute_force(case: str) -> None:
    rewards, bootstrap = PROJECTION_CASES[case]
    gen = th.Generator().manual_seed(len(case))
    probs = th.rand(1, N_ATOMS, generator=gen, dtype=th.float64).softmax(dim=1)
    atoms = categorical_support(V_MIN, V_MAX, N_ATOMS).double()
    projected, clipped = categorical_projection(probs, th.tensor([rewards]).double(), th.tensor([bootstrap]).double(), atoms)
    expected, expected_clipped = brute_projection(probs.tolist(), rewards, bootstrap, V_MIN, V_MAX)
    np.testing.assert_allclose(projected.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(clipped.numpy(), expected_clipped, atol=1e-12)
    np.testing.assert_allclose(projected.sum(dim=1).numpy(), 1.0, atol=1e-12)


def test_projection_batch_with_varying_discounts_and_terminals() -> None:
    """A whole batch at once equals the per-sample brute force (no mixing between rows)."""
    gen = th.Generator().manual_seed(0)
    n_atoms, v_min, v_max = 11, -10.0, 10.0
    probs = th.randn(8, n_atoms, generator=gen, dtype=th.float64).softmax(dim=1)
    rewards = th.tensor([[-12.0], [-3.3], [0.0], [2.0], [4.5], [7.1], [10.0], [15.0]], dtype=th.float64)
    bootstrap = th.tensor([[0.99], [0.0], [0.97], [1.0], [0.9**5], [0.0], [0.5], [0.99]], dtype=th.float64)
    atoms = categorical_support(v_min, v_max, n_atoms).double()
    projected, clipped = categorical_projection(probs, rewards, bootstrap, atoms)
    expected, expected_clipped = brute_projection(
        probs.tolist(), rewards[:, 0].tolist(), bootstrap[:, 0].tolist(), v_min, v_max
    )
    np.testing.assert_allclose(projected.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(clipped.numpy(), expected_clipped, atol=1e-12)


def test_projection_float32_at_the_top_of_the_support() -> None:
    """Rounding can put (v_max - v_min) / dz a hair above K - 1 in float32: no out-of-range index, no lost mass."""
    atoms = categorical_support(-800.0, 0.0, 51)
    probs = th.full((3, 51), 1 / 51)
    projected, _ = categorical_projection(probs, th.tensor([[0.0], [-1e-7], [3.0]]), th.tensor([[1.0], [0.98], [0.98]]), atoms)
    np.testing.assert_allclose(projected.sum(dim=1).numpy(), 1.0, rtol=1e-5)


# ------------------------------------------------------------------ LOSSES
def test_cross_entropy_matches_hand_computation() -> None:
    logits = th.tensor([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0]], dtype=th.float64)
    target = th.tensor([[0.1, 0.2, 0.3, 0.4], [0.0, 1.0, 0.0, 0.0]], dtype=th.float64)
    expected = [brute_cross_entropy(lg, tg) for lg, tg in zip(logits.tolist(), target.tolist(), strict=True)]
    np.testing.assert_allclose(categorical_cross_entropy(logits, target).numpy(), expected, atol=1e-12)


def test_truncated_quantile_target_matches_brute_force() -> None:
    gen = th.Generator().manual_seed(1)
    next_quantiles = th.randn(4, 3, 5, generator=gen, dtype=th.float64)  # [B, C, N]
    rewards = th.tensor([[1.0], [-0.5], [0.0], [2.0]], dtype=th.float64)
    bootstrap = th.tensor([[0.99], [0.0], [0.5], [0.97]], dtype=th.float64)
    n_drop = 2 * 3
    target = truncated_quantile_target(next_quantiles, rewards, bootstrap, n_drop)
    for i in range(4):
        pooled = sorted(q for critic in next_quantiles[i].tolist() for q in critic)
        kept = pooled[: len(pooled) - n_drop]
        expected = [rewards[i, 0].item() + bootstrap[i, 0].item() * z for z in kept]
        np.testing.assert_allclose(target[i].numpy(), expected, atol=1e-12)


def test_quantile_huber_per_sample_matches_brute_force_and_contrib() -> None:
    gen = th.Generator().manual_seed(2)
    current = 2 * th.randn(5, 2, 4, generator=gen, dtype=th.float64)  # errors on both sides of the Huber kink
    target = 2 * th.randn(5, 6, generator=gen, dtype=th.float64)
    per_sample = quantile_huber_per_sample(current, target)
    expected = [brute_quantile_huber(c, t) for c, t in zip(current.tolist(), target.tolist(), strict=True)]
    np.testing.assert_allclose(per_sample.numpy(), expected, atol=1e-12)
    contrib = quantile_huber_loss(current.float(), target.float().unsqueeze(1), sum_over_quantiles=True)
    assert per_sample.mean().item() == pytest.approx(contrib.item(), rel=1e-5)


# ------------------------------------------------------------------ THE ALGORITHM'S LOSS
def _batch(model: D4PG, batch_size: int = 6, weights: th.Tensor | None = None) -> ReplayBufferSamples:
    gen = th.Generator().manual_seed(3)
    obs_dim, act_dim = model.observation_space.shape[0], model.action_space.shape[0]  # type: ignore[index]
    data = ReplayBufferSamples(
        observations=th.randn(batch_size, obs_dim, generator=gen),
        actions=th.rand(batch_size, act_dim, generator=gen) * 2 - 1,
        next_observations=th.randn(batch_size, obs_dim, generator=gen),
        dones=th.tensor([[0.0], [1.0], [0.0], [0.0], [1.0], [0.0]])[:batch_size],
        rewards=th.randn(batch_size, 1, generator=gen) * 3,
        discounts=th.tensor([[0.99**3], [0.99], [0.99**2], [0.99**3], [0.99**3], [0.99]])[:batch_size],
    )
    if weights is None:
        return data

    return PrioritizedReplayBufferSamples(**data._asdict(), weights=weights, indices=np.arange(batch_size))  # type: ignore[return-value]


def _brute_categorical_losses(model: D4PG, data: ReplayBufferSamples) -> list[float]:
    with th.no_grad():
        next_logits = model.critic_target(data.next_observations, model.actor_target(data.next_observations))[:, 0]
        logits = model.critic(data.observations, data.actions)[:, 0]
    bootstrap = ((1 - data.dones) * data.discounts)[:, 0].tolist()  # type: ignore[operator]
    target, _ = brute_projection(
        next_logits.softmax(1).double().tolist(), data.rewards[:, 0].tolist(), bootstrap, model.v_min, model.v_max
    )
    return [brute_cross_entropy(lg, tg) for lg, tg in zip(logits.double().tolist(), target, strict=True)]


def test_categorical_critic_loss_is_importance_weighted() -> None:
    model = D4PG("MlpPolicy", "Pendulum-v1", v_min=-5.0, v_max=5.0, seed=0, **{**TINY, "n_atoms": 7})
    weights = th.tensor([[1.0], [0.2], [0.5], [0.9], [0.1], [0.7]])
    data = _batch(model, weights=weights)
    loss, per_sample, _, _ = model._critic_loss(data)
    brute = _brute_categorical_losses(model, data)
    np.testing.assert_allclose(per_sample.numpy(), brute, rtol=1e-5)
    assert loss.item() == pytest.approx(float(np.mean(weights[:, 0].numpy() * np.array(brute))), rel=1e-5)
    unweighted, _, _, _ = model._critic_loss(_batch(model))
    assert unweighted.item() == pytest.approx(float(np.mean(brute)), rel=1e-5)


def test_priorities_are_the_per_sample_losses() -> None:
    """train() hands the batch's indices and per-sample critic losses (before the step) to the shared buffer."""
    model = D4PG("MlpPolicy", "Pendulum-v1", v_min=-5.0, v_max=5.0, prioritized_replay=True, seed=0, **TINY)
    assert isinstance(model.replay_buffer, PrioritizedReplayBuffer)
    model.learn(32)  # fills the buffer up to learning_starts, no gradient step yet
    data = _batch(model, weights=th.linspace(0.1, 1.0, 6).unsqueeze(1))
    brute = _brute_categorical_losses(model, data)
    buffer = model.replay_buffer
    buffer.sample = lambda batch_size, env=None: data  # type: ignore[method-assign,assignment,return-value]
    model.train(gradient_steps=1, batch_size=6)
    stored = buffer.tree[np.arange(6)]  # (loss + eps) ** alpha
    np.testing.assert_allclose(stored, (np.array(brute) + model.per_eps) ** model.per_alpha, rtol=1e-5)


def test_prioritized_replay_end_to_end() -> None:
    """learn() with PER: beta annealed to per_beta_final, priorities no longer all the initial one, finite weights."""
    model = D4PG("MlpPolicy", "Pendulum-v1", prioritized_replay=True, per_beta=0.3, per_beta_final=0.9, seed=0, **TINY)
    model.learn(300)
    buffer = model.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer)
    assert buffer.beta == pytest.approx(0.3 + (0.9 - 0.3) * (1 - model._current_progress_remaining), abs=1e-6)
    assert buffer.beta > 0.85
    priorities = buffer.tree[np.arange(model.num_timesteps)]
    assert np.isfinite(priorities).all() and len(np.unique(priorities)) > 100
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])


@pytest.mark.parametrize("prioritized_replay", [False, True])
def test_dict_observations_with_n_step_returns(prioritized_replay: bool) -> None:
    env = SimpleMultiObsEnv(random_start=True, discrete_actions=False)
    model = D4PG("MultiInputPolicy", env, prioritized_replay=prioritized_replay, seed=0, **{**TINY, "n_steps": 4})
    assert model.replay_buffer is not None and model.replay_buffer.n_steps == 4  # type: ignore[attr-defined]
    before = copy.deepcopy(model.critic.state_dict())
    model.learn(100)
    assert any(not th.equal(before[k], v) for k, v in model.critic.state_dict().items())
    assert model.replay_buffer.sample(8).discounts is not None


def test_actor_maximises_expected_value_of_the_distribution() -> None:
    model = D4PG("MlpPolicy", "Pendulum-v1", v_min=-3.0, v_max=5.0, seed=0, **TINY)
    logits = th.randn(4, 1, 11, generator=th.Generator().manual_seed(4))
    atoms = np.linspace(-3.0, 5.0, 11)
    expected = [sum(p * z for p, z in zip(row, atoms, strict=True)) for row in logits[:, 0].softmax(1).tolist()]
    np.testing.assert_allclose(model._expected_value(logits).numpy(), expected, rtol=1e-5)


# ------------------------------------------------------------------ CONSTRUCTION
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_atoms=1), "n_atoms must be an integer >= 2, got 1"),
        (dict(n_atoms=51.0), "n_atoms must be an integer >= 2, got 51.0"),
        (dict(v_min=10.0, v_max=10.0), "v_max must be a finite number > 10.0, got 10.0"),
        (dict(v_min=5.0, v_max=-5.0), "v_max must be a finite number > 5.0, got -5.0"),
        (dict(v_min=float("-inf")), "v_min must be a finite number, got -inf"),
        (dict(n_steps=0), "n_steps must be an integer >= 1, got 0"),
        (dict(critic="gaussian"), "critic must be one of \\['categorical', 'quantile'\\], got 'gaussian'"),
        (dict(n_critics=2), "n_critics \\(categorical critic\\) must be one of .*, got 2"),
        (dict(critic="quantile", n_critics=0), "n_critics must be an integer >= 1 or None, got 0"),
        (
            dict(critic="quantile", n_quantiles=5, top_quantiles_to_drop_per_net=5),
            "top_quantiles_to_drop_per_net .* <= 4, got 5",
        ),
        (dict(policy_delay=0), "policy_delay must be an integer >= 1, got 0"),
        (dict(tau=0.0), "tau must be a finite number > 0.0 and <= 1.0, got 0.0"),
        (dict(gamma=1.5), "gamma must be a finite number >= 0.0 and <= 1.0, got 1.5"),
        (dict(prioritized_replay="yes"), "prioritized_replay must be a bool, got 'yes'"),
        (dict(per_alpha=-0.1), "per_alpha must be a finite number >= 0.0, got -0.1"),
        (dict(per_beta_final=1.5), "per_beta_final must be a finite number >= 0.0 and <= 1.0, got 1.5"),
        (dict(policy_kwargs=dict(n_critics=3)), "policy_kwargs must not set 'n_critics'"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"D4PG: {message}"):
        D4PG("MlpPolicy", "Pendulum-v1", **kwargs)


@pytest.mark.parametrize(
    ("env", "space"),
    [
        (IdentityEnv(4), "Discrete"),
        (IdentityEnvMultiDiscrete(3), "MultiDiscrete"),
        (IdentityEnvMultiBinary(3), "MultiBinary"),
    ],
)
def test_non_box_action_spaces_are_refused(env: gym.Env, space: str) -> None:
    with pytest.raises(ValueError, match=f"D4PG supports only Box action spaces, got {space}"):
        D4PG("MlpPolicy", env)


# ------------------------------------------------------------------ TRAINING
@pytest.mark.parametrize("critic", ["categorical", "quantile"])
def test_learn_changes_parameters_and_logs(critic: str) -> None:
    model = D4PG("MlpPolicy", "Pendulum-v1", critic=critic, seed=0, **TINY)
    before = copy.deepcopy(model.policy.state_dict())
    model.learn(150)  # < one 200-step episode: the logger has not been dumped (and cleared) yet
    after = model.policy.state_dict()
    for prefix in ("actor.", "critic.", "actor_target.", "critic_target."):
        keys = [k for k in before if k.startswith(prefix)]
        assert any(not th.equal(before[k], after[k]) for k in keys), prefix
    assert all(th.isfinite(v).all() for v in after.values())
    logged = model.logger.name_to_value
    for key in ("train/critic_loss", "train/actor_loss", "train/mean_q"):
        assert np.isfinite(logged[key]), key
    if critic == "categorical":
        assert 0.0 <= logged["train/clipped_target_mass"] <= 1.0
    else:
        assert "train/clipped_target_mass" not in logged
        assert model.critic(th.zeros(1, 3), th.zeros(1, 1)).shape == (1, 2, 25)  # n_critics 2, n_quantiles 25


def test_clipped_target_mass_flags_a_narrow_support() -> None:
    """Pendulum's rewards are in [-16.3, 0]: on [-1, 1] nearly all target mass is clipped. A support keeps all
    of it when r + gamma^3 z stays inside for every atom z: v_min <= 3 r_min / (1 - 0.99^3) ~ -1650."""
    narrow = D4PG("MlpPolicy", "Pendulum-v1", v_min=-1.0, v_max=1.0, seed=0, **TINY).learn(150)
    wide = D4PG("MlpPolicy", "Pendulum-v1", v_min=-1700.0, v_max=10.0, seed=0, **TINY).learn(150)
    assert narrow.logger.name_to_value["train/clipped_target_mass"] > 0.9
    assert wide.logger.name_to_value["train/clipped_target_mass"] == 0.0


def test_policy_delay() -> None:
    model = D4PG("MlpPolicy", IdentityEnvBox(-1.0, 1.0, ep_length=32), policy_delay=3, seed=0, **TINY)
    before = copy.deepcopy(model.actor.state_dict())
    model.set_logger(configure(None, [""]))
    model.learn(34)  # learning_starts=32: two gradient steps, no actor update yet
    assert all(th.equal(before[k], v) for k, v in model.actor.state_dict().items())
    model.learn(1, reset_num_timesteps=False)  # the third
    assert any(not th.equal(before[k], v) for k, v in model.actor.state_dict().items())


@pytest.mark.parametrize("critic", ["categorical", "quantile"])
def test_save_load_keeps_the_critic(critic: str, tmp_path) -> None:
    model = D4PG("MlpPolicy", "Pendulum-v1", critic=critic, v_min=-7.0, v_max=3.0, seed=0, **TINY).learn(64)
    model.save(tmp_path / "d4pg.zip")
    loaded = D4PG.load(tmp_path / "d4pg.zip")
    assert (loaded.critic_type, loaded.n_critics, loaded.v_min, loaded.v_max) == (critic, model.n_critics, -7.0, 3.0)
    assert th.equal(loaded.atoms, model.atoms)
    obs, actions = th.randn(5, 3), th.rand(5, 1)
    assert th.equal(loaded.critic(obs, actions), model.critic(obs, actions))


def test_parallel_actors_subproc_vec_env() -> None:
    """K parallel actors (the paper's distributed actors) through SB3's SubprocVecEnv, prioritized n-step replay."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = D4PG("MlpPolicy", env, prioritized_replay=True, seed=0, **TINY).learn(200)
        assert model.num_timesteps == 200 and model.replay_buffer.pos == 100  # type: ignore[union-attr]
        assert np.isfinite(model.logger.name_to_value["train/critic_loss"])
    finally:
        env.close()
