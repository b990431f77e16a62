"""Short ACKTR probes at A2C's batch, for tuning ``hyperparams/acktr.yml``.

The ``acktr`` suite runs ACKTR's YAML entry of each env with A2C's ``n_envs``, ``n_steps`` and network; a full
MuJoCo run takes about half an hour per seed on one core, too long to compare settings. A probe trains one seed
for ``STEPS`` steps from that same configuration (the suite's resolution of the entry, environments built as
the harness builds them, ``VecNormalize`` where the entry normalizes) with ``key=value`` overrides, evaluates
5 deterministic episodes ``--points`` times (default 8, evenly spaced), and appends one JSON line to
``docs/benchmarks/acktr/batch_probes.jsonl``. Training is one ``learn()`` call (evaluations at the first update
past each point), so zoo-style schedules (``learning_rate=lin_0.1``) decay over the whole probe. ``--a2c``
probes the suite's A2C (rl-zoo3's entry) under the same protocol. ``--yaml-batch`` keeps the YAML entry's own
batch and network instead (the paper's MuJoCo set-up: 4 envs x 640 steps, 64-64), e.g. to compare
``stats_batch_size`` settings. Probes are single-seed indications, not results.

Usage (from the repository root)::

    python -m benchmarks.acktr_batch_probe HalfCheetah-v5 0 200000 kl_clip=0.01
    python -m benchmarks.acktr_batch_probe Hopper-v5 0 200000 --a2c
    python -m benchmarks.acktr_batch_probe CartPole-v1 0 100000 kl_clip=0.002 --points 20
    python -m benchmarks.acktr_batch_probe Pendulum-v1 10 1000000 learning_rate=lin_0.1
    python -m benchmarks.acktr_batch_probe HalfCheetah-v5 0 300000 stats_batch_size=320 --yaml-batch
    python -m benchmarks.acktr_batch_probe Pendulum-v1 --summary   # the probes so far, grouped by settings
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.zoo import ZooConfig

#: Where probes append (``ACKTR_PROBE_OUT`` overrides it, e.g. for a sweep kept out of the committed file).
DEFAULT_OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "acktr" / "batch_probes.jsonl"
OUT_PATH = Path(os.environ.get("ACKTR_PROBE_OUT", DEFAULT_OUT_PATH))
N_POINTS = 8
N_EVAL_EPISODES = 5
EVAL_SEED_OFFSET = 1000


def probe_config(env_id: str, yaml_batch: bool = False, a2c: bool = False) -> ZooConfig:
    """The configuration a probe trains with: ACKTR's (or with ``a2c`` A2C's) hyperparameters for ``env_id``
    exactly as the ``acktr`` suite resolves them (A2C's batch and network, the suite's changes for that batch),
    or with ``yaml_batch`` ACKTR's YAML entry as it is."""
    from benchmarks.spec import resolve_entry
    from benchmarks.suites import SUITES
    from benchmarks.zoo import convert_hyperparams, load_zoo_entry

    if yaml_batch and not a2c:
        hyperparams, _, _ = load_zoo_entry("acktr", env_id)
    else:
        entry = next(entry for entry in SUITES["acktr"].entries if entry.env_id == env_id)
        hyperparams = resolve_entry(entry)["A2C" if a2c else "ACKTR"].hyperparams
    return convert_hyperparams(hyperparams)


def _constructor_kwargs(config: ZooConfig) -> dict[str, Any]:
    return {key: value for key, value in config.algo_kwargs.items() if key != "policy" and value is not None}


def base_kwargs(env_id: str, yaml_batch: bool = False, a2c: bool = False) -> tuple[dict[str, Any], int]:
    """Constructor keyword arguments (without ``policy``) of :func:`probe_config`, and its number of envs."""
    config = probe_config(env_id, yaml_batch, a2c)
    return _constructor_kwargs(config), config.n_envs


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["kl_clip=0.01", "normalize_advantage=True"]`` -> ``{"kl_clip": 0.01, "normalize_advantage": True}``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return overrides


def training_state(model: Any) -> dict[str, float | None]:
    """The policy's mean action std (Gaussian policies with a state-independent ``log_std``) and the mean length of
    the last 100 training episodes: a collapsing std or episodes that stop growing show up here first."""
    import numpy as np

    log_std = getattr(model.policy, "log_std", None)
    lengths = [info["l"] for info in model.ep_info_buffer]
    return {
        "std": None if log_std is None else round(float(log_std.detach().exp().mean()), 4),
        "ep_len_mean": round(float(np.mean(lengths)), 1) if lengths else None,
    }


def probe(
    env_id: str,
    seed: int,
    steps: int,
    overrides: dict[str, Any],
    a2c: bool,
    yaml_batch: bool = False,
    n_points: int = N_POINTS,
) -> dict[str, Any]:
    import torch as th
    from rl_zoo3.exp_manager import ExperimentManager
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    from benchmarks.zoo import build_vec_env
    from sb3_natgrad import ACKTR

    th.set_num_threads(1)
    config = probe_config(env_id, yaml_batch, a2c)
    # zoo-style schedules in the overrides ("lin_0.25") become SB3 schedules, as in the YAML
    kwargs = {**_constructor_kwargs(config), **ExperimentManager._preprocess_schedules(dict(overrides))}
    env = build_vec_env(env_id, config, config.n_envs, seed)
    model = (A2C if a2c else ACKTR)(config.algo_kwargs.get("policy", "MlpPolicy"), env, seed=seed, **kwargs)
    eval_env = build_vec_env(env_id, config, 1, seed + EVAL_SEED_OFFSET, eval_env=True)
    timesteps: list[int] = []
    means: list[float] = []
    step_info: list[list[dict[str, float]]] = []
    training: list[dict[str, float | None]] = []

    def evaluate() -> None:
        sync_envs_normalization(env, eval_env)
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=N_EVAL_EPISODES, deterministic=True)
        assert isinstance(mean, float)  # not the per-episode lists (return_episode_rewards=False)
        timesteps.append(int(model.num_timesteps))
        means.append(round(float(mean), 1))
        if isinstance(model, ACKTR):  # the last update's step size, KL estimate and Fisher norm, per optimizer
            step_info.append([dict(opt.last_step_info) for opt in model.optimizers])
        training.append(training_state(model))

    class EvaluateAfterUpdates(BaseCallback):
        """Evaluates at the start of the first rollout past each evaluation point, i.e. right after an update."""

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= (len(timesteps) + 1) * (steps // n_points) and len(timesteps) < n_points - 1:
                evaluate()

        def _on_step(self) -> bool:
            return True

    start = time.perf_counter()
    # One learn() call, so that learning-rate schedules run over the whole budget (as in the harness)
    model.learn(steps, callback=EvaluateAfterUpdates())
    evaluate()
    return {
        "env": env_id,
        "seed": seed,
        "algo": "A2C" if a2c else "ACKTR",
        "overrides": overrides,
        "batch": "yaml" if yaml_batch and not a2c else "a2c",
        "kwargs": {**kwargs, "n_envs": env.num_envs},  # everything the model was built with (schedules as repr)
        "timesteps": timesteps,
        "curve": means,
        "step_info": step_info,
        "training": training,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def summarize(records: list[dict[str, Any]], env_id: str, last: int = 5) -> list[dict[str, Any]]:
    """The probes of ``env_id`` grouped by algorithm, batch, budget, number of evaluations and overrides, with the
    means over seeds of each probe's last ``last`` evaluations and of its final one. A seed probed twice with the
    same settings counts once, with its latest record."""
    import statistics

    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for record in records:
        if record["env"] != env_id or not record["curve"]:
            continue
        key = json.dumps(
            # probes from before --yaml-batch have no "batch": they were all at A2C's
            [record["algo"], record.get("batch", "a2c"), record["timesteps"][-1], len(record["curve"]), record["overrides"]],
            sort_keys=True,
        )
        groups.setdefault(key, {})[record["seed"]] = record  # the latest record of a seed wins
    rows = []
    for key, by_seed in groups.items():
        algo, batch, steps, points, overrides = json.loads(key)
        probes = list(by_seed.values())
        rows.append(
            {
                "algo": algo,
                "batch": batch,
                "steps": steps,
                "points": points,
                "overrides": overrides,
                "seeds": sorted(by_seed),
                "last_mean": round(statistics.fmean(statistics.fmean(p["curve"][-last:]) for p in probes), 1),
                "final_mean": round(statistics.fmean(p["curve"][-1] for p in probes), 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("seed", type=int, nargs="?")
    parser.add_argument("steps", type=int, nargs="?")
    parser.add_argument("overrides", nargs="*", help="constructor arguments as key=value")
    parser.add_argument("--summary", action="store_true", help="print the probes of env_id so far, grouped by settings")
    parser.add_argument("--last", type=int, default=5, help="--summary: evaluations averaged at the end of each probe")
    parser.add_argument("--a2c", action="store_true", help="probe SB3's A2C (its defaults) instead")
    parser.add_argument("--yaml-batch", action="store_true", help="ACKTR at the YAML entry's own batch and network")
    parser.add_argument("--points", type=int, default=N_POINTS, help="evaluations, evenly spaced over the budget")
    args = parser.parse_args()
    if args.summary:
        records = [json.loads(line) for line in OUT_PATH.read_text().splitlines() if line.strip()]
        print(f"| algo | batch | steps | points | overrides | seeds | mean of last {args.last} | mean final |")
        print("|---|---|---:|---:|---|---|---:|---:|")
        for row in summarize(records, args.env_id, args.last):
            values = [row[key] for key in ("algo", "batch", "steps", "points", "overrides", "seeds")]
            print("| " + " | ".join(str(value) for value in values) + f" | {row['last_mean']} | {row['final_mean']} |")
        return
    if args.seed is None or args.steps is None:
        parser.error("seed and steps are required unless --summary is given")
    overrides = parse_overrides(args.overrides)
    record = probe(args.env_id, args.seed, args.steps, overrides, args.a2c, args.yaml_batch, args.points)
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT_PATH, "a") as file:
        file.write(json.dumps(record, default=repr) + "\n")
    print(json.dumps(record, default=repr))


if __name__ == "__main__":
    main()
