"""Prioritized n-step replay (Schaul et al. 2016): sum/min tree, importance weights, n-step targets equal to SB3's
``NStepReplayBuffer``, Dict buffers, priority updates, save/load, and the flat-argument helpers of ``off_policy``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from scipy import stats
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl

from sb3_natgrad.common.n_step_replay import NStepDictReplayBuffer
from sb3_natgrad.common.off_policy import (
    anneal_per_beta,
    importance_weighted_mean,
    per_beta_schedule,
    replay_buffer_for,
    update_priorities,
)
from sb3_natgrad.common.prioritized_replay import (
    PrioritizedDictReplayBuffer,
    PrioritizedDictReplayBufferSamples,
    PrioritizedReplayBuffer,
    PrioritizedReplayBufferSamples,
)
from sb3_natgrad.common.sum_tree import SumMinTree

OBS = spaces.Box(-10.0, 10.0, (3,), np.float32)
ACTIONS = spaces.Box(-1.0, 1.0, (2,), np.float32)
DICT_OBS = spaces.Dict({"state": OBS})


def _tree_state(tree: SumMinTree) -> list[np.ndarray]:
    return [a.copy() for a in tree._sums + tree._mins]


def _small_tree(capacity: int = 1000) -> SumMinTree:
    """Fanout 4 and a top of at most 8 nodes: five levels, so every part of the search runs."""
    return SumMinTree(capacity, fanout=4, top_size=8)


# ---------------------------------------------------------------------------------------------------- sum / min tree


@pytest.mark.parametrize("make_tree", [_small_tree, SumMinTree])
def test_tree_sampling_frequencies_match_priorities(make_tree):
    rng = np.random.default_rng(0)
    tree = make_tree(1000)
    priorities = rng.exponential(1.0, 1000) * (rng.random(1000) < 0.8)  # a fifth of the leaves at 0
    tree.update(np.arange(1000), priorities)
    np.random.seed(0)
    draws = np.concatenate([tree.sample(256)[0] for _ in range(800)])  # 204,800 stratified draws
    counts = np.bincount(draws, minlength=1000)
    assert counts[priorities == 0].sum() == 0
    positive = priorities > 0
    expected = priorities[positive] / priorities.sum() * draws.size
    _, p_value = stats.chisquare(counts[positive], expected)
    assert p_value > 1e-3


@pytest.mark.parametrize("make_tree", [_small_tree, SumMinTree])
def test_tree_find_equals_brute_force_prefix_search(make_tree):
    rng = np.random.default_rng(1)
    tree = make_tree(777)
    priorities = rng.random(777) * (rng.random(777) < 0.7)
    tree.update(np.arange(777), priorities)
    cumsum = np.cumsum(priorities)
    mass = rng.random(5000) * cumsum[-1]
    expected = np.searchsorted(cumsum, mass, side="right")  # first i with cumsum[i] > mass
    found = tree.find(mass)
    # Away from interval ends (within rounding of a boundary both neighbours are right), the leaf is the brute force's.
    clear = np.abs(cumsum[expected] - mass) > 1e-9
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(found[clear], expected[clear])


def test_tree_search_never_returns_a_zero_leaf():
    # Zero leaves everywhere (unwritten slots), masses exactly on the interval ends, 0, the total and above it.
    tree = _small_tree(200)
    values = np.zeros(200)
    values[[3, 50, 51, 120, 197]] = [0.1, 1e-300, 2.5, 1e-12, 3.0]
    tree.update(np.arange(200), values)
    cumsum = np.cumsum(values)
    mass = np.concatenate([[0.0, tree.total(), tree.total() * (1 + 1e-12), 1e300, -1.0], cumsum, np.nextafter(cumsum, 0)])
    for exact in (False, True):
        leaves = tree._descend(np.maximum(mass, 0.0), tree._top_cumsum(), exact=True) if exact else tree.find(mass)
        assert (values[leaves] > 0).all()
    # The not-yet-written tail of a buffer is never sampled.
    buffer = _filled_buffer(PrioritizedReplayBuffer, n_steps=1, buffer_size=64, n_transitions=9)
    np.random.seed(0)
    for _ in range(20):
        indices = buffer.sample(32).indices
        assert (indices < 9 * buffer.n_envs).all()


def test_tree_sums_and_minima_after_updates_with_duplicates():
    rng = np.random.default_rng(2)
    tree = _small_tree(300)
    reference = np.zeros(300)
    for _ in range(50):
        indices = rng.integers(0, 300, 40)
        values = rng.exponential(1.0, 40) * (rng.random(40) < 0.9)
        tree.update(indices, values)
        reference[indices] = values  # NumPy assigns in order: the last duplicate wins
        np.testing.assert_array_equal(tree[np.arange(300)], reference)
    assert tree.total() == pytest.approx(reference.sum(), rel=1e-12)
    assert tree.min() == reference[reference > 0].min()
    for level in range(1, tree.n_levels):  # every node is the sum / positive minimum of its children (then padding)
        children = tree._sums[level - 1].reshape(-1, tree.fanout)
        sums, padding = np.split(tree._sums[level], [children.shape[0]])
        np.testing.assert_allclose(sums, children.sum(axis=1), rtol=1e-12)
        child_mins = children if level == 1 else tree._mins[level - 1].reshape(-1, tree.fanout)
        expected_mins = np.where(child_mins > 0, child_mins, np.inf).min(axis=1)
        np.testing.assert_array_equal(tree._mins[level][: children.shape[0]], expected_mins)
        assert not padding.any() and (tree._mins[level][children.shape[0] :] == np.inf).all()
    tree.update(np.array([5, 6]), np.array([-0.0, 1e-310]))  # -0.0 is no positive leaf; subnormals are
    assert tree.min() == 1e-310
    tree.update(np.arange(300), np.zeros(300))
    assert tree.min() == np.inf and tree.total() == 0.0
    with pytest.raises(ValueError, match="every priority is 0"):
        tree.sample(4)


def test_tree_memory_at_most_two_float64_arrays_of_the_capacity():
    for capacity in (1, 1000, 65_537, 1_000_000):
        assert SumMinTree(capacity).nbytes <= 2 * 8 * capacity + 8 * 4096


# ------------------------------------------------------------------------------------------------------- buffers


def _transitions(n_transitions: int, n_envs: int, seed: int):
    """Episodes that end by termination and by truncation (SB3's convention: done and TimeLimit.truncated)."""
    rng = np.random.default_rng(seed)
    for step in range(n_transitions):
        obs = rng.normal(size=(n_envs, 3)).astype(np.float32) + step
        next_obs = rng.normal(size=(n_envs, 3)).astype(np.float32) - step
        action = rng.uniform(-1, 1, (n_envs, 2)).astype(np.float32)
        reward = rng.normal(size=n_envs).astype(np.float32)
        done = rng.random(n_envs) < 0.25
        truncated = done & (rng.random(n_envs) < 0.5)
        infos = [{"TimeLimit.truncated": bool(t)} for t in truncated]
        yield obs, next_obs, action, reward, done, infos


def _filled_buffer(cls, n_steps, buffer_size=20, n_envs=2, n_transitions=27, seed=0, **kwargs):
    """Buffers of ``buffer_size // n_envs`` positions, filled past the end (wrap-around) by default."""
    observation_space = DICT_OBS if issubclass(cls, DictReplayBuffer) else OBS
    if cls is not ReplayBuffer and cls is not DictReplayBuffer:
        kwargs.update(n_steps=n_steps, gamma=0.9)
    buffer = cls(buffer_size, observation_space, ACTIONS, device="cpu", n_envs=n_envs, **kwargs)
    for obs, next_obs, action, reward, done, infos in _transitions(n_transitions, n_envs, seed):
        if observation_space is DICT_OBS:
            obs, next_obs = {"state": obs}, {"state": next_obs}
        buffer.add(obs, next_obs, action, reward, done, infos)
    return buffer


def _all_indices(buffer):
    """Every stored (position, env) pair: positions, envs and flat indices."""
    positions = np.repeat(np.arange(buffer.size()), buffer.n_envs)
    envs = np.tile(np.arange(buffer.n_envs), buffer.size())
    return positions, envs, positions * buffer.n_envs + envs


def _sb3_env_draw(n_envs, size):
    """The envs SB3's ``_get_samples`` draws (``np.random.randint``) right after ``np.random.seed(123)``."""
    np.random.seed(123)
    return np.random.randint(0, n_envs, size=size)


def _sb3_samples(buffer, positions, envs):
    """SB3's ``_get_samples`` on the (position, env) pairs ``positions``, ``envs = _sb3_env_draw(...)``."""
    np.testing.assert_array_equal(_sb3_env_draw(buffer.n_envs, positions.shape), envs)
    np.random.seed(123)
    return buffer._get_samples(positions)


@pytest.mark.parametrize("n_steps", [1, 3, 5])
@pytest.mark.parametrize("n_transitions", [7, 27])  # not full (write head inside) and wrapped around
def test_n_step_targets_equal_sb3(n_steps, n_transitions):
    ours = _filled_buffer(PrioritizedReplayBuffer, n_steps, n_transitions=n_transitions)
    sb3 = _filled_buffer(NStepReplayBuffer, n_steps, n_transitions=n_transitions)
    positions = np.repeat(np.arange(sb3.size()), 4)  # every position, several envs each
    envs = _sb3_env_draw(sb3.n_envs, positions.shape)
    expected = _sb3_samples(sb3, positions, envs)
    got = ours._flat_samples(positions * ours.n_envs + envs)
    assert got.discounts is not None and expected.discounts is not None
    for name in ("observations", "actions", "next_observations", "dones", "rewards", "discounts"):
        assert getattr(got, name).dtype == getattr(expected, name).dtype
        th.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0, msg=name)
    # The data exercise what they should: terminations, truncations and shortened windows.
    assert expected.dones.sum() > 0 and (expected.discounts > 0.9**n_steps + 1e-6).any() == (n_steps > 1)
    assert sb3.timeouts.sum() > 0


def test_one_step_targets_equal_sb3_replay_buffer():
    ours = _filled_buffer(PrioritizedReplayBuffer, 1)
    sb3 = _filled_buffer(ReplayBuffer, 1)
    positions = _all_indices(sb3)[0]
    envs = _sb3_env_draw(sb3.n_envs, positions.shape)
    expected = _sb3_samples(sb3, positions, envs)
    got = ours._flat_samples(positions * ours.n_envs + envs)
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        th.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0, msg=name)
    th.testing.assert_close(got.discounts, th.full_like(got.rewards, 0.9))


@pytest.mark.parametrize("n_steps", [1, 4])
def test_dict_n_step_equals_box_n_step(n_steps):
    box = _filled_buffer(PrioritizedReplayBuffer, n_steps)
    flat = _all_indices(box)[2]
    expected = box._flat_samples(flat)
    for cls in (NStepDictReplayBuffer, PrioritizedDictReplayBuffer):
        got = _filled_buffer(cls, n_steps)._dict_samples(flat, None)
        th.testing.assert_close(got.observations["state"], expected.observations, rtol=0, atol=0)
        th.testing.assert_close(got.next_observations["state"], expected.next_observations, rtol=0, atol=0)
        for name in ("actions", "dones", "rewards", "discounts"):
            th.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=0, atol=0, msg=name)
    # NStepDictReplayBuffer's uniform sample draws (position, env) as SB3's n-step buffer does.
    uniform = _filled_buffer(NStepDictReplayBuffer, n_steps)
    np.random.seed(5)
    samples = uniform.sample(16)
    np.random.seed(5)
    sb3_like = _filled_buffer(NStepReplayBuffer, n_steps).sample(16)
    th.testing.assert_close(samples.rewards, sb3_like.rewards)
    th.testing.assert_close(samples.discounts, sb3_like.discounts)


@pytest.mark.parametrize("cls", [PrioritizedReplayBuffer, PrioritizedDictReplayBuffer])
def test_sample_fields_types_and_shapes(cls):
    buffer = _filled_buffer(cls, 3)
    np.random.seed(0)
    samples = buffer.sample(8)
    samples_cls = PrioritizedDictReplayBufferSamples if cls is PrioritizedDictReplayBuffer else PrioritizedReplayBufferSamples
    assert isinstance(samples, samples_cls)
    assert samples._fields == (
        "observations",
        "actions",
        "next_observations",
        "dones",
        "rewards",
        "discounts",
        "weights",
        "indices",
    )
    for name in ("dones", "rewards", "discounts", "weights"):
        value = getattr(samples, name)
        assert isinstance(value, th.Tensor) and value.shape == (8, 1) and value.dtype == th.float32, name
    assert isinstance(samples.indices, np.ndarray) and samples.indices.dtype == np.int64 and samples.indices.shape == (8,)


def test_importance_weights_equal_closed_form():
    buffer = _filled_buffer(PrioritizedReplayBuffer, 1, alpha=0.7, beta=0.5, eps=0.01)
    rng = np.random.default_rng(3)
    _, _, flat = _all_indices(buffer)
    errors = rng.exponential(1.0, flat.size)
    buffer.update_priorities(flat, errors)
    # Brute force over the whole buffer: P(i) = p_i / sum p, w_i = (N P(i))^-beta / max_j (N P(j))^-beta.
    priorities = (errors + 0.01) ** 0.7
    n = priorities.size
    probabilities = priorities / priorities.sum()
    all_weights = (n * probabilities) ** -0.5
    np.random.seed(0)
    for _ in range(5):  # small batches: the buffer's max weight is usually not in the batch
        samples = buffer.sample(4)
        expected = all_weights[samples.indices] / all_weights.max()
        np.testing.assert_allclose(samples.weights.numpy().ravel(), expected, rtol=1e-6)
        assert samples.weights.max() <= 1.0


def test_new_transitions_get_the_max_priority():
    buffer = _filled_buffer(PrioritizedReplayBuffer, 1, n_transitions=5, buffer_size=20)
    assert (buffer.tree[np.arange(10)] == 1.0).all()  # the initial max priority
    buffer.update_priorities(np.array([0, 3]), np.array([5.0, 0.1]))
    top = (5.0 + buffer.eps) ** buffer.alpha
    assert buffer.max_priority == pytest.approx(top)
    for obs, next_obs, action, reward, done, infos in _transitions(1, 2, seed=9):
        buffer.add(obs, next_obs, action, reward, done, infos)
    assert buffer.tree[np.array([10, 11])] == pytest.approx([top, top])
    buffer.update_priorities(np.array([0]), np.array([0.0]))  # lowering priorities keeps the running max
    assert buffer.max_priority == pytest.approx(top)


@pytest.mark.parametrize(
    "bad, named",
    [(np.nan, "nan"), (np.inf, "inf"), (-1.0, "-1.0"), (-np.inf, "-inf")],
)
def test_bad_priorities_refused_without_changing_the_tree(bad, named):
    buffer = _filled_buffer(PrioritizedReplayBuffer, 1)
    buffer.update_priorities(np.arange(6), np.arange(6, dtype=np.float64))
    before, max_before = _tree_state(buffer.tree), buffer.max_priority
    priorities = th.tensor([1.0, 2.0, bad, 3.0])
    with pytest.raises(ValueError, match=rf"priorities must be finite and >= 0, got \[{named}\] at indices \[2\]"):
        buffer.update_priorities(np.arange(4), priorities)
    for a, b in zip(before, _tree_state(buffer.tree), strict=True):
        np.testing.assert_array_equal(a, b)
    assert buffer.max_priority == max_before
    with pytest.raises(ValueError, match="indices must be in"):
        buffer.update_priorities(np.array([-1]), np.array([1.0]))
    with pytest.raises(ValueError, match="2 indices and 1 priorities"):
        buffer.update_priorities(np.array([0, 1]), np.array([1.0]))


def test_update_priorities_duplicates_last_wins():
    buffer = _filled_buffer(PrioritizedReplayBuffer, 1, alpha=1.0, eps=0.0)
    buffer.update_priorities(np.array([4, 4, 7, 4]), th.tensor([1.0, 2.0, 3.0, 0.5]))
    assert buffer.tree[np.array([4, 7])] == pytest.approx([0.5, 3.0])


@pytest.mark.parametrize("n_steps", [1, 3])
@pytest.mark.parametrize("cls", [PrioritizedReplayBuffer, PrioritizedDictReplayBuffer])
def test_save_load_keeps_tree_and_sampling(tmp_path, cls, n_steps):
    buffer = _filled_buffer(cls, n_steps)
    rng = np.random.default_rng(4)
    _, _, flat = _all_indices(buffer)
    buffer.update_priorities(flat, rng.exponential(1.0, flat.size))
    buffer.beta = 0.7
    save_to_pkl(tmp_path / "buffer.pkl", buffer)  # what save_replay_buffer / load_replay_buffer do
    loaded = load_from_pkl(tmp_path / "buffer.pkl")
    for a, b in zip(_tree_state(buffer.tree), _tree_state(loaded.tree), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (loaded.alpha, loaded.beta, loaded.eps, loaded.max_priority) == (
        buffer.alpha,
        buffer.beta,
        buffer.eps,
        buffer.max_priority,
    )
    for _ in range(3):
        np.random.seed(11)
        first = buffer.sample(16)
        np.random.seed(11)
        second = loaded.sample(16)
        np.testing.assert_array_equal(first.indices, second.indices)
        th.testing.assert_close(first.weights, second.weights, rtol=0, atol=0)
        th.testing.assert_close(first.rewards, second.rewards, rtol=0, atol=0)
        errors = th.rand(16)
        buffer.update_priorities(first.indices, errors)
        loaded.update_priorities(second.indices, errors)


@pytest.mark.parametrize("cls", [PrioritizedReplayBuffer, PrioritizedDictReplayBuffer, NStepDictReplayBuffer])
def test_optimize_memory_usage_refused(cls):
    space = DICT_OBS if issubclass(cls, DictReplayBuffer) else OBS
    with pytest.raises(ValueError, match="optimize_memory_usage=True is not supported"):
        cls(10, space, ACTIONS, device="cpu", optimize_memory_usage=True, handle_timeout_termination=False)


def test_buffer_argument_errors():
    with pytest.raises(ValueError, match="PrioritizedReplayBuffer: alpha must be"):
        PrioritizedReplayBuffer(10, OBS, ACTIONS, alpha=-0.1)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        PrioritizedReplayBuffer(10, OBS, ACTIONS, n_steps=0)
    with pytest.raises(ValueError, match="need PrioritizedDictReplayBuffer"):
        PrioritizedReplayBuffer(10, DICT_OBS, ACTIONS)
    buffer = PrioritizedReplayBuffer(10, OBS, ACTIONS)
    with pytest.raises(ValueError, match="beta must be"):
        buffer.beta = float("nan")


# ----------------------------------------------------------------------------------------------- off_policy helpers

PER_ARGS = dict(n_steps=1, gamma=0.99, prioritized_replay=False, per_alpha=0.6, per_beta=0.4, per_eps=1e-6)


@pytest.mark.parametrize(
    "space, n_steps, prioritized, expected",
    [
        (OBS, 1, False, None),
        (DICT_OBS, 1, False, None),
        (OBS, 3, False, NStepReplayBuffer),
        (DICT_OBS, 3, False, NStepDictReplayBuffer),
        (OBS, 1, True, PrioritizedReplayBuffer),
        (OBS, 5, True, PrioritizedReplayBuffer),
        (DICT_OBS, 5, True, PrioritizedDictReplayBuffer),
    ],
)
def test_replay_buffer_for_chooses_the_class(space, n_steps, prioritized, expected):
    user_kwargs = {"handle_timeout_termination": False}
    args = {**PER_ARGS, "n_steps": n_steps, "prioritized_replay": prioritized}
    cls, kwargs = replay_buffer_for("Algo", space, **args, replay_buffer_class=None, replay_buffer_kwargs=user_kwargs)
    assert cls is expected
    assert kwargs["handle_timeout_termination"] is False and user_kwargs == {"handle_timeout_termination": False}
    if expected is not None:
        assert (kwargs["n_steps"], kwargs["gamma"]) == (n_steps, 0.99)
        buffer = cls(20, space, ACTIONS, device="cpu", **kwargs)
        assert buffer.n_steps == n_steps
    if prioritized:
        assert (kwargs["alpha"], kwargs["beta"], kwargs["eps"]) == (0.6, 0.4, 1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"per_alpha": -1.0}, "Algo: per_alpha must be a finite number >= 0.0, got -1.0"),
        ({"per_beta": 1.5}, "Algo: per_beta must be"),
        ({"per_eps": float("nan")}, "Algo: per_eps must be"),
        ({"prioritized_replay": 1}, "Algo: prioritized_replay must be a bool"),
        ({"n_steps": 0}, "Algo: n_steps must be an integer >= 1"),
        ({"gamma": 1.2}, "Algo: gamma must be"),
    ],
)
def test_replay_buffer_for_errors_name_the_argument(change, message):
    with pytest.raises(ValueError, match=message):
        replay_buffer_for("Algo", OBS, **{**PER_ARGS, **change}, replay_buffer_class=None, replay_buffer_kwargs=None)


def test_replay_buffer_for_user_class():
    args = {**PER_ARGS, "prioritized_replay": True}
    with pytest.raises(ValueError, match="do not also pass replay_buffer_class=ReplayBuffer"):
        replay_buffer_for("Algo", OBS, **args, replay_buffer_class=ReplayBuffer, replay_buffer_kwargs=None)
    with pytest.raises(ValueError, match=r"not in replay_buffer_kwargs \(got \['alpha'\]\)"):
        replay_buffer_for("Algo", OBS, **args, replay_buffer_class=None, replay_buffer_kwargs={"alpha": 0.5})
    n_step = {**PER_ARGS, "n_steps": 3}
    with pytest.raises(ValueError, match="n_steps=3 needs a replay buffer that computes n-step returns"):
        replay_buffer_for("Algo", OBS, **n_step, replay_buffer_class=ReplayBuffer, replay_buffer_kwargs=None)
    cls, kwargs = replay_buffer_for("Algo", OBS, **n_step, replay_buffer_class=NStepReplayBuffer, replay_buffer_kwargs=None)
    assert cls is NStepReplayBuffer and kwargs == {"n_steps": 3, "gamma": 0.99}
    cls, kwargs = replay_buffer_for("Algo", OBS, **PER_ARGS, replay_buffer_class=ReplayBuffer, replay_buffer_kwargs=None)
    assert cls is ReplayBuffer and kwargs == {}


def test_beta_annealing_weighted_mean_and_priority_update():
    schedule = per_beta_schedule("Algo", 0.4, 1.0)
    assert schedule(1.0) == pytest.approx(0.4) and schedule(0.5) == pytest.approx(0.7) and schedule(0.0) == 1.0
    with pytest.raises(ValueError, match="Algo: per_beta_final must be"):
        per_beta_schedule("Algo", 0.4, 2.0)
    buffer = _filled_buffer(PrioritizedReplayBuffer, 1, alpha=1.0, eps=0.0)
    anneal_per_beta(buffer, schedule, 0.25)
    assert buffer.beta == pytest.approx(0.85)
    anneal_per_beta(_filled_buffer(ReplayBuffer, 1), schedule, 0.25)  # no-op on other buffers
    np.random.seed(0)
    samples = buffer.sample(8)
    loss = th.arange(8, dtype=th.float32, requires_grad=True)
    th.testing.assert_close(importance_weighted_mean(loss, samples), (samples.weights.view(-1) * loss).mean())
    plain = _filled_buffer(ReplayBuffer, 1).sample(8)
    th.testing.assert_close(importance_weighted_mean(loss, plain), loss.mean())
    update_priorities(buffer, samples, loss.view(-1, 1) * 2)
    np.testing.assert_allclose(buffer.tree[samples.indices], np.arange(8) * 2.0)  # the last duplicate wins


def test_off_policy_algorithm_with_prioritized_replay_runs_without_warnings(tmp_path):
    from stable_baselines3 import TD3

    cls, kwargs = replay_buffer_for(
        "TD3",
        OBS,
        **{**PER_ARGS, "n_steps": 3, "prioritized_replay": True},
        replay_buffer_class=None,
        replay_buffer_kwargs=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = TD3(
            "MlpPolicy",
            "Pendulum-v1",
            replay_buffer_class=cls,
            replay_buffer_kwargs=kwargs,
            n_steps=1,
            learning_starts=20,
            batch_size=8,
            policy_kwargs=dict(net_arch=[8]),
            seed=0,
            device="cpu",
        )
        model.learn(40)
        model.save_replay_buffer(tmp_path / "buffer.pkl")
        model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert isinstance(model.replay_buffer, PrioritizedReplayBuffer) and model.replay_buffer.n_steps == 3


def test_per_speed_benchmark_writes_its_report(tmp_path):
    from benchmarks.micro import per_speed

    assert per_speed.main(["--capacity", "5000", "--repeats", "5", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "per_speed.json").read_text())
    assert set(result["ratio_vs_uniform"]) == {"per", "per_n5"} and result["ratio_vs_uniform"]["per"]["median"] > 0
    assert result["bytes_per_transition"]["sb3_replay_buffer"] == 172.0
    assert "| PER step, n_steps=1 |" in (tmp_path / "per_speed.md").read_text()
