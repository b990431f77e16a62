"""D4PG's distributed actors (issue 23) on this machine: throughput of 2 Ray actors against the in-process loop, and
the cost of ``n_actors=0`` against the loop as it was before the actors.

D4PG as ``hyperparams/d4pg.yml``'s Pendulum-v1 entry (400x300 networks, batch 256, ``n_steps=5``), except
``learning_starts``, ``train_freq`` and ``gradient_steps`` below.

**Throughput.** One ``learn(fill + transitions)`` per configuration with ``learning_starts = fill``; a callback
starts the clock at the first step after the fill (Ray's start and the actors' start-up fall in the fill) and stops it
at ``on_training_end`` (before the actors are shut down). Reported: environment steps/s and gradient updates/s of the
timed part. Configurations, each at replay ratio 1 (``train_freq=1, gradient_steps=1``: the YAML's) and at replay ratio
1/4 (``train_freq=4, gradient_steps=1``: where stepping the environment weighs more):

- ``in-process``: ``n_actors=0``, SB3's loop, one env.
- ``2 Ray actors``: ``n_actors=2``, each with one env (``actor_sync_interval=100``, ``chunk_size=64``), Ray started
  once in this process with ``num_cpus=2``.

The learner takes ``train_freq`` steps per rollout from the actors, so SB3's replay ratio is kept: actors can take
the environment stepping and the acting forward pass off the learner, not its updates. Configurations alternate
within each repetition (rotated order); medians over repetitions.

**Overhead of n_actors=0.** ``D4PG`` against ``D4PGWithoutActors``: the same class with the mixin's ``learn`` and
``collect_rollouts`` skipped (SB3's ``OffPolicyAlgorithm`` methods called directly, as before the actors). Two models
with the same seed do the same work; ``learn(steps, reset_num_timesteps=False)`` blocks alternate in ABBA order in this
process and each pair gives a ratio (candidate / before), over ``--rounds`` fresh pairs of models built in alternating
order (where a model's arrays land in memory changes its speed by a percent or two, which one model pair would
attribute to the class); reported: the median ratio over all pairs and its bootstrap 95% CI, for
blocks with training (what a user pays) and for collection alone (``learning_starts`` beyond the budget: the loop the
mixin wraps, where its cost weighs most). Both models' parameters are checked to be equal at the end (``n_actors=0``
is SB3's loop bit for bit).

Writes ``docs/benchmarks/actors/actors.json`` and ``actors.md``.

Usage (from the repository root): ``python -m benchmarks micro --suite actors [--repeats 3] [--pairs 20]``
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

OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "actors"
ENV_ID = "Pendulum-v1"
#: (label, n_actors, train_freq)
THROUGHPUT_CONFIGS = (
    ("in-process, replay ratio 1", 0, 1),
    ("2 Ray actors, replay ratio 1", 2, 1),
    ("in-process, replay ratio 1/4", 0, 4),
    ("2 Ray actors, replay ratio 1/4", 2, 4),
)


def _kwargs(learning_starts: int, train_freq: int) -> dict[str, Any]:
    from stable_baselines3.common.env_util import make_vec_env

    from benchmarks.zoo import convert_hyperparams, load_zoo_entry, make_action_noise

    raw, _, _ = load_zoo_entry("d4pg", ENV_ID)
    raw.pop("n_timesteps", None)
    config = convert_hyperparams(raw)
    kwargs = {**config.algo_kwargs, "learning_starts": learning_starts, "train_freq": train_freq, "gradient_steps": 1}
    noise = make_action_noise(config, make_vec_env(ENV_ID, n_envs=1).action_space)
    if noise is not None:
        kwargs["action_noise"] = noise
    return kwargs


def _without_actors_class() -> type:
    """D4PG with the mixin's ``learn`` and ``collect_rollouts`` skipped: the loop as it was before the actors."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from sb3_natgrad import D4PG

    class D4PGWithoutActors(D4PG):
        def learn(  # type: ignore[override]
            self,
            total_timesteps: int,
            callback: Any = None,
            log_interval: int = 4,
            tb_log_name: str = "D4PG",
            reset_num_timesteps: bool = True,
            progress_bar: bool = False,
        ) -> Any:
            return OffPolicyAlgorithm.learn(
                self, total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar
            )

        def collect_rollouts(  # type: ignore[override]
            self,
            env: Any,
            callback: Any,
            train_freq: Any,
            replay_buffer: Any,
            action_noise: Any = None,
            learning_starts: int = 0,
            log_interval: int | None = None,
        ) -> Any:
            return OffPolicyAlgorithm.collect_rollouts(
                self, env, callback, train_freq, replay_buffer, action_noise, learning_starts, log_interval
            )

    return D4PGWithoutActors


# ---------------------------------------------------------------------------------------------------- THROUGHPUT
def _measure_throughput(n_actors: int, train_freq: int, fill: int, transitions: int, seed: int) -> dict[str, float]:
    from stable_baselines3.common.callbacks import BaseCallback

    from sb3_natgrad import D4PG

    class Clock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.start: tuple[float, int, int] | None = None
            self.end: tuple[float, int, int] | None = None

        def _mark(self) -> tuple[float, int, int]:
            return time.perf_counter(), self.model.num_timesteps, self.model._n_updates

        def _on_step(self) -> bool:
            if self.start is None and self.model.num_timesteps > fill:
                self.start = self._mark()
            return True

        def _on_training_end(self) -> None:
            self.end = self._mark()

    model = D4PG(env=ENV_ID, seed=seed, device="cpu", verbose=0, n_actors=n_actors, **_kwargs(fill, train_freq))
    clock = Clock()
    model.learn(fill + transitions, callback=clock)
    assert clock.start is not None and clock.end is not None
    seconds = clock.end[0] - clock.start[0]
    steps, updates = clock.end[1] - clock.start[1], clock.end[2] - clock.start[2]
    return {"seconds": seconds, "transitions": steps, "updates": updates}


def throughput(repeats: int, fill: int, transitions: int, seed: int) -> dict[str, Any]:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)
    samples: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in THROUGHPUT_CONFIGS}
    for i in range(repeats):
        order = THROUGHPUT_CONFIGS[i % len(THROUGHPUT_CONFIGS) :] + THROUGHPUT_CONFIGS[: i % len(THROUGHPUT_CONFIGS)]
        for label, n_actors, train_freq in order:
            result = _measure_throughput(n_actors, train_freq, fill, transitions, seed + i)
            samples[label].append(result)
            print(f"throughput repeat {i} {label}: {result}", flush=True)
    summary: dict[str, Any] = {}
    for label, n_actors, train_freq in THROUGHPUT_CONFIGS:
        runs = samples[label]
        summary[label] = {
            "n_actors": n_actors,
            "train_freq": train_freq,
            "seconds": [r["seconds"] for r in runs],
            "transitions": [r["transitions"] for r in runs],
            "updates": [r["updates"] for r in runs],
            "transitions_per_s": float(np.median([r["transitions"] / r["seconds"] for r in runs])),
            "updates_per_s": float(np.median([r["updates"] / r["seconds"] for r in runs])),
        }
    for label, _, train_freq in THROUGHPUT_CONFIGS:
        base = next(summary[b] for b, n, f in THROUGHPUT_CONFIGS if n == 0 and f == train_freq)
        summary[label]["transitions_per_s_vs_in_process"] = summary[label]["transitions_per_s"] / base["transitions_per_s"]
        summary[label]["updates_per_s_vs_in_process"] = summary[label]["updates_per_s"] / base["updates_per_s"]
    return {"repeats": repeats, "fill": fill, "timed_transitions": transitions, "configs": summary}


# ---------------------------------------------------------------------------------------------------- OVERHEAD
def _bootstrap_median_ci(ratios: np.ndarray, seed: int, n: int = 10_000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(n, len(ratios)), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def _overhead_round(pairs: int, steps: int, learning_starts: int, seed: int, before_first: bool) -> dict[str, Any]:
    """``pairs`` ABBA pairs on a fresh pair of models, built in the order given (allocation effects vary with it)."""
    import torch
    from stable_baselines3.common.utils import set_random_seed

    from sb3_natgrad import D4PG

    kwargs = _kwargs(learning_starts, 1)
    classes = {"n_actors=0": D4PG, "before": _without_actors_class()}
    order = ("before", "n_actors=0") if before_first else ("n_actors=0", "before")
    models = {name: classes[name](env=ENV_ID, seed=seed, device="cpu", verbose=0, **kwargs) for name in order}
    calls = {name: 0 for name in models}

    def call(name: str, total_timesteps: int, reset: bool) -> float:
        # The k-th call of each model starts from the same global seeds (the replay sampling and the action noise use
        # NumPy's global generator), so both models do the same work.
        set_random_seed(seed + 1000 * calls[name])
        calls[name] += 1
        start = time.perf_counter()
        models[name].learn(total_timesteps, reset_num_timesteps=reset)
        return time.perf_counter() - start

    warm_up = steps if learning_starts >= 10**9 else learning_starts + steps  # untimed: the fill when training
    for name in models:
        call(name, warm_up, reset=True)
    seconds: dict[str, list[float]] = {name: [] for name in classes}
    abba, baab = ("n_actors=0", "before", "before", "n_actors=0"), ("before", "n_actors=0", "n_actors=0", "before")
    for i in range(pairs):
        block: dict[str, float] = {name: 0.0 for name in models}
        for name in abba if i % 2 == 0 else baab:
            block[name] += call(name, steps, reset=False)
        for name in models:
            seconds[name].append(block[name])
    ours, before = models["n_actors=0"], models["before"]
    identical = ours.num_timesteps == before.num_timesteps and all(
        torch.equal(a, b) for a, b in zip(ours.policy.state_dict().values(), before.policy.state_dict().values(), strict=True)
    )
    return {"seconds": seconds, "identical": identical}


def _overhead_block(pairs: int, steps: int, learning_starts: int, seed: int, rounds: int = 2) -> dict[str, Any]:
    """``rounds`` rounds of ``pairs // rounds`` ABBA pairs, each on fresh models built in alternating order."""
    seconds: dict[str, list[float]] = {"n_actors=0": [], "before": []}
    round_ratios, identical = [], True
    for r in range(rounds):
        result = _overhead_round(max(1, pairs // rounds), steps, learning_starts, seed, before_first=r % 2 == 1)
        for name in seconds:
            seconds[name] += result["seconds"][name]
        ratios = np.array(result["seconds"]["n_actors=0"]) / np.array(result["seconds"]["before"])
        round_ratios.append(float(np.median(ratios)))
        identical = identical and result["identical"]
    ratios = np.array(seconds["n_actors=0"]) / np.array(seconds["before"])
    low, high = _bootstrap_median_ci(ratios, seed)
    return {
        "pairs": len(ratios),
        "rounds": rounds,
        "steps_per_learn": steps,
        "learn_calls_per_model_per_pair": 2,
        "seconds": seconds,
        "ratio_median": float(np.median(ratios)),
        "ratio_ci95": [low, high],
        "ratio_median_per_round": round_ratios,
        "ms_per_step": {name: 1e3 * float(np.median(s)) / (2 * steps) for name, s in seconds.items()},
        "identical_parameters": bool(identical),
    }


def overhead(pairs: int, rounds: int, train_steps: int, collect_steps: int, seed: int) -> dict[str, Any]:
    with_training = _overhead_block(pairs, train_steps, learning_starts=1_000, seed=seed, rounds=rounds)
    print(f"overhead with training: {with_training['ratio_median']:.4f} {with_training['ratio_ci95']}", flush=True)
    collection = _overhead_block(pairs, collect_steps, learning_starts=10**9, seed=seed, rounds=rounds)
    print(f"overhead collection only: {collection['ratio_median']:.4f} {collection['ratio_ci95']}", flush=True)
    return {"with_training": with_training, "collection_only": collection}


# ---------------------------------------------------------------------------------------------------- REPORT
def _markdown(result: dict[str, Any], command: str) -> str:
    m, t, o = result["machine"], result["throughput"], result["overhead"]
    lines = [
        f"# D4PG's distributed actors on {result['env_id']}: throughput, and the cost of `n_actors=0`",
        "",
        f"Generated by `{command}` (do not edit by hand); {result['created_at']}. D4PG as `{result['yaml']}`'s "
        f"{result['env_id']} entry, `gradient_steps=1`; see the module's docstring for the method.",
        "",
        f"## Throughput: 2 Ray actors against the in-process loop ({m['cpu_count']} CPUs)",
        "",
        f"`learn()` timed over {t['timed_transitions']:,} environment steps after {t['fill']:,} untimed ones "
        f"(Ray's and the actors' start-up in those); medians of {t['repeats']} repetitions, configurations alternating.",
        "",
        "| Configuration | train_freq | Env steps/s | vs in-process | Updates/s | vs in-process |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in t["configs"].items():
        lines.append(
            f"| {label} | {r['train_freq']} | {r['transitions_per_s']:.1f} | {r['transitions_per_s_vs_in_process']:.2f}x "
            f"| {r['updates_per_s']:.1f} | {r['updates_per_s_vs_in_process']:.2f}x |"
        )
    lines += [
        "",
        "The learner takes `train_freq` steps from the actors per rollout and then trains as SB3 does, so the replay "
        "ratio is the in-process one: the actors take the environment steps and the acting forward passes off the "
        "learner, not its gradient updates. Three processes (learner, two actors) share the CPUs here.",
        "",
        "## Cost of `n_actors=0` against the loop before the actors",
        "",
        "`learn()` of D4PG (`n_actors=0`) over the same class with the mixin's `learn` and `collect_rollouts` skipped; "
        "ABBA pairs in one process, ratio = D4PG / before (1.00 = no cost).",
        "",
        "| Blocks | Pairs (rounds) | Steps per learn() | ms per step, n_actors=0 | ms per step, before | Median ratio "
        "| 95% CI | Median ratio per round | Same parameters after |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for label, key in (("with training", "with_training"), ("collection only", "collection_only")):
        r = o[key]
        lines.append(
            f"| {label} | {r['pairs']} ({r['rounds']}) | {r['steps_per_learn']} | {r['ms_per_step']['n_actors=0']:.3f} "
            f"| {r['ms_per_step']['before']:.3f} | {r['ratio_median']:.4f} "
            f"| [{r['ratio_ci95'][0]:.4f}, {r['ratio_ci95'][1]:.4f}] "
            f"| {', '.join(f'{x:.3f}' for x in r['ratio_median_per_round'])} "
            f"| {'yes' if r['identical_parameters'] else 'no'} |"
        )
    lines += [
        "",
        f"- Machine: {m['cpu_count']} CPUs, torch threads {m['torch_threads']} in the learner; {load_text(m)}.",
        f"- Python {m['python']}, torch {m['torch']}, Ray {m['ray']}, {m['processor']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of every throughput configuration")
    parser.add_argument("--fill", type=int, default=1_000, help="untimed steps before the timed part (throughput)")
    parser.add_argument("--transitions", type=int, default=2_000, help="timed environment steps (throughput)")
    parser.add_argument("--pairs", type=int, default=40, help="ABBA pairs of the overhead blocks, over all rounds")
    parser.add_argument(
        "--rounds", type=int, default=4, help="fresh model pairs per overhead block, built in alternating order"
    )
    parser.add_argument("--train-steps", type=int, default=200, help="steps per learn() of the blocks with training")
    parser.add_argument("--collect-steps", type=int, default=2_000, help="steps per learn() of the collection blocks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads of the learner (the harness's: 1)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder of actors.json and actors.md")
    args = parser.parse_args(argv)

    import ray
    import torch

    torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()
    overhead_result = overhead(args.pairs, args.rounds, args.train_steps, args.collect_steps, args.seed)
    throughput_result = throughput(args.repeats, args.fill, args.transitions, args.seed)
    load_after = os.getloadavg()
    ray.shutdown()
    result = {
        "env_id": ENV_ID,
        "yaml": "hyperparams/d4pg.yml",
        "seed": args.seed,
        "throughput": throughput_result,
        "overhead": overhead_result,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(load_before, load_after, ray=ray.__version__),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "actors.json").write_text(json.dumps(result, indent=1) + "\n")
    command = "python -m benchmarks micro --suite actors" + (" " + " ".join(argv) if argv else "")
    markdown = _markdown(result, command)
    (args.out / "actors.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
