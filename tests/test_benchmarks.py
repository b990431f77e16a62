"""Tests of the benchmark tool (``benchmarks/``): zoo conversion, planning, resuming and staleness, the report
and its IQM, one real worker subprocess, the ``train()`` overhead measurement and the command line.

No test reads a committed result file: each writes the JSONL it checks."""

from __future__ import annotations

import fcntl
import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th

from benchmarks.harness import append_record, read_records, run_suite, run_unless_taken, split_pending
from benchmarks.overhead import (
    OnPolicyProtocol,
    OverheadSettings,
    _Snapshot,
    copy_buffer,
    matched_hyperparams,
    measure_pair,
    render_markdown,
)
from benchmarks.report import first_reach, latest_records, mean_curve, summarize, write_report
from benchmarks.spec import Algo, Budget, Entry, Suite, load_class, plan_runs, resolve_entry
from benchmarks.stats import iqm_with_ci
from benchmarks.status import render_status, suite_status
from benchmarks.suites import SUITES
from benchmarks.zoo import convert_hyperparams, find_zoo_file, load_zoo_entry

# --------------------------------------------------------------------------------------------------
# Zoo YAML -> constructor kwargs
# --------------------------------------------------------------------------------------------------


def test_rl_zoo3_entry_converts_like_the_zoo() -> None:
    raw, path, key = load_zoo_entry("rl_zoo3:a2c", "Pendulum-v1")
    assert key == "Pendulum-v1" and path.name == "a2c.yml"
    config = convert_hyperparams(raw)
    assert config.n_envs == 8 and config.n_timesteps == 1_000_000
    assert config.normalize and config.normalize_kwargs == {"gamma": 0.9}  # the zoo copies the algorithm's gamma
    kwargs = config.algo_kwargs
    assert not {"n_envs", "n_timesteps", "normalize"} & set(kwargs)
    assert kwargs["policy_kwargs"] == {"log_std_init": -2, "ortho_init": False}
    assert kwargs["learning_rate"](1.0) == pytest.approx(7e-4) and kwargs["learning_rate"](0.5) == pytest.approx(3.5e-4)
    assert kwargs["use_sde"] is True and kwargs["gamma"] == 0.9


def test_custom_yaml_conversion_and_lookup(tmp_path: Path) -> None:
    yml = tmp_path / "algo.yml"
    yml.write_text(
        """
default:
  n_timesteps: !!float 1e4
  policy: 'MlpPolicy'
Hopper-v4:
  n_envs: 4
  n_timesteps: !!float 1e6
  policy: 'MlpPolicy'
  normalize: "dict(norm_obs=True, norm_reward=False)"
  policy_kwargs: "dict(net_arch=[8, 8], activation_fn=nn.ReLU)"
  learning_rate: 0.001
  clip_range: lin_0.2
  train_freq: [1, "episode"]
  frame_stack: 2
  env_wrapper:
    - gymnasium.wrappers.TimeLimit:
        max_episode_steps: 100
  noise_type: normal
  noise_std: 0.1
"""
    )
    raw, _, key = load_zoo_entry(yml, "Hopper-v5", fallback_keys=("Hopper-v4",))
    assert key == "Hopper-v4"
    assert load_zoo_entry(yml, "CartPole-v1")[2] == "default"
    config = convert_hyperparams(raw)
    kwargs = config.algo_kwargs
    assert kwargs["policy_kwargs"] == {"net_arch": [8, 8], "activation_fn": th.nn.ReLU}
    assert kwargs["learning_rate"](0.3) == pytest.approx(1e-3)  # numbers become constant schedules
    assert kwargs["clip_range"](0.5) == pytest.approx(0.1)
    assert kwargs["train_freq"] == (1, "episode")
    assert config.normalize and config.normalize_kwargs == {"norm_obs": True, "norm_reward": False}
    assert config.frame_stack == 2 and config.noise_type == "normal" and config.noise_std == 0.1
    assert config.env_wrapper is not None
    assert set(kwargs) == {"policy", "policy_kwargs", "learning_rate", "clip_range", "train_freq"}
    with pytest.raises(FileNotFoundError, match="no_such_algo"):
        find_zoo_file("rl_zoo3:no_such_algo")


def test_shared_keys_come_from_the_reference(tmp_path: Path) -> None:
    yml = tmp_path / "cand.yml"
    yml.write_text("CartPole-v1:\n  n_envs: 2\n  n_steps: 64\n  policy: 'MlpPolicy'\n  gamma: 0.95\n")
    entry = Entry(
        "CartPole-v1",
        reference=Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c"),
        candidates=[Algo("cand", "stable_baselines3:A2C", zoo=str(yml), share_with_reference=("n_envs", "n_steps"))],
        quick=Budget(100, seeds=1),
        full=Budget(100, seeds=1),
    )
    resolved = resolve_entry(entry)
    # n_envs from a2c.yml; n_steps is not in a2c.yml, so it is A2C's constructor default.
    assert resolved["cand"].hyperparams == {"n_envs": 8, "n_steps": 5, "policy": "MlpPolicy", "gamma": 0.95}
    assert "n_timesteps" not in resolved["A2C"].hyperparams


_BUDGETS = dict(quick=Budget(100, seeds=1), full=Budget(100, seeds=1))


def test_dropped_yaml_keys_fall_back_to_the_constructor(tmp_path: Path) -> None:
    yml = tmp_path / "cand.yml"
    yml.write_text("CartPole-v1:\n  policy: 'MlpPolicy'\n  gamma: 0.95\n  gae_lambda: 0.9\n  ent_coef: 0.1\n")
    algo = Algo("cand", "stable_baselines3:A2C", zoo=str(yml), drop=("gamma", "ent_coef"), kwargs={"ent_coef": 0.2})
    entry = Entry("CartPole-v1", reference=algo, candidates=[Algo("other", "stable_baselines3:A2C")], **_BUDGETS)
    # dropped before the overrides: gamma is gone, ent_coef comes from kwargs
    assert resolve_entry(entry)["cand"].hyperparams == {"policy": "MlpPolicy", "gae_lambda": 0.9, "ent_coef": 0.2}


def test_suites_are_well_formed() -> None:
    assert {"smoke", "trpo", "acktr"} <= set(SUITES)
    trpo = SUITES["trpo"]
    assert [e.env_id for e in trpo.entries] == ["CartPole-v1", "Pendulum-v1", "LunarLander-v3", "HalfCheetah-v5", "Hopper-v5"]
    for entry in trpo.entries:
        assert entry.reference.cls == "sb3_contrib:TRPO"
        assert {a.cls for a in entry.candidates} == {"sb3_natgrad:TRPO"}
        # Identical hyperparameters: same YAML and keys for every algorithm; variants differ by one kwarg.
        assert {(a.zoo, a.zoo_keys) for a in entry.algos} == {(entry.reference.zoo, entry.reference.zoo_keys)}
    assert load_class("stable_baselines3:PPO").__name__ == "PPO"


def test_d4pg_suites_match_the_td3_reference() -> None:
    from benchmarks.spec import constructor_default
    from benchmarks.suites import D4PG_MATCHED

    keys = ("policy_kwargs", "batch_size", "buffer_size", "learning_starts", "train_freq", "gradient_steps", "noise_type")
    assert set(keys) <= set(D4PG_MATCHED)
    for entry in SUITES["d4pg"].entries:
        resolved = resolve_entry(entry)
        td3 = resolved["TD3"].hyperparams
        # What TD3 runs: its YAML's value, else its constructor's default.
        reference = {key: td3[key] if key in td3 else constructor_default("stable_baselines3:TD3", key) for key in keys}
        assert reference["policy_kwargs"] == "dict(net_arch=[400, 300])" and reference["noise_type"] == "normal"
        for algo in entry.candidates:
            assert {key: resolved[algo.label].hyperparams[key] for key in keys} == reference, (entry.env_id, algo.label)
    per = SUITES["d4pg_per_speed"].entries[0]
    assert {a.kwargs["prioritized_replay"] for a in per.algos} == {True, False} and {a.cls for a in per.algos} == {
        "sb3_natgrad:D4PG"
    }


def test_every_suite_resolves_to_constructor_arguments() -> None:
    """Each algorithm of each suite: its class imports and every converted YAML key is a constructor argument."""
    import inspect

    for suite in SUITES.values():
        for entry in suite.entries:
            for label, resolved in resolve_entry(entry).items():
                algo = next(a for a in entry.algos if a.label == label)
                parameters = inspect.signature(load_class(algo.cls)).parameters
                unknown = set(convert_hyperparams(resolved.hyperparams).algo_kwargs) - set(parameters)
                assert not unknown, (suite.name, entry.env_id, label, unknown)


def _runs_with(cls: str, hyperparams: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """What an algorithm runs with for ``keys``: its YAML's value, else its constructor's default (``n_envs``: 1)."""
    from benchmarks.spec import constructor_default

    return {
        key: hyperparams[key] if key in hyperparams else 1 if key == "n_envs" else constructor_default(cls, key)
        for key in keys
    }


def test_tqc_suites_compare_variants_at_identical_hyperparameters() -> None:
    from benchmarks.suites import TQC_VARIANTS
    from sb3_natgrad.zoo import tuned_hyperparams

    variants = dict(TQC_VARIANTS)
    assert [e.env_id for e in SUITES["tqc"].entries] == [
        "Pendulum-v1", "LunarLanderContinuous-v3", "HalfCheetah-v5", "Hopper-v5"
    ]  # fmt: skip
    for suite in (SUITES["tqc"], SUITES["tqc_speed"]):
        for entry in suite.entries:
            resolved = resolve_entry(entry)
            reference = resolved["TQC (sb3-contrib)"].hyperparams
            assert entry.reference.cls == "sb3_contrib:TQC" and {a.cls for a in entry.candidates} == {"sb3_natgrad:TQC"}
            # The zoo entry `--algo tqc` trains with (hyperparams/tqc.yml's own v5 entries or its fallback to the zoo).
            ours = tuned_hyperparams("tqc", entry.env_id)
            ours.pop("n_timesteps")
            assert reference == ours, entry.env_id
            for algo in entry.candidates:
                assert resolved[algo.label].hyperparams == {**reference, **variants.get(algo.label, {})}, algo.label
    assert set(variants) <= {a.label for a in SUITES["tqc_speed"].entries[0].candidates}
    assert all(e.full.seeds >= 3 for e in SUITES["tqc"].entries)
    assert [e.full.timesteps for e in SUITES["tqc"].entries] == [20_000, 300_000, 300_000, 300_000]


def test_ppg_suites_match_the_ppo_reference() -> None:
    """PPG trains with PPO's rollouts, minibatch and network, and PPO's other settings (n_epochs as E_pi = E_V)."""
    ppo_keys = ("n_envs", "n_steps", "batch_size", "policy_kwargs", "gamma", "gae_lambda", "learning_rate", "ent_coef")
    for suite in (SUITES["ppg"], SUITES["ppg_atari"]):
        for entry in suite.entries:
            resolved = resolve_entry(entry)
            ppo, ppg = resolved["PPO"].hyperparams, resolved["PPG"].hyperparams
            assert _runs_with("stable_baselines3:PPO", ppo, ppo_keys) == _runs_with("sb3_natgrad:PPG", ppg, ppo_keys)
            epochs = ppo.get("n_epochs", 10)
            assert ppg.get("n_policy_epochs", 10) == ppg.get("n_value_epochs", 10) == epochs, entry.env_id
            for zoo_key in ("policy", "frame_stack", "env_wrapper", "clip_range"):
                assert ppo.get(zoo_key) == ppg.get(zoo_key), (entry.env_id, zoo_key)
            if ppo.get("normalize") != ppg.get("normalize"):
                # PPG's reward normalization (the reference code's rnorm): PPO with the same one is a second row
                assert ppg["normalize"] == "dict(norm_obs=False, norm_reward=True)", entry.env_id
                ppo_norm = resolved["PPO norm_reward"].hyperparams
                assert ppo_norm == {**ppo, "normalize": ppg["normalize"]}, entry.env_id
    atari = resolve_entry(SUITES["ppg_atari"].entries[0])["PPG"].hyperparams
    assert atari["policy"] == "CnnPolicy" and "n_epochs" not in atari and atari["n_policy_iterations"] == 32


def test_acer_suites_match_the_a2c_reference() -> None:
    """ACER at A2C's n_envs and n_steps on every entry (Pendulum: acer.yml's entry has A2C's 8 x 8), A2C's network on
    the discrete ones; A2C is every entry's reference."""
    for suite in (SUITES["acer"], SUITES["acer_atari"], SUITES["acer_speed"]):
        for entry in suite.entries:
            assert entry.reference.cls == "stable_baselines3:A2C"
            resolved = resolve_entry(entry)
            a2c = _runs_with("stable_baselines3:A2C", resolved["A2C"].hyperparams, ("n_envs", "n_steps"))
            for algo in entry.candidates:
                if algo.cls == "sb3_natgrad:ACER":
                    acer = resolved[algo.label].hyperparams
                    assert _runs_with("sb3_natgrad:ACER", acer, ("n_envs", "n_steps")) == a2c, (suite.name, entry.env_id)
    for env_id in ("CartPole-v1", "LunarLander-v3"):
        resolved = resolve_entry(next(e for e in SUITES["acer"].entries if e.env_id == env_id))
        # A2C's default MlpPolicy is 64x64; ACER's default trunk is 64x64 too: neither entry sets a network.
        assert resolved["A2C"].hyperparams.get("policy_kwargs") is None
        assert resolved["ACER"].hyperparams["policy_kwargs"] is None
    pendulum = resolve_entry(next(e for e in SUITES["acer"].entries if e.env_id == "Pendulum-v1"))
    assert {"A2C", "ACER", "PPO"} == set(pendulum) and pendulum["ACER"].zoo_key == "Pendulum-v1"
    speed = {a.label: a.kwargs["replay_ratio"] for e in SUITES["acer_speed"].entries for a in e.candidates}
    assert speed == {"ACER replay_ratio=4": 4.0, "ACER replay_ratio=0": 0.0}


# --------------------------------------------------------------------------------------------------
# Planning and resuming
# --------------------------------------------------------------------------------------------------


def _tiny_suite(timesteps: int = 500, seeds: int = 2) -> Suite:
    a2c = {"n_envs": 2, "n_steps": 8}
    return Suite(
        "tiny",
        "test suite",
        [
            Entry(
                "CartPole-v1",
                reference=Algo("ref", "stable_baselines3:A2C", kwargs=a2c),
                candidates=[
                    Algo("cand", "stable_baselines3:A2C", kwargs={**a2c, "use_rms_prop": False}),
                    Algo("cand2", "stable_baselines3:A2C", kwargs={**a2c, "gamma": 0.9}),
                ],
                quick=Budget(timesteps, seeds=seeds, eval_freq=250, n_eval_episodes=1, n_final_episodes=2),
                full=Budget(10 * timesteps, seeds=seeds),
            )
        ],
    )


def test_plan_interleaves_and_resume_skips_done_runs(tmp_path: Path) -> None:
    runs = plan_runs(_tiny_suite(), "quick")
    assert [(r.label, r.seed) for r in runs] == [
        ("cand", 0), ("cand2", 0), ("ref", 0), ("cand", 1), ("cand2", 1), ("ref", 1)
    ]  # fmt: skip
    assert [r.role for r in runs[:3]] == ["candidate", "candidate", "reference"]

    results = tmp_path / "results.jsonl"
    done = runs[1].to_dict() | {"config_hash": runs[1].config_hash()}
    changed = runs[4].to_dict() | {"config_hash": "not-the-same"}
    other_profile = runs[0].to_dict() | {"profile": "full", "config_hash": runs[0].config_hash()}
    for record in (done, changed, other_profile):
        append_record(results, record)
    pending, stale = split_pending(runs, read_records(results))
    assert [(r.label, r.seed) for r in pending] == [("cand", 0), ("ref", 0), ("cand", 1), ("ref", 1)]
    assert [(r.label, r.seed) for r in stale] == [("cand2", 1)]


def test_plan_runs_a_variant_on_its_first_max_seeds_only() -> None:
    suite = _tiny_suite(seeds=3)
    entry = suite.entries[0]
    few = Algo("few", "stable_baselines3:A2C", kwargs={"n_envs": 2, "n_steps": 8, "gamma": 0.8}, max_seeds=2)
    suite = Suite("tiny", "test suite", [replace(entry, candidates=[*entry.candidates, few])])
    runs = plan_runs(suite, "quick")
    assert [r.seed for r in runs if r.label == "few"] == [0, 1]
    assert [r.seed for r in runs if r.label == "ref"] == [0, 1, 2]
    with pytest.raises(ValueError, match="max_seeds"):
        Algo("bad", "stable_baselines3:A2C", max_seeds=0)


def test_status_names_stale_missing_and_historical_runs(tmp_path: Path) -> None:
    suite = _tiny_suite()
    runs = plan_runs(suite, "quick")  # cand, cand2, ref for seeds 0 and 1
    results = tmp_path / "results.jsonl"
    for run in runs[:3]:
        append_record(results, run.to_dict() | {"config_hash": run.config_hash()})
    append_record(results, runs[3].to_dict() | {"config_hash": "not-the-same"})  # cand seed 1: stale
    append_record(results, runs[0].to_dict() | {"label": "removed", "config_hash": "x"})  # a variant since removed
    append_record(results, runs[0].to_dict() | {"profile": "full", "config_hash": "x"})  # another profile
    status = suite_status(suite, "quick", read_records(results))
    assert (status.planned, status.done) == (6, 3)
    assert [(r.label, r.seed) for r in status.stale] == [("cand", 1)]
    assert [(r.label, r.seed) for r in status.missing] == [("cand2", 1), ("ref", 1)]
    assert status.historical == {("CartPole-v1", "removed"): 1}
    lines = render_status(status)
    assert lines[0] == "tiny (quick): 3/6 done, 1 stale, 2 missing, 1 historical"
    assert "CartPole-v1 | cand x1" in lines[1] and "removed x1" in lines[3]
    full = suite_status(suite, "full", read_records(results))
    # The full-profile line has the quick budget, which the full profile does not plan: historical, not stale.
    assert full.done == 0 and len(full.missing) == 6 and full.historical == {("CartPole-v1", "cand"): 1}


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _record(
    label: str, role: str, seed: int, final: float, curve: list[float], train_s: float, **extra: Any
) -> dict[str, Any]:
    return {
        "suite": "synthetic",
        "profile": "quick",
        "env_id": "CartPole-v1",
        "label": label,
        "role": role,
        "algo": f"pkg:{label}",
        "seed": seed,
        "n_timesteps": 100,
        "config_hash": "h",
        "final": {"mean": final, "std": 1.0, "n_episodes": 2},
        "curve": {"timesteps": [0, 50, 100], "mean": curve, "std": [0.0] * 3},
        "train_wall_s": train_s,
        "eval_wall_s": 1.0,
        "steps_per_s": 100 / train_s,
        "started_at": "2026-01-01T00:00:00+00:00",
        "meta": {"jobs": 1, "git_commit": "abc"},
        **extra,
    }


def test_report_numbers_match_hand_computation(tmp_path: Path) -> None:
    records = [
        _record("R", "reference", 0, 100.0, [0.0, 100.0, 100.0], 10.0),
        _record("R", "reference", 1, 200.0, [0.0, 150.0, 200.0], 20.0),
        _record("R", "reference", 2, 150.0, [0.0, 125.0, 150.0], 40.0),
        _record("C", "candidate", 0, 160.0, [0.0, 160.0, 160.0], 5.0),
        _record("C", "candidate", 1, 190.0, [0.0, 140.0, 190.0], 40.0),
        _record("C", "candidate", 2, 130.0, [0.0, 150.0, 130.0], 32.0),
        _record("C", "candidate", 2, 999.0, [0.0, 0.0, 0.0], 1.0, profile="full"),  # another profile: ignored
    ]
    for record in records:
        append_record(tmp_path / "results.jsonl", record)
    # A run written twice counts once (the last line).
    append_record(tmp_path / "results.jsonl", _record("C", "candidate", 2, 130.0, [0.0, 150.0, 130.0], 32.0))

    rows = {row.label: row for row in summarize(latest_records(read_records(tmp_path / "results.jsonl"), "quick"))}
    ref, cand = rows["R"], rows["C"]
    assert (ref.role, ref.n_seeds, cand.n_seeds) == ("reference", 3, 3)
    assert ref.final_mean == pytest.approx(150.0) and ref.final_std == pytest.approx(np.std([100, 200, 150]))
    assert cand.final_mean == pytest.approx(160.0) and cand.final_std == pytest.approx(np.std([160, 190, 130]))
    # learn() time ratios per seed: 0.5, 2.0, 0.8 -> median 0.8 (the mean would be 1.1).
    assert cand.time_ratio == pytest.approx(0.8) and ref.time_ratio == pytest.approx(1.0)
    assert cand.steps_per_s == pytest.approx(np.median([100 / 5, 100 / 40, 100 / 32]))
    # Reference mean curve [0, 125, 150] reaches its final mean 150 at t=100; candidate [0, 150, 160] at t=50.
    assert ref.reach_timestep == 100 and cand.reach_timestep == 50 and cand.reach_ratio == pytest.approx(0.5)
    # 3 seeds: rliable's IQM cuts int(3 / 4) = 0 seeds at each end, so it is the mean; the CI lies within the seeds.
    assert cand.final_iqm == pytest.approx(160.0) and 130.0 <= cand.final_iqm_low < 160.0 < cand.final_iqm_high <= 190.0

    md_path = write_report(tmp_path, "quick")
    assert md_path is not None
    text = md_path.read_text()
    assert "| CartPole-v1 | C (`pkg:C`) | candidate | 100 | 3 | 160.0 ± 24.5 |" in text
    assert "| 0.80 | 50 | 0.50 |" in text
    assert f"| 160.0 [{cand.final_iqm_low:.1f}, {cand.final_iqm_high:.1f}] |" in text
    assert "*historical*" not in text  # no suite given: nothing is marked
    png = tmp_path / "CartPole-v1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_report(tmp_path, "no-such-profile") is None


def test_report_marks_labels_the_suite_no_longer_has(tmp_path: Path) -> None:
    for label, role in (("R", "reference"), ("C", "candidate"), ("Gone", "candidate")):
        append_record(tmp_path / "results.jsonl", _record(label, role, 0, 100.0, [0.0, 50.0, 100.0], 10.0))
    suite = Suite(
        "synthetic",
        "R and C only",
        [Entry("CartPole-v1", Algo("R", "pkg:R"), [Algo("C", "pkg:C")], **_BUDGETS)],
    )
    md_path = write_report(tmp_path, "quick", suite)
    assert md_path is not None
    lines = md_path.read_text().splitlines()
    assert any(line.startswith("| CartPole-v1 | Gone (`pkg:Gone`) | candidate, *historical* |") for line in lines)
    assert any(line.startswith("| CartPole-v1 | C (`pkg:C`) | candidate |") for line in lines)


# --------------------------------------------------------------------------------------------------
# Interquartile mean and its bootstrap interval
# --------------------------------------------------------------------------------------------------


def _brute_force_iqm(values: np.ndarray) -> float:
    """Mean of the middle runs after cutting floor(n / 4) at each end (rliable's scipy.stats.trim_mean(0.25))."""
    ordered = sorted(float(v) for v in values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut]
    return sum(middle) / len(middle)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([3.0, 1.0, 100.0, 2.0, 4.0], 3.0),  # 5 runs: 1 cut at each end, mean of 2, 3, 4
        ([0.0, 1.0, 2.0, 3.0, 10.0, 100.0], 4.0),  # 6 runs: 1.5 -> 1 cut (weighting the half-runs would give 3.5)
        ([1.0, 2.0, 30.0], 11.0),  # 3 runs: nothing cut, the mean
        ([5.0, -1.0, 7.0, 2.0, 9.0, 0.0, 4.0, 8.0, 6.0, 100.0], 32 / 6),  # 10 runs: 2 cut at each end, mean of 2 4 5 6 7 8
    ],
)
def test_iqm_matches_brute_force(scores: list[float], expected: float) -> None:
    assert _brute_force_iqm(np.array(scores)) == pytest.approx(expected)
    assert float(iqm_with_ci(np.array(scores)).iqm) == pytest.approx(expected)


def test_iqm_ci_is_a_seeded_percentile_bootstrap_over_runs() -> None:
    scores = np.array([3.0, 1.0, 100.0, 2.0, 4.0, 7.0, -5.0, 11.0])
    estimate = iqm_with_ci(scores, reps=300, seed=1)
    # Brute force: the same resamples of runs, each one's IQM by hand, then the 2.5 and 97.5 percentiles.
    indices = np.random.default_rng(1).integers(0, len(scores), size=(300, len(scores)))
    by_hand = [_brute_force_iqm(scores[row]) for row in indices]
    assert float(estimate.low) == pytest.approx(np.percentile(by_hand, 2.5))
    assert float(estimate.high) == pytest.approx(np.percentile(by_hand, 97.5))
    assert estimate.low < estimate.iqm < estimate.high
    again = iqm_with_ci(scores, reps=300, seed=1)
    assert (again.low, again.high) == (estimate.low, estimate.high)  # reproducible
    # Learning curves: one IQM and interval per point, each seed's curve resampled whole.
    curves = np.stack([scores, 2 * scores, np.full_like(scores, 4.0)], axis=1)  # [8 runs, 3 points]
    curve = iqm_with_ci(curves, reps=300, seed=1)
    assert curve.iqm == pytest.approx([_brute_force_iqm(curves[:, t]) for t in range(3)])
    assert curve.low[:2] == pytest.approx([estimate.low, 2 * estimate.low]) and curve.low[2] == curve.high[2] == 4.0


def test_curve_helpers() -> None:
    runs = [
        {"curve": {"timesteps": [0, 10, 20], "mean": [0.0, 1.0, 2.0]}},
        {"curve": {"timesteps": [0, 12, 20, 30], "mean": [0.0, 3.0, 3.0, 9.0]}},
    ]
    t, mean, std = mean_curve(runs)
    # The second seed is interpolated onto the first one's grid: 3.0 * 10 / 12 = 2.5 at t=10.
    assert list(t) == [0, 10, 20] and mean == pytest.approx([0.0, 1.75, 2.5]) and std == pytest.approx([0.0, 0.75, 0.5])
    assert first_reach(t, mean, 1.75) == 10 and first_reach(t, mean, 3.0) is None
    # Seeds that all ran their budget end on their own final evaluations, placed where the shortest one ends (a resumed
    # run stops a few steps earlier), instead of losing that point (first seed) or interpolating it (second seed).
    finished = [
        {"n_timesteps": 20, "curve": {"timesteps": [0, 10, 24], "mean": [0.0, 1.0, 6.0]}},
        {"n_timesteps": 20, "curve": {"timesteps": [0, 10, 22], "mean": [0.0, 3.0, 8.0]}},
    ]
    t, mean, _ = mean_curve(finished)
    assert list(t) == [0, 10, 22] and mean == pytest.approx([0.0, 2.0, 7.0])


# --------------------------------------------------------------------------------------------------
# One real run in a worker subprocess, then a resume that runs nothing
# --------------------------------------------------------------------------------------------------


def test_subprocess_run_appends_json_line_and_resumes(tmp_path: Path) -> None:
    suite = _tiny_suite(timesteps=500, seeds=1)
    kwargs: dict[str, Any] = {"work_dir": tmp_path / "work", "only_algo": ["cand", "ref"], "log": lambda _: None}
    summary = run_suite(suite, "quick", tmp_path, jobs=2, **kwargs)
    assert not summary.failed, [o.log_path.read_text()[-2000:] for o in summary.failed]
    records = read_records(tmp_path / "results.jsonl")
    assert sorted(r["label"] for r in records) == ["cand", "ref"]
    record = records[0]
    assert record["num_timesteps"] >= 500 and record["n_envs"] == 2 and record["meta"]["jobs"] == 2
    assert record["curve"]["timesteps"][0] == 0 and record["curve"]["timesteps"][-1] == record["num_timesteps"]
    assert record["curve"]["mean"][-1] == record["final"]["mean"] and record["final"]["n_episodes"] == 2
    assert 0 < record["train_wall_s"] <= record["learn_wall_s"] and record["steps_per_s"] > 0
    assert record["torch_threads"] == 1
    json.dumps(record)

    again = run_suite(suite, "quick", tmp_path, jobs=1, **kwargs)
    assert (again.planned, again.skipped, again.finished) == (2, 2, [])
    assert len(read_records(tmp_path / "results.jsonl")) == 2


def test_a_run_another_harness_holds_or_finished_is_left_to_it(tmp_path: Path) -> None:
    """Two harnesses with overlapping selections: a run whose lock another holds is not started (it used to run twice,
    the later copy resuming from the other's checkpoints), nor one appended to the results after this one planned."""
    suite = _tiny_suite(timesteps=500, seeds=1)
    work = tmp_path / "work"
    work.mkdir()
    held = next(spec for spec in plan_runs(suite, "quick") if spec.label == "cand")
    with open(work / f"{held.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another harness running it
        summary = run_suite(suite, "quick", tmp_path, only_algo=["cand"], work_dir=work, log=lambda _: None)
    assert (summary.planned, summary.skipped, summary.finished, summary.failed) == (1, 1, [], [])
    assert read_records(tmp_path / "results.jsonl") == [] and not (work / f"{held.name}.spec.json").exists()

    record = {"profile": held.profile, "env_id": held.env_id, "label": held.label, "seed": held.seed}
    record |= {"n_timesteps": held.n_timesteps, "config_hash": held.config_hash()}
    append_record(tmp_path / "results.jsonl", record)  # finished by another harness since planning
    assert run_unless_taken(held, tmp_path / "results.jsonl", work, timeout_s=60) is None
    assert not (work / f"{held.name}.spec.json").exists()


# --------------------------------------------------------------------------------------------------
# train() overhead
# --------------------------------------------------------------------------------------------------


def test_overhead_calls_repeat_the_same_work() -> None:
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.utils import set_random_seed

    ref = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=8, n_epochs=2, seed=0, device="cpu")
    cand = A2C("MlpPolicy", "CartPole-v1", n_steps=16, seed=1, device="cpu")
    protocol = OnPolicyProtocol()
    protocol.prepare(ref, cand, OverheadSettings(repeats=1))
    assert np.array_equal(cand.rollout_buffer.observations, ref.rollout_buffer.observations)
    snapshot = _Snapshot(ref, ref.rollout_buffer)
    before = [p.detach().clone() for p in ref.policy.parameters()]
    after = []
    for _ in range(2):
        snapshot.restore(ref, ref.rollout_buffer)
        set_random_seed(0)
        ref.train()
        after.append([p.detach().clone() for p in ref.policy.parameters()])
    # Each call changed the parameters, and both calls changed them identically.
    assert not all(th.equal(a, b) for a, b in zip(before, after[0], strict=True))
    assert all(th.equal(a, b) for a, b in zip(*after, strict=True))


def test_measure_pair_on_policy() -> None:
    hp = {"policy": "MlpPolicy", "n_envs": 2, "n_steps": 16, "policy_kwargs": "dict(net_arch=[16])"}
    result = measure_pair(
        "CartPole-v1",
        ("A2C", "stable_baselines3:A2C", {"policy": "MlpPolicy", "n_steps": 5}),
        ("PPO", "stable_baselines3:PPO", {**hp, "batch_size": 16, "n_epochs": 2}),
        OverheadSettings(repeats=3, warmup=0, train_calls=2, learn_steps=64, learn_repeats=2),
    )
    assert (
        result["learn_steps"] == 64 and len(result["learn_candidate_times_s"]) == len(result["learn_reference_times_s"]) == 2
    )
    learn_ratios = np.array(result["learn_candidate_times_s"]) / np.array(result["learn_reference_times_s"])
    assert result["learn_median_ratio"] == pytest.approx(np.median(learn_ratios))
    document = {"suite": "s", "profile": "quick", "created_at": "t", "cpu": "c", "versions": {}, "git_commit": "x"}
    markdown = render_markdown({**document, "results": [result]})
    assert "Consecutive `train()` calls per timed block: [2]" in markdown
    assert "## Whole `learn()`" in markdown and f"| {result['learn_median_ratio']:.3f} | 2 |" in markdown
    # The candidate trained with the reference's network and batch, from the same parameters.
    assert matched_hyperparams({"n_steps": 5}, hp, load_class("stable_baselines3:A2C"))["n_steps"] == 16
    assert result["candidate_hyperparams"]["policy_kwargs"] == "dict(net_arch=[16])"
    assert result["same_initial_parameters"] and result["samples_per_call"] == 32 and result["kind"] == "on-policy"
    assert len(result["candidate_times_s"]) == len(result["reference_times_s"]) == 3
    ratios = np.array(result["candidate_times_s"]) / np.array(result["reference_times_s"])
    assert result["median_ratio"] == pytest.approx(np.median(ratios))


def test_copied_transitions_get_priorities_in_a_prioritized_buffer() -> None:
    from stable_baselines3 import TD3

    from sb3_natgrad import D4PG

    fill = 40
    small = {"buffer_size": fill, "learning_starts": fill, "policy_kwargs": {"net_arch": [8]}, "seed": 0, "device": "cpu"}
    uniform = TD3("MlpPolicy", "Pendulum-v1", **small)
    uniform.learn(fill // 2)  # half full: only the stored transitions get a priority
    per = D4PG("MlpPolicy", "Pendulum-v1", prioritized_replay=True, n_steps=3, **small)
    per._setup_learn(fill, callback=None)
    copy_buffer(uniform.replay_buffer, per.replay_buffer)
    tree = per.replay_buffer.tree
    assert np.array_equal(tree[np.arange(fill)], np.r_[np.ones(fill // 2), np.zeros(fill - fill // 2)])  # as add() gives
    assert np.array_equal(per.replay_buffer.observations, uniform.replay_buffer.observations)
    assert per.replay_buffer.sample(16).indices.max() < fill // 2
    # From another prioritized buffer the priorities themselves are copied (a copy, not the same tree).
    per.replay_buffer.update_priorities(np.arange(fill // 2), np.linspace(0.0, 2.0, fill // 2))
    other = D4PG("MlpPolicy", "Pendulum-v1", prioritized_replay=True, n_steps=3, **small)
    other._setup_learn(fill, callback=None)
    copy_buffer(per.replay_buffer, other.replay_buffer)
    assert np.array_equal(other.replay_buffer.tree[np.arange(fill)], tree[np.arange(fill)])
    assert other.replay_buffer.tree is not tree and other.replay_buffer.max_priority == per.replay_buffer.max_priority


def test_measure_pair_off_policy_with_prioritized_candidate() -> None:
    hp = {"policy": "MlpPolicy", "policy_kwargs": "dict(net_arch=[16])", "batch_size": 8, "n_steps": 3}
    result = measure_pair(
        "Pendulum-v1",
        ("D4PG PER", "sb3_natgrad:D4PG", {**hp, "prioritized_replay": True}),
        ("D4PG", "sb3_natgrad:D4PG", hp),
        OverheadSettings(repeats=2, warmup=1, fill_steps=32, gradient_steps=2),
    )
    assert result["kind"] == "off-policy" and result["same_initial_parameters"] and result["samples_per_call"] == 16
    assert result["candidate_hyperparams"]["prioritized_replay"] and len(result["candidate_times_s"]) == 2
    load = result["load_average"]
    assert len(load["before"]) == len(load["after"]) == 3 and load["cpu_count"] >= 1
    document = {"suite": "s", "profile": "quick", "created_at": "t", "cpu": "c", "versions": {}, "git_commit": "x"}
    assert "- Pendulum-v1 | D4PG PER vs D4PG: " in render_markdown({**document, "results": [result]})


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from benchmarks.worker import Checkpoint, train_and_evaluate

    spec = plan_runs(_tiny_suite(timesteps=1000, seeds=1), "quick")[0]  # A2C, 2 envs x 8 steps, eval every 250
    checkpoint_dir = tmp_path / "run.ckpt"
    assert train_and_evaluate(spec, checkpoint_dir, stop_at=500) is None  # "killed" after the point at 500
    state = Checkpoint(checkpoint_dir, spec.config_hash()).load_state()
    assert state is not None and state["segments"] == 1 and state["curve"]["timesteps"][-1] >= 500
    record = train_and_evaluate(spec, checkpoint_dir)
    assert record is not None and record["segments"] == 2
    assert record["num_timesteps"] >= spec.n_timesteps
    timesteps = record["curve"]["timesteps"]
    assert timesteps[: len(state["curve"]["timesteps"])] == state["curve"]["timesteps"]  # earlier points kept
    assert all(a < b for a, b in itertools.pairwise(timesteps))  # no point evaluated twice
    assert record["learn_wall_s"] > state["learn_wall_s"]
    # A checkpoint of another configuration is not resumed from (and is removed).
    assert Checkpoint(checkpoint_dir, "another hash").load_state() is None and not checkpoint_dir.exists()


def test_atari_train_and_eval_envs_wrap_alike() -> None:
    """Image observations are transposed in both envs, so evaluation can sync with the training env."""
    from stable_baselines3 import A2C
    from stable_baselines3.common.vec_env import VecTransposeImage, sync_envs_normalization

    from benchmarks.zoo import build_vec_env

    hyperparams, _, key = load_zoo_entry("rl_zoo3:a2c", "PongNoFrameskip-v4")
    assert key == "atari"
    config = convert_hyperparams(hyperparams)
    train_env = build_vec_env("PongNoFrameskip-v4", config, 2, seed=0)
    eval_env = build_vec_env("PongNoFrameskip-v4", config, 1, seed=1, eval_env=True)
    assert isinstance(train_env, VecTransposeImage) and isinstance(eval_env, VecTransposeImage)
    assert train_env.observation_space.shape == (4, 84, 84)
    model = A2C("CnnPolicy", train_env, n_steps=2, seed=0)
    assert model.get_env() is train_env  # not wrapped a second time
    sync_envs_normalization(model.get_env(), eval_env)  # raised before the envs were wrapped alike
    train_env.close()
    eval_env.close()


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def test_cli_dry_run_lists_the_planned_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.__main__ import main

    assert main(["returns", "--suite", "smoke", "--dry-run", "--out-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * 3 and all(line.startswith("to run") for line in lines)  # 3 algorithms x 3 quick seeds
    assert main(["returns", "--suite", "smoke", "--report-only", "--out-dir", str(tmp_path)]) == 1  # nothing to report
    with pytest.raises(SystemExit):
        main(["speed", "--suite", "smoke", "--no-such-flag"])


def test_micro_benchmarks_are_discovered_by_module_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from benchmarks import micro
    from benchmarks.__main__ import main

    assert {"fvp_speed", "kfac_overhead"} <= set(micro.available())
    # A new module in the package is found without being registered anywhere; its arguments are passed on.
    (tmp_path / "fake_micro.py").write_text("def main(argv=None):\n    print('fake', argv)\n    return 3\n")
    monkeypatch.setattr(micro, "__path__", [*micro.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "benchmarks.micro.fake_micro", raising=False)
    assert "fake_micro" in micro.available()
    assert main(["micro", "--suite", "fake_micro", "--repeats", "2"]) == 3
    assert "fake ['--repeats', '2']" in capsys.readouterr().out
    assert main(["micro", "--list"]) == 0 and "fake_micro" in capsys.readouterr().out
    assert main(["micro", "--suite", "no_such_micro"]) == 2
    with pytest.raises(ValueError, match="no micro-benchmark"):
        micro.load("no_such_micro")


def test_actors_micro_benchmark_times_equal_work() -> None:
    """The overhead blocks of ``micro --suite actors`` compare two models doing the same work (same parameters after)."""
    from benchmarks.micro import actors

    result = actors._overhead_block(pairs=2, steps=30, learning_starts=60, seed=0, rounds=2)
    assert result["identical_parameters"]
    assert len(result["seconds"]["n_actors=0"]) == len(result["seconds"]["before"]) == 2 and result["rounds"] == 2
    assert result["ratio_ci95"][0] <= result["ratio_median"] <= result["ratio_ci95"][1]
