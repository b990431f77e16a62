"""Train sb3_natgrad's D4PG on Pendulum-v1 with the settings of hyperparams/d4pg.yml, then evaluate it.

Usage: ``python examples/d4pg_pendulum.py [--timesteps 20000] [--seed 0] [--critic quantile] [--per]``
(the YAML's budget is 20k steps: 10k of random actions, then one gradient step per environment step).

Measured with this script (20k steps, mean of 10 deterministic evaluation episodes): seeds 0/1/2 gave
-88.6/-144.8/-170.5; with ``--per`` -90.3/-144.0/-167.8; ``--critic quantile`` on seed 0 gave -85.8.
"""

from __future__ import annotations

import argparse

import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise

from sb3_natgrad import D4PG
from sb3_natgrad.zoo import tuned_hyperparams


def yaml_kwargs(env_id: str) -> dict:
    """The YAML entry as D4PG keyword arguments (the zoo's keys translated as rl-zoo3 does)."""
    hyperparams = tuned_hyperparams("d4pg", env_id)
    for zoo_only in ("n_timesteps", "policy"):
        hyperparams.pop(zoo_only)
    noise_type, noise_std = hyperparams.pop("noise_type"), hyperparams.pop("noise_std")
    if noise_type != "normal":
        raise ValueError(f"this example applies normal action noise only, the YAML entry has {noise_type!r}")
    hyperparams["action_noise"] = NormalActionNoise(np.zeros(1), noise_std * np.ones(1))
    hyperparams["policy_kwargs"] = eval(hyperparams["policy_kwargs"])  # "dict(net_arch=[400, 300])"
    return hyperparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--critic", choices=["categorical", "quantile"], default="categorical")
    parser.add_argument("--per", action="store_true", help="prioritized replay")
    args = parser.parse_args()

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=args.seed)
    kwargs = yaml_kwargs("Pendulum-v1")
    if args.critic != "categorical":
        kwargs["critic"] = args.critic
    if args.per:
        kwargs["prioritized_replay"] = True
    model = D4PG("MlpPolicy", env, seed=args.seed, verbose=0, **kwargs)
    model.learn(total_timesteps=args.timesteps)
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=args.seed + 1000)
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    clipped = model.logger.name_to_value.get("train/clipped_target_mass", float("nan"))
    print(
        f"D4PG ({args.critic}{', PER' if args.per else ''}) on Pendulum-v1, seed {args.seed}, {args.timesteps} steps: "
        f"mean reward {mean_reward:.1f} +/- {std_reward:.1f} (last clipped_target_mass {clipped:.3f})"
    )


if __name__ == "__main__":
    main()
