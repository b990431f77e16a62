"""One training run (algorithm x env x seed), meant to run in its own process.

``python -m benchmarks.worker SPEC.json RESULT.json`` reads a :class:`~benchmarks.spec.RunSpec`, trains,
and writes one result record (the spec plus the measurements) to ``RESULT.json``. The harness starts one
such process per run, so runs cannot share state, and a crash or a timeout loses one run only.

Measurements:

- learning curve: every ``eval_freq`` steps (and at step 0), ``n_eval_episodes`` deterministic episodes on
  a separate evaluation environment (its ``VecNormalize`` statistics synchronized from the training env);
- final evaluation: ``n_final_episodes`` deterministic episodes after ``learn()`` (also the last curve point), on the
  same evaluation environment, so its episodes depend on how many curve episodes came before (``eval_freq``): runs
  that differ only in ``eval_freq`` train identically but can report different final returns;
- wall-clock of ``learn()``, the part of it spent evaluating, and steps/s of training alone.

Checkpoints (``python -m benchmarks.worker SPEC.json RESULT.json CHECKPOINT_DIR``, which the harness
passes): at every learning-curve point the model, its ``VecNormalize`` statistics, an off-policy replay
buffer and the curve so far are saved, so that a run longer than a session resumes where it stopped
when the harness is started again (same spec, same ``config_hash``). A resumed run continues from the
saved parameters and optimizer state but not from the exact environment and RNG state: it is not
bit-identical to an uninterrupted one, and its record says how many ``segments`` it took. The
checkpoint is deleted once the result is written.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
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


def _learning_curve_callback(
    eval_env: Any,
    eval_freq: int,
    n_eval_episodes: int,
    total_timesteps: int,
    on_point: Any = None,
    resumed: dict[str, Any] | None = None,
    stop_at: int | None = None,
) -> Any:
    """A callback recording deterministic evaluations during ``learn()`` (built lazily: imports SB3).

    :param on_point: called with the callback after each evaluation (checkpointing).
    :param resumed: the ``curve`` and ``eval_seconds`` of earlier segments of the run.
    :param stop_at: end ``learn()`` at the first evaluation at or after this many steps (tests).
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import sync_envs_normalization

    class LearningCurveCallback(BaseCallback):
        """Evaluates at step 0 and every ``eval_freq`` steps before ``total_timesteps``; times itself."""

        def __init__(self) -> None:
            super().__init__()
            curve = (resumed or {}).get("curve", {})
            self.timesteps: list[int] = list(curve.get("timesteps", []))
            self.means: list[float] = list(curve.get("mean", []))
            self.stds: list[float] = list(curve.get("std", []))
            self.eval_seconds = float((resumed or {}).get("eval_seconds", 0.0))
            self._next = 0
            self.stopped = False

        def _evaluate(self) -> None:
            start = time.perf_counter()
            sync_envs_normalization(self.training_env, eval_env)
            returns, _ = run_episodes(self.model, eval_env, n_eval_episodes)
            self.timesteps.append(int(self.num_timesteps))
            self.means.append(float(np.mean(returns)))
            self.stds.append(float(np.std(returns)))
            self._advance()
            self.eval_seconds += time.perf_counter() - start
            if on_point is not None:
                on_point(self)

        def _advance(self) -> None:
            while self._next <= self.num_timesteps:
                self._next += eval_freq

        def _on_training_start(self) -> None:
            if self.timesteps:  # a resumed run: its last point is already recorded
                self._advance()
            else:
                self._evaluate()

        def _on_step(self) -> bool:
            # The point at the end of training is the final evaluation, done after learn().
            if self._next <= self.num_timesteps < total_timesteps:
                self._evaluate()
                if stop_at is not None and self.num_timesteps >= stop_at:
                    self.stopped = True
                    return False
            return True

    return LearningCurveCallback()


class Checkpoint:
    """The files of a run in progress: ``model.zip``, ``vecnormalize.pkl``, ``replay_buffer.pkl``, ``state.json``."""

    def __init__(self, directory: Path, config_hash: str) -> None:
        self.directory = directory
        self.config_hash = config_hash

    def load_state(self) -> dict[str, Any] | None:
        """The saved state if a checkpoint of this very configuration exists (else it is removed)."""
        state_path = self.directory / "state.json"
        if not state_path.exists() or not (self.directory / "model.zip").exists():
            return None
        state = json.loads(state_path.read_text())
        if state.get("config_hash") != self.config_hash:
            self.remove()
            return None
        return dict(state)

    def save(self, model: Any, train_env: Any, state: dict[str, Any]) -> None:
        """Write everything, each file replaced atomically, ``state.json`` last."""
        from stable_baselines3.common.vec_env import VecNormalize

        self.directory.mkdir(parents=True, exist_ok=True)
        model.save(self.directory / "model.tmp.zip")
        os.replace(self.directory / "model.tmp.zip", self.directory / "model.zip")
        if isinstance(train_env, VecNormalize):
            train_env.save(str(self.directory / "vecnormalize.tmp.pkl"))
            os.replace(self.directory / "vecnormalize.tmp.pkl", self.directory / "vecnormalize.pkl")
        if hasattr(model, "save_replay_buffer") and getattr(model, "replay_buffer", None) is not None:
            model.save_replay_buffer(self.directory / "replay_buffer.tmp.pkl")
            os.replace(self.directory / "replay_buffer.tmp.pkl", self.directory / "replay_buffer.pkl")
        tmp = self.directory / "state.tmp.json"
        tmp.write_text(json.dumps({**state, "config_hash": self.config_hash}))
        os.replace(tmp, self.directory / "state.json")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


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


def train_and_evaluate(spec: RunSpec, checkpoint_dir: Path | None = None, stop_at: int | None = None) -> dict[str, Any] | None:
    """Train one model as ``spec`` says and return the result record (``spec`` fields included).

    :param checkpoint_dir: save a checkpoint at every curve point there, and resume from one found there.
    :param stop_at: stop after the first curve point at or after this many steps and return ``None``
        (leaving the checkpoint), as if the process had been killed there.
    """
    import torch
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    torch.set_num_threads(1)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]
    algo_class: Any = load_class(spec.algo)  # a BaseAlgorithm subclass
    config = convert_hyperparams(spec.hyperparams)
    train_env = build_vec_env(spec.env_id, config, config.n_envs, seed=spec.seed)
    eval_env = build_vec_env(spec.env_id, config, 1, seed=spec.seed + EVAL_SEED_OFFSET, eval_env=True)
    checkpoint = Checkpoint(checkpoint_dir, spec.config_hash()) if checkpoint_dir is not None else None
    resumed = checkpoint.load_state() if checkpoint is not None else None
    if resumed is not None and checkpoint is not None:
        if isinstance(train_env, VecNormalize) and (checkpoint.directory / "vecnormalize.pkl").exists():
            train_env = VecNormalize.load(str(checkpoint.directory / "vecnormalize.pkl"), train_env.venv)
        model = algo_class.load(checkpoint.directory / "model.zip", env=train_env, device=spec.device)
        if (checkpoint.directory / "replay_buffer.pkl").exists() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(checkpoint.directory / "replay_buffer.pkl")
        model.set_random_seed(spec.seed + 1000 * int(resumed["segments"]))
    else:
        kwargs = dict(config.algo_kwargs)
        action_noise = make_action_noise(config, train_env.action_space)
        if action_noise is not None:
            kwargs["action_noise"] = action_noise
        model = algo_class(env=train_env, seed=spec.seed, verbose=0, device=spec.device, **kwargs)
    segments = 1 + (int(resumed["segments"]) if resumed else 0)
    previous_learn_s = float(resumed["learn_wall_s"]) if resumed else 0.0
    start = time.perf_counter()

    def save_checkpoint(callback: Any) -> None:
        if checkpoint is not None:
            curve_so_far = {"timesteps": callback.timesteps, "mean": callback.means, "std": callback.stds}
            learn_s = previous_learn_s + time.perf_counter() - start
            state = {"segments": segments, "learn_wall_s": learn_s, "eval_seconds": callback.eval_seconds}
            checkpoint.save(model, train_env, {**state, "curve": curve_so_far})

    curve = _learning_curve_callback(
        eval_env, spec.eval_freq, spec.n_eval_episodes, spec.n_timesteps, save_checkpoint, resumed, stop_at
    )
    remaining = spec.n_timesteps - int(model.num_timesteps) if resumed else spec.n_timesteps
    model.learn(total_timesteps=remaining, callback=[curve, *config.callbacks], reset_num_timesteps=resumed is None)
    learn_wall_s = previous_learn_s + time.perf_counter() - start
    if curve.stopped:
        return None

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
        segments=segments,
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
    """Entry point: ``python -m benchmarks.worker SPEC.json RESULT.json [CHECKPOINT_DIR]``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m benchmarks.worker SPEC.json RESULT.json [CHECKPOINT_DIR]", file=sys.stderr)
        return 2
    spec = RunSpec.from_dict(json.loads(Path(args[0]).read_text()))
    checkpoint_dir = Path(args[2]) if len(args) == 3 else None
    record = train_and_evaluate(spec, checkpoint_dir)
    assert record is not None  # only a test's stop_at ends a run early
    out = Path(args[1])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(out)
    if checkpoint_dir is not None:
        Checkpoint(checkpoint_dir, spec.config_hash()).remove()
    final, train_s = record["final"]["mean"], record["train_wall_s"]
    print(f"{spec.env_id} {spec.label} seed {spec.seed}: final return {final:.1f}, learn() {train_s:.1f} s without evaluation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
