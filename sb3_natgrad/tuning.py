"""Distributed hyperparameter search with ``python -m sb3_natgrad.train -optimize --storage URL --study-name S``.

rl-zoo3 already shares one Optuna study between processes through an RDB storage (``--storage
postgresql://...``): each worker runs ``study.optimize`` on the same study, the TPE sampler reads every worker's
finished trials and the median pruner compares a trial's intermediate values with those of all workers. This
module adds what a cluster needs on top of it, without touching the zoo's files:

- **the password stays out of everything the run writes or prints.** rl-zoo3 copies the storage URL into
  ``args.yml`` and ``command.txt`` (training with ``--trial-id``), into the study's ``command`` user attribute
  (``sys.orig_argv``, shown by optuna-dashboard), into a warning when ``--study-name`` is missing, into the
  pickled study of its report (``report_*.pkl``, through ``RDBStorage.url``) and into W&B's config (``--track``).
  :func:`prepare_argv` hands the zoo the URL with its password replaced by ``***`` (and scrubs ``sys.orig_argv``);
  the zoo's ``ExperimentManager`` is replaced, in ``rl_zoo3.train``'s namespace only, by
  :class:`TuningExperimentManager`, which gives Optuna a :class:`MaskedRDBStorage` built from the real URL: its
  ``str``/``repr`` and its pickled state hold the masked URL only. Tensorboard and the model zip never see the
  storage (the zoo turns tensorboard off while optimizing, and the models it saves hold no storage);
- **the URL can come from an environment variable**: ``--storage env:SB3_NATGRAD_STORAGE`` reads it from
  ``$SB3_NATGRAD_STORAGE`` (any variable name works), so it is not on a command line (``ps``, shell history);
- **every trial records the worker that ran it** (user attribute ``worker``, ``host:pid``);
- **workers may start at the same moment on an empty database**: PostgreSQL's ``CREATE TABLE`` races between
  sessions (the loser gets a unique violation on a system catalogue), so creating the storage is retried.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import optuna
from rl_zoo3.exp_manager import ExperimentManager
from sqlalchemy import exc as sqlalchemy_exc

#: The environment variable the documentation uses for the storage URL (``--storage env:SB3_NATGRAD_STORAGE``);
#: a pickled :class:`MaskedRDBStorage` that did not come from a variable reconnects through it.
STORAGE_ENV = "SB3_NATGRAD_STORAGE"
#: ``--storage env:NAME`` reads the storage URL from the environment variable ``NAME``.
ENV_PREFIX = "env:"
MASK = "***"


def resolve_storage(value: str) -> str:
    """The storage URL that ``--storage value`` names: ``$NAME`` for ``env:NAME``, else ``value`` itself.

    :raises ValueError: when the variable is not set (the message names the variable, never a value).
    """
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX) :]
    url = os.environ.get(name)
    if not url:
        raise ValueError(f"--storage {value}: the environment variable {name} is not set (or is empty)")
    return url


def password_of(url: str) -> list[str]:
    """The password(s) ``url`` carries, as written and percent-decoded (in the user info or a ``password=`` query)."""
    if "://" not in url:
        return []
    parts = urlsplit(url)
    found = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    found += [value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key == "password"]
    secrets = {secret for raw in found for secret in (raw, unquote(raw)) if secret}
    return sorted(secrets, key=len, reverse=True)


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``postgresql://user:***@host:5432/db``); unchanged without one."""
    if not password_of(url):
        return url
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}" if at and ":" in userinfo else parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = parts.query
    if any(key == "password" for key, _ in pairs):
        query = urlencode([(key, MASK if key == "password" else value) for key, value in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, url: str) -> str:
    """``text`` with ``url`` replaced by its masked form and any other occurrence of its password by ``***``."""
    text = text.replace(url, mask_password(url))
    for secret in password_of(url):
        text = text.replace(secret, MASK)
    return text


class MaskedRDBStorage(optuna.storages.RDBStorage):
    """An Optuna ``RDBStorage`` whose printed and pickled forms carry the URL without its password.

    The connection uses the full URL; ``str()``, ``repr()`` and the pickled state (rl-zoo3 pickles the study,
    storage included, into its ``report_*.pkl``) hold :func:`mask_password`'s form. Unpickling reconnects with
    the URL found in the environment variable ``env_var`` (:data:`STORAGE_ENV` by default), which must match the
    masked URL; the password itself is never stored.

    ``endswith`` answers for the masked URL: rl-zoo3 asks ``storage.endswith(".log")`` to recognise a journal
    file before it hands the storage to Optuna.

    :param url: the storage URL, password included.
    :param env_var: the environment variable the URL came from, used again when unpickling.
    :param kwargs: passed to ``RDBStorage``.
    """

    def __init__(self, url: str, env_var: str | None = None, **kwargs: Any) -> None:
        self.masked_url = mask_password(url)
        self.env_var = env_var or STORAGE_ENV
        # A long trial leaves the pooled connections idle; a firewall or the server may have closed them since.
        kwargs.setdefault("engine_kwargs", {"pool_pre_ping": True})
        super().__init__(url, **kwargs)

    def __str__(self) -> str:
        return self.masked_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    def endswith(self, suffix: str | tuple[str, ...]) -> bool:
        return self.masked_url.endswith(suffix)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = self.masked_url
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        url = os.environ.get(state["env_var"], "")
        if mask_password(url) != state["masked_url"]:
            raise RuntimeError(
                f"this study was saved without its storage password ({state['masked_url']}); set the environment "
                f"variable {state['env_var']} to the storage URL to load it, or open the study with "
                "optuna.load_study(study_name=..., storage=URL)"
            )
        super().__setstate__({**state, "url": url})


def connect(url: str, env_var: str | None = None, attempts: int = 5) -> MaskedRDBStorage:
    """A :class:`MaskedRDBStorage` for ``url``, retried while other workers are creating Optuna's tables.

    A connection or authentication error is not retried.
    """
    for attempt in range(attempts):
        try:
            return MaskedRDBStorage(url, env_var=env_var)
        except (sqlalchemy_exc.IntegrityError, sqlalchemy_exc.ProgrammingError):
            # Concurrent CREATE TABLE: another worker created (or is creating) the same table.
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def worker_id() -> str:
    """``host:pid`` of this process, stored on each trial it runs (user attribute ``worker``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TuningExperimentManager(ExperimentManager):
    """rl-zoo3's ``ExperimentManager`` with the storage of :func:`prepare_argv` and the ``worker`` trial attribute.

    ``rl_zoo3.train.train()`` receives the masked URL as ``--storage``; this class replaces it, after the zoo's
    constructor, by a :class:`MaskedRDBStorage` of the real URL (:attr:`secret_url`, set by :func:`prepare_argv`).
    """

    #: The real storage URL and the variable it came from; ``None`` when the storage carries no password.
    secret_url: str | None = None
    secret_env_var: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = type(self).secret_url
        if self.storage is not None and url is not None and self.storage == mask_password(url):
            self.storage = connect(url, env_var=type(self).secret_env_var)  # type: ignore[assignment]

    def objective(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        return super().objective(trial)


def _storage_value(argv: Sequence[str]) -> tuple[int, str] | None:
    """Index and value of the last ``--storage`` in ``argv`` (``--storage V`` or ``--storage=V``), as argparse reads it."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--storage" and i + 1 < len(argv):
            found = (i + 1, argv[i + 1])
        elif arg.startswith("--storage="):
            found = (i, arg[len("--storage=") :])
    return found


def prepare_argv(argv: Sequence[str]) -> list[str]:
    """Arguments for rl-zoo3's ``train`` with the storage URL resolved (``env:NAME``) and its password masked.

    Sets :attr:`TuningExperimentManager.secret_url` to the real URL and scrubs the password from
    ``sys.orig_argv`` (which the zoo saves as ``command.txt`` and as the study's ``command`` attribute).
    """
    import sys

    argv = list(argv)
    found = _storage_value(argv)
    TuningExperimentManager.secret_url = TuningExperimentManager.secret_env_var = None
    if found is None:
        return argv
    index, value = found
    url = resolve_storage(value)
    masked = mask_password(url)
    argv[index] = f"--storage={masked}" if argv[index].startswith("--storage=") else masked
    if masked != url:
        TuningExperimentManager.secret_url = url
        TuningExperimentManager.secret_env_var = value[len(ENV_PREFIX) :] if value.startswith(ENV_PREFIX) else None
        sys.orig_argv = [scrub(arg, url) for arg in sys.orig_argv]
    return argv
