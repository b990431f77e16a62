"""Optuna samplers for ``python -m sb3_natgrad.train -optimize``, one per plugin algorithm.

Each sampler has rl-zoo3's signature ``(trial, n_actions, n_envs, additional_args) -> kwargs``.
Sampled options must be flat keyword arguments of the algorithm (the zoo evals ``policy_kwargs``
strings in its own namespace, where the plugin's classes are unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from rl_zoo3.hyperparams_opt import convert_offpolicy_params, convert_onpolicy_params
from rl_zoo3.hyperparams_opt import sample_ppo_params as zoo_sample_ppo_params
from rl_zoo3.hyperparams_opt import sample_td3_params as zoo_sample_td3_params
from rl_zoo3.hyperparams_opt import sample_tqc_params as zoo_sample_tqc_params
from rl_zoo3.hyperparams_opt import sample_trpo_params as zoo_sample_trpo_params


def sample_trpo_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """rl-zoo3's TRPO search space plus sb3_natgrad.TRPO's options: NPG vs line search, the critic."""
    hyperparams = zoo_sample_trpo_params(trial, n_actions, n_envs, additional_args)
    hyperparams["line_search"] = trial.suggest_categorical("line_search", [True, False])
    hyperparams["critic"] = trial.suggest_categorical("critic", ["adam", "trust_region"])
    if hyperparams["critic"] == "trust_region":
        hyperparams["vf_target_kl"] = trial.suggest_float("vf_target_kl", 1e-3, 0.1, log=True)
    return hyperparams


def sample_acktr_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """ACKTR: A2C's rollout settings plus the K-FAC trust region (eta_max, delta, damping) of each network."""
    sampled: dict[str, Any] = {
        "n_steps": trial.suggest_categorical("n_steps", [5, 8, 16, 20, 32, 64]),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True),
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 0.0001, 0.1, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 1.0, log=True),
        "kl_clip": trial.suggest_float("kl_clip", 1e-4, 1e-2, log=True),
        "vf_kl_clip": trial.suggest_float("vf_kl_clip", 1e-3, 0.3, log=True),
        "damping": trial.suggest_float("damping", 1e-3, 0.1, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "net_arch": trial.suggest_categorical("net_arch", ["small", "medium"]),
        "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
        "vf_activation_fn": trial.suggest_categorical("vf_activation_fn", ["tanh", "elu"]),
    }
    trial.set_user_attr("gamma", 1 - sampled["one_minus_gamma"])
    return convert_onpolicy_params(sampled)


def sample_d4pg_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """rl-zoo3's TD3 search space (D4PG keeps TD3's actor, noise and targets) plus D4PG's N and critic.

    The categorical support (``v_min``, ``v_max``) is not sampled: it follows the environment's return scale
    and comes from hyperparams/d4pg.yml.
    """
    hyperparams = zoo_sample_td3_params(trial, n_actions, n_envs, additional_args)
    hyperparams["n_steps"] = trial.suggest_categorical("n_steps", [1, 3, 5])
    hyperparams["critic"] = trial.suggest_categorical("critic", ["categorical", "quantile"])
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
    "d4pg": convert_offpolicy_params,
    "ppg": convert_ppg_params,
    "tqc": convert_offpolicy_params,
}
