"""PPG (Cobbe et al. 2021, "Phasic Policy Gradient") on CartPole-v1: train for 50k steps, then evaluate.

The settings are hyperparams/ppg.yml's CartPole-v1 entry, read through ``sb3_natgrad.zoo.tuned_hyperparams``
(rl-zoo3's PPO entry for the policy phase; an auxiliary phase every 16 rollouts of 8 envs x 32 steps). The policy
network and the value network are separate (``arch="dual"``); after every auxiliary phase the log shows
``train/aux_loss`` (the policy network's value head), ``train/clone_kl`` and ``train/n_aux_phases``. Rewards are
normalized (``VecNormalize(norm_reward=True)``, the entry's ``normalize``), as the paper's reference code does: the
auxiliary phase fits the policy network's value head to the returns, and raw return scales can swamp its clone term.
Run: ``python examples/ppg_cartpole.py`` (~15 s of training on one CPU core).
"""

from __future__ import annotations

from rl_zoo3.utils import linear_schedule
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_natgrad import PPG
from sb3_natgrad.zoo import tuned_hyperparams


def main() -> None:
    entry = tuned_hyperparams("ppg", "CartPole-v1")
    assert entry.pop("normalize") == "dict(norm_obs=False, norm_reward=True)"
    env = make_vec_env("CartPole-v1", n_envs=entry.pop("n_envs"), seed=0)
    env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=entry["gamma"])  # returns of order one
    del entry["n_timesteps"]
    # "lin_0.001" in the YAML: a schedule decaying linearly to 0 over the run, as the zoo reads it
    kwargs = {k: linear_schedule(float(v[4:])) if isinstance(v, str) and v.startswith("lin_") else v for k, v in entry.items()}
    model = PPG(env=env, seed=0, **kwargs)
    model.learn(total_timesteps=50_000)
    print(f"auxiliary phases: {model.n_aux_phases}, rollouts since the last one: {model.rollouts_since_aux}")
    eval_env = make_vec_env("CartPole-v1", n_envs=4, seed=100)  # raw rewards: the returns reported are the true ones
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(f"PPG CartPole-v1 after 50k steps: mean return {mean_return:.1f} +/- {std_return:.1f} (max 500)")


if __name__ == "__main__":
    main()
