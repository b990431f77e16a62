"""ACKTR's ``stats_replay``: amortised statistics recorded on every rollout since the last recording (detail 8)."""

from __future__ import annotations

import dataclasses

import pytest
import torch as th
from gymnasium import spaces
from helpers import RandomObsEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import IdentityEnv, SimpleMultiObsEnv

from sb3_natgrad import ACKTR
from sb3_natgrad.acktr.stats_batch import StatsBatch
from sb3_natgrad.acktr.unrecorded import UnrecordedRollouts


def _random_obs_env() -> RandomObsEnv:
    """2-d uniform observations, Discrete(3) actions, no reward: only the observations matter here."""
    return RandomObsEnv(spaces.Discrete(3))


class _KeepRollouts(BaseCallback):
    """Copies each rollout's observations ``[n_steps * n_envs, 2]`` when it is complete."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts: list[th.Tensor] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts.append(th.as_tensor(self.model.rollout_buffer.observations.reshape(-1, 2).copy()))


def _second_moment(rows: th.Tensor) -> th.Tensor:
    """``E[a a^T]`` of the rows with a ones column appended, as an explicit sum of outer products."""
    with_bias = th.cat([rows, th.ones(rows.shape[0], 1)], dim=1)
    return sum(th.outer(a, a) for a in with_bias) / rows.shape[0]


@pytest.mark.parametrize("kfac_mode", ["separate", "joint"])
def test_recording_sees_every_rollout_since_the_last(kfac_mode: str) -> None:
    """stats_interval 3: recordings at updates 0 and 3; the second one averages rollouts 1-3 (not rollout 3 alone),
    so the first layer's input factor is ``d A(r0) + (1 - d) A(r1 + r2 + r3)``, each term an explicit sum."""
    keep = _KeepRollouts()
    decay = 0.9
    model = ACKTR(
        "MlpPolicy",
        _random_obs_env(),
        n_steps=4,
        stats_interval=3,
        stats_replay=True,
        stat_decay=decay,
        kfac_mode=kfac_mode,
        seed=0,
    )
    model.learn(4 * 4, callback=keep)
    r0, r1, r2, r3 = keep.rollouts
    expected = decay * _second_moment(r0) + (1 - decay) * _second_moment(th.cat([r1, r2, r3]))
    first_layer = next(layer for layer in model.optimizers[0].layers if layer.name.endswith("policy_net.0"))
    assert first_layer.a_factor is not None
    th.testing.assert_close(first_layer.a_factor, expected, rtol=1e-5, atol=1e-6)
    assert all(layer.batch_size == 12 for opt in model.optimizers for layer in opt.layers)
    assert model.unrecorded_rollouts is not None and len(model.unrecorded_rollouts) == 0


def test_without_replay_the_recording_sees_its_own_rollout_only() -> None:
    """The counterpart with stats_replay off: the second recording is rollout 3's alone (the test above can fail)."""
    keep = _KeepRollouts()
    no_replay = dict(stats_replay=False, stats_batch_size=None)
    model = ACKTR("MlpPolicy", _random_obs_env(), n_steps=4, stats_interval=3, stat_decay=0.9, seed=0, **no_replay)
    model.learn(4 * 4, callback=keep)
    r0, _, _, r3 = keep.rollouts
    first_layer = next(layer for layer in model.optimizers[0].layers if layer.name.endswith("policy_net.0"))
    assert first_layer.a_factor is not None
    th.testing.assert_close(first_layer.a_factor, 0.9 * _second_moment(r0) + 0.1 * _second_moment(r3), rtol=1e-5, atol=1e-6)


def test_stats_batch_size_draws_from_the_pooled_rollouts() -> None:
    """With stats_batch_size the recording draws m distinct rows of the pooled rollouts."""
    keep = _KeepRollouts()
    model = ACKTR("MlpPolicy", _random_obs_env(), n_steps=4, stats_interval=3, stats_replay=True, stats_batch_size=6, seed=0)
    model.learn(4 * 4, callback=keep)
    assert all(layer.batch_size == 6 for opt in model.optimizers for layer in opt.layers)


def test_stats_interval_one_is_unchanged() -> None:
    """Every rollout is recorded anyway: stats_replay changes nothing and keeps no window."""
    params = []
    for replay in (False, True):
        model = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=8, stats_interval=1, stats_replay=replay, seed=0)
        model.learn(32)
        assert model.unrecorded_rollouts is None
        params.append(th.nn.utils.parameters_to_vector(model.policy.parameters()))
    th.testing.assert_close(params[0], params[1], rtol=0, atol=0)


def test_dict_observations_are_pooled() -> None:
    model = ACKTR(
        "MultiInputPolicy", SimpleMultiObsEnv(random_start=True), n_steps=4, stats_interval=2, stats_replay=True, seed=0
    )
    model.learn(4 * 4)
    assert all(layer.batch_size == 8 for opt in model.optimizers for layer in opt.layers)


def test_save_load_mid_window_resumes_identically(tmp_path) -> None:
    """Saved with one unrecorded rollout kept, the loaded model's next recording pools it as the original's does."""

    def train_on(model: ACKTR, steps: int) -> dict[str, th.Tensor]:
        from stable_baselines3.common.env_util import make_vec_env

        model.set_env(make_vec_env("CartPole-v1", n_envs=1, seed=7))
        model.set_random_seed(3)
        model._last_obs = None
        model.learn(steps, reset_num_timesteps=False)
        return {k: v.clone() for k, v in model.policy.state_dict().items()}

    model = ACKTR("MlpPolicy", "CartPole-v1", n_steps=8, stats_interval=3, stats_replay=True, seed=0)
    model.learn(16)  # updates 0 (recorded) and 1 (kept)
    assert model.unrecorded_rollouts is not None and len(model.unrecorded_rollouts) == 1
    model.save(tmp_path / "model.zip")
    loaded = ACKTR.load(tmp_path / "model.zip")
    assert loaded.unrecorded_rollouts is not None and len(loaded.unrecorded_rollouts) == 1
    uninterrupted, resumed = train_on(model, 32), train_on(loaded, 32)
    assert uninterrupted.keys() == resumed.keys()
    assert all(th.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


def test_window_keeps_at_most_its_capacity() -> None:
    window = UnrecordedRollouts(capacity=2)
    for i in range(4):
        window.push(th.full((3, 2), float(i)), th.full((3,), i))
    assert len(window) == 2
    obs, actions = window.pool(th.full((1, 2), 9.0), th.full((1,), 9))
    assert obs.shape == (7, 2) and actions.tolist() == [2, 2, 2, 3, 3, 3, 9] and len(window) == 2
    window.clear()
    assert len(window) == 0


def test_stats_replay_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="stats_replay"):
        ACKTR("MlpPolicy", IdentityEnv(3), stats_replay="yes")


def test_a_failed_recording_keeps_the_unrecorded_rollouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error inside the recording (here the Fisher backward) discards its statistics and keeps the window, so
    the retried recording still sees every rollout since the last one."""
    import sb3_natgrad.acktr.acktr as acktr_module

    model = ACKTR("MlpPolicy", _random_obs_env(), n_steps=4, stats_interval=3, stats_replay=True, seed=0)
    model.learn(3 * 4)  # updates 0 (recorded), 1 and 2 (kept)
    window = model.unrecorded_rollouts
    assert window is not None and len(window) == 2
    factors = [layer.a_factor.clone() for opt in model.optimizers for layer in opt.layers if layer.a_factor is not None]

    def failing_backward(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(acktr_module, "fisher_backward", failing_backward)
    model.rollout_buffer.full = True  # train() again on the last rollout: update 3 records
    with pytest.raises(RuntimeError, match="injected failure"):
        model.train()
    assert len(window) == 2
    after = [layer.a_factor for opt in model.optimizers for layer in opt.layers if layer.a_factor is not None]
    assert all(th.equal(a, b) for a, b in zip(factors, after, strict=True))


def _count_forward_passes(model: ACKTR) -> list[int]:
    """Make the policy's ``evaluate_actions_and_distribution`` append its batch size to the returned list."""
    evaluate = model.policy.evaluate_actions_and_distribution
    calls: list[int] = []

    def counted(obs: th.Tensor, actions: th.Tensor) -> tuple:
        calls.append(actions.shape[0])
        return evaluate(obs, actions)

    model.policy.evaluate_actions_and_distribution = counted  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("kl_batch_size", [None, 3])
def test_pooled_recording_shares_the_losses_forward_pass(kl_batch_size: int | None) -> None:
    """At a recording on a pool bounded by stats_batch_size the losses reuse the pool's forward pass (the rollout is
    its tail): one forward pass per update, and the parameters after them and target_kl's measured KL of the last
    update equal those with a separate forward pass."""

    def run(shared: bool) -> tuple[ACKTR, int]:
        model = ACKTR(
            "MlpPolicy",
            "CartPole-v1",  # seeded observations, so that both runs see the same rollouts
            n_steps=4,
            stats_interval=3,
            stats_replay=True,
            stats_batch_size=12,  # the pool of 3 rollouts, whole
            target_kl=0.01,
            kl_batch_size=kl_batch_size,
            seed=0,
        )
        calls = _count_forward_passes(model)
        if not shared:  # report every recording's samples as drawn ones: statistics and losses forward apart
            stats_batch = model._stats_batch

            def apart(obs: th.Tensor, actions: th.Tensor, recording: bool) -> StatsBatch:
                batch = stats_batch(obs, actions, recording)
                return dataclasses.replace(batch, shares_forward_pass=False) if recording else batch

            model._stats_batch = apart  # type: ignore[method-assign]
        model.learn(4 * 4)  # updates 0-3; update 3 records on rollouts 1-3, the rollout in rows 8-11
        return model, calls

    (shared, shared_calls), (apart, apart_calls) = run(True), run(False)
    assert shared_calls == [4, 4, 4, 12]  # the target_kl passes are get_distribution's, not counted
    assert apart_calls == [4, 4, 4, 4, 12, 4]  # update 0: statistics, then losses; update 3: the pool, then losses
    for p, q in zip(shared.policy.parameters(), apart.policy.parameters(), strict=True):
        th.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    kl_shared = shared.logger.name_to_value["train/measured_kl"]
    assert kl_shared > 0.0 and kl_shared == pytest.approx(apart.logger.name_to_value["train/measured_kl"], rel=1e-4)


def test_unbounded_pool_keeps_a_forward_pass_of_its_own() -> None:
    """Without stats_batch_size the pool can be any multiple of the rollout: the losses get their own forward pass."""
    model = ACKTR("MlpPolicy", "CartPole-v1", n_steps=4, stats_interval=3, stats_replay=True, stats_batch_size=None, seed=0)
    calls = _count_forward_passes(model)
    model.learn(4 * 4)
    assert calls == [4, 4, 4, 12, 4]  # update 0 shares its pass (the rollout alone); update 3: the pool, then losses


def test_stats_batch_says_where_the_rollout_sits() -> None:
    """The rollout's rows in the losses' forward pass: the tail of a shared batch, all of the losses' own pass."""
    rollout_obs, rollout_actions = th.zeros(4, 2), th.zeros(4)
    rollout = StatsBatch.rollout(rollout_obs, rollout_actions)
    assert rollout.observations is rollout_obs and rollout.shares_forward_pass and rollout.rollout_rows == slice(0, None)
    pooled = StatsBatch(th.zeros(12, 2), th.zeros(12), 4, shares_forward_pass=True)
    assert (pooled.size, pooled.rollout_start, pooled.rollout_rows) == (12, 8, slice(8, None))
    drawn = StatsBatch(th.zeros(5, 2), th.zeros(5), 4, shares_forward_pass=False)
    assert drawn.rollout_rows == slice(0, None)  # the losses' own pass on the rollout


@pytest.mark.parametrize(
    ("kwargs", "shares", "size"),
    [
        (dict(), True, 4),  # the rollout
        (dict(stats_batch_size=3), False, 3),  # drawn from it
        (dict(stats_replay=True, stats_batch_size=12), True, 12),  # a bounded pool, the rollout last
        (dict(stats_replay=True), False, 12),  # an unbounded pool
        (dict(stats_replay=True, stats_batch_size=6), False, 6),  # drawn from the pool
    ],
)
def test_stats_batch_of_each_setting(kwargs: dict, shares: bool, size: int) -> None:
    """The batch ACKTR records on at update 3 (a recording, after rollouts 1-2 were kept) for each setting."""
    kwargs = {"stats_replay": False, "stats_batch_size": None, **kwargs}  # the settings below, not the class defaults
    model = ACKTR("MlpPolicy", _random_obs_env(), n_steps=4, stats_interval=3, seed=0, **kwargs)
    batches: list[StatsBatch] = []
    stats_batch = model._stats_batch

    def keep(obs: th.Tensor, actions: th.Tensor, recording: bool) -> StatsBatch:
        batches.append(stats_batch(obs, actions, recording))
        return batches[-1]

    model._stats_batch = keep  # type: ignore[method-assign]
    model.learn(4 * 4)
    batch = batches[3]
    assert (batch.shares_forward_pass, batch.size, batch.rollout_size) == (shares, size, 4)
    assert batch.rollout_rows == (slice(size - 4, None) if shares else slice(0, None))
