"""ACKTR (Wu et al. 2017) on CartPole-v1: train for 40k steps, then evaluate.

``MlpPolicy`` has separate actor and critic networks, so ACKTR uses two K-FAC optimizers, each with its
own trust region. Run: ``python examples/acktr_cartpole.py`` (about 10 s on one CPU core).

``--amortised`` records the Kronecker factors every 6th update on (at most 128 of) the observations of the 6
rollouts since the last recording, and refreshes their inverses every 12 updates: the setting the README
recommends on small batches like this one (8 envs x 5 steps), where it cost ~1.2x an A2C update instead of ~1.5x.
"""

from __future__ import annotations

import argparse

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_natgrad import ACKTR

#: Statistics amortised over updates without dropping samples (``stats_replay``; stat_decay 0.99^6 per recording)
AMORTISED = dict(stats_interval=6, stat_decay=0.94, stats_replay=True, stats_batch_size=128, inverse_interval=12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amortised", action="store_true", help="record the statistics every 6th update (see above)")
    args = parser.parse_args()
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    # hyperparams/acktr.yml's CartPole-v1 entry
    extra = AMORTISED if args.amortised else {}
    model = ACKTR(
        "MlpPolicy", env, n_steps=5, ent_coef=0.0, learning_rate=0.25, kl_clip=0.001, vf_kl_clip=0.01, seed=0, **extra
    )
    model.learn(total_timesteps=40_000)
    for opt, name in zip(model.optimizers, ("actor", "critic"), strict=False):
        info = opt.last_step_info
        print(f"{name}: last step size {float(info['step_size']):.4f}, estimated KL {float(info['kl']):.2e}")
    eval_env = make_vec_env("CartPole-v1", n_envs=4, seed=100)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(f"ACKTR CartPole-v1 after 40k steps: mean return {mean_return:.1f} +/- {std_return:.1f} (max 500)")


if __name__ == "__main__":
    main()
