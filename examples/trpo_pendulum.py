"""Train sb3_natgrad's TRPO on Pendulum-v1 with rl-zoo's tuned settings, then evaluate it.

Usage: ``python examples/trpo_pendulum.py [--timesteps 50000] [--critic trust_region] [--no-line-search]``
(under a minute on a laptop CPU with the default budget; the zoo trains for 1e5 steps).
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_natgrad import TRPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--critic", choices=["adam", "trust_region"], default="adam")
    parser.add_argument("--no-line-search", action="store_true", help="natural policy gradient (closed-form step)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = make_vec_env("Pendulum-v1", n_envs=2, seed=args.seed)
    # hyperparams/trpo.yml, Pendulum-v1 entry
    model = TRPO(
        "MlpPolicy",
        env,
        n_steps=1024,
        gamma=0.9,
        n_critic_updates=15,
        use_sde=True,
        sde_sample_freq=4,
        critic=args.critic,
        line_search=not args.no_line_search,
        seed=args.seed,
        verbose=0,
    )
    model.learn(total_timesteps=args.timesteps)
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=args.seed + 1000)
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"TRPO on Pendulum-v1 after {args.timesteps} steps: mean reward {mean_reward:.1f} +/- {std_reward:.1f}")


if __name__ == "__main__":
    main()
