"""ACKTR (Wu et al. 2017) on CartPole-v1: train for 40k steps, then evaluate.

``MlpPolicy`` has separate actor and critic networks, so ACKTR uses two K-FAC optimizers, each with its
own trust region. Run: ``python examples/acktr_cartpole.py`` (about 10 s on one CPU core).
"""

from __future__ import annotations

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_natgrad import ACKTR


def main() -> None:
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    # hyperparams/acktr.yml's CartPole-v1 entry
    model = ACKTR("MlpPolicy", env, n_steps=5, ent_coef=0.0, learning_rate=0.25, kl_clip=0.001, vf_kl_clip=0.01, seed=0)
    model.learn(total_timesteps=40_000)
    for opt, name in zip(model.optimizers, ("actor", "critic"), strict=False):
        info = opt.last_step_info
        print(f"{name}: last step size {float(info['step_size']):.4f}, estimated KL {float(info['kl']):.2e}")
    eval_env = make_vec_env("CartPole-v1", n_envs=4, seed=100)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(f"ACKTR CartPole-v1 after 40k steps: mean return {mean_return:.1f} +/- {std_return:.1f} (max 500)")


if __name__ == "__main__":
    main()
