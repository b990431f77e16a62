"""Quick start: train an algorithm with the package's tuned hyperparameters and show that it learned.

This is what ``make demo`` runs: TRPO on CartPole-v1 with the ``CartPole-v1`` entry of
``hyperparams/trpo.yml``. It prints the mean return of 10 episodes before and after training (actions sampled from the
policy, the one that training optimises; a deterministic evaluation of an untrained CartPole policy can
score anything from 9 to 500),
shows a progress bar while training, and saves a learning curve (evaluations every ``--eval-freq`` steps)
as a PNG whose path it prints. Usage::

    python examples/quickstart.py [--algo trpo] [--env CartPole-v1] [--timesteps N] [--out logs/demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rl_zoo3.utils import linear_schedule
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_natgrad import ALGOS
from sb3_natgrad.zoo import tuned_hyperparams


def constructor_kwargs(entry: dict) -> dict:
    """Constructor arguments of a plain YAML entry (``lin_<v>`` strings become linear schedules)."""
    unsupported = {"normalize", "env_wrapper", "frame_stack", "vec_env_wrapper", "callback"} & set(entry)
    if unsupported:
        raise ValueError(f"this example does not apply {sorted(unsupported)}; use python -m sb3_natgrad.train")
    kwargs = {k: v for k, v in entry.items() if k not in ("n_envs", "n_timesteps", "policy")}
    return {k: linear_schedule(float(v[4:])) if isinstance(v, str) and v.startswith("lin_") else v for k, v in kwargs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algo", default="trpo", choices=sorted(ALGOS))
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--timesteps", type=int, help="training steps (default: the YAML entry's n_timesteps)")
    parser.add_argument("--eval-freq", type=int, default=5_000, help="steps between learning-curve evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("logs/demo"), help="folder for the curve and the model")
    args = parser.parse_args()

    entry = tuned_hyperparams(args.algo, args.env)
    timesteps = args.timesteps or int(entry["n_timesteps"])
    env = make_vec_env(args.env, n_envs=entry.get("n_envs", 1), seed=args.seed)
    model = ALGOS[args.algo](entry.get("policy", "MlpPolicy"), env, seed=args.seed, **constructor_kwargs(entry))

    eval_env = make_vec_env(args.env, seed=args.seed + 1000)
    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=False)
    print(f"{args.algo.upper()} on {args.env}, hyperparams/{args.algo}.yml settings, {timesteps} steps")
    print(f"mean return before training: {before:.1f} (10 episodes)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    callback = EvalCallback(
        eval_env,
        eval_freq=max(args.eval_freq // env.num_envs, 1),
        n_eval_episodes=5,
        deterministic=False,
        log_path=str(args.out),
        verbose=0,
    )
    model.learn(timesteps, callback=callback, progress_bar=True)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=False)
    print(f"mean return after training:  {mean:.1f} +/- {std:.1f} (10 episodes)")

    evaluations = np.load(args.out / "evaluations.npz")
    steps, returns = evaluations["timesteps"], evaluations["results"]  # [n_evals], [n_evals, 5]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([0, *steps], [before, *returns.mean(axis=1)], marker="o")
    axis.fill_between(steps, returns.min(axis=1), returns.max(axis=1), alpha=0.2, label="min-max of 5 episodes")
    axis.set(xlabel="environment steps", ylabel="mean return (5 episodes)", title=f"{args.algo} on {args.env}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.out / "learning_curve.png", dpi=100)
    model.save(args.out / f"{args.algo}_{args.env}")
    print(f"learning curve: {args.out / 'learning_curve.png'}")


if __name__ == "__main__":
    main()
