"""Registration of the plugin's algorithms with rl-zoo3.

rl-zoo3 keeps its algorithms in module-level dicts (``rl_zoo3.utils.ALGOS``, and the Optuna
``HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER``); a plugin registers by updating them before the
zoo's ``train()`` / ``enjoy()`` parse their arguments. Plugin keys replace the zoo's ones where both
exist (``trpo``): the plugin's classes accept every sb3-contrib argument, so the zoo's YAMLs still work.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def hyperparams_dir() -> Path:
    """Folder holding the plugin's ``<algo>.yml`` files.

    An installed wheel ships them inside the package (``sb3_natgrad/hyperparams/``, mapped from the
    repository's top-level ``hyperparams/`` by pyproject.toml); in a source checkout or an editable
    install they are the repository's top-level ``hyperparams/``.
    """
    package = Path(__file__).resolve().parent
    installed = package / "hyperparams"
    return installed if installed.is_dir() else package.parent / "hyperparams"


def register() -> None:
    """Add the plugin's algorithms, samplers and converters to rl-zoo3's registries (idempotent)."""
    import rl_zoo3.hyperparams_opt as zoo_opt
    import rl_zoo3.utils as zoo_utils

    from sb3_natgrad import ALGOS
    from sb3_natgrad.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER

    zoo_utils.ALGOS.update(ALGOS)
    zoo_opt.HYPERPARAMS_SAMPLER.update(HYPERPARAMS_SAMPLER)
    zoo_opt.HYPERPARAMS_CONVERTER.update(HYPERPARAMS_CONVERTER)


def with_default_conf_file(argv: Sequence[str]) -> list[str]:
    """Point ``--conf-file`` at the plugin's YAML for a plugin algorithm unless the user gave one."""
    from sb3_natgrad import ALGOS

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("-conf", "--conf-file", default=None)
    known, _ = parser.parse_known_args(list(argv))
    argv = list(argv)
    if known.algo in ALGOS and known.conf_file is None:
        argv += ["--conf-file", str(hyperparams_dir() / f"{known.algo}.yml")]
    return argv


def tuned_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The entry of ``hyperparams/<algo>.yml`` for ``env_id`` (or its ``default`` entry), as written there.

    Values are the zoo's: ``n_envs``, ``n_timesteps`` and ``policy`` sit beside the constructor
    arguments, schedules are strings such as ``"lin_1e-3"``. ``python -m sb3_natgrad.train`` applies them
    all; this function lets a script read them.

    :raises KeyError: when the file has neither an ``env_id`` nor a ``default`` entry.
    """
    with open(hyperparams_dir() / f"{algo}.yml") as file:
        entries = yaml.safe_load(file)
    key = env_id if env_id in entries else "default"
    if key not in entries:
        raise KeyError(f"hyperparams/{algo}.yml has no entry for {env_id} and no default entry")
    return dict(entries[key])
