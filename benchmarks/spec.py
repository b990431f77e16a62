"""Data model of the benchmark table and planning of the runs.

A :class:`Suite` is a named list of :class:`Entry` (one environment each); an entry compares one
reference :class:`Algo` with one or more candidate :class:`Algo` under a :class:`Budget` per profile
(``quick`` / ``full``). Planning expands a suite into :class:`RunSpec` (one algorithm x env x seed), the
JSON-serializable unit of work a worker process receives. Algorithm classes are named by import path
(``"sb3_natgrad:TRPO"``) and imported only by the worker, so a suite may name classes that do not exist yet.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.zoo import display_path, load_zoo_entry

PROFILES = ("quick", "full")
CANDIDATE, REFERENCE = "candidate", "reference"

#: (profile, env_id, label, seed, n_timesteps): what identifies a run in ``results.jsonl``.
RunKey = tuple[str, str, str, int, int]


def load_class(path: str) -> type:
    """Import a class from ``"package.module:ClassName"`` (``"stable_baselines3:A2C"``).

    :raises ValueError: if the path has no ``:``.
    :raises ImportError: / :raises AttributeError: when the module or class does not exist.
    """
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"Class path {path!r} must look like 'package.module:ClassName'")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not inspect.isclass(obj):
        raise TypeError(f"{path!r} is not a class but {type(obj).__name__}")
    return obj


def constructor_default(class_path: str, key: str) -> Any:
    """Default value of ``key`` in the constructor of the class at ``class_path``.

    :raises ValueError: if the constructor has no such parameter (or it has no default).
    """
    parameter = inspect.signature(load_class(class_path)).parameters.get(key)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise ValueError(f"{class_path} has no constructor argument {key!r} with a default value")
    return parameter.default


@dataclass(frozen=True)
class Algo:
    """One algorithm configuration in an entry.

    :param label: unique name within the entry; used in the table, the plots and the run keys.
    :param cls: import path of the algorithm class, ``"package.module:ClassName"``.
    :param zoo: zoo YAML to read the entry's hyperparameters from (see :func:`benchmarks.zoo.find_zoo_file`),
        or None to start from ``{"policy": "MlpPolicy"}``.
    :param zoo_keys: YAML keys tried after the env id (e.g. ``("Hopper-v4",)`` for ``Hopper-v5``).
    :param kwargs: zoo-style overrides applied on top of the YAML entry (``"lin_1e-3"`` schedules,
        ``policy_kwargs`` strings, ``n_envs``, ``normalize`` are all allowed); must be JSON-serializable.
    :param share_with_reference: keys copied from the reference's resolved hyperparameters (or the
        reference constructor's default when its YAML does not set them), e.g. ``("n_envs", "n_steps",
        "policy_kwargs")`` to compare at equal batch and network.
    :param drop: YAML keys removed before the overrides (the constructor defaults apply), e.g. settings tuned
        for the YAML entry's own batch that an entry running another batch does not take.
    :param max_seeds: run only seeds ``0 .. max_seeds-1`` of the entry's (e.g. variants at fewer seeds than the
        algorithms an entry compares); None: all of them.
    """

    label: str
    cls: str
    zoo: str | None = None
    zoo_keys: tuple[str, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    share_with_reference: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    max_seeds: int | None = None

    def __post_init__(self) -> None:
        if self.max_seeds is not None and self.max_seeds <= 0:
            raise ValueError(f"Algo {self.label!r}: max_seeds must be positive, got {self.max_seeds}")
        if ":" not in self.cls:
            raise ValueError(f"Algo {self.label!r}: cls {self.cls!r} must look like 'package.module:ClassName'")
        try:
            json.dumps(dict(self.kwargs))
        except TypeError as error:
            raise ValueError(f"Algo {self.label!r}: kwargs must be JSON-serializable (zoo-style strings): {error}") from None


@dataclass(frozen=True)
class Budget:
    """Training and evaluation budget of an entry in one profile.

    :param timesteps: environment steps per training run.
    :param seeds: number of seeds (0 .. seeds-1) per algorithm.
    :param eval_freq: environment steps between two points of the learning curve (default: 1/10 of the budget).
    :param n_eval_episodes: deterministic episodes per learning-curve point.
    :param n_final_episodes: deterministic episodes of the final evaluation.
    :param timeout_s: wall-clock limit of one run (default: 10 min plus 10 ms per step).
    """

    timesteps: int
    seeds: int
    eval_freq: int | None = None
    n_eval_episodes: int = 5
    n_final_episodes: int = 10
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.timesteps <= 0 or self.seeds <= 0:
            raise ValueError(f"Budget needs positive timesteps and seeds, got {self.timesteps} and {self.seeds}")
        if self.eval_freq is not None and self.eval_freq <= 0:
            raise ValueError(f"eval_freq must be positive, got {self.eval_freq}")

    @property
    def resolved_eval_freq(self) -> int:
        """Steps between learning-curve points."""
        return self.eval_freq if self.eval_freq is not None else max(1, self.timesteps // 10)

    @property
    def resolved_timeout_s(self) -> float:
        """Wall-clock limit of one run in seconds."""
        return self.timeout_s if self.timeout_s is not None else 600.0 + 0.01 * self.timesteps


@dataclass(frozen=True)
class Entry:
    """One environment: a reference algorithm, its candidates, and a budget per profile."""

    env_id: str
    reference: Algo
    candidates: Sequence[Algo]
    quick: Budget
    full: Budget

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        labels = [algo.label for algo in self.algos]
        if not self.candidates or len(set(labels)) != len(labels):
            raise ValueError(f"Entry {self.env_id}: needs at least one candidate and unique labels, got {labels}")

    @property
    def algos(self) -> tuple[Algo, ...]:
        """Candidates first, then the reference (the order of the runs within a seed)."""
        return (*self.candidates, self.reference)

    def budget(self, profile: str) -> Budget:
        """The budget of ``profile`` (``quick`` or ``full``)."""
        if profile not in PROFILES:
            raise ValueError(f"Unknown profile {profile!r}; choose from {PROFILES}")
        return self.quick if profile == "quick" else self.full


@dataclass(frozen=True)
class Suite:
    """A named group of entries, e.g. ``trpo``: one line of :data:`benchmarks.suites.SUITES`."""

    name: str
    description: str
    entries: Sequence[Entry]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        env_ids = [entry.env_id for entry in self.entries]
        if len(set(env_ids)) != len(env_ids):
            raise ValueError(f"Suite {self.name}: each env may appear once, got {env_ids}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"Suite name {self.name!r} must be usable as a folder name")

    def select(self, only_env: Sequence[str] | None = None) -> tuple[Entry, ...]:
        """Entries restricted to ``only_env`` (all when None).

        :raises ValueError: for an env id the suite does not have.
        """
        if not only_env:
            return tuple(self.entries)
        known = {entry.env_id for entry in self.entries}
        unknown = sorted(set(only_env) - known)
        if unknown:
            raise ValueError(f"Suite {self.name} has no env {unknown}; it has {sorted(known)}")
        return tuple(entry for entry in self.entries if entry.env_id in only_env)


@dataclass(frozen=True)
class RunSpec:
    """One training run, as sent to the worker process and stored (with its results) in the JSONL."""

    suite: str
    profile: str
    env_id: str
    label: str
    role: str
    algo: str
    seed: int
    n_timesteps: int
    eval_freq: int
    n_eval_episodes: int
    n_final_episodes: int
    timeout_s: float
    hyperparams: dict[str, Any]
    zoo_file: str | None = None
    zoo_key: str | None = None
    device: str = "cpu"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> RunKey:
        """Identity of the run in ``results.jsonl`` (a finished run with this key is not run again)."""
        return (self.profile, self.env_id, self.label, self.seed, self.n_timesteps)

    @property
    def name(self) -> str:
        """File-system-safe name (``CartPole-v1__A2C__seed0__quick``)."""
        raw = f"{self.env_id}__{self.label}__seed{self.seed}__{self.profile}"
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", raw)

    def config_hash(self) -> str:
        """Hash of everything that determines the result (class, hyperparameters, budget, evaluation)."""
        config = {
            "algo": self.algo,
            "hyperparams": self.hyperparams,
            "n_timesteps": self.n_timesteps,
            "eval_freq": self.eval_freq,
            "n_eval_episodes": self.n_eval_episodes,
            "n_final_episodes": self.n_final_episodes,
        }
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


def record_key(record: Mapping[str, Any]) -> RunKey:
    """The :data:`RunKey` of a line of ``results.jsonl``."""
    return (record["profile"], record["env_id"], record["label"], int(record["seed"]), int(record["n_timesteps"]))


@dataclass(frozen=True)
class Resolved:
    """Hyperparameters of one algorithm on one env, still in zoo form (JSON-serializable)."""

    hyperparams: dict[str, Any]
    zoo_file: str | None
    zoo_key: str | None


def resolve_algo(algo: Algo, env_id: str, reference: tuple[Algo, Resolved] | None = None) -> Resolved:
    """YAML entry without ``algo.drop``, then ``algo.kwargs``, then the keys shared with the reference;
    ``n_timesteps`` dropped.

    :param reference: the entry's reference and its resolved hyperparameters, needed when
        ``algo.share_with_reference`` is not empty.
    """
    hyperparams: dict[str, Any] = {}
    zoo_file = zoo_key = None
    if algo.zoo is not None:
        hyperparams, path, zoo_key = load_zoo_entry(algo.zoo, env_id, algo.zoo_keys)
        zoo_file = display_path(path)
    for key in algo.drop:
        hyperparams.pop(key, None)
    hyperparams.update(json.loads(json.dumps(dict(algo.kwargs))))
    if algo.share_with_reference:
        if reference is None:
            raise ValueError(f"{algo.label}: share_with_reference needs the entry's reference")
        ref_algo, ref_resolved = reference
        for key in algo.share_with_reference:
            if key in ref_resolved.hyperparams:
                hyperparams[key] = ref_resolved.hyperparams[key]
            elif key == "n_envs":
                hyperparams[key] = 1  # the zoo's default
            else:
                hyperparams[key] = constructor_default(ref_algo.cls, key)
    hyperparams.pop("n_timesteps", None)
    hyperparams.setdefault("policy", "MlpPolicy")
    try:
        json.dumps(hyperparams)
    except TypeError as error:
        raise ValueError(f"{algo.label} on {env_id}: hyperparameters are not JSON-serializable: {error}") from None
    return Resolved(hyperparams=hyperparams, zoo_file=zoo_file, zoo_key=zoo_key)


def resolve_entry(entry: Entry) -> dict[str, Resolved]:
    """Resolved hyperparameters of every algorithm of ``entry``, by label."""
    ref = resolve_algo(entry.reference, entry.env_id)
    resolved = {entry.reference.label: ref}
    for algo in entry.candidates:
        resolved[algo.label] = resolve_algo(algo, entry.env_id, (entry.reference, ref))
    return resolved


def plan_runs(
    suite: Suite,
    profile: str,
    only_env: Sequence[str] | None = None,
    only_algo: Sequence[str] | None = None,
    device: str = "cpu",
    meta: Mapping[str, Any] | None = None,
) -> list[RunSpec]:
    """Every run of ``suite`` in ``profile``, in execution order.

    Within an entry the order interleaves the algorithms seed by seed (candidates then reference for
    seed 0, then for seed 1, ...), so candidate and reference see the same machine load and, with
    ``--jobs 2``, a candidate usually runs next to its reference.
    """
    runs: list[RunSpec] = []
    for entry in suite.select(only_env):
        budget = entry.budget(profile)
        resolved = resolve_entry(entry)
        algos = [algo for algo in entry.algos if not only_algo or algo.label in only_algo]
        for seed in range(budget.seeds):
            for algo in algos:
                if algo.max_seeds is not None and seed >= algo.max_seeds:
                    continue
                hp = resolved[algo.label]
                runs.append(
                    RunSpec(
                        suite=suite.name,
                        profile=profile,
                        env_id=entry.env_id,
                        label=algo.label,
                        role=REFERENCE if algo is entry.reference else CANDIDATE,
                        algo=algo.cls,
                        seed=seed,
                        n_timesteps=budget.timesteps,
                        eval_freq=budget.resolved_eval_freq,
                        n_eval_episodes=budget.n_eval_episodes,
                        n_final_episodes=budget.n_final_episodes,
                        timeout_s=budget.resolved_timeout_s,
                        hyperparams=hp.hyperparams,
                        zoo_file=hp.zoo_file,
                        zoo_key=hp.zoo_key,
                        device=device,
                        meta=dict(meta or {}),
                    )
                )
    return runs
