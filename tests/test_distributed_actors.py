"""Distributed actors (sb3_natgrad.common.actors): ``n_actors=0`` is SB3's loop bit for bit; the actor's chunks against
the environment's own dynamics; chunk ends stored as truncations (n-step returns against a hand computation); option
errors; and, on a local Ray instance, a run in which an actor is killed (every transition the actors sent is in the
replay buffer), a hung actor restarted after the timeout, and actors shut down when a callback stops or interrupts
``learn()``."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import TQC as ContribTQC
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_natgrad.common.actors import Chunk, RolloutWorker, chunk_row
from sb3_natgrad.d4pg import D4PG
from sb3_natgrad.tqc import TQC


def tiny(**kwargs: Any) -> dict[str, Any]:
    """Small settings (a fresh dict each time: SB3 writes into ``policy_kwargs``), updated with ``kwargs``."""
    return {"batch_size": 16, "buffer_size": 5_000, "policy_kwargs": {"net_arch": [16, 16]}, "learning_starts": 50, **kwargs}


def short_pendulum(max_episode_steps: int = 50) -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=max_episode_steps)


# ---------------------------------------------------------------------------------------------------- n_actors=0
class InProcessD4PG(D4PG):
    """D4PG with SB3's own ``collect_rollouts`` and ``learn``, bypassing the actors' wiring entirely."""

    collect_rollouts = OffPolicyAlgorithm.collect_rollouts  # type: ignore[assignment]

    def learn(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return OffPolicyAlgorithm.learn(self, *args, **kwargs)


class InProcessTQC(TQC):
    """TQC with SB3's ``collect_rollouts`` and contrib's ``learn``, bypassing the actors' wiring entirely."""

    collect_rollouts = OffPolicyAlgorithm.collect_rollouts  # type: ignore[assignment]

    def learn(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return ContribTQC.learn(self, *args, **kwargs)


@pytest.mark.parametrize(("cls", "plain"), [(D4PG, InProcessD4PG), (TQC, InProcessTQC)])
def test_no_actors_is_the_in_process_loop_bit_for_bit(cls: type, plain: type) -> None:
    models = []
    for algorithm in (cls, plain):
        model = algorithm(
            "MlpPolicy",
            "Pendulum-v1",
            seed=4,
            prioritized_replay=True,
            n_steps=3,
            action_noise=NormalActionNoise(np.zeros(1), 0.3 * np.ones(1)),
            **tiny(),
        )
        model.learn(120)
        models.append(model)
    ours, sb3 = models
    assert ours.num_timesteps == sb3.num_timesteps == 120 and ours._n_updates == sb3._n_updates > 0
    for (name, a), b in zip(ours.policy.state_dict().items(), sb3.policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name
    for name in ("observations", "actions", "rewards", "next_observations", "dones", "timeouts"):
        assert np.array_equal(getattr(ours.replay_buffer, name), getattr(sb3.replay_buffer, name)), name
    leaves = np.arange(ours.replay_buffer.buffer_size)
    priorities = [model.replay_buffer.tree[leaves] for model in models]
    assert np.array_equal(*priorities) and ours.replay_buffer.max_priority == sb3.replay_buffer.max_priority


# ---------------------------------------------------------------------------------------------------- errors
def test_without_ray_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r'pip install "sb3_natgrad\[distributed\]"'):
        D4PG("MlpPolicy", "Pendulum-v1", n_actors=2, **tiny())
    D4PG("MlpPolicy", "Pendulum-v1", n_actors=0, **tiny())  # the default needs no Ray


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_actors": -1}, r"n_actors must be an integer >= 0, got -1"),
        ({"n_actors": 1.0}, r"n_actors must be an integer >= 0, got 1.0"),
        ({"actor_sync_interval": 0}, r"actor_sync_interval must be an integer >= 1, got 0"),
        ({"ray_address": ""}, r"ray_address must be a non-empty string or None, got ''"),
        ({"actor_kwargs": {"chunk": 8}}, r"actor_kwargs keys must be among .*, got \['chunk'\]"),
        ({"actor_kwargs": {"chunk_size": 0}}, r"actor_kwargs\['chunk_size'\] must be an integer >= 1, got 0"),
        ({"actor_kwargs": {"timeout": 0.0}}, r"actor_kwargs\['timeout'\] must be a finite number > 0.0, got 0.0"),
        ({"actor_kwargs": {"max_restarts": -1}}, r"actor_kwargs\['max_restarts'\] must be an integer >= 0, got -1"),
        ({"actor_kwargs": {"env_fn": "Pendulum-v1"}}, r"actor_kwargs\['env_fn'\] must be callable, got 'Pendulum-v1'"),
    ],
)
def test_bad_options_name_the_value(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        D4PG("MlpPolicy", "Pendulum-v1", **kwargs, **tiny())


class _Unrecreatable(gym.Wrapper):
    """A wrapper gym.make cannot rebuild from the spec (it does not record its constructor arguments)."""


@pytest.mark.parametrize(
    ("make_env", "kwargs", "match"),
    [
        (lambda: VecNormalize(DummyVecEnv([short_pendulum])), {}, r"does not support VecNormalize"),
        (lambda: "Pendulum-v1", {"n_steps": 1, "optimize_memory_usage": True}, r"needs optimize_memory_usage=False"),
        (
            lambda: "Pendulum-v1",
            {"n_steps": 1, "replay_buffer_kwargs": {"handle_timeout_termination": False}},
            r"needs handle_timeout_termination=True",
        ),
        (lambda: DummyVecEnv([lambda: _Unrecreatable(short_pendulum())]), {}, r"cannot recreate the wrappers"),
    ],
)
def test_what_the_actors_cannot_do_is_refused_at_construction(make_env: Any, kwargs: dict[str, Any], match: str) -> None:
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match=match):
        D4PG("MlpPolicy", make_env(), n_actors=1, **tiny(**kwargs))


def test_tqc_refuses_sde_with_actors() -> None:
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match=r"TQC: n_actors > 0 does not support use_sde=True"):
        TQC("MlpPolicy", "Pendulum-v1", n_actors=1, use_sde=True, **tiny())
    with pytest.raises(ValueError, match=r"TQC: n_actors must be an integer >= 0, got -2"):
        TQC("MlpPolicy", "Pendulum-v1", n_actors=-2, **tiny())


# ---------------------------------------------------------------------------------------------------- the actor
def make_worker(model: D4PG, seed: int | None = 3, index: int = 1, action_noise: Any = None) -> RolloutWorker:
    return RolloutWorker(
        model.policy_class,
        (model.observation_space, model.action_space, model.lr_schedule, model.policy_kwargs),
        functools.partial(short_pendulum, 7),
        n_envs=2,
        action_noise=action_noise,
        seed=seed,
        index=index,
    )


def pendulum_reward(observation: np.ndarray, scaled_action: np.ndarray) -> np.ndarray:
    """Pendulum-v1's reward from the observation (cos, sin, theta_dot) and the action in [-1, 1] (torque 2 a)."""
    theta = np.arctan2(observation[..., 1], observation[..., 0])
    torque = np.clip(2.0 * scaled_action[..., 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * observation[..., 2] ** 2 + 0.001 * torque**2)


def test_worker_chunks_follow_the_environment() -> None:
    model = D4PG("MlpPolicy", "Pendulum-v1", seed=0, **tiny())
    weights = {key: value.numpy() for key, value in model.policy.actor.state_dict().items()}
    worker = make_worker(model)
    first = worker.collect(rows=10, uniform_rows=4, weights=[weights], version=0, incarnation=0)
    second = worker.collect(rows=5, uniform_rows=0, weights=[weights], version=0, incarnation=0)
    for key, value in worker.policy.actor.state_dict().items():  # type: ignore[attr-defined]
        assert th.equal(value, model.policy.actor.state_dict()[key])
    assert first.sent == 20 and second.sent == 30 and worker.sent_transitions() == 30
    obs, next_obs = np.asarray(first.observations), np.asarray(first.next_observations)  # [10, 2, 3]
    assert obs.shape == (10, 2, 3) and first.actions.shape == (10, 2, 1) and first.rewards.shape == (10, 2)
    # The reward of each stored (observation, action): rows and columns line up.
    np.testing.assert_allclose(first.rewards, pendulum_reward(obs, first.actions), rtol=1e-5, atol=1e-5)
    # Without noise the actor is deterministic: the policy's action after the uniform rows, another one before.
    greedy = np.stack([model.policy.scale_action(model.policy.predict(o, deterministic=True)[0]) for o in obs])
    np.testing.assert_allclose(first.actions[4:], greedy[4:], atol=1e-6)
    assert not np.allclose(first.actions[:4], greedy[:4], atol=1e-3)
    # 7-step episodes: row 6 ends both; its next observation is the terminal one, not the reset observation.
    assert first.dones[6].all() and not first.dones[:6].any() and not first.dones[7:].any()
    assert all(info["TimeLimit.truncated"] and info["episode"]["l"] == 7 for info in first.infos[6])
    assert not np.allclose(next_obs[6], obs[7])
    np.testing.assert_array_equal(next_obs[[0, 1, 2, 3, 4, 5, 7, 8]], obs[[1, 2, 3, 4, 5, 6, 8, 9]])
    np.testing.assert_array_equal(np.asarray(second.observations)[0], next_obs[9])  # the next call continues


def test_worker_seeds_from_seed_index_and_incarnation() -> None:
    model = D4PG("MlpPolicy", "Pendulum-v1", seed=0, **tiny())
    weights = [{key: value.numpy() for key, value in model.policy.actor.state_dict().items()}]
    noise = NormalActionNoise(np.zeros(1), 0.5 * np.ones(1))

    def chunk(seed: int | None, index: int, incarnation: int) -> Chunk:
        worker = make_worker(model, seed=seed, index=index, action_noise=noise)
        return worker.collect(rows=6, uniform_rows=3, weights=weights, version=0, incarnation=incarnation)

    reference = chunk(3, 1, 0)
    again = chunk(3, 1, 0)
    np.testing.assert_array_equal(again.observations, reference.observations)
    np.testing.assert_array_equal(again.actions, reference.actions)  # uniform actions and noise too
    for other in (chunk(3, 2, 0), chunk(3, 1, 1), chunk(4, 1, 0)):
        assert not np.allclose(np.asarray(other.observations)[0], np.asarray(reference.observations)[0])


# ---------------------------------------------------------------------------------------------------- chunk ends
def make_chunk(actor: int, rewards: list[float], first_obs: float) -> Chunk:
    rows = len(rewards)
    obs = (first_obs + np.arange(rows, dtype=np.float32))[:, None, None]  # [T, 1, 1]
    return Chunk(
        actor=actor,
        incarnation=0,
        observations=obs,
        next_observations=obs + 0.5,
        actions=np.zeros((rows, 1, 1), dtype=np.float32),
        rewards=np.array(rewards, dtype=np.float32)[:, None],
        dones=np.zeros((rows, 1), dtype=bool),
        infos=[[{}] for _ in range(rows)],
        process="p",
        sent=rows,
    )


def test_chunk_end_is_stored_as_a_truncation() -> None:
    chunk = make_chunk(0, [1.0, 2.0, 3.0], 0.0)._replace(
        dones=np.array([[False, False], [False, False], [True, False]]), infos=[[{}, {}]] * 3
    )
    last = chunk_row(chunk, 2)
    assert last.buffer_dones.tolist() == [True, True] and last.dones.tolist() == [True, False]
    assert last.buffer_infos == [{}, {"TimeLimit.truncated": True}] and last.infos == [{}, {}]
    middle = chunk_row(chunk, 1)
    assert middle.buffer_dones.tolist() == [False, False] and middle.buffer_infos == [{}, {}]


def test_n_step_returns_stop_at_the_chunk_end() -> None:
    gamma = 0.5
    space = gym.spaces.Box(-100.0, 100.0, (1,), np.float32)
    buffer = NStepReplayBuffer(100, space, gym.spaces.Box(-1.0, 1.0, (1,), np.float32), "cpu", n_steps=3, gamma=gamma)
    for chunk in (make_chunk(0, [1.0, 2.0, 3.0], 0.0), make_chunk(1, [10.0, 20.0, 30.0], 50.0)):
        for row in range(3):
            step = chunk_row(chunk, row)
            buffer.add(
                step.observations, step.next_observations, step.actions, step.rewards, step.buffer_dones, step.buffer_infos
            )  # type: ignore[arg-type]
    samples = buffer._get_samples(np.array([0, 1, 2, 3]))
    # Brute force: sum the rewards of the same chunk only, then bootstrap from that chunk's last next observation.
    expected_returns = [1 + gamma * 2 + gamma**2 * 3, 2 + gamma * 3, 3, 10 + gamma * 20 + gamma**2 * 30]
    expected_discounts = [gamma**3, gamma**2, gamma, gamma**3]
    expected_next = [2.5, 2.5, 2.5, 52.5]
    np.testing.assert_allclose(samples.rewards.numpy().ravel(), expected_returns)
    assert samples.discounts is not None
    np.testing.assert_allclose(samples.discounts.numpy().ravel(), expected_discounts)
    np.testing.assert_allclose(samples.next_observations.numpy().ravel(), expected_next)
    assert not samples.dones.numpy().any()  # a cut bootstraps: it is not a termination


# ---------------------------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def ray_local() -> Any:
    ray = pytest.importorskip("ray")
    # The environments below are defined here, where the actors cannot import them from: send them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    if started:
        ray.shutdown()


def actor_is_dead(ray: Any, handle: Any) -> bool:
    try:
        ray.get(handle.sent_transitions.remote(), timeout=60)
    except ray.exceptions.RayActorError:
        return True
    return False


class KillActorZero(BaseCallback):
    """Kills actor 0 once ``num_timesteps`` passes ``at``, then waits for Ray to restart it (so that the restarted
    actor certainly gets requests before the budget is spent)."""

    def __init__(self, ray: Any, at: int) -> None:
        super().__init__()
        self.ray, self.at, self.killed = ray, at, False

    def _on_step(self) -> bool:
        pool = self.model._actor_pool  # type: ignore[attr-defined]
        self.handles, self.version = pool.handles, pool.version
        if not self.killed and self.num_timesteps >= self.at:
            self.killed = True
            self.ray.kill(pool.handles[0], no_restart=False)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    self.ray.get(pool.handles[0].sent_transitions.remote(), timeout=60)
                    break
                except self.ray.exceptions.RayActorError:
                    time.sleep(0.2)
        return True


def test_killed_actor_is_restarted_and_every_sent_transition_is_stored(ray_local: Any, tmp_path: Path) -> None:
    total = 600
    model = D4PG(
        "MlpPolicy",
        "Pendulum-v1",
        n_actors=2,
        actor_sync_interval=10,
        actor_kwargs={"chunk_size": 20, "env_fn": short_pendulum},
        prioritized_replay=True,
        seed=0,
        **tiny(),
    )
    callback = KillActorZero(ray_local, at=200)
    model.learn(total, callback=callback)

    assert model.num_timesteps == total and callback.n_calls == total  # one on_step per vectorised step
    assert model.replay_buffer is not None and model.replay_buffer.size() == total
    killed, survivor = model.actor_stats
    assert survivor.incarnation == 0 and not killed.retired and not survivor.retired
    # The pool counts the restart where it sees it (a request failing, or a chunk from the new process); where the
    # killed process had no request in flight and the rest of the budget went to the survivor, it never does.
    assert killed.incarnation in (0, 1)
    for stats in model.actor_stats:  # nothing received was dropped
        assert stats.stored == stats.received
    assert survivor.sent == survivor.received_from_process == survivor.received > 0  # every transition it sent
    # The restarted process's own count, where it answered at shutdown (a slow restart under load may not: None).
    assert killed.sent is None or killed.sent == killed.received_from_process
    assert killed.stored + survivor.stored == total
    assert callback.version >= 1  # new weights were published
    # Every finished episode is a whole 50-step one (a killed actor's episode is not counted as finished).
    assert model.ep_info_buffer and all(info["l"] == 50 for info in model.ep_info_buffer)
    assert model._actor_pool is None and all(actor_is_dead(ray_local, handle) for handle in callback.handles)
    model.save(tmp_path / "model.zip")  # no Ray handle is pickled
    loaded = D4PG.load(tmp_path / "model.zip")
    assert loaded.n_actors == 2 and loaded._actor_pool is None


class HangOnce(gym.Wrapper):
    """Pendulum whose 30th step hangs while ``marker`` exists (it is removed first: the restarted actor runs on)."""

    def __init__(self, marker: str) -> None:
        super().__init__(short_pendulum())
        self.marker, self.steps = Path(marker), 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        if self.steps == 30 and self.marker.exists():
            self.marker.unlink()
            time.sleep(3600)
        return self.env.step(action)


def test_hung_actor_is_restarted_after_the_timeout(ray_local: Any, tmp_path: Path) -> None:
    marker = tmp_path / "hang"
    marker.touch()
    model = D4PG(
        "MlpPolicy",
        "Pendulum-v1",
        n_actors=1,
        actor_kwargs={"chunk_size": 10, "timeout": 4.0, "env_fn": functools.partial(HangOnce, str(marker))},
        seed=0,
        **tiny(),
    )
    model.learn(100)
    (stats,) = model.actor_stats
    assert not marker.exists() and stats.incarnation == 1 and stats.lost >= 10
    assert model.num_timesteps == 100 and stats.stored == 100 and stats.sent == stats.received_from_process


class Stop(BaseCallback):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def _on_step(self) -> bool:
        self.handles = self.model._actor_pool.handles  # type: ignore[attr-defined]
        if self.num_timesteps >= 30:
            if self.how == "interrupt":
                raise KeyboardInterrupt
            return False
        return True


@pytest.mark.parametrize(("cls", "how"), [(TQC, "callback"), (D4PG, "interrupt")])
def test_actors_are_shut_down_when_learning_stops(ray_local: Any, cls: type, how: str) -> None:
    model = cls("MlpPolicy", "Pendulum-v1", n_actors=1, actor_kwargs={"chunk_size": 10}, seed=0, **tiny())
    callback = Stop(how)
    if how == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            model.learn(1_000, callback=callback)
    else:
        model.learn(1_000, callback=callback)
    assert model.num_timesteps == 30 and model._actor_pool is None
    assert model.replay_buffer.size() == 29  # the step on which the callback stopped is not stored, as in SB3
    (stats,) = model.actor_stats
    # Chunks still in flight when learning stopped were sent, not received: they are dropped.
    assert stats.stored == 29 and stats.received >= 30 and stats.sent is not None and stats.sent >= stats.received
    assert actor_is_dead(ray_local, callback.handles[0])
