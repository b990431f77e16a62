"""ACER (Wang et al. 2017) with Box actions on Pendulum-v1: hyperparams/acer.yml's entry for 100k steps, then evaluate.

The continuous variant of the paper (Section 5): a diagonal Gaussian policy, the stochastic dueling network
Q̃(x, a) = V(x) + A(x, a) - (1/n) Σ_i A(x, u_i), Retrace with c_i = min(1, rho_i^{1/d}), Q^opc in the policy gradient
and the bias correction with one action sampled from π. 8 environments x 8-step segments, Poisson(4) replayed
segments from a 20,000-transition replay, trust region δ = 0.1, initial standard deviation e^-1, gamma 0.95,
normalized observations and rewards (the environment's statistics are used for the evaluation too).

Run: ``python examples/acer_pendulum.py`` (about 7 CPU minutes); it printed -260.3 +/- 102.8 over 20 deterministic
episodes. Seeds 0, 1, 2 of the same settings
reached -191, -245 and -299 (5 deterministic episodes) after 100k steps; see hyperparams/acer.yml.
"""

from __future__ import annotations

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_natgrad import ACER


def main() -> None:
    gamma = 0.95
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=8, seed=0), gamma=gamma)
    # hyperparams/acer.yml's Pendulum-v1 entry
    model = ACER(
        "MlpPolicy",
        env,
        n_steps=8,
        gamma=gamma,
        ent_coef=0.0,
        buffer_size=20_000,
        replay_ratio=4.0,
        replay_start=2000,
        delta=0.1,
        policy_kwargs=dict(log_std_init=-1.0),
        seed=0,
    )
    model.learn(total_timesteps=100_000)
    eval_env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=4, seed=100), training=False, norm_reward=False)
    eval_env.obs_rms = env.obs_rms  # the training statistics, frozen
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(f"ACER Pendulum-v1 after 100k steps: mean return {mean_return:.1f} +/- {std_return:.1f} (best about -150)")


if __name__ == "__main__":
    main()
