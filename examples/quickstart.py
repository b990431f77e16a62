"""Quick start: train a plugin algorithm on CartPole-v1 and print its evaluation.

This is what ``make demo`` runs. Usage::

    python examples/quickstart.py [--algo trpo] [--timesteps 40000]
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_natgrad import ALGOS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--algo", default="trpo", choices=sorted(ALGOS))
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--timesteps", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = make_vec_env(args.env, n_envs=4, seed=args.seed)
    model = ALGOS[args.algo]("MlpPolicy", env, seed=args.seed, verbose=0)
    before, _ = evaluate_policy(model, make_vec_env(args.env, seed=1000), n_eval_episodes=10)
    print(f"{args.algo.upper()} on {args.env}: training for {args.timesteps} steps ...", flush=True)
    model.learn(args.timesteps)
    mean, std = evaluate_policy(model, make_vec_env(args.env, seed=1000), n_eval_episodes=10)
    print(f"mean return before training: {before:.1f}")
    print(f"mean return after training:  {mean:.1f} +/- {std:.1f} (10 episodes, deterministic)")


if __name__ == "__main__":
    main()
