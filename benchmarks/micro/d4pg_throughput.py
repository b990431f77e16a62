"""Throughput of D4PG's ``learn()`` with one environment against two in a ``SubprocVecEnv``, on Pendulum-v1.

D4PG as ``hyperparams/d4pg.yml``'s Pendulum-v1 entry (400x300 networks, batch 256, ``train_freq=1``,
``gradient_steps=1``, ``n_steps=5``), except ``learning_starts``: the buffer is filled with ``--fill`` transitions
untimed, then ``learn()`` is timed over ``--transitions`` more (environment steps, gradient steps and the action noise
included; model construction and the fill not). ``train_freq=1`` counts steps of the vectorised env, so with two
envs ``gradient_steps=1`` is one update per *two* transitions: half the replay ratio. The configurations:

- ``n_envs=1``: one env (``DummyVecEnv``), 1 update per transition (the YAML's replay ratio).
- ``n_envs=2 Subproc gradient_steps=1``: the YAML as is with two actors in subprocesses, 0.5 updates per transition.
- ``n_envs=2 Subproc gradient_steps=2``: two actors at the YAML's replay ratio (1 update per transition).
- ``n_envs=2 Dummy gradient_steps=1``: two envs stepped in the learner's process, to separate the subprocesses'
  effect from the halved replay ratio.

Configurations alternate within each repetition (rotated order), so that load from other processes falls on all;
reported are medians over repetitions of transitions/s and updates/s, and the 1-minute load average before and after.
Writes ``docs/benchmarks/d4pg/throughput.json`` and ``throughput.md``.

Usage (from the repository root): ``python -m benchmarks micro --suite d4pg_throughput [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.micro._machine import load_text, machine

OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "d4pg"
ENV_ID = "Pendulum-v1"
#: (label, n_envs, vec_env class name, gradient_steps)
CONFIGS = (
    ("n_envs=1", 1, "DummyVecEnv", 1),
    ("n_envs=2 Subproc gradient_steps=1", 2, "SubprocVecEnv", 1),
    ("n_envs=2 Subproc gradient_steps=2", 2, "SubprocVecEnv", 2),
    ("n_envs=2 Dummy gradient_steps=1", 2, "DummyVecEnv", 1),
)


def _model(n_envs: int, vec_env: str, gradient_steps: int, fill: int, seed: int) -> Any:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from benchmarks.zoo import convert_hyperparams, load_zoo_entry, make_action_noise
    from sb3_natgrad import D4PG

    raw, _, _ = load_zoo_entry("d4pg", ENV_ID)
    raw.pop("n_timesteps", None)
    config = convert_hyperparams(raw)
    kwargs = {**config.algo_kwargs, "learning_starts": fill, "gradient_steps": gradient_steps}
    cls = SubprocVecEnv if vec_env == "SubprocVecEnv" else DummyVecEnv
    env = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed, vec_env_cls=cls)
    noise = make_action_noise(config, env.action_space)
    if noise is not None:
        kwargs["action_noise"] = noise
    return D4PG(env=env, seed=seed, device="cpu", verbose=0, **kwargs)


def _measure(config: tuple[str, int, str, int], fill: int, transitions: int, seed: int) -> dict[str, float]:
    _, n_envs, vec_env, gradient_steps = config
    model = _model(n_envs, vec_env, gradient_steps, fill, seed)
    try:
        model.learn(fill)  # no update: learning_starts = fill
        steps0, updates0 = model.num_timesteps, model._n_updates
        start = time.perf_counter()
        model.learn(transitions, reset_num_timesteps=False)
        seconds = time.perf_counter() - start
        steps, updates = model.num_timesteps - steps0, model._n_updates - updates0
    finally:
        model.env.close()
    return {"seconds": seconds, "transitions": steps, "updates": updates}


def run(repeats: int, fill: int, transitions: int, seed: int, torch_threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(torch_threads)
    samples: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in CONFIGS}
    load_before = os.getloadavg()
    for i in range(repeats):
        order = CONFIGS[i % len(CONFIGS) :] + CONFIGS[: i % len(CONFIGS)]
        for config in order:
            result = _measure(config, fill, transitions, seed + i)
            samples[config[0]].append(result)
            print(
                f"repeat {i} {config[0]}: {result['seconds']:.1f} s, "
                f"{result['transitions']} transitions, {result['updates']} updates"
            )
    load_after = os.getloadavg()
    summary = {}
    for label, n_envs, vec_env, gradient_steps in CONFIGS:
        runs = samples[label]
        seconds = np.array([r["seconds"] for r in runs])
        summary[label] = {
            "n_envs": n_envs,
            "vec_env": vec_env,
            "gradient_steps": gradient_steps,
            "updates_per_transition": runs[0]["updates"] / runs[0]["transitions"],
            "seconds": seconds.tolist(),
            "transitions_per_s": float(np.median([r["transitions"] / r["seconds"] for r in runs])),
            "updates_per_s": float(np.median([r["updates"] / r["seconds"] for r in runs])),
            "ms_per_update": float(np.median([1e3 * r["seconds"] / max(r["updates"], 1) for r in runs])),
        }
    base = summary["n_envs=1"]["transitions_per_s"]
    for row in summary.values():
        row["transitions_per_s_vs_n_envs_1"] = row["transitions_per_s"] / base
    return {
        "env_id": ENV_ID,
        "yaml": "hyperparams/d4pg.yml",
        "fill": fill,
        "timed_transitions": transitions,
        "repeats": repeats,
        "seed": seed,
        "configs": summary,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(load_before, load_after),
    }


def _markdown(result: dict[str, Any], command: str) -> str:
    m = result["machine"]
    lines = [
        f"# D4PG `learn()` throughput on {result['env_id']}: one env vs two in a `SubprocVecEnv`",
        "",
        f"Generated by `{command}` (do not edit by hand); {result['created_at']}. D4PG as `{result['yaml']}`'s "
        f"{result['env_id']} entry (train_freq=1), buffer filled with {result['fill']:,} transitions untimed, then "
        f"`learn()` timed over {result['timed_transitions']:,} transitions; medians of {result['repeats']} repetitions, "
        "configurations alternating.",
        "",
        "| Configuration | Vec env | gradient_steps | Updates per transition | Transitions/s | vs n_envs=1 "
        "| Updates/s | ms per update (incl. env steps) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in result["configs"].items():
        lines.append(
            f"| {label} | {r['vec_env']} | {r['gradient_steps']} | {r['updates_per_transition']:.2f} "
            f"| {r['transitions_per_s']:.1f} | {r['transitions_per_s_vs_n_envs_1']:.2f}x | {r['updates_per_s']:.1f} "
            f"| {r['ms_per_update']:.2f} |"
        )
    lines += [
        "",
        "`train_freq=1` counts steps of the vectorised env: with two envs and `gradient_steps=1` the learner makes one "
        "update per two transitions (half the replay ratio), so its extra transitions/s are mostly updates not made; "
        "`gradient_steps=2` keeps the replay ratio of one env.",
        "",
        f"- Machine: {m['cpu_count']} CPUs shared with other work, torch threads {m['torch_threads']} in the learner; "
        f"{load_text(m)}.",
        f"- Python {m['python']}, torch {m['torch']}, {m['processor']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of every configuration")
    parser.add_argument("--fill", type=int, default=1_000, help="transitions collected untimed before the timed learn()")
    parser.add_argument("--transitions", type=int, default=2_000, help="transitions of the timed learn() (even)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads of the learner (the harness's: 1)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder of throughput.json and throughput.md")
    args = parser.parse_args(argv)
    if args.transitions % 2 or args.fill % 2:
        parser.error("--transitions and --fill must be even (two envs step together)")
    result = run(args.repeats, args.fill, args.transitions, args.seed, args.torch_threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    command = "python -m benchmarks micro --suite d4pg_throughput" + (" " + " ".join(argv) if argv else "")
    markdown = _markdown(result, command)
    (args.out / "throughput.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
