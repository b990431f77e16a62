"""rl-zoo3 hyperparameters -> constructor keyword arguments and vectorized environments.

A zoo YAML entry mixes keyword arguments of the algorithm's constructor (``n_steps``, ``gamma``,
``policy_kwargs``) with keys only the zoo understands (``n_envs``, ``n_timesteps``, ``normalize``,
``env_wrapper``, ``frame_stack``, ...). :func:`convert_hyperparams` splits the two the way
``rl_zoo3.exp_manager.ExperimentManager._preprocess_hyperparams`` does, reusing the zoo's own helpers
(``_preprocess_schedules`` for ``lin_`` schedules, ``get_wrapper_class``, ``get_callback_list``,
``get_class_by_name``) and evaluating string values of ``policy_kwargs`` / ``replay_buffer_*`` in the
zoo's namespace (``nn``, ``th``, ``RMSpropTFLike``, ... are in scope), so a YAML that works with
``python -m rl_zoo3.train`` builds the same model here. :func:`build_vec_env` then builds the environment
the way ``ExperimentManager.create_envs`` does (Monitor, wrappers, ``VecNormalize``, frame stacking).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: Root of this repository (holds ``hyperparams/`` and ``benchmarks/``).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Keys of a zoo entry that configure the experiment rather than the algorithm's constructor.
ZOO_ONLY_KEYS = frozenset(
    {
        "n_envs",
        "n_timesteps",
        "normalize",
        "env_wrapper",
        "vec_env_wrapper",
        "frame_stack",
        "monitor_kwargs",
        "env_kwargs",
        "callback",
        "noise_type",
        "noise_std",
    }
)

#: Constructor keys whose string values the zoo ``eval``s.
_EVALUATED_KEYS = ("policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs")


@dataclass
class ZooConfig:
    """One zoo entry split into constructor keyword arguments and experiment settings.

    :param algo_kwargs: keyword arguments for the algorithm's constructor (``policy`` included).
    :param n_envs: number of training environments.
    :param n_timesteps: the zoo's training budget (the benchmark's ``Budget`` overrides it).
    :param normalize: wrap the environments in ``VecNormalize``.
    :param normalize_kwargs: keyword arguments of ``VecNormalize`` (``gamma`` copied from the algorithm).
    :param env_wrapper: callable wrapping each ``gym.Env`` (zoo ``env_wrapper``), or None.
    :param vec_env_wrapper: callable wrapping the ``VecEnv`` (zoo ``vec_env_wrapper``), or None.
    :param frame_stack: number of frames stacked with ``VecFrameStack``, or None.
    :param env_kwargs: keyword arguments of ``gym.make``.
    :param monitor_kwargs: keyword arguments of ``Monitor``.
    :param callbacks: callbacks instantiated from the zoo ``callback`` key.
    :param noise_type: zoo action-noise type (``normal`` / ``ornstein-uhlenbeck``), or None.
    :param noise_std: standard deviation of the action noise.
    """

    algo_kwargs: dict[str, Any]
    n_envs: int = 1
    n_timesteps: int | None = None
    normalize: bool = False
    normalize_kwargs: dict[str, Any] = field(default_factory=dict)
    env_wrapper: Callable[..., Any] | None = None
    vec_env_wrapper: Callable[..., Any] | None = None
    frame_stack: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    monitor_kwargs: dict[str, Any] = field(default_factory=dict)
    callbacks: list[Any] = field(default_factory=list)
    noise_type: str | None = None
    noise_std: float = 0.0


def _zoo_namespace() -> dict[str, Any]:
    """The globals the zoo evaluates ``policy_kwargs`` strings in (``nn``, ``th``, ``RMSpropTFLike``, ...)."""
    import rl_zoo3.exp_manager as exp_manager

    return dict(vars(exp_manager))


def _zoo_eval(value: Any) -> Any:
    """``eval`` a zoo string value in the zoo's namespace; other values pass through."""
    return eval(value, _zoo_namespace()) if isinstance(value, str) else value


def find_zoo_file(source: str | Path) -> Path:
    """Locate a zoo-style YAML file.

    - a path ending in ``.yml`` / ``.yaml`` (relative paths are taken from the repository root);
    - ``"rl_zoo3:<algo>"``: the file shipped with rl-zoo3 (``rl_zoo3/hyperparams/<algo>.yml``);
    - ``"sb3_natgrad:<algo>"``: this repository's ``hyperparams/<algo>.yml`` only;
    - ``"<algo>"``: this repository's file if it exists, else rl-zoo3's file of the same name.

    :raises FileNotFoundError: naming every place looked at.
    """
    text = str(source)
    if text.endswith((".yml", ".yaml")):
        path = Path(text)
        path = path if path.is_absolute() else REPO_ROOT / path
        if not path.is_file():
            raise FileNotFoundError(f"Zoo hyperparameter file {path} does not exist")
        return path
    origin, _, name = text.rpartition(":")
    if origin not in ("", "rl_zoo3", "sb3_natgrad"):
        raise ValueError(f"Unknown zoo source {text!r}: use a .yml path, 'rl_zoo3:<algo>', 'sb3_natgrad:<algo>' or '<algo>'")
    candidates: list[Path] = []
    if origin in ("", "sb3_natgrad"):
        candidates.append(REPO_ROOT / "hyperparams" / f"{name}.yml")
    if origin in ("", "rl_zoo3"):
        spec = importlib.util.find_spec("rl_zoo3")
        if spec is not None and spec.origin is not None:
            candidates.append(Path(spec.origin).parent / "hyperparams" / f"{name}.yml")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"No hyperparameter file for {text!r}; looked at: {', '.join(map(str, candidates))}")


def display_path(path: Path) -> str:
    """Short, machine-independent name of a YAML file for the results (``rl_zoo3/hyperparams/a2c.yml``)."""
    parts = path.parts
    if "site-packages" in parts and "rl_zoo3" in parts:
        return str(Path(*parts[parts.index("rl_zoo3") :]))
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is an ALE environment (the zoo then falls back to the ``atari`` entry)."""
    import gymnasium as gym
    import rl_zoo3.import_envs  # noqa: F401  (registers ALE and the zoo's extra environments)

    spec = gym.envs.registry.get(env_id)
    return spec is not None and "AtariEnv" in str(spec.entry_point)


def load_zoo_entry(source: str | Path, env_id: str, fallback_keys: Iterable[str] = ()) -> tuple[dict[str, Any], Path, str]:
    """Read the entry for ``env_id`` from a zoo YAML, with the zoo's lookup rules.

    Lookup order: ``env_id``, then each of ``fallback_keys`` (e.g. ``HalfCheetah-v4`` for
    ``HalfCheetah-v5`` while the YAML only knows the older version), then ``atari`` for ALE
    environments, then ``default``.

    :return: a deep copy of the entry, the file it came from and the key used.
    :raises KeyError: when no key matches and the file has no ``default``.
    """
    path = find_zoo_file(source)
    with open(path) as file:
        table = yaml.safe_load(file) or {}
    for key in (env_id, *fallback_keys):
        if key in table:
            return copy.deepcopy(table[key]), path, key
    if "atari" in table and is_atari(env_id):
        return copy.deepcopy(table["atari"]), path, "atari"
    if "default" in table:
        return copy.deepcopy(table["default"]), path, "default"
    raise KeyError(f"No entry for {env_id!r} (nor {list(fallback_keys)}, nor 'default') in {path}")


def _pop_normalization(hyperparams: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Zoo ``normalize``: ``true``, a dict, or a string evaluating to a dict of ``VecNormalize`` kwargs."""
    value = hyperparams.pop("normalize", False)
    kwargs: dict[str, Any] = {}
    if isinstance(value, str):
        value = _zoo_eval(value)
    if isinstance(value, dict):
        kwargs, value = dict(value), True
    if value and "gamma" in hyperparams:
        # The zoo discounts the normalized reward with the algorithm's own gamma.
        kwargs["gamma"] = hyperparams["gamma"]
    return bool(value), kwargs


def convert_hyperparams(raw: dict[str, Any]) -> ZooConfig:
    """Turn one zoo entry into constructor kwargs and experiment settings, as the zoo does.

    ``learning_rate`` / ``clip_range`` / ``clip_range_vf`` / ``delta_std`` become schedules (``lin_<v>`` a
    linear decay to 0, numbers constants), ``policy_kwargs`` and ``replay_buffer_*`` strings are
    evaluated, a dotted ``policy`` is imported, ``train_freq`` lists become tuples, and every key in
    :data:`ZOO_ONLY_KEYS` is removed from the constructor kwargs.
    """
    from rl_zoo3.exp_manager import ExperimentManager
    from rl_zoo3.utils import get_callback_list, get_class_by_name, get_wrapper_class

    hyperparams = copy.deepcopy(raw)
    n_envs = int(hyperparams.pop("n_envs", 1))
    n_timesteps = hyperparams.pop("n_timesteps", None)
    hyperparams = ExperimentManager._preprocess_schedules(hyperparams)
    if isinstance(hyperparams.get("train_freq"), list):
        hyperparams["train_freq"] = tuple(hyperparams["train_freq"])
    normalize, normalize_kwargs = _pop_normalization(hyperparams)
    for key in _EVALUATED_KEYS:
        if key in hyperparams:
            hyperparams[key] = _zoo_eval(hyperparams[key])
    monitor_kwargs = _zoo_eval(hyperparams.pop("monitor_kwargs", None)) or {}
    env_kwargs = _zoo_eval(hyperparams.pop("env_kwargs", None)) or {}
    frame_stack = hyperparams.pop("frame_stack", None)
    if isinstance(hyperparams.get("policy"), str) and "." in hyperparams["policy"]:
        hyperparams["policy"] = get_class_by_name(hyperparams["policy"])
    env_wrapper = get_wrapper_class(hyperparams)
    vec_env_wrapper = get_wrapper_class(hyperparams, "vec_env_wrapper")
    callbacks = get_callback_list(hyperparams)
    noise_type = hyperparams.pop("noise_type", None)
    noise_std = float(hyperparams.pop("noise_std", 0.0))
    for key in ("env_wrapper", "vec_env_wrapper", "callback"):
        hyperparams.pop(key, None)
    hyperparams.setdefault("policy", "MlpPolicy")
    return ZooConfig(
        algo_kwargs=hyperparams,
        n_envs=n_envs,
        n_timesteps=None if n_timesteps is None else int(n_timesteps),
        normalize=normalize,
        normalize_kwargs=normalize_kwargs,
        env_wrapper=env_wrapper,
        vec_env_wrapper=vec_env_wrapper,
        frame_stack=None if frame_stack is None else int(frame_stack),
        env_kwargs=dict(env_kwargs),
        monitor_kwargs=dict(monitor_kwargs),
        callbacks=callbacks,
        noise_type=None if noise_type is None else str(noise_type).strip(),
        noise_std=noise_std,
    )


def build_vec_env(env_id: str, config: ZooConfig, n_envs: int, seed: int, eval_env: bool = False) -> Any:
    """Build a ``DummyVecEnv`` the way ``ExperimentManager.create_envs`` does.

    Each sub-environment is wrapped in ``Monitor`` (so evaluation reports true episode returns) and in the
    zoo ``env_wrapper``; then come ``vec_env_wrapper``, ``VecNormalize``, ``VecFrameStack`` and, for channel-last
    images, ``VecTransposeImage``. An
    evaluation environment normalizes observations with frozen statistics (synchronize them from the
    training environment before evaluating) and leaves rewards unnormalized.
    """
    import rl_zoo3.import_envs  # noqa: F401  (registers ALE and the zoo's extra environments)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize, VecTransposeImage

    env = make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=config.env_kwargs,
        wrapper_class=config.env_wrapper,
        monitor_kwargs=config.monitor_kwargs,
        vec_env_cls=DummyVecEnv,
    )
    if config.vec_env_wrapper is not None:
        env = config.vec_env_wrapper(env)
    if config.normalize:
        normalize_kwargs = dict(config.normalize_kwargs)
        if eval_env:
            normalize_kwargs.update(training=False, norm_reward=False)
        env = VecNormalize(env, **normalize_kwargs)
    if config.frame_stack is not None:
        env = VecFrameStack(env, config.frame_stack)
    # Channel-last images become channel-first here (as the zoo does), not inside the model: the training and
    # evaluation wrappers then match, which sync_envs_normalization needs.
    if is_image_space(env.observation_space) and not is_image_space_channels_first(env.observation_space):  # type: ignore[arg-type]
        env = VecTransposeImage(env)
    return env


def make_action_noise(config: ZooConfig, action_space: Any) -> Any:
    """The zoo's ``noise_type`` / ``noise_std`` as an SB3 ``ActionNoise`` (None when not configured)."""
    if config.noise_type is None:
        return None
    import numpy as np
    from gymnasium import spaces
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"Action noise {config.noise_type!r} needs a Box action space, not {action_space}")
    n_actions = action_space.shape[0]
    mean, sigma = np.zeros(n_actions), config.noise_std * np.ones(n_actions)
    if "normal" in config.noise_type:
        return NormalActionNoise(mean=mean, sigma=sigma)
    if "ornstein-uhlenbeck" in config.noise_type:
        return OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma)
    raise ValueError(f"Unknown zoo noise_type {config.noise_type!r}")
