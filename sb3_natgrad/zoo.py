"""Registration of the plugin's algorithms with rl-zoo3.

rl-zoo3 keeps its algorithms in module-level dicts (``rl_zoo3.utils.ALGOS``, and the Optuna
``HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER``); a plugin registers by updating them before the
zoo's ``train()`` / ``enjoy()`` parse their arguments. Plugin keys replace the zoo's ones where both
exist (``trpo``): the plugin's classes accept every sb3-contrib argument, so the zoo's YAMLs still work.

For the algorithms in :data:`ZOO_FALLBACK` (``tqc``) the plugin's YAML holds only what differs from the zoo's file
of the same name (its ``default`` and environments the zoo lacks or that the plugin tunes differently); for an
environment it has no entry for, the zoo's entry is used (:func:`conf_file_for`).
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


#: Plugin algorithms whose ``hyperparams/<algo>.yml`` falls back, per environment, to rl-zoo3's ``<algo>.yml``.
ZOO_FALLBACK = frozenset({"tqc"})


def zoo_hyperparams_file(algo: str) -> Path:
    """rl-zoo3's own ``hyperparams/<algo>.yml`` (the file its ``train`` reads without ``--conf-file``)."""
    import rl_zoo3

    return Path(rl_zoo3.__file__).resolve().parent / "hyperparams" / f"{algo}.yml"


def _entry_names(path: Path) -> set[str]:
    with open(path) as file:
        return set(yaml.safe_load(file) or {})


def conf_file_for(algo: str, env_id: str) -> Path:
    """The YAML whose entries apply to ``algo`` on ``env_id``: the plugin's ``hyperparams/<algo>.yml``, except for an
    algorithm in :data:`ZOO_FALLBACK` whose file has no ``env_id`` entry while rl-zoo3's file has one: then the zoo's.

    Entries are taken whole, never merged key by key (the zoo reads one entry); an environment in neither file gets
    the plugin's ``default``.
    """
    ours = hyperparams_dir() / f"{algo}.yml"
    if algo in ZOO_FALLBACK and env_id not in _entry_names(ours):
        zoo = zoo_hyperparams_file(algo)
        if zoo.is_file() and env_id in _entry_names(zoo):
            return zoo
    return ours


def with_default_conf_file(argv: Sequence[str]) -> list[str]:
    """Point ``--conf-file`` at the YAML of :func:`conf_file_for` for a plugin algorithm unless the user gave one."""
    from sb3_natgrad import ALGOS

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")  # rl_zoo3.train's default
    parser.add_argument("-conf", "--conf-file", default=None)
    known, _ = parser.parse_known_args(list(argv))
    argv = list(argv)
    if known.algo in ALGOS and known.conf_file is None:
        argv += ["--conf-file", str(conf_file_for(known.algo, known.env))]
    return argv


def tuned_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The entry for ``env_id`` (or the ``default`` entry) of the YAML of :func:`conf_file_for`, as written there.

    Values are the zoo's: ``n_envs``, ``n_timesteps`` and ``policy`` sit beside the constructor
    arguments, schedules are strings such as ``"lin_1e-3"``. ``python -m sb3_natgrad.train`` applies them
    all; this function lets a script read them.

    :raises KeyError: when the file has neither an ``env_id`` nor a ``default`` entry.
    """
    path = conf_file_for(algo, env_id)
    with open(path) as file:
        entries = yaml.safe_load(file)
    key = env_id if env_id in entries else "default"
    if key not in entries:
        raise KeyError(f"{path} has no entry for {env_id} and no default entry")
    return dict(entries[key])
