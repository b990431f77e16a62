"""Train sb3_natgrad's TQC on Pendulum-v1 with the zoo's tqc.yml entry (hyperparams/tqc.yml falls back to it), then
evaluate it.

Usage: ``python examples/tqc_pendulum.py [--timesteps 20000] [--seed 0] [--per] [--n-steps 3] [--kfac]``
(the zoo's entry: 20k steps, ``learning_rate=1e-3``, contrib's other defaults).

A sanity check, not a benchmark (one seed, 10 deterministic evaluation episodes on the training environment, 20k
steps, seed 0; measured with this script's settings): contrib TQC -178.4, ``sb3_natgrad.TQC`` with every variant off
is the same run (bit-identical updates, tested), ``--per`` -181.2, ``--n-steps 3`` -182.9, ``--kfac`` (K-FAC critic,
defaults) -175.2. The differences are within one seed's noise (evaluation std ~80).
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.evaluation import evaluate_policy

from sb3_natgrad import TQC
from sb3_natgrad.zoo import tuned_hyperparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per", action="store_true", help="prioritized replay")
    parser.add_argument("--n-steps", type=int, default=1, help="n of the n-step returns")
    parser.add_argument("--kfac", action="store_true", help="train the critics with K-FAC")
    args = parser.parse_args()

    kwargs = tuned_hyperparams("tqc", "Pendulum-v1")  # the zoo's entry: n_timesteps, policy, learning_rate
    for zoo_only in ("n_timesteps", "policy"):
        kwargs.pop(zoo_only)
    kwargs.update(prioritized_replay=args.per, n_steps=args.n_steps)
    if args.kfac:
        kwargs["critic_optimizer"] = "kfac"
    model = TQC("MlpPolicy", "Pendulum-v1", seed=args.seed, verbose=0, **kwargs)
    model.learn(total_timesteps=args.timesteps)
    mean_reward, std_reward = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
    flags = (("PER", args.per), (f"n_steps={args.n_steps}", args.n_steps > 1), ("K-FAC critic", args.kfac))
    variant = ", ".join(name for name, on in flags if on)
    print(
        f"TQC ({variant or 'contrib'}) on Pendulum-v1, seed {args.seed}, {args.timesteps} steps: "
        f"mean reward {mean_reward:.1f} +/- {std_reward:.1f}"
    )


if __name__ == "__main__":
    main()
