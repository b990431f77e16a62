"""One training run (algorithm x env x seed), meant to run in its own process.

``python -m benchmarks.worker SPEC.json RESULT.json`` reads a :class:`~benchmarks.spec.RunSpec`, trains,
and writes one result record (the spec plus the measurements) to ``RESULT.json``. The harness starts one
such process per run, so runs cannot share state, and a crash or a timeout loses one run only.

Measurements:

- learning curve: every ``eval_freq`` steps (and at step 0), ``n_eval_episodes`` deterministic episodes on
  a separate evaluation environment (its ``VecNormalize`` statistics synchronized from the training env);
- final evaluation: ``n_final_episodes`` deterministic episodes after ``learn()`` (also the last curve point);
- wall-clock of ``learn()``, the part of it spent evaluating, and steps/s of training alone.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.spec import RunSpec, load_class
from benchmarks.zoo import build_vec_env, convert_hyperparams, make_action_noise

#: The evaluation environment of seed ``s`` is seeded with ``s + EVAL_SEED_OFFSET``.
EVAL_SEED_OFFSET = 10_000


def run_episodes(model: Any, env: Any, n_episodes: int) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``n_episodes`` deterministic episodes (``evaluate_policy``, Monitor returns)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    returns, lengths = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    assert isinstance(returns, list) and isinstance(lengths, list)
    return [float(r) for r in returns], [int(n) for n in lengths]


def _learning_curve_callback(eval_env: Any, eval_freq: int, n_eval_episodes: int, total_timesteps: int) -> Any:
    """A callback recording deterministic evaluations during ``learn()`` (built lazily: imports SB3)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import sync_envs_normalization

    class LearningCurveCallback(BaseCallback):
        """Evaluates at step 0 and every ``eval_freq`` steps before ``total_timesteps``; times itself."""

        def __init__(self) -> None:
            super().__init__()
            self.timesteps: list[int] = []
            self.means: list[float] = []
            self.stds: list[float] = []
            self.eval_seconds = 0.0
            self._next = 0

        def _evaluate(self) -> None:
            start = time.perf_counter()
            sync_envs_normalization(self.training_env, eval_env)
            returns, _ = run_episodes(self.model, eval_env, n_eval_episodes)
            self.timesteps.append(int(self.num_timesteps))
            self.means.append(float(np.mean(returns)))
            self.stds.append(float(np.std(returns)))
            while self._next <= self.num_timesteps:
                self._next += eval_freq
            self.eval_seconds += time.perf_counter() - start

        def _on_training_start(self) -> None:
            self._evaluate()

        def _on_step(self) -> bool:
            # The point at the end of training is the final evaluation, done after learn().
            if self._next <= self.num_timesteps < total_timesteps:
                self._evaluate()
            return True

    return LearningCurveCallback()


def cpu_name() -> str:
    """CPU model (from ``/proc/cpuinfo`` on Linux), for the record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers."""
    import gymnasium
    import stable_baselines3
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
    }
    try:
        import sb3_contrib

        versions["sb3_contrib"] = sb3_contrib.__version__
    except ImportError:
        pass
    return versions


def train_and_evaluate(spec: RunSpec) -> dict[str, Any]:
    """Train one model as ``spec`` says and return the result record (``spec`` fields included)."""
    import torch
    from stable_baselines3.common.vec_env import sync_envs_normalization

    torch.set_num_threads(1)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]
    algo_class = load_class(spec.algo)
    config = convert_hyperparams(spec.hyperparams)
    train_env = build_vec_env(spec.env_id, config, config.n_envs, seed=spec.seed)
    eval_env = build_vec_env(spec.env_id, config, 1, seed=spec.seed + EVAL_SEED_OFFSET, eval_env=True)
    kwargs = dict(config.algo_kwargs)
    action_noise = make_action_noise(config, train_env.action_space)
    if action_noise is not None:
        kwargs["action_noise"] = action_noise
    model = algo_class(env=train_env, seed=spec.seed, verbose=0, device=spec.device, **kwargs)

    curve = _learning_curve_callback(eval_env, spec.eval_freq, spec.n_eval_episodes, spec.n_timesteps)
    start = time.perf_counter()
    model.learn(total_timesteps=spec.n_timesteps, callback=[curve, *config.callbacks])
    learn_wall_s = time.perf_counter() - start

    sync_envs_normalization(train_env, eval_env)
    returns, lengths = run_episodes(model, eval_env, spec.n_final_episodes)
    final_mean, final_std = float(np.mean(returns)), float(np.std(returns))
    if not curve.timesteps or curve.timesteps[-1] < model.num_timesteps:
        curve.timesteps.append(int(model.num_timesteps))
        curve.means.append(final_mean)
        curve.stds.append(final_std)

    train_wall_s = learn_wall_s - curve.eval_seconds
    record = spec.to_dict()
    record.update(
        config_hash=spec.config_hash(),
        num_timesteps=int(model.num_timesteps),
        n_envs=config.n_envs,
        learn_wall_s=learn_wall_s,
        eval_wall_s=curve.eval_seconds,
        train_wall_s=train_wall_s,
        steps_per_s=model.num_timesteps / train_wall_s,
        final={
            "mean": final_mean,
            "std": final_std,
            "n_episodes": len(returns),
            "returns": returns,
            "lengths": lengths,
        },
        curve={"timesteps": curve.timesteps, "mean": curve.means, "std": curve.stds},
        started_at=started_at,
        loadavg_1min=[load_before, os.getloadavg()[0]],
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        cpu=cpu_name(),
        versions=library_versions(),
    )
    train_env.close()
    eval_env.close()
    return record


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m benchmarks.worker SPEC.json RESULT.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m benchmarks.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = RunSpec.from_dict(json.loads(Path(args[0]).read_text()))
    record = train_and_evaluate(spec)
    out = Path(args[1])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(out)
    final, train_s = record["final"]["mean"], record["train_wall_s"]
    print(f"{spec.env_id} {spec.label} seed {spec.seed}: final return {final:.1f}, learn() {train_s:.1f} s without evaluation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
