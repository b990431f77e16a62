"""Optuna samplers for ``python -m sb3_natgrad.train -optimize``, one per plugin algorithm.

Each sampler has rl-zoo3's signature ``(trial, n_actions, n_envs, additional_args) -> kwargs``.
Sampled options must be flat keyword arguments of the algorithm (the zoo evals ``policy_kwargs``
strings in its own namespace, where the plugin's classes are unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from rl_zoo3.hyperparams_opt import convert_offpolicy_params, convert_onpolicy_params
from rl_zoo3.hyperparams_opt import sample_ppo_params as zoo_sample_ppo_params
from rl_zoo3.hyperparams_opt import sample_tqc_params as zoo_sample_tqc_params
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise


def sample_trpo_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """rl-zoo3's TRPO search space, two ranges corrected, plus sb3_natgrad.TRPO's options: NPG vs line search, the critic.

    Same parameter names as the zoo's (its converter applies). Changed: the critic's minibatch is 32 to 1024
    (the zoo draws from 4, against its own comment, which costs thousands of Adam steps per rollout for nothing),
    and ``gamma`` reaches 0.9 (the plugin's tuned Pendulum-v1 entry; the zoo stops at 0.97).
    Paper (Schulman et al. 2015): ``delta = 0.01`` (``target_kl``), 10 CG iterations; both inside the ranges.
    """
    batch_size_pow = trial.suggest_int("batch_size_pow", 5, 10)  # 32 .. 1024
    n_steps_pow = trial.suggest_int("n_steps_pow", 5, 12)  # 32 .. 4096 per environment
    sampled: dict[str, Any] = {
        "n_steps_pow": n_steps_pow,
        "batch_size_pow": batch_size_pow,
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.1, log=True),
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 0.0001, 0.1, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 0.002, log=True),
        "n_critic_updates": trial.suggest_int("n_critic_updates", 5, 30),
        "cg_max_steps": trial.suggest_int("cg_max_steps", 5, 30),
        "target_kl": trial.suggest_float("target_kl", 0.001, 0.1, log=True),
        "net_arch": trial.suggest_categorical("net_arch", ["small", "medium"]),
        "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
    }
    trial.set_user_attr("gamma", 1 - sampled["one_minus_gamma"])
    trial.set_user_attr("n_steps", 2**n_steps_pow)
    trial.set_user_attr("batch_size", 2**batch_size_pow)
    hyperparams = convert_onpolicy_params(sampled)
    hyperparams["line_search"] = trial.suggest_categorical("line_search", [True, False])
    hyperparams["critic"] = trial.suggest_categorical("critic", ["adam", "trust_region"])
    if hyperparams["critic"] == "trust_region":
        hyperparams["vf_target_kl"] = trial.suggest_float("vf_target_kl", 1e-3, 0.1, log=True)
    return hyperparams


def sample_acktr_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """ACKTR: A2C's rollout settings plus the K-FAC trust region (eta_max, delta, damping) of each network.

    The ranges hold the paper's settings and hyperparams/acktr.yml's: ``n_steps`` from 5 (CartPole-v1) and 20
    (Atari) to 640 (MuJoCo: the paper's 2500-step batches over 4 environments), ``gamma`` down to 0.9
    (Pendulum-v1), the critic's own ``eta_max`` (``vf_learning_rate``, 0.25 on the MuJoCo entries) and momentum
    (``vf_momentum``: the class default 0, or the 0.9 that the per-env entries were measured with).
    """
    sampled: dict[str, Any] = {
        "n_steps": trial.suggest_categorical("n_steps", [5, 8, 16, 20, 32, 64, 128, 256, 640]),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.1, log=True),
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 0.0001, 0.1, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 1.0, log=True),
        "vf_learning_rate": trial.suggest_float("vf_learning_rate", 0.01, 1.0, log=True),
        "kl_clip": trial.suggest_float("kl_clip", 1e-4, 1e-2, log=True),
        "vf_kl_clip": trial.suggest_float("vf_kl_clip", 1e-3, 0.3, log=True),
        "vf_momentum": trial.suggest_categorical("vf_momentum", [0.0, 0.9]),
        "damping": trial.suggest_float("damping", 1e-3, 0.1, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "net_arch": trial.suggest_categorical("net_arch", ["small", "medium"]),
        "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
        "vf_activation_fn": trial.suggest_categorical("vf_activation_fn", ["tanh", "elu"]),
    }
    trial.set_user_attr("gamma", 1 - sampled["one_minus_gamma"])
    return convert_onpolicy_params(sampled)


def sample_d4pg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """rl-zoo3's TD3 search space (D4PG keeps TD3's actor, noise and targets), three ranges corrected, plus D4PG's N
    and critic.

    ``gamma`` and the categorical support (``v_min``, ``v_max``) are not sampled: the support is chosen for the
    return scale, which ``1 / (1 - gamma)`` sets, and both come from hyperparams/d4pg.yml (the zoo's TD3 space
    draws gamma up to 0.9999, whose returns fall far outside a support chosen for 0.98). The minibatch is 32 to
    1024 (paper: 256; the zoo draws from 4), and there is always exploration noise (a deterministic actor without
    it does not explore; the zoo also draws no noise and a standard deviation of 0). The sampled ``noise_type``
    and ``noise_std`` are turned into ``action_noise`` by the zoo (``--trial-id``) or by hand.
    """
    noise_type = trial.suggest_categorical("noise_type", ["normal", "ornstein-uhlenbeck"])
    noise_std = trial.suggest_float("noise_std", 0.05, 0.5)
    batch_size_pow = trial.suggest_int("batch_size_pow", 5, 10)  # 32 .. 1024
    trial.set_user_attr("batch_size", 2**batch_size_pow)
    noise_class = NormalActionNoise if noise_type == "normal" else OrnsteinUhlenbeckActionNoise
    return {
        **convert_d4pg_params(
            {
                "learning_rate": trial.suggest_float("learning_rate", 1e-5, 0.002, log=True),
                "batch_size_pow": batch_size_pow,
                "train_freq": trial.suggest_int("train_freq", 1, 10),
                "tau": trial.suggest_float("tau", 0.001, 0.08, log=True),
                "net_arch": trial.suggest_categorical("net_arch", ["small", "medium", "big"]),
            }
        ),
        "action_noise": noise_class(mean=np.zeros(n_actions), sigma=noise_std * np.ones(n_actions)),
        "n_steps": trial.suggest_categorical("n_steps", [1, 3, 5]),
        "critic": trial.suggest_categorical("critic", ["categorical", "quantile"]),
    }


def convert_d4pg_params(params: dict[str, Any]) -> dict[str, Any]:
    """The zoo's off-policy conversion of D4PG's sampled parameters, without a sampled ``gamma`` (see above)."""
    hyperparams = convert_offpolicy_params({"one_minus_gamma": 0.0, **params})
    del hyperparams["gamma"]
    return hyperparams


def sample_acer_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """ACER: segment length, discount, RMSprop step, entropy, replay (ratio r, truncation c) and trust region."""
    sampled: dict[str, Any] = {
        "n_steps": trial.suggest_categorical("n_steps", [5, 10, 20, 32]),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.05, log=True),
        "q_coef": trial.suggest_categorical("q_coef", [0.25, 0.5, 1.0]),
        "replay_ratio": trial.suggest_categorical("replay_ratio", [0.0, 1.0, 2.0, 4.0, 8.0]),
        "correction_term": trial.suggest_categorical("correction_term", [1.0, 5.0, 10.0]),
        "trust_region": trial.suggest_categorical("trust_region", [True, False]),
        "delta": trial.suggest_float("delta", 0.1, 5.0, log=True),
        "net_arch": trial.suggest_categorical("net_arch", ["small", "medium"]),
        "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
    }
    trial.set_user_attr("gamma", 1 - sampled["one_minus_gamma"])
    return convert_acer_params(sampled)


def convert_acer_params(sampled: dict[str, Any]) -> dict[str, Any]:
    """``one_minus_gamma`` -> ``gamma``; ``net_arch`` names -> ACER's shared trunk; ``activation_fn`` names -> classes."""
    from torch import nn

    hyperparams = dict(sampled)
    if "one_minus_gamma" in hyperparams:
        hyperparams["gamma"] = 1 - hyperparams.pop("one_minus_gamma")
    policy_kwargs: dict[str, Any] = {}
    if "net_arch" in hyperparams:
        policy_kwargs["net_arch"] = {"small": [64, 64], "medium": [256, 256]}[hyperparams.pop("net_arch")]
    if "activation_fn" in hyperparams:
        policy_kwargs["activation_fn"] = {"tanh": nn.Tanh, "relu": nn.ReLU}[hyperparams.pop("activation_fn")]
    return {"policy_kwargs": policy_kwargs, **hyperparams} if policy_kwargs else hyperparams


def sample_ppg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """rl-zoo3's PPO search space (the zoo's ``n_epochs`` is PPG's ``n_policy_epochs``) plus PPG's phases: ``N_pi``,
    ``E_V``, ``E_aux``, ``beta_clone``, the auxiliary minibatch and the architecture."""
    hyperparams = zoo_sample_ppo_params(trial, n_actions, n_envs, additional_args)
    hyperparams["n_policy_epochs"] = hyperparams.pop("n_epochs")
    hyperparams["n_value_epochs"] = trial.suggest_categorical("n_value_epochs", [1, 5, 10, 20])
    hyperparams["n_policy_iterations"] = trial.suggest_categorical("n_policy_iterations", [2, 4, 8, 16, 32])
    hyperparams["n_aux_epochs"] = trial.suggest_categorical("n_aux_epochs", [1, 3, 6, 9])
    hyperparams["beta_clone"] = trial.suggest_float("beta_clone", 0.1, 10.0, log=True)
    hyperparams["aux_batch_size"] = trial.suggest_categorical("aux_batch_size", [64, 128, 256, 512])
    hyperparams["arch"] = trial.suggest_categorical("arch", ["dual", "detach", "shared"])
    return hyperparams


def convert_ppg_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """A PPG trial's raw parameters as keyword arguments: the zoo's on-policy conversion, ``n_epochs`` renamed."""
    hyperparams = convert_onpolicy_params(sampled_params)
    hyperparams["n_policy_epochs"] = hyperparams.pop("n_epochs")
    return hyperparams


def sample_tqc_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """rl-zoo3's TQC search space (SAC's plus ``n_quantiles`` and ``top_quantiles_to_drop_per_net``) plus
    sb3_natgrad.TQC's variants: n-step returns, prioritized replay (``per_alpha``) and the K-FAC critic (its step
    size, trust region and damping). ``per_beta`` keeps its default, annealed to 1."""
    hyperparams = zoo_sample_tqc_params(trial, n_actions, n_envs, additional_args)
    hyperparams["n_steps"] = trial.suggest_categorical("n_steps", [1, 3, 5])
    hyperparams["prioritized_replay"] = trial.suggest_categorical("prioritized_replay", [False, True])
    if hyperparams["prioritized_replay"]:
        hyperparams["per_alpha"] = trial.suggest_float("per_alpha", 0.3, 0.9)
    hyperparams["critic_optimizer"] = trial.suggest_categorical("critic_optimizer", ["adam", "kfac"])
    if hyperparams["critic_optimizer"] == "kfac":
        hyperparams["critic_kfac_lr"] = trial.suggest_float("critic_kfac_lr", 0.01, 1.0, log=True)
        hyperparams["critic_kfac_kl_clip"] = trial.suggest_float("critic_kfac_kl_clip", 1e-4, 0.1, log=True)
        hyperparams["critic_kfac_damping"] = trial.suggest_float("critic_kfac_damping", 1e-3, 0.1, log=True)
    return hyperparams


HYPERPARAMS_SAMPLER: dict[str, Callable[..., dict[str, Any]]] = {
    "acer": sample_acer_params,
    "trpo": sample_trpo_params,
    "acktr": sample_acktr_params,
    "d4pg": sample_d4pg_params,
    "ppg": sample_ppg_params,
    "tqc": sample_tqc_params,
}
# The plugin's options are plain keyword arguments: the zoo's converter passes them through.
HYPERPARAMS_CONVERTER: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "acer": convert_acer_params,
    "trpo": convert_onpolicy_params,
    "acktr": convert_onpolicy_params,
    "d4pg": convert_d4pg_params,
    "ppg": convert_ppg_params,
    "tqc": convert_offpolicy_params,
}
