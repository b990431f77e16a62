"""Short ACKTR probes on MuJoCo at A2C's batch (1 env x 5 steps), for tuning ``hyperparams/acktr.yml``.

The ``acktr`` suite runs ACKTR's MuJoCo entry with A2C's ``n_envs``, ``n_steps`` and network; a full run takes
about half an hour per seed on one core, too long to compare settings. A probe trains one seed for ``STEPS``
steps from that same configuration (the YAML entry of the env, A2C's batch and network, ``VecNormalize``)
with ``key=value`` overrides, evaluates 5 deterministic episodes after each eighth of the budget, and
appends one JSON line to ``docs/benchmarks/acktr/batch_probes.jsonl``. ``--a2c`` probes SB3's A2C with its
defaults (rl-zoo3's MuJoCo entry) under the same protocol. ``--yaml-batch`` keeps the YAML entry's own batch
and network instead (the paper's set-up: 4 envs x 640 steps, 64-64), e.g. to compare ``stats_batch_size``
settings. Probes are single-seed indications, not results.

Usage (from the repository root)::

    python -m benchmarks.acktr_batch_probe HalfCheetah-v5 0 200000 kl_clip=0.01
    python -m benchmarks.acktr_batch_probe Hopper-v5 0 200000 --a2c
    python -m benchmarks.acktr_batch_probe HalfCheetah-v5 0 300000 stats_batch_size=320 --yaml-batch
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path
from typing import Any

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "acktr" / "batch_probes.jsonl"
N_POINTS = 8
N_EVAL_EPISODES = 5
EVAL_SEED_OFFSET = 1000


def base_kwargs(env_id: str, yaml_batch: bool = False) -> tuple[dict[str, Any], int]:
    """ACKTR's hyperparameters for ``env_id`` exactly as the ``acktr`` suite resolves them at A2C's batch (1 env x
    5 steps, A2C's network, the suite's changes for that batch), or with ``yaml_batch`` the YAML entry as it is.

    :return: constructor keyword arguments (without ``policy``) and the number of envs.
    """
    from benchmarks.spec import resolve_entry
    from benchmarks.suites import SUITES
    from benchmarks.zoo import convert_hyperparams, load_zoo_entry

    if yaml_batch:
        hyperparams, _, _ = load_zoo_entry("acktr", env_id)
    else:
        entry = next(entry for entry in SUITES["acktr"].entries if entry.env_id == env_id)
        hyperparams = resolve_entry(entry)["ACKTR"].hyperparams
    config = convert_hyperparams(hyperparams)
    kwargs = {key: value for key, value in config.algo_kwargs.items() if key != "policy" and value is not None}
    return kwargs, config.n_envs


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


def probe(
    env_id: str, seed: int, steps: int, overrides: dict[str, Any], a2c: bool, yaml_batch: bool = False
) -> dict[str, Any]:
    import torch as th
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_natgrad import ACKTR

    th.set_num_threads(1)
    yaml_kwargs, n_envs = base_kwargs(env_id, yaml_batch)
    kwargs = dict(overrides) if a2c else {**yaml_kwargs, **overrides}
    env = VecNormalize(make_vec_env(env_id, n_envs=1 if a2c else n_envs, seed=seed))
    model = (A2C if a2c else ACKTR)("MlpPolicy", env, seed=seed, **kwargs)
    eval_env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed + EVAL_SEED_OFFSET), training=False, norm_reward=False)
    timesteps, means, step_info = [], [], []
    start = time.perf_counter()
    for _ in range(N_POINTS):
        model.learn(steps // N_POINTS, reset_num_timesteps=False)
        eval_env.obs_rms = env.obs_rms
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=N_EVAL_EPISODES, deterministic=True)
        timesteps.append(int(model.num_timesteps))
        means.append(round(float(mean), 1))
        if not a2c:  # the last update's step size, KL estimate and Fisher norm, per optimizer
            step_info.append([dict(opt.last_step_info) for opt in model.optimizers])
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
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("seed", type=int)
    parser.add_argument("steps", type=int)
    parser.add_argument("overrides", nargs="*", help="constructor arguments as key=value")
    parser.add_argument("--a2c", action="store_true", help="probe SB3's A2C (its defaults) instead")
    parser.add_argument("--yaml-batch", action="store_true", help="ACKTR at the YAML entry's own batch and network")
    args = parser.parse_args()
    record = probe(args.env_id, args.seed, args.steps, parse_overrides(args.overrides), args.a2c, args.yaml_batch)
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT_PATH, "a") as file:
        file.write(json.dumps(record, default=repr) + "\n")
    print(json.dumps(record, default=repr))


if __name__ == "__main__":
    main()
