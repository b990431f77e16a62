"""ACER (Wang et al. 2017): Retrace targets, truncated importance sampling with bias correction, the trust-region
projection, the segment replay, argument checks and the replay plumbing. The shared conformance tests
(test_run, test_save_load, test_deterministic, test_cli) cover ACER through tests/algorithms.py."""

from __future__ import annotations

import json
import re
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnv, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete

from sb3_natgrad import ACER
from sb3_natgrad.acer import ACERReplayBuffer, retrace_targets, truncated_is_gain, trust_region_projection

# -- Retrace ---------------------------------------------------------------------------------------------------


def _retrace_by_sum(rewards, dones, q, values, c, gamma):
    """Q^ret_t = Q_t + Σ_k gamma^k (Π_{i=1..k} (1 - d_{t+i-1}) c_{t+i}) δ_{t+k}, δ_j = r_j + gamma (1 - d_j) V_{j+1} - Q_j,
    written with explicit loops (no recursion), in float64."""
    n_steps, n_envs = rewards.shape
    out = np.zeros((n_steps, n_envs))
    for b in range(n_envs):
        for t in range(n_steps):
            total = q[t, b]
            for k in range(n_steps - t):
                weight = gamma**k
                for i in range(1, k + 1):
                    weight *= (1.0 - dones[t + i - 1, b]) * c[t + i, b]
                j = t + k
                delta = rewards[j, b] + gamma * (1.0 - dones[j, b]) * values[j + 1, b] - q[j, b]
                total += weight * delta
            out[t, b] = total
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrace_equals_explicit_sum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_steps, n_envs, gamma = 9, 6, 0.9
    rewards = rng.normal(size=(n_steps, n_envs))
    # Episode ends: terminations, and truncations whose reward already holds gamma V(final obs), as SB3 stores them
    dones = (rng.random((n_steps, n_envs)) < 0.2).astype(float)
    truncated = dones * (rng.random((n_steps, n_envs)) < 0.5)
    rewards += truncated * gamma * rng.normal(size=(n_steps, n_envs))
    dones[-1, 0], dones[3, 1] = 1.0, 1.0  # an end on the last step and one mid-segment, whatever the seed
    q = rng.normal(size=(n_steps, n_envs))
    values = rng.normal(size=(n_steps + 1, n_envs))
    rho = rng.exponential(size=(n_steps, n_envs))
    c = 0.95 * np.minimum(1.0, rho)  # λ min(1, rho)
    expected = _retrace_by_sum(rewards, dones, q, values, c, gamma)
    got = retrace_targets(*(th.as_tensor(x) for x in (rewards, dones, q, values, c)), gamma=gamma)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_retrace_one_step_and_on_policy_limit() -> None:
    """c = 0 gives the one-step target r + gamma (1 - d) V(x_{t+1}); c = 1 with Q = V gives the discounted return."""
    rewards = th.tensor([[1.0], [2.0], [3.0]], dtype=th.float64)
    dones = th.tensor([[0.0], [1.0], [0.0]], dtype=th.float64)
    values = th.tensor([[0.5], [0.7], [0.9], [10.0]], dtype=th.float64)
    q = values[:-1].clone()
    one_step = retrace_targets(rewards, dones, q, values, th.zeros_like(q), gamma=0.5)
    np.testing.assert_allclose(one_step.squeeze(1).numpy(), [1 + 0.5 * 0.7, 2.0, 3 + 0.5 * 10.0])
    full = retrace_targets(rewards, dones, q, values, th.ones_like(q), gamma=0.5)
    np.testing.assert_allclose(full.squeeze(1).numpy(), [1 + 0.5 * 2.0, 2.0, 3 + 0.5 * 10.0])


def test_retrace_rejects_bad_shapes() -> None:
    x = th.zeros(4, 2)
    with pytest.raises(ValueError, match="T \\+ 1 = 5 rows, got 4"):
        retrace_targets(x, x, x, x, x, gamma=0.9)
    with pytest.raises(ValueError, match=re.escape("c (4, 3)")):
        retrace_targets(x, x, x, th.zeros(5, 2), th.zeros(4, 3), gamma=0.9)


# -- truncated importance sampling with bias correction -------------------------------------------------------


def _expected_gradients(c: float, with_correction: bool = True) -> tuple[th.Tensor, th.Tensor]:
    """E_{a_t~μ}[∇_logits gain] (exact sum over a_t) and the untruncated E_{a~μ}[rho(a) A(a) ∇log π(a)]."""
    gen = th.Generator().manual_seed(0)
    n_states, n_actions = 5, 4
    logits = th.randn(n_states, n_actions, generator=gen, dtype=th.float64, requires_grad=True)
    mu = th.softmax(3 * th.randn(n_states, n_actions, generator=gen, dtype=th.float64), dim=1)  # far from π
    advantage = th.randn(n_states, n_actions, generator=gen, dtype=th.float64)
    pi = th.softmax(logits, dim=1)
    log_pi = th.log_softmax(logits, dim=1)
    rho = pi.detach() / mu
    expected_gain = th.zeros((), dtype=th.float64)
    for action in range(n_actions):
        actions = th.full((n_states,), action)
        gain = truncated_is_gain(
            log_pi, pi, rho, actions, advantage[:, action], advantage if with_correction else 0 * advantage, c
        )
        expected_gain = expected_gain + (mu[:, action] * gain).sum()
    (grad,) = th.autograd.grad(expected_gain, logits, retain_graph=True)
    untruncated = (mu * rho * advantage * log_pi).sum()  # Σ_a μ(a) rho(a) A(a) log π(a), weights constant
    (reference,) = th.autograd.grad(untruncated, logits)
    return grad, reference


@pytest.mark.parametrize("c", [0.5, 1.0, 3.0, 1e6])
def test_bias_correction_is_unbiased(c: float) -> None:
    grad, reference = _expected_gradients(c)
    th.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-12)


def test_truncation_without_correction_is_biased() -> None:
    """The check above is not vacuous: dropping the correction term changes the expectation."""
    grad, reference = _expected_gradients(0.5, with_correction=False)
    assert (grad - reference).abs().max() > 1e-3


# -- trust region ------------------------------------------------------------------------------------------------


def test_projection_closed_form_and_constraint() -> None:
    gen = th.Generator().manual_seed(0)
    g = th.randn(64, 6, generator=gen, dtype=th.float64)
    k = th.randn(64, 6, generator=gen, dtype=th.float64)
    delta = 0.5
    z, scale = trust_region_projection(g, k, delta)
    for i in range(64):
        kg, kk = float(k[i] @ g[i]), float(k[i] @ k[i])
        expected = g[i] - max(0.0, (kg - delta) / kk) * k[i]
        th.testing.assert_close(z[i], expected)
        assert float(k[i] @ z[i]) <= delta + 1e-9
        if kg <= delta:  # inactive constraint: z* = g exactly
            assert th.equal(z[i], g[i]) and scale[i] == 0
        else:  # active: on the boundary, and no feasible point is closer to g (KKT)
            assert abs(float(k[i] @ z[i]) - delta) < 1e-9
            for _ in range(20):
                other = z[i] + 0.1 * th.randn(6, generator=gen, dtype=th.float64)
                if float(k[i] @ other) <= delta:
                    assert float((other - g[i]).norm()) >= float((z[i] - g[i]).norm()) - 1e-12
    assert 0 < int((scale > 0).sum()) < 64  # both cases were exercised


def test_projection_zero_k_and_bad_shapes() -> None:
    g = th.ones(3, 2)
    z, scale = trust_region_projection(g, th.zeros(3, 2), delta=1.0)
    assert th.equal(z, g) and th.equal(scale, th.zeros(3))
    with pytest.raises(ValueError, match="must be \\[N, D\\]"):
        trust_region_projection(g, th.ones(3, 3), delta=1.0)


# -- segment replay ------------------------------------------------------------------------------------------------


def _filled_buffer(n_segments_written: int, n_steps: int = 4, n_envs: int = 3, capacity_segments: int = 5):
    obs_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
    buffer = ACERReplayBuffer(
        capacity_segments * n_steps * n_envs, n_steps, obs_space, spaces.Discrete(2), stats_dim=2, n_envs=n_envs
    )
    for seg in range(n_segments_written):
        buffer.reset()
        for t in range(n_steps):
            # observation encodes (segment, step, env); action/reward/stats encode the same
            obs = np.array([[seg, t, e] for e in range(n_envs)], dtype=np.float32)
            code = 100 * seg + 10 * t + np.arange(n_envs)
            buffer.add(
                obs,
                code % 2,
                code.astype(np.float32),
                np.zeros(n_envs),
                th.zeros(n_envs, 1),
                th.tensor(np.stack([code, -code], axis=1), dtype=th.float32),
            )
        final = np.array([[seg, n_steps, e] for e in range(n_envs)], dtype=np.float32)
        buffer.finish_segment(final, np.zeros(n_envs))
    return buffer


def _check_columns(batch, n_steps: int) -> set[int]:
    obs = batch.observations.numpy()  # [T + 1, B, 3]
    segments = set()
    for b in range(obs.shape[1]):
        seg, env = obs[0, b, 0], obs[0, b, 2]
        np.testing.assert_array_equal(obs[:, b, 0], seg)  # one segment per column, final observation included
        np.testing.assert_array_equal(obs[:, b, 2], env)  # one env per column
        np.testing.assert_array_equal(obs[:, b, 1], np.arange(n_steps + 1))  # in time order, x_T last
        code = 100 * seg + 10 * np.arange(n_steps) + env
        np.testing.assert_array_equal(batch.rewards[:, b].numpy(), code)
        np.testing.assert_array_equal(batch.actions[:, b].numpy(), code % 2)
        np.testing.assert_array_equal(batch.behaviour_stats[:, b, 0].numpy(), code)
        segments.add(int(seg))
    return segments


def test_buffer_segments_consistent_across_envs() -> None:
    np.random.seed(0)
    buffer = _filled_buffer(8)  # 8 segments into 5 slots: wrapped around
    seen = _check_columns(buffer.sample(400), n_steps=4)
    assert seen == {3, 4, 5, 6, 7}  # the five most recent segments, nothing overwritten
    latest = buffer.latest()
    _check_columns(latest, n_steps=4)
    np.testing.assert_array_equal(latest.observations[0, :, 2].numpy(), [0, 1, 2])  # all envs in order
    assert int(latest.observations[0, 0, 0]) == 7
    assert buffer.n_transitions() == 5 * 4 * 3


def test_buffer_never_samples_the_segment_being_written() -> None:
    np.random.seed(0)
    buffer = _filled_buffer(8)
    buffer.reset()  # slot of segment 3 is being overwritten by segment 8
    buffer.add(np.full((3, 3), 8.0, dtype=np.float32), np.zeros(3), np.zeros(3), np.zeros(3), th.zeros(3, 1),
               th.zeros(3, 2))  # fmt: skip
    assert _check_columns(buffer.sample(400), n_steps=4) == {4, 5, 6, 7}
    assert buffer.n_transitions() == 4 * 4 * 3
    with pytest.raises(RuntimeError, match="1 of n_steps=4"):
        buffer.finish_segment(np.zeros((3, 3), dtype=np.float32), np.zeros(3))


def test_buffer_dones_from_episode_starts() -> None:
    obs_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)
    buffer = ACERReplayBuffer(6, 3, obs_space, spaces.Discrete(2), stats_dim=2, n_envs=2)
    buffer.reset()
    starts = [[1, 1], [0, 1], [1, 0]]  # x_t starts an episode
    for t in range(3):
        buffer.add(np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.array(starts[t]), th.zeros(2, 1), th.zeros(2, 2))
    buffer.finish_segment(np.zeros((2, 1)), np.array([0, 1]))
    # step t ended an episode iff x_{t+1} starts one
    np.testing.assert_array_equal(buffer.latest().dones.numpy(), [[0, 1], [1, 0], [0, 1]])


def test_buffer_keeps_uint8_frames_without_next_observations() -> None:
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    model = ACER("CnnPolicy", env, n_steps=4, buffer_size=40, seed=0,
                 policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=8)))  # fmt: skip
    obs = model.replay_buffer.observations
    assert isinstance(obs, np.ndarray) and obs.dtype == np.uint8
    # [S, T + 1, N, C, H, W] (SB3 transposes images): one final observation per segment, no next observations
    assert obs.shape == (10, 5, 1, 1, 36, 36)


def test_truncation_bootstraps_with_value_of_final_observation() -> None:
    """A time-limit end is stored as an episode end whose reward holds gamma V(final observation) (SB3's rule)."""
    env = make_vec_env(lambda: gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, max_episode_steps=3),
                       n_envs=2, seed=0)  # fmt: skip
    model = ACER("MlpPolicy", env, n_steps=7, gamma=0.9, seed=0)
    model._setup_learn(7 * 2)
    finals = []

    class Record:
        def __init__(self):
            self.original = env.step_wait

        def __call__(self):
            out = self.original()
            finals.append([info.get("terminal_observation") for info in out[3]])
            return out

    env.step_wait = Record()
    from stable_baselines3.common.callbacks import CallbackList

    callback = CallbackList([])
    callback.init_callback(model)
    assert model.collect_rollouts(env, callback, model.rollout_buffer, 7)
    batch = model.replay_buffer.latest()
    n_truncations = 0
    for t in range(7):
        for e in range(2):
            final = finals[t][e]
            if final is not None and batch.dones[t, e] == 1 and batch.rewards[t, e] != 1.0:
                with th.no_grad():
                    v = model.policy.predict_values(th.as_tensor(final[None]))[0, 0]
                assert float(batch.rewards[t, e]) == pytest.approx(1.0 + 0.9 * float(v), rel=1e-5)
                n_truncations += 1
    assert n_truncations >= 2


# -- the algorithm ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_steps", 0),
        ("gamma", 1.5),
        ("ent_coef", -0.1),
        ("q_coef", -1.0),
        ("max_grad_norm", 0.0),
        ("buffer_size", 0),
        ("replay_ratio", -1.0),
        ("replay_start", -1),
        ("correction_term", 0.0),
        ("retrace_lambda", 1.1),
        ("trust_region", 1),
        ("alpha", 1.0),
        ("delta", 0.0),
        ("learning_rate", -1e-3),
    ],
)
def test_bad_arguments_are_named(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^ACER: {name} must be .*, got {re.escape(repr(value))}$"):
        ACER("MlpPolicy", IdentityEnv(2), **{name: value})


def test_buffer_smaller_than_a_segment() -> None:
    env = make_vec_env("CartPole-v1", n_envs=4)
    with pytest.raises(ValueError, match=r"^ACER: buffer_size must be >= n_steps \* n_envs = 80 .*got 79$"):
        ACER("MlpPolicy", env, n_steps=20, buffer_size=79)


@pytest.mark.parametrize("env", [IdentityEnvMultiDiscrete(3), IdentityEnvMultiBinary(3)])
def test_unsupported_action_spaces_named(env: gym.Env) -> None:
    space = type(env.action_space).__name__
    with pytest.raises(ValueError, match=f"ACER supports only Discrete and Box action spaces, got {space}"):
        ACER("MlpPolicy", env)


def test_gsde_refused() -> None:
    with pytest.raises(ValueError, match="use_sde must be False"):
        ACER("MlpPolicy", IdentityEnv(2), policy_kwargs=dict(use_sde=True))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("trust_region", [True, False])
def test_replay_updates_happen(env_id: str, trust_region: bool) -> None:
    env = make_vec_env(env_id, n_envs=2, seed=0)
    model = ACER("MlpPolicy", env, n_steps=4, replay_start=40, buffer_size=200, trust_region=trust_region, seed=0)
    model.learn(400)
    iterations = 400 // 8
    # one on-policy update per iteration plus Poisson(4) replays once 40 transitions (5 segments) are stored
    assert model._n_updates > iterations + 2 * (iterations - 5)
    values = model.logger.name_to_value
    assert ("train/trust_region_active" in values) == trust_region
    assert np.isfinite(values["train/loss"])


def test_average_network_follows_polyak() -> None:
    model = ACER("MlpPolicy", IdentityEnv(3), n_steps=4, alpha=0.9, seed=0)
    average_before = [p.clone() for p in model.policy.average_actor.parameters()]
    model.learn(4)  # one iteration: one on-policy update (no replay yet)
    assert model._n_updates == 1
    for avg_old, avg, new in zip(average_before, model.policy.average_actor.parameters(), model.policy.actor.parameters(),
                                 strict=True):  # fmt: skip
        th.testing.assert_close(avg, 0.9 * avg_old + 0.1 * new)
    assert any(not th.equal(a, b) for a, b in zip(average_before, model.policy.average_actor.parameters(), strict=True))


def test_replay_buffer_save_load(tmp_path) -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = ACER("MlpPolicy", env, n_steps=4, buffer_size=80, seed=0)
    model.learn(80)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "replay.pkl")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        saved = json.loads(archive.read("data"))
    assert "rollout_buffer" not in saved and "replay_buffer" not in saved
    loaded = ACER.load(tmp_path / "model.zip", env=env)
    assert loaded.replay_buffer.n_transitions() == 0
    loaded.load_replay_buffer(tmp_path / "replay.pkl")
    assert loaded.replay_buffer.n_transitions() == 80
    np.testing.assert_array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)
    loaded.learn(16, reset_num_timesteps=False)
    other = ACER("MlpPolicy", env, n_steps=5, buffer_size=80)
    with pytest.raises(ValueError, match="n_steps=4"):
        other.load_replay_buffer(tmp_path / "replay.pkl")
