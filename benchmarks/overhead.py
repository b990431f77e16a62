"""Cost of ``train()`` alone: candidate against reference on identical data.

Whole-run wall-clock mixes environment stepping, evaluation and noise from other processes with the
cost of the update itself. Here both models are built on the same env with the reference's network and
batch (``policy``, ``policy_kwargs``, ``n_envs``, ``n_steps``, ``batch_size`` where the candidate takes
them), the candidate starts from the reference's parameters when the policies match, one batch of data is
collected by the reference and copied into the candidate's buffer, and ``train()`` calls are timed
alternately (ABBA order). Before every call the parameters, optimizer states (everything listed by
``_get_torch_save_params``), the buffer and the random seeds are restored, so every call does the same
work.

On-policy algorithms: one rollout (``_setup_learn`` + ``collect_rollouts``) and ``train()``. Off-policy
algorithms: the reference's replay buffer is filled by ``learn(fill_steps)`` with ``learning_starts =
fill_steps`` (so no update happens), and ``train(gradient_steps, batch_size)`` is timed; a prioritized candidate
buffer gets the priorities new transitions get (or the reference's, when that one is prioritized too). Another kind of
algorithm is a new :class:`TrainProtocol`.

With ``learn_steps > 0`` (``--learn-steps``) the whole ``learn(learn_steps)`` is timed as well: a fresh pair
of models (same seed, same hyperparameters as above) per call, alternating in ABBA order in the same
process, so that both see the same machine load; environment stepping is included, model construction is not.
"""

from __future__ import annotations

import copy
import inspect
import os
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.spec import Suite, load_class, resolve_entry
from benchmarks.zoo import ZooConfig, build_vec_env, convert_hyperparams, make_action_noise

#: Hyperparameters the candidate takes from the reference (when its constructor accepts them).
SHARED_KEYS = ("policy", "policy_kwargs", "n_envs", "n_steps", "batch_size")

#: Zoo keys that are not constructor arguments but are shared all the same.
_ZOO_SHARED_KEYS = frozenset({"n_envs"})


@dataclass(frozen=True)
class OverheadSettings:
    """How long to measure.

    :param repeats: timed ``train()`` calls per model.
    :param warmup: untimed calls per model before timing.
    :param fill_steps: off-policy only: transitions collected into the replay buffer.
    :param gradient_steps: off-policy only: gradient steps per timed ``train()`` call.
    :param seed: seed of models, environment and of every timed call.
    :param train_calls: consecutive ``train()`` calls per timed block (the time reported is per call), e.g.
        K-FAC's ``inverse_interval`` so that work done every few updates is amortised as in training.
    :param learn_steps: if > 0, also time ``learn(learn_steps)`` of fresh models, ``learn_repeats`` calls each.
    :param learn_repeats: timed ``learn()`` calls per model.
    """

    repeats: int
    warmup: int = 1
    fill_steps: int = 2_000
    gradient_steps: int = 64
    seed: int = 0
    train_calls: int = 1
    learn_steps: int = 0
    learn_repeats: int = 4


#: Settings per profile.
OVERHEAD_PROFILES = {"quick": OverheadSettings(repeats=10), "full": OverheadSettings(repeats=40, warmup=3)}


def _accepts(cls: type, key: str) -> bool:
    return key in inspect.signature(cls).parameters


def matched_hyperparams(candidate_hp: dict[str, Any], reference_hp: dict[str, Any], candidate_cls: type) -> dict[str, Any]:
    """The candidate's hyperparameters with the reference's network and batch (:data:`SHARED_KEYS`)."""
    matched = dict(candidate_hp)
    for key in SHARED_KEYS:
        if key in reference_hp and (key in _ZOO_SHARED_KEYS or _accepts(candidate_cls, key)):
            matched[key] = reference_hp[key]
    return matched


def copy_buffer(source: Any, target: Any) -> None:
    """Copy the data of one SB3 buffer into another of the same geometry (arrays, ``pos``, ``full``).

    :raises ValueError: when an array the two share has another shape in the target.
    """
    for name, value in vars(source).items():
        if isinstance(value, np.ndarray | dict) and hasattr(target, name):
            current = getattr(target, name)
            shapes = (
                ({k: v.shape for k, v in value.items()}, {k: v.shape for k, v in current.items()})
                if isinstance(value, dict)
                else (value.shape, getattr(current, "shape", None))
            )
            if shapes[0] != shapes[1]:
                raise ValueError(f"Buffer field {name!r}: reference shape {shapes[0]} != candidate shape {shapes[1]}")
            setattr(target, name, copy.deepcopy(value))
    for name in ("pos", "full", "generator_ready"):
        if hasattr(source, name):
            setattr(target, name, getattr(source, name))
    _copy_priorities(source, target)


def _copy_priorities(source: Any, target: Any) -> None:
    """Priorities of the copied transitions when ``target`` is a prioritized buffer (sb3_natgrad's
    ``PrioritizedMixin``: a sum/min tree beside the arrays, which :func:`copy_buffer` does not see).

    From a prioritized ``source`` the tree and the running maximum are copied; from any other buffer every stored
    transition gets the priority ``add()`` gives a new one, as if the target had collected the data itself.
    Other targets are left alone.
    """
    from sb3_natgrad.common.prioritized_replay import PrioritizedMixin

    if not isinstance(target, PrioritizedMixin):
        return
    if isinstance(source, PrioritizedMixin):
        if source.tree.capacity != target.tree.capacity:
            raise ValueError(f"Priority trees: reference capacity {source.tree.capacity} != candidate {target.tree.capacity}")
        target.tree = copy.deepcopy(source.tree)
        target.max_priority = source.max_priority
        return
    buffer: Any = target  # a PrioritizedMixin is always mixed into an SB3 buffer
    stored = buffer.buffer_size if buffer.full else buffer.pos
    for position in range(stored):
        buffer._prioritize_new(position)


class _Snapshot:
    """Everything a ``train()`` call changes: torch state (``_get_torch_save_params``) and the buffer."""

    def __init__(self, model: Any, buffer: Any) -> None:
        from stable_baselines3.common.save_util import recursive_getattr

        state_dicts, variables = model._get_torch_save_params()
        self._states = {name: copy.deepcopy(recursive_getattr(model, name).state_dict()) for name in state_dicts}
        self._variables = {name: recursive_getattr(model, name).detach().clone() for name in variables}
        self._buffer = copy.deepcopy(vars(buffer))

    def restore(self, model: Any, buffer: Any) -> None:
        import torch
        from stable_baselines3.common.save_util import recursive_getattr

        for name, state in self._states.items():
            # Deep copy again: optimizers keep the loaded tensors and update them in place.
            recursive_getattr(model, name).load_state_dict(copy.deepcopy(state))
        with torch.no_grad():
            for name, value in self._variables.items():
                recursive_getattr(model, name).copy_(value)
        vars(buffer).update(copy.deepcopy(self._buffer))


class TrainProtocol(ABC):
    """How to get one batch of data into a kind of algorithm and time its update."""

    kind: str

    def overrides(self, settings: OverheadSettings) -> dict[str, Any]:
        """Constructor arguments both models need for the measurement."""
        return {}

    @abstractmethod
    def prepare(self, reference: Any, candidate: Any, settings: OverheadSettings) -> None:
        """Collect data with ``reference`` and copy it into ``candidate``'s buffer."""

    @abstractmethod
    def buffer(self, model: Any) -> Any:
        """The buffer ``train()`` reads."""

    @abstractmethod
    def train(self, model: Any, settings: OverheadSettings) -> None:
        """One update, the thing being timed."""

    @abstractmethod
    def samples_per_call(self, model: Any, settings: OverheadSettings) -> int:
        """Transitions one ``train()`` call consumes (per epoch for on-policy algorithms)."""


class OnPolicyProtocol(TrainProtocol):
    """One rollout of ``n_steps x n_envs`` transitions; ``train()`` runs the algorithm's full update on it."""

    kind = "on-policy"

    def prepare(self, reference: Any, candidate: Any, settings: OverheadSettings) -> None:
        total = reference.n_steps * reference.n_envs
        _, callback = reference._setup_learn(total, callback=None)
        callback.on_training_start(locals(), globals())
        reference.collect_rollouts(reference.env, callback, reference.rollout_buffer, n_rollout_steps=reference.n_steps)
        candidate._setup_learn(total, callback=None)
        copy_buffer(reference.rollout_buffer, candidate.rollout_buffer)

    def buffer(self, model: Any) -> Any:
        return model.rollout_buffer

    def train(self, model: Any, settings: OverheadSettings) -> None:
        model.train()

    def samples_per_call(self, model: Any, settings: OverheadSettings) -> int:
        return int(model.n_steps * model.n_envs)


class OffPolicyProtocol(TrainProtocol):
    """A replay buffer of ``fill_steps`` transitions; ``train(gradient_steps, batch_size)``."""

    kind = "off-policy"

    def overrides(self, settings: OverheadSettings) -> dict[str, Any]:
        return {"buffer_size": settings.fill_steps, "learning_starts": settings.fill_steps}

    def prepare(self, reference: Any, candidate: Any, settings: OverheadSettings) -> None:
        reference.learn(settings.fill_steps)
        candidate._setup_learn(settings.fill_steps, callback=None)
        copy_buffer(reference.replay_buffer, candidate.replay_buffer)

    def buffer(self, model: Any) -> Any:
        return model.replay_buffer

    def train(self, model: Any, settings: OverheadSettings) -> None:
        model.train(gradient_steps=settings.gradient_steps, batch_size=model.batch_size)

    def samples_per_call(self, model: Any, settings: OverheadSettings) -> int:
        return int(settings.gradient_steps * model.batch_size)


def protocol_for(cls: type) -> TrainProtocol:
    """The protocol for an algorithm class.

    :raises TypeError: for a class that is neither an ``OnPolicyAlgorithm`` nor an ``OffPolicyAlgorithm``.
    """
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    if issubclass(cls, OnPolicyAlgorithm):
        return OnPolicyProtocol()
    if issubclass(cls, OffPolicyAlgorithm):
        return OffPolicyProtocol()
    raise TypeError(f"No overhead protocol for {cls.__name__}: add a TrainProtocol for it in benchmarks/overhead.py")


def _build(cls: type, config: ZooConfig, env: Any, extra: dict[str, Any], seed: int) -> Any:
    kwargs = {**config.algo_kwargs, **extra}
    noise = make_action_noise(config, env.action_space)
    if noise is not None:
        kwargs["action_noise"] = noise
    return cls(env=env, seed=seed, verbose=0, device="cpu", **kwargs)


def _time_call(protocol: TrainProtocol, model: Any, snapshot: _Snapshot, settings: OverheadSettings) -> float:
    from stable_baselines3.common.utils import set_random_seed

    snapshot.restore(model, protocol.buffer(model))
    set_random_seed(settings.seed)
    start = time.perf_counter()
    for _ in range(settings.train_calls):
        protocol.train(model, settings)
    return (time.perf_counter() - start) / settings.train_calls


def _time_learn(
    env_id: str, candidate: tuple[type, ZooConfig], reference: tuple[type, ZooConfig], settings: OverheadSettings
) -> dict[str, Any]:
    """``learn(settings.learn_steps)`` of fresh models, candidate and reference alternating (ABBA)."""
    times: dict[str, list[float]] = {"candidate": [], "reference": []}
    pairs = {"candidate": candidate, "reference": reference}
    ref_config = reference[1]
    for i in range(settings.learn_repeats):
        order = ("candidate", "reference") if i % 2 == 0 else ("reference", "candidate")
        for role in order:
            cls, config = pairs[role]
            model = _build(cls, config, build_vec_env(env_id, ref_config, ref_config.n_envs, settings.seed), {}, settings.seed)
            start = time.perf_counter()
            model.learn(settings.learn_steps)
            times[role].append(time.perf_counter() - start)
            model.env.close()
    ratios = np.asarray(times["candidate"]) / np.asarray(times["reference"])
    return {
        "learn_steps": settings.learn_steps,
        "learn_candidate_times_s": times["candidate"],
        "learn_reference_times_s": times["reference"],
        "learn_median_ratio": float(np.median(ratios)),
    }


def measure_pair(
    env_id: str,
    candidate: tuple[str, str, dict[str, Any]],
    reference: tuple[str, str, dict[str, Any]],
    settings: OverheadSettings,
) -> dict[str, Any]:
    """Time ``train()`` of a candidate against a reference on the same data.

    :param candidate: ``(label, class path, zoo-style hyperparameters)``; the reference likewise.
    :return: a JSON-serializable record with all timings, medians and the median paired ratio.
    """
    import torch

    torch.set_num_threads(1)
    cand_label, cand_path, cand_hp = candidate
    ref_label, ref_path, ref_hp = reference
    cand_cls, ref_cls = load_class(cand_path), load_class(ref_path)
    protocol = protocol_for(ref_cls)
    if type(protocol_for(cand_cls)) is not type(protocol):
        raise TypeError(f"{cand_label} and {ref_label} are not the same kind of algorithm ({protocol.kind} reference)")
    matched_hp = matched_hyperparams(cand_hp, ref_hp, cand_cls)
    ref_config, cand_config = convert_hyperparams(ref_hp), convert_hyperparams(matched_hp)
    extra = protocol.overrides(settings)
    ref_model = _build(
        ref_cls, ref_config, build_vec_env(env_id, ref_config, ref_config.n_envs, settings.seed), extra, settings.seed
    )
    cand_model = _build(
        cand_cls, cand_config, build_vec_env(env_id, ref_config, ref_config.n_envs, settings.seed), extra, settings.seed
    )
    try:
        cand_model.policy.load_state_dict(ref_model.policy.state_dict())
        same_parameters = True
    except RuntimeError:
        same_parameters = False
    protocol.prepare(ref_model, cand_model, settings)
    load_before = os.getloadavg()
    snapshots = {id(model): _Snapshot(model, protocol.buffer(model)) for model in (ref_model, cand_model)}

    times: dict[str, list[float]] = {"candidate": [], "reference": []}
    models = {"candidate": cand_model, "reference": ref_model}
    for _ in range(settings.warmup):
        for model in (cand_model, ref_model):
            _time_call(protocol, model, snapshots[id(model)], settings)
    for i in range(settings.repeats):
        order = ("candidate", "reference") if i % 2 == 0 else ("reference", "candidate")
        for role in order:
            model = models[role]
            times[role].append(_time_call(protocol, model, snapshots[id(model)], settings))

    load_after = os.getloadavg()
    ratios = np.asarray(times["candidate"]) / np.asarray(times["reference"])
    learn = _time_learn(env_id, (cand_cls, cand_config), (ref_cls, ref_config), settings) if settings.learn_steps > 0 else {}
    return {
        **learn,
        "env_id": env_id,
        "candidate": cand_label,
        "candidate_algo": cand_path,
        "reference": ref_label,
        "reference_algo": ref_path,
        "kind": protocol.kind,
        "samples_per_call": protocol.samples_per_call(ref_model, settings),
        "same_initial_parameters": same_parameters,
        "settings": asdict(settings),
        "candidate_hyperparams": matched_hp,
        "reference_hyperparams": ref_hp,
        "candidate_times_s": times["candidate"],
        "reference_times_s": times["reference"],
        "median_candidate_s": float(np.median(times["candidate"])),
        "median_reference_s": float(np.median(times["reference"])),
        "median_ratio": float(np.median(ratios)),
        "ratio_q25": float(np.quantile(ratios, 0.25)),
        "ratio_q75": float(np.quantile(ratios, 0.75)),
        # 1/5/15-minute load averages before and after the timed train() calls (other processes on the machine).
        "load_average": {"before": list(load_before), "after": list(load_after), "cpu_count": os.cpu_count()},
    }


def measure_suite(
    suite: Suite,
    settings: OverheadSettings,
    only_env: Sequence[str] | None = None,
    only_algo: Sequence[str] | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """:func:`measure_pair` for every candidate of every (selected) entry of ``suite``."""
    results = []
    for entry in suite.select(only_env):
        resolved = resolve_entry(entry)
        ref = entry.reference
        for algo in entry.candidates:
            if only_algo and algo.label not in only_algo:
                continue
            result = measure_pair(
                entry.env_id,
                (algo.label, algo.cls, resolved[algo.label].hyperparams),
                (ref.label, ref.cls, resolved[ref.label].hyperparams),
                settings,
            )
            log(
                f"{entry.env_id} | {algo.label} vs {ref.label}: train() {result['median_candidate_s'] * 1e3:.1f} ms vs "
                f"{result['median_reference_s'] * 1e3:.1f} ms, median ratio {result['median_ratio']:.3f}"
            )
            results.append(result)
    return results


def _train_calls(result: dict[str, Any]) -> int:
    return int(result["settings"].get("train_calls", 1))


def render_markdown(document: dict[str, Any]) -> str:
    """``overhead.md`` from the ``overhead.json`` document."""
    lines = [
        f"# `train()` overhead — suite `{document['suite']}`, profile `{document['profile']}`",
        "",
        "Generated by `python -m benchmarks speed` (do not edit by hand). Both models train on the same "
        "batch collected by the reference, with the reference's network and batch sizes; parameters, optimizer "
        "states, buffer and seeds are restored before every timed block of consecutive calls (times are per call), "
        "and blocks alternate in ABBA order.",
        "",
        "| Env | Candidate | Reference | Kind | Samples per call | Candidate median (ms) | Reference median (ms) "
        "| Ratio cand./ref. (median of pairs) | Ratio IQR | Calls | Same initial parameters |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in document["results"]:
        lines.append(
            f"| {r['env_id']} | {r['candidate']} (`{r['candidate_algo']}`) | {r['reference']} (`{r['reference_algo']}`) "
            f"| {r['kind']} | {r['samples_per_call']:,} "
            f"| {r['median_candidate_s'] * 1e3:.2f} | {r['median_reference_s'] * 1e3:.2f} "
            f"| {r['median_ratio']:.3f} | {r['ratio_q25']:.3f}-{r['ratio_q75']:.3f} | {len(r['candidate_times_s'])} "
            f"| {'yes' if r['same_initial_parameters'] else 'no'} |"
        )
    learned = [r for r in document["results"] if r.get("learn_steps")]
    if learned:
        lines += [
            "",
            "## Whole `learn()`",
            "",
            "Fresh models per call (same seed and hyperparameters as above), candidate and reference alternating "
            "in ABBA order in one process; environment stepping included, model construction excluded.",
            "",
            "| Env | Candidate | Reference | Steps per call | Candidate median (s) | Reference median (s) "
            "| Ratio cand./ref. (median of pairs) | Calls |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in learned:
            lines.append(
                f"| {r['env_id']} | {r['candidate']} | {r['reference']} | {r['learn_steps']:,} "
                f"| {np.median(r['learn_candidate_times_s']):.2f} | {np.median(r['learn_reference_times_s']):.2f} "
                f"| {r['learn_median_ratio']:.3f} | {len(r['learn_candidate_times_s'])} |"
            )
    loads = [r for r in document["results"] if "load_average" in r]
    if loads:
        lines += [
            "",
            "Load average (1 / 5 / 15 min) before and after the timed `train()` calls of each pair, on "
            f"{loads[0]['load_average']['cpu_count']} CPUs:",
            "",
        ]
        for r in loads:
            before, after = (" / ".join(f"{x:.2f}" for x in r["load_average"][k]) for k in ("before", "after"))
            lines.append(f"- {r['env_id']} | {r['candidate']} vs {r['reference']}: {before} -> {after}")
    lines += [
        "",
        f"- Consecutive `train()` calls per timed block: {sorted({_train_calls(r) for r in document['results']})}",
        f"- CPU: {document['cpu']}; torch threads: 1; created {document['created_at']}; "
        f"commit {str(document.get('git_commit'))[:10]}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in sorted(document['versions'].items()))}",
        "- On-policy samples per call = n_steps x n_envs (each algorithm makes its own number of passes over them); "
        "off-policy = gradient_steps x batch_size.",
    ]
    return "\n".join(lines) + "\n"


def write_overhead(out_dir: Path, suite: Suite, profile: str, results: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write ``overhead.json`` and ``overhead.md``; results of pairs not measured now are kept from the old file."""
    import json

    from benchmarks.harness import git_commit
    from benchmarks.worker import cpu_name, library_versions

    json_path, md_path = out_dir / "overhead.json", out_dir / "overhead.md"
    previous: list[dict[str, Any]] = []
    if json_path.exists():
        old = json.loads(json_path.read_text())
        if old.get("profile") == profile:
            previous = old["results"]
    measured = {(r["env_id"], r["candidate"]) for r in results}
    document = {
        "suite": suite.name,
        "profile": profile,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "python": platform.python_version(),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "results": [r for r in previous if (r["env_id"], r["candidate"]) not in measured] + results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    md_path.write_text(render_markdown(document))
    return json_path, md_path
