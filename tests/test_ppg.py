"""PPG (Cobbe et al. 2021): the clone term's KL, the auxiliary phase, the phase bookkeeping, the buffer, the checks.

The shared conformance tests (test_run, test_save_load, test_deterministic, test_cli) cover PPG through
``tests/algorithms.py``; these tests cover what is PPG's own.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.logger import configure
from test_save_load import _continue, _state_equal

from sb3_natgrad.common.policies import actor_parameters
from sb3_natgrad.ppg import PPG, AuxiliaryBuffer, clone_kl

TINY = dict(n_steps=16, batch_size=16, n_policy_epochs=1, n_value_epochs=1, n_aux_epochs=1, aux_batch_size=16)


def _model(env: Any = "CartPole-v1", **kwargs: Any) -> PPG:
    return PPG("MlpPolicy", env, **{**TINY, "seed": 0, **kwargs})


# ---------------------------------------------------------------------------------------------------------------
# The clone term: KL(pi_old || pi) against brute-force sums over the action space and the Gaussian closed form
# ---------------------------------------------------------------------------------------------------------------


def _softmax(logits: list[float]) -> list[float]:
    exps = [math.exp(x) for x in logits]
    return [e / sum(exps) for e in exps]


def _kl_by_enumeration(p_of: Any, q_of: Any, actions: Any) -> float:
    """sum_a p(a) log(p(a) / q(a)) over an explicit list of joint actions."""
    return sum(p_of(a) * math.log(p_of(a) / q_of(a)) for a in actions)


def _random_logits(*shape: int, seed: int) -> th.Tensor:
    return th.randn(*shape, generator=th.Generator().manual_seed(seed), dtype=th.float64) * 1.5


def test_clone_kl_categorical() -> None:
    old_logits, new_logits = _random_logits(3, 4, seed=0), _random_logits(3, 4, seed=1)  # [B=3, n=4]
    old = CategoricalDistribution(4).proba_distribution(old_logits)
    new = CategoricalDistribution(4).proba_distribution(new_logits)
    kl = clone_kl(old, new)
    assert kl.shape == (3,)
    for b in range(3):
        p, q = _softmax(old_logits[b].tolist()), _softmax(new_logits[b].tolist())
        expected = _kl_by_enumeration(lambda a, p=p: p[a], lambda a, q=q: q[a], range(4))
        assert kl[b].item() == pytest.approx(expected, rel=1e-10)


def test_clone_kl_multicategorical() -> None:
    dims = [3, 2]
    old_logits, new_logits = _random_logits(2, 5, seed=2), _random_logits(2, 5, seed=3)  # [B=2, 3 + 2]
    old = MultiCategoricalDistribution(dims).proba_distribution(old_logits)
    new = MultiCategoricalDistribution(dims).proba_distribution(new_logits)
    kl = clone_kl(old, new)
    assert kl.shape == (2,)
    for b in range(2):
        p1, p2 = _softmax(old_logits[b, :3].tolist()), _softmax(old_logits[b, 3:].tolist())
        q1, q2 = _softmax(new_logits[b, :3].tolist()), _softmax(new_logits[b, 3:].tolist())
        # the joint distribution over the 6 action pairs
        expected = _kl_by_enumeration(
            lambda a, p1=p1, p2=p2: p1[a[0]] * p2[a[1]],
            lambda a, q1=q1, q2=q2: q1[a[0]] * q2[a[1]],
            itertools.product(range(3), range(2)),
        )
        assert kl[b].item() == pytest.approx(expected, rel=1e-10)


def test_clone_kl_bernoulli() -> None:
    d = 3
    old_logits, new_logits = _random_logits(2, d, seed=4), _random_logits(2, d, seed=5)  # [B=2, d]
    old = BernoulliDistribution(d).proba_distribution(old_logits)
    new = BernoulliDistribution(d).proba_distribution(new_logits)
    kl = clone_kl(old, new)
    assert kl.shape == (2,)

    def joint(logits: list[float]) -> Any:
        on = [1.0 / (1.0 + math.exp(-x)) for x in logits]
        return lambda bits: math.prod(on[i] if bit else 1.0 - on[i] for i, bit in enumerate(bits))

    for b in range(2):
        expected = _kl_by_enumeration(
            joint(old_logits[b].tolist()), joint(new_logits[b].tolist()), itertools.product((0, 1), repeat=d)
        )
        assert kl[b].item() == pytest.approx(expected, rel=1e-10)


def _gaussian_kl(mu_p: list[float], sd_p: list[float], mu_q: list[float], sd_q: list[float]) -> float:
    """KL of diagonal Gaussians, closed form summed over dimensions."""
    return sum(
        math.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
        for mp, sp, mq, sq in zip(mu_p, sd_p, mu_q, sd_q, strict=True)
    )


def test_clone_kl_diagonal_gaussian() -> None:
    d = 2
    old_mean, new_mean = _random_logits(3, d, seed=6), _random_logits(3, d, seed=7)  # [B=3, d]
    old_log_std, new_log_std = _random_logits(d, seed=8) * 0.3, _random_logits(d, seed=9) * 0.3  # [d]
    old = DiagGaussianDistribution(d).proba_distribution(old_mean, old_log_std)
    new = DiagGaussianDistribution(d).proba_distribution(new_mean, new_log_std)
    kl = clone_kl(old, new)
    assert kl.shape == (3,)
    for b in range(3):
        expected = _gaussian_kl(
            old_mean[b].tolist(), old_log_std.exp().tolist(), new_mean[b].tolist(), new_log_std.exp().tolist()
        )
        assert kl[b].item() == pytest.approx(expected, rel=1e-10)


def test_clone_kl_gsde() -> None:
    """gSDE's Gaussian has a state-dependent standard deviation sqrt(sum_j (z_j sigma_jk)^2 + eps), SB3's eps 1e-6."""
    d, n_features = 2, 3
    latent = _random_logits(2, n_features, seed=10)  # [B=2, n_features]
    means = _random_logits(2, d, seed=11), _random_logits(2, d, seed=12)
    log_stds = _random_logits(n_features, d, seed=13) * 0.3, _random_logits(n_features, d, seed=14) * 0.3
    dists = []
    for mean, log_std in zip(means, log_stds, strict=True):
        dist = StateDependentNoiseDistribution(d)
        dist.proba_distribution_net(n_features)
        dists.append(dist.proba_distribution(mean, log_std, latent))
    kl = clone_kl(*dists)
    for b in range(2):
        sds = [
            [
                math.sqrt(sum((latent[b, j].item() * log_std[j, k].exp().item()) ** 2 for j in range(n_features)) + 1e-6)
                for k in range(d)
            ]
            for log_std in log_stds
        ]
        expected = _gaussian_kl(means[0][b].tolist(), sds[0], means[1][b].tolist(), sds[1])
        assert kl[b].item() == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# The auxiliary phase
# ---------------------------------------------------------------------------------------------------------------


def _aux_phase_kl(beta_clone: float) -> tuple[float, float, float]:
    """Mean KL(pi_before || pi_after) over the buffer's observations across one auxiliary phase, the auxiliary head's
    loss before and after it."""
    # PyTorch's default initialisation instead of SB3's orthogonal one: SB3 scales the action layer by 0.01, and the
    # near-uniform policy it starts from would hardly follow its trunk
    model = _model(
        n_steps=64, batch_size=64, n_policy_iterations=100, n_aux_epochs=8, aux_batch_size=32, learning_rate=1e-3,
        beta_clone=beta_clone, policy_kwargs=dict(ortho_init=False),
    )  # fmt: skip
    model.learn(128)  # two rollouts in the buffer, no auxiliary phase yet
    assert model.aux_buffer.size == 128 and model.n_aux_phases == 0
    obs = th.as_tensor(model.aux_buffer.observations[None][:128])
    targets = th.as_tensor(model.aux_buffer.value_targets[:128])
    with th.no_grad():
        before = model.policy.get_distribution(obs).distribution.probs.clone()
        aux_before = float(((model.policy.forward_aux(obs)[1] - targets) ** 2).mean())
    model._auxiliary_phase()
    with th.no_grad():
        after = model.policy.get_distribution(obs)
        aux_after = float(((model.policy.forward_aux(obs)[1] - targets) ** 2).mean())
    kl = clone_kl(CategoricalDistribution(2).proba_distribution(before.log()), after).mean().item()
    return kl, aux_before, aux_after


def test_aux_phase_keeps_policy_close_with_clone_term() -> None:
    kl_cloned, aux_before, aux_after = _aux_phase_kl(beta_clone=100.0)
    kl_free, _, _ = _aux_phase_kl(beta_clone=0.0)
    assert aux_after < 0.9 * aux_before  # the auxiliary head learned the value targets
    # seed 0 measured 8.4e-5 and 9.2e-4. The cloned policy still moves: Adam steps every parameter by about the
    # learning rate, however small the clone term's gradient on it
    assert kl_cloned < 2e-4
    assert kl_free > 5 * kl_cloned  # without the clone term the value loss drags the policy along


@pytest.mark.parametrize("arch", ["dual", "shared", "detach"])
def test_arch_wiring(arch: str) -> None:
    """Which layers the value losses reach: the value network (dual), the policy trunk (shared), the value head
    only (detach); the auxiliary head always reads the policy trunk."""
    model = _model(arch=arch)
    policy = model.policy
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(8)]))
    trunk = list(policy.mlp_extractor.policy_net.parameters())

    def reached(loss: th.Tensor) -> set[int]:
        policy.zero_grad(set_to_none=True)
        loss.backward()
        return {id(p) for p in policy.parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}

    value_reach = reached(policy.predict_values(obs).pow(2).mean())
    aux_reach = reached(policy.forward_aux(obs)[1].pow(2).mean())
    assert all(id(p) in aux_reach for p in trunk)
    assert all(id(p) in value_reach for p in policy.value_net.parameters())
    assert not any(id(p) in value_reach for p in policy.action_net.parameters())
    trunk_reached = any(id(p) in value_reach for p in trunk)
    assert trunk_reached == (arch == "shared")
    separate_value_layers = list(policy.mlp_extractor.value_net.parameters())
    assert bool(separate_value_layers) == (arch == "dual")


def test_dual_cnn_has_two_feature_extractors() -> None:
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
    kwargs = dict(policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)))
    dual = PPG("CnnPolicy", env, **TINY, **kwargs)  # type: ignore[arg-type]
    assert dual.policy.pi_features_extractor is not dual.policy.vf_features_extractor
    shared = PPG("CnnPolicy", env, arch="shared", **TINY, **kwargs)  # type: ignore[arg-type]
    assert shared.policy.pi_features_extractor is shared.policy.vf_features_extractor


def test_separate_value_epochs() -> None:
    """E_pi != E_V: the policy optimizer holds the policy's parameters only, the value epochs their own optimizer,
    and both phases leave vf_coef as it was."""
    model = _model(n_policy_epochs=1, n_value_epochs=3, n_policy_iterations=2)
    assert model.vf_optimizer is not None
    policy_params = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert policy_params == {id(p) for p in actor_parameters(model.policy)}
    value_before = [p.detach().clone() for p in model.policy.value_net.parameters()]
    model.learn(64)
    assert model.vf_coef == 0.5 and model.n_aux_phases == 2
    assert any(not th.equal(a, b) for a, b in zip(value_before, model.policy.value_net.parameters(), strict=True))
    assert model.vf_optimizer.state  # it took steps


def test_separate_value_epochs_resume_identically(tmp_path) -> None:
    """The value optimizer's state is saved: after an auxiliary phase, training resumes exactly."""
    model = _model(n_policy_epochs=1, n_value_epochs=2, n_policy_iterations=2)
    model.learn(64)  # 4 rollouts: right after the second auxiliary phase
    model.save(tmp_path / "model.zip")
    loaded = PPG.load(tmp_path / "model.zip")
    assert _state_equal(model.vf_optimizer.state_dict(), loaded.vf_optimizer.state_dict())  # type: ignore[union-attr]
    assert _state_equal(_continue(model, 64, "CartPole-v1"), _continue(loaded, 64, "CartPole-v1"))


def test_learning_rate_schedules_reach_both_phases() -> None:
    def schedule(progress_remaining: float) -> float:
        return 1e-3 * (0.5 + progress_remaining)

    model = _model(learning_rate=schedule, n_policy_iterations=2)
    model.learn(64)  # last auxiliary phase at 64 steps: progress_remaining 0
    assert model.aux_optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    own = _model(learning_rate=1e-3, aux_learning_rate=lambda p: 2e-4 * (1 + p), n_policy_iterations=2)
    own.learn(64)
    assert own.aux_optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_logged_keys(tmp_path) -> None:
    model = _model(n_policy_iterations=2)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(80)  # auxiliary phases after rollouts 2 and 4; train()'s keys are dumped after the next rollout
    import csv

    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    keys = set(rows[-1])
    assert {"train/aux_loss", "train/clone_kl", "train/n_aux_phases", "train/approx_kl", "train/clip_fraction"} <= keys
    aux_rows = [row for row in rows if row.get("train/aux_loss")]
    assert [row["train/n_aux_phases"] for row in aux_rows] == ["1", "2"]
    assert all(float(row["train/clone_kl"]) >= -1e-6 for row in aux_rows)


# ---------------------------------------------------------------------------------------------------------------
# Phase bookkeeping
# ---------------------------------------------------------------------------------------------------------------


def _record_aux_phases(model: PPG) -> list[tuple[int, int]]:
    """(num_timesteps, buffered samples) at each auxiliary phase of ``model``."""
    calls: list[tuple[int, int]] = []
    original = model._auxiliary_phase

    def recording() -> None:
        calls.append((model.num_timesteps, model.aux_buffer.size))
        original()

    model._auxiliary_phase = recording  # type: ignore[method-assign]
    return calls


def test_aux_phase_every_n_pi_rollouts_across_learn_calls() -> None:
    model = _model(n_policy_iterations=3)
    calls = _record_aux_phases(model)
    model.learn(32)
    assert calls == [] and model.rollouts_since_aux == 2
    model.learn(16, reset_num_timesteps=False)
    assert calls == [(48, 48)] and model.rollouts_since_aux == 0
    model.learn(64, reset_num_timesteps=False)  # rollouts 4-7
    assert calls == [(48, 48), (96, 48)] and model.rollouts_since_aux == 1
    model.learn(32, reset_num_timesteps=True)  # the phase position survives a reset of the step count
    assert calls[-1] == (32, 48) and model.rollouts_since_aux == 0 and model.n_aux_phases == 3


def test_phase_position_survives_save_load(tmp_path) -> None:
    model = _model(n_policy_iterations=3)
    model.learn(32)  # 2 of 3 rollouts
    model.save(tmp_path / "model.zip")
    loaded = PPG.load(tmp_path / "model.zip", env=model.get_env())
    assert loaded.rollouts_since_aux == 2 and loaded.n_aux_phases == 0
    assert loaded.aux_buffer.size == 0  # the buffer is not saved
    calls = _record_aux_phases(loaded)
    loaded.learn(16, reset_num_timesteps=False)  # the third rollout: the phase runs on the one rollout it has
    assert calls == [(48, 16)] and loaded.n_aux_phases == 1 and loaded.rollouts_since_aux == 0
    loaded.learn(48, reset_num_timesteps=False)  # a full cycle after that
    assert calls == [(48, 16), (96, 48)]


# ---------------------------------------------------------------------------------------------------------------
# The auxiliary buffer's memory bound
# ---------------------------------------------------------------------------------------------------------------


def test_aux_buffer_memory_bound() -> None:
    box = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
    assert AuxiliaryBuffer(box, n_rollouts=5, n_steps=16, n_envs=3).nbytes == 5 * 16 * 3 * (4 * 4 + 4)
    image = spaces.Box(0, 255, (1, 36, 36), dtype=np.uint8)
    buffer = AuxiliaryBuffer(image, n_rollouts=2, n_steps=8, n_envs=2)
    assert buffer.observations[None].dtype == np.uint8
    assert buffer.nbytes == 2 * 8 * 2 * (36 * 36 + 4)
    both = spaces.Dict({"img": image, "vec": box, "d": spaces.Discrete(3)})
    assert AuxiliaryBuffer(both, n_rollouts=2, n_steps=8, n_envs=1).nbytes == 2 * 8 * (
        36 * 36 + 4 * 4 + 8 + 4
    )  # uint8, float32, int64, target


@pytest.mark.parametrize("kind", ["box", "image", "dict"])
def test_aux_buffer_holds_n_pi_rollouts_at_most(kind: str) -> None:
    env: Any = {
        "box": "CartPole-v1",
        "image": FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True),
        "dict": SimpleMultiObsEnv(random_start=True, discrete_actions=True),
    }[kind]
    policy = {"box": "MlpPolicy", "image": "CnnPolicy", "dict": "MultiInputPolicy"}[kind]
    kwargs: dict[str, Any] = (
        dict(policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16))) if kind == "image" else {}
    )
    model = PPG(policy, env, **{**TINY, "n_steps": 8, "batch_size": 8}, n_policy_iterations=2, seed=0, **kwargs)  # type: ignore[arg-type]
    sizes: list[int] = []
    add = model.aux_buffer.add

    def recording_add(rollout_buffer: Any) -> None:
        add(rollout_buffer)
        sizes.append(model.aux_buffer.size)

    model.aux_buffer.add = recording_add  # type: ignore[method-assign]
    model.learn(40)  # 5 rollouts
    assert sizes == [8, 16, 8, 16, 8]
    assert max(sizes) * 1 <= model.aux_buffer.capacity == 16
    # the stored observations are the rollout's (same dtype rules as the docstring)
    rollout_obs = model.rollout_buffer.observations
    stored = model.aux_buffer.observations
    if kind == "dict":
        for key in rollout_obs:
            np.testing.assert_array_equal(stored[key][:8], rollout_obs[key].reshape(8, *stored[key].shape[1:]))
    else:
        np.testing.assert_array_equal(stored[None][:8], rollout_obs.reshape(8, *stored[None].shape[1:]))
    np.testing.assert_array_equal(model.aux_buffer.value_targets[:8], model.rollout_buffer.returns.reshape(-1))
    with pytest.raises(ValueError, match="full"):
        model.aux_buffer.add(model.rollout_buffer)
        model.aux_buffer.add(model.rollout_buffer)


# ---------------------------------------------------------------------------------------------------------------
# Construction errors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_policy_iterations=0), "n_policy_iterations must be an integer >= 1, got 0"),
        (dict(n_policy_epochs=1.5), "n_policy_epochs must be an integer >= 1, got 1.5"),
        (dict(n_value_epochs=0), "n_value_epochs must be an integer >= 1, got 0"),
        (dict(n_aux_epochs=-1), "n_aux_epochs must be an integer >= 1, got -1"),
        (dict(beta_clone=-0.5), "beta_clone must be a finite number >= 0.0, got -0.5"),
        (dict(beta_clone=float("nan")), "beta_clone must be a finite number"),
        (dict(aux_batch_size=0), "aux_batch_size must be an integer >= 1, got 0"),
        (dict(aux_learning_rate=0.0), "aux_learning_rate must be a finite number > 0.0 or None, got 0.0"),
        (dict(arch="triple"), r"arch must be one of \['detach', 'dual', 'shared'\], got 'triple'"),
        (dict(batch_size=1), "batch_size must be an integer >= 2, got 1"),
        (dict(clip_range=-0.2), "clip_range must be a finite number > 0.0, got -0.2"),
        (dict(clip_range_vf=0.0), "clip_range_vf must be a finite number > 0.0 or None, got 0.0"),
        (dict(max_grad_norm=0.0), "max_grad_norm must be a finite number > 0.0, got 0.0"),
        (dict(target_kl=0.0), "target_kl must be a finite number > 0.0 or None, got 0.0"),
        (dict(n_steps=1, batch_size=2), r"normalize_advantage needs n_steps \* n_envs >= 2, got n_steps=1"),
        (dict(policy_kwargs=dict(arch="shared")), "give arch as PPG's argument"),
        (dict(policy_kwargs=dict(share_features_extractor=True)), "share_features_extractor=True contradicts arch='dual'"),
        (
            dict(arch="detach", policy_kwargs=dict(net_arch=dict(pi=[8], vf=[16]))),
            "with arch='detach' the value head reads the policy network",
        ),
    ],
)
def test_invalid_values_raise(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model(**kwargs)
