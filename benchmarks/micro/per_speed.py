"""Speed of one prioritized-replay step vs SB3's uniform ``ReplayBuffer.sample``, and the trees' memory.

One PER step is what an algorithm pays per gradient step for prioritized replay (Schaul et al. 2016): ``sample(256)``
from a full buffer (tensors returned as SB3 returns them, CPU) plus ``update_priorities`` of the 256 sampled
transitions from a torch tensor of errors. The baseline is SB3's uniform ``ReplayBuffer.sample(256)`` on the same
data. Default sizes are the issue's: 1,000,000 transitions, 17-dim float32 observations, 6-dim actions (HalfCheetah).
The buffers share their storage arrays (the timings read the same memory); the tree holds random priorities.

Repetitions are interleaved (uniform, PER, PER n-step, uniform, ...) so that machine load affects all alike; the
reported ratios are medians of the per-repetition ratios, with their interquartile range. Writes
``docs/benchmarks/per_speed/per_speed.json`` and ``per_speed.md``.

Usage (from the repository root): ``python -m benchmarks.micro.per_speed [--capacity 1000000] [--repeats 3000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_natgrad.common.prioritized_replay import PrioritizedReplayBuffer

OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "per_speed"
OBS_DIM, ACTION_DIM, BATCH = 17, 6, 256
N_STEPS = 5


def _filled_buffers(capacity: int, seed: int) -> tuple[ReplayBuffer, PrioritizedReplayBuffer, PrioritizedReplayBuffer]:
    """A full uniform buffer and two full PER buffers (n_steps 1 and N_STEPS) sharing its storage."""
    rng = np.random.default_rng(seed)
    obs_space = spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
    uniform = ReplayBuffer(capacity, obs_space, action_space, device="cpu")
    uniform.observations[:] = rng.standard_normal(uniform.observations.shape, dtype=np.float32)
    uniform.next_observations[:-1] = uniform.observations[1:]
    uniform.next_observations[-1] = uniform.observations[0]
    uniform.actions[:] = rng.uniform(-1.0, 1.0, uniform.actions.shape).astype(np.float32)
    uniform.rewards[:] = rng.standard_normal(uniform.rewards.shape, dtype=np.float32)
    uniform.dones[:] = rng.random(uniform.dones.shape) < 1e-3  # episodes of ~1000 steps, half truncated
    uniform.timeouts[:] = uniform.dones * (rng.random(uniform.dones.shape) < 0.5)
    uniform.full, uniform.pos = True, 0
    buffers = []
    for n_steps in (1, N_STEPS):
        per = PrioritizedReplayBuffer(capacity, obs_space, action_space, device="cpu", n_steps=n_steps)
        for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
            setattr(per, name, getattr(uniform, name))
        per.full, per.pos = True, 0
        per.update_priorities(np.arange(capacity), rng.exponential(1.0, capacity))
        buffers.append(per)
    return uniform, buffers[0], buffers[1]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _summary(values: np.ndarray) -> dict[str, float]:
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q25": float(q25), "q75": float(q75)}


def run(capacity: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    uniform, per, per_n = _filled_buffers(capacity, seed)
    np.random.seed(seed)
    errors = th.rand(BATCH, generator=th.Generator().manual_seed(seed))  # [B] as a loss would give them

    def per_step(buffer: PrioritizedReplayBuffer) -> Callable[[], object]:
        def step() -> None:
            samples = buffer.sample(BATCH)
            buffer.update_priorities(samples.indices, errors)

        return step

    cases = {"uniform": lambda: uniform.sample(BATCH), "per": per_step(per), f"per_n{N_STEPS}": per_step(per_n)}
    for fn in cases.values():  # warm-up
        for _ in range(50):
            fn()
    load_before = os.getloadavg()[0]
    times = {name: np.empty(repeats) for name in cases}
    for i in range(repeats):
        for name, fn in cases.items():
            times[name][i] = _timed(fn)
    arrays = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
    storage = sum(getattr(uniform, name).nbytes for name in arrays)
    return {
        "capacity": capacity,
        "batch_size": BATCH,
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "n_steps": N_STEPS,
        "repeats": repeats,
        "time_us": {name: _summary(t * 1e6) for name, t in times.items()},
        "ratio_vs_uniform": {name: _summary(times[name] / times["uniform"]) for name in cases if name != "uniform"},
        "bytes_per_transition": {
            "sb3_replay_buffer": storage / capacity,
            "trees": per.tree.nbytes / capacity,
            "tree_fanout": per.tree.fanout,
            "tree_levels": per.tree.n_levels,
        },
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": th.__version__,
            "processor": platform.processor() or platform.machine(),
            "torch_threads": th.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": [load_before, os.getloadavg()[0]],  # before / after the timed loop
        },
    }


def _markdown(result: dict[str, Any], command: str) -> str:
    t, r, m = result["time_us"], result["ratio_vs_uniform"], result["bytes_per_transition"]
    n = result["n_steps"]
    rows = [
        f"| SB3 `ReplayBuffer.sample({result['batch_size']})` | {t['uniform']['median']:.1f} | 1 | |",
        f"| PER step, n_steps=1 | {t['per']['median']:.1f} | {r['per']['median']:.2f} | "
        f"{r['per']['q25']:.2f}-{r['per']['q75']:.2f} |",
        f"| PER step, n_steps={n} | {t[f'per_n{n}']['median']:.1f} | {r[f'per_n{n}']['median']:.2f} | "
        f"{r[f'per_n{n}']['q25']:.2f}-{r[f'per_n{n}']['q75']:.2f} |",
    ]
    return "\n".join(
        [
            "# Prioritized replay speed",
            "",
            f"One PER step (`PrioritizedReplayBuffer.sample({result['batch_size']})` + `update_priorities` of the sampled "
            f"transitions from a torch tensor) vs SB3's uniform `ReplayBuffer.sample({result['batch_size']})`, full buffers "
            f"of {result['capacity']:,} transitions ({result['obs_dim']}-dim float32 observations, "
            f"{result['action_dim']}-dim actions), CPU (numpy {result['machine']['numpy']}, "
            f"torch {result['machine']['torch']}). "
            f"{result['repeats']} interleaved repetitions; ratio = median of the per-repetition ratios (target <= 1.5), "
            "IQR = their interquartile range.",
            "",
            f"Generated by `{command}`.",
            "",
            "| step | median (us) | ratio | ratio IQR |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Memory: SB3's buffer stores {m['sb3_replay_buffer']:.1f} bytes per transition; the sum and min trees "
            f"({m['tree_fanout']}-ary, {m['tree_levels']} levels) add {m['trees']:.2f} bytes per transition "
            f"(+{100 * m['trees'] / m['sb3_replay_buffer']:.1f}%).",
            "",
            f"Machine: {result['machine']['cpu_count']} CPUs shared with other work, 1-minute load average "
            f"{result['machine']['load_average_1min'][0]:.1f} before and {result['machine']['load_average_1min'][1]:.1f} "
            "after the timed loop; the interleaving makes the load fall on both sides of each ratio, not the absolute times.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000, help="transitions in the full buffers")
    parser.add_argument("--repeats", type=int, default=3000, help="interleaved repetitions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder of per_speed.json and per_speed.md")
    args = parser.parse_args(argv)
    result = run(args.capacity, args.repeats, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "per_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    command = "python -m benchmarks.micro.per_speed" + (" " + " ".join(argv) if argv else "")
    (args.out / "per_speed.md").write_text(_markdown(result, command))
    print(_markdown(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
