"""How far one SB3 A2C update moves the policy and the critic, to calibrate ACKTR's trust regions at A2C's batch.

ACKTR bounds each update by ``kl_clip`` (the predicted mean KL of the policy) and, for a separate critic,
``vf_kl_clip`` (a bound on ``0.5 E[dV^2]``). A2C has no such bound: RMSprop normalises every parameter's step.
This trains SB3's A2C as the ``acktr`` suite resolves it for the env (rl-zoo3's entry; on MuJoCo 1 env x 5 steps,
``VecNormalize``)
and, around every ``train()`` call, measures on that update's rollout observations

- the mean KL (summed over action dimensions) between the policies before and after the update, and
- ``0.5 E[(V_after(s) - V_before(s))^2]``, the quantity ACKTR's ``vf_kl_clip`` bounds,

then writes their median, mean and 90th percentile over each fifth of the run to
``docs/benchmarks/acktr/a2c_step_kl.json`` (one entry per env and seed, replaced when re-measured).

Usage (from the repository root)::

    python -m benchmarks.a2c_step_kl Hopper-v5 0 100000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "acktr" / "a2c_step_kl.json"
N_WINDOWS = 5


def _summary(values: np.ndarray) -> dict[str, float]:
    return {
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "p90": float(np.quantile(values, 0.9)),
    }


def measure(env_id: str, seed: int, steps: int) -> dict[str, Any]:
    import torch as th
    from stable_baselines3 import A2C

    from benchmarks.spec import resolve_entry
    from benchmarks.suites import SUITES
    from benchmarks.zoo import build_vec_env, convert_hyperparams
    from sb3_natgrad.common.fisher import detach_distribution, mean_kl

    th.set_num_threads(1)
    entries = {entry.env_id: entry for entry in SUITES["acktr"].entries}
    if env_id not in entries:
        raise ValueError(f"{env_id} is not an env of the acktr suite ({sorted(entries)})")
    resolved = resolve_entry(entries[env_id])["A2C"]
    config = convert_hyperparams(resolved.hyperparams)
    kls: list[float] = []
    dvs: list[float] = []

    class MeasuredA2C(A2C):
        def train(self) -> None:
            obs = next(self.rollout_buffer.get(batch_size=None)).observations
            with th.no_grad():
                before = detach_distribution(self.policy.get_distribution(obs))
                v_before = self.policy.predict_values(obs)
            super().train()
            with th.no_grad():
                after = self.policy.get_distribution(obs)
                v_after = self.policy.predict_values(obs)
            kls.append(float(mean_kl(before, after)))
            dvs.append(float(0.5 * (v_after - v_before).pow(2).mean()))

    env = build_vec_env(env_id, config, config.n_envs, seed=seed)
    model = MeasuredA2C(env=env, seed=seed, **config.algo_kwargs)
    model.learn(steps)
    windows = []
    kl_parts, dv_parts = np.array_split(np.array(kls), N_WINDOWS), np.array_split(np.array(dvs), N_WINDOWS)
    for part_kl, part_dv in zip(kl_parts, dv_parts, strict=True):
        windows.append({"updates": len(part_kl), "kl": _summary(part_kl), "half_dv2": _summary(part_dv)})
    return {
        "env": env_id,
        "seed": seed,
        "steps": steps,
        "hyperparams_from": f"{Path(resolved.zoo_file or '').name} [{resolved.zoo_key}]",
        "samples_per_update": int(model.n_steps * model.n_envs),
        "windows": windows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("seed", type=int)
    parser.add_argument("steps", type=int)
    args = parser.parse_args()
    record = measure(args.env_id, args.seed, args.steps)
    records = json.loads(OUT_PATH.read_text()) if OUT_PATH.exists() else []
    records = [r for r in records if (r["env"], r["seed"]) != (args.env_id, args.seed)] + [record]
    OUT_PATH.write_text(json.dumps(records, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
