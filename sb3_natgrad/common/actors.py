"""Distributed actors for the off-policy algorithms: ``n_actors`` Ray actors step their own copies of the environment
with a copy of the policy and stream transitions to the learner's replay buffer (the "K parallel actors" of D4PG,
Barth-Maron et al., 2018, https://arxiv.org/abs/1804.08617, and of Ape-X, Horgan et al., 2018,
https://arxiv.org/abs/1803.00933). The engine is Ray (https://docs.ray.io, an optional dependency:
``pip install "sb3_natgrad[distributed]"``); no home-made RPC.

Three parts, one job each:

- :class:`RolloutWorker`, the actor (a plain class, run remotely through ``ray.remote``): its own ``VecEnv`` of
  ``n_envs`` environments, a copy of the policy refreshed when the learner publishes new weights, SB3's exploration
  (uniform actions before ``learning_starts``, ``action_noise``). Each call of :meth:`RolloutWorker.collect` returns
  a :class:`Chunk`: ``rows`` consecutive vectorised steps.
- :class:`ActorPool`, the learner's side: starts the actors, keeps at most two requests in flight per actor, hands
  out the received steps one vectorised step (a :class:`Row`) at a time, publishes weights, restarts dead or hung
  actors and shuts them down. Requests never ask for more steps than the learning budget has left.
- :class:`DistributedActorsMixin`, the algorithm's side: ``collect_rollouts`` takes its steps from the pool instead
  of stepping ``self.env`` (callbacks, ``num_timesteps``, episode statistics, logging and the replay ratio stay
  SB3's), and ``learn`` shuts the actors down in a ``finally``. With ``n_actors=0`` it calls SB3's methods unchanged.

A chunk is ``rows`` consecutive steps of each of the actor's ``n_envs`` environments, stored as ``rows`` consecutive
positions of the replay buffer (which has ``n_envs`` columns, as for the in-process loop). The step after a chunk's
last position in the buffer comes from another chunk, so the learner stores the last row as a time-limit truncation
(``done`` with ``TimeLimit.truncated``): an n-step return stops there and bootstraps from the true next observation,
as it does at a time limit. One-step targets are unchanged by the cut; an n-step target of the last ``n - 1`` rows of
a chunk is shorter than ``n``. Callbacks and episode statistics see the true ``dones``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback, RolloutReturn, TrainFreq
from stable_baselines3.common.utils import should_collect_more_steps
from stable_baselines3.common.vec_env import VecEnv

from sb3_natgrad.common.validation import check_int, check_number

INSTALL_HINT = 'pip install "sb3_natgrad[distributed]"  (or: pip install ray)'

# Requests a learner keeps in flight per actor: the actor steps the second while the first waits to be collected.
REQUESTS_PER_ACTOR = 2

# Keys of the infos kept for the learner: episode statistics (Monitor), success, and the time-limit flag.
_INFO_KEYS = ("episode", "is_success", "TimeLimit.truncated")

Observation = np.ndarray | dict[str, np.ndarray]


def acting_network(policy: BasePolicy) -> th.nn.Module:
    """The network that chooses the actions: ``policy.actor`` (SB3's TD3 and SAC policies, contrib's TQC)."""
    actor = getattr(policy, "actor", None)
    if not isinstance(actor, th.nn.Module):
        raise ValueError(f"n_actors > 0 needs a policy with an `actor` network, got {type(policy).__name__}")
    return actor


def require_ray() -> Any:
    """Import Ray, or raise ``ImportError`` saying what to install."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"n_actors > 0 runs the actors on Ray, which is not installed: {INSTALL_HINT}") from error
    return ray


# ---------------------------------------------------------------------------------------------------- OPTIONS
@dataclass(frozen=True)
class ActorOptions:
    """Validated options of the distributed actors (the algorithms' ``n_actors``, ``actor_sync_interval``,
    ``ray_address`` and ``actor_kwargs``).

    :param n_actors: number of Ray actors (0: SB3's in-process loop).
    :param sync_interval: the actors' policy is refreshed after every ``sync_interval`` gradient updates (at the first
        rollout after them).
    :param ray_address: address of a running Ray cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
        ``None``: the Ray instance already initialised in this process, else a new local one.
    :param chunk_size: vectorised steps per request (more: fewer messages, staler policy, more short n-step
        returns at the chunk ends).
    :param timeout: seconds a started actor may take to return a chunk; after it, the learner presumes it hung and
        restarts it.
    :param start_timeout: seconds an actor may take to start (a new process importing torch and building its
        environments); after it, the learner restarts it again.
    :param max_restarts: restarts allowed per actor; an actor that fails once more is retired, and the learner raises
        ``RuntimeError`` when none is left.
    :param num_cpus: CPUs Ray reserves for each actor (fractions allowed).
    :param env_fn: builds one environment for the actors (they wrap it in ``Monitor``); ``None``: ``gym.make`` of the
        learner's environment's spec.
    """

    n_actors: int = 0
    sync_interval: int = 100
    ray_address: str | None = None
    chunk_size: int = 64
    timeout: float = 60.0
    start_timeout: float = 300.0
    max_restarts: int = 3
    num_cpus: float = 1.0
    env_fn: Callable[[], gym.Env] | None = None

    @classmethod
    def from_arguments(
        cls,
        owner: str,
        n_actors: int,
        actor_sync_interval: int,
        ray_address: str | None,
        actor_kwargs: dict[str, Any] | None,
    ) -> ActorOptions:
        """The options from an algorithm's arguments; ``ValueError`` naming a bad value, ``ImportError`` for
        ``n_actors > 0`` without Ray."""
        check_int(owner, "n_actors", n_actors, low=0)
        check_int(owner, "actor_sync_interval", actor_sync_interval)
        if ray_address is not None and (not isinstance(ray_address, str) or not ray_address):
            raise ValueError(f"{owner}: ray_address must be a non-empty string or None, got {ray_address!r}")
        kwargs = dict(actor_kwargs or {})
        known = ("chunk_size", "timeout", "start_timeout", "max_restarts", "num_cpus", "env_fn")
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(f"{owner}: actor_kwargs keys must be among {list(known)}, got {unknown}")
        options = cls(n_actors=n_actors, sync_interval=actor_sync_interval, ray_address=ray_address, **kwargs)
        check_int(owner, "actor_kwargs['chunk_size']", options.chunk_size)
        check_number(owner, "actor_kwargs['timeout']", options.timeout, 0.0, low_open=True)
        check_number(owner, "actor_kwargs['start_timeout']", options.start_timeout, 0.0, low_open=True)
        check_int(owner, "actor_kwargs['max_restarts']", options.max_restarts, low=0)
        check_number(owner, "actor_kwargs['num_cpus']", options.num_cpus, 0.0)
        if options.env_fn is not None and not callable(options.env_fn):
            raise ValueError(f"{owner}: actor_kwargs['env_fn'] must be callable, got {options.env_fn!r}")
        if n_actors > 0:
            require_ray()
        return options


def env_fn_from_spec(owner: str, env: VecEnv) -> Callable[[], gym.Env]:
    """``gym.make`` of ``env``'s registered spec without SB3's ``Monitor`` (the actors add their own).

    Raises ``ValueError`` if the environment has no spec, or wrappers that ``gym.make`` cannot recreate (pass
    ``actor_kwargs={"env_fn": ...}`` then).
    """
    spec = env.get_attr("spec", indices=[0])[0]
    if spec is None:
        raise ValueError(
            f"{owner}: the environment has no registered spec for the actors to rebuild; pass "
            "actor_kwargs={'env_fn': <a function returning the environment>}"
        )
    wrappers = tuple(w for w in spec.additional_wrappers if w.entry_point != "stable_baselines3.common.monitor:Monitor")
    lost = [w.name for w in wrappers if w.kwargs is None]
    if lost:
        raise ValueError(
            f"{owner}: the actors cannot recreate the wrappers {lost} from the environment's spec; pass "
            "actor_kwargs={'env_fn': <a function returning the wrapped environment>}"
        )
    return functools.partial(gym.make, dataclasses.replace(spec, additional_wrappers=wrappers))


# ---------------------------------------------------------------------------------------------------- ACTOR SIDE
class Chunk(NamedTuple):
    """``rows`` consecutive vectorised steps of one actor (``T = rows``, ``n = n_envs``)."""

    actor: int  # index of the actor
    incarnation: int  # restarts of the actor before it sent this chunk
    observations: Observation  # [T, n, *obs]
    next_observations: Observation  # [T, n, *obs], the terminal observation where an episode ended
    actions: np.ndarray  # [T, n, *act] the actions as stored in the buffer (scaled to [-1, 1] for Box)
    rewards: np.ndarray  # [T, n] float32
    dones: np.ndarray  # [T, n] bool, episode ends (termination or truncation)
    infos: list[list[dict[str, Any]]]  # [T][n] infos reduced to _INFO_KEYS
    process: str  # a token of the actor's process: a new one after every restart
    sent: int  # transitions this process has sent, this chunk included


def _rows_of(observation: Observation, rows: int, n_envs: int) -> Observation:
    """Empty ``[rows, n_envs, *shape]`` storage shaped as one observation of the vec env."""
    if isinstance(observation, dict):
        return {key: np.empty((rows, *value.shape), dtype=value.dtype) for key, value in observation.items()}
    return np.empty((rows, *observation.shape), dtype=observation.dtype)


def _write(storage: Observation, row: int, observation: Observation) -> None:
    if isinstance(storage, dict):
        assert isinstance(observation, dict)
        for key, value in storage.items():
            value[row] = observation[key]
    else:
        storage[row] = observation


class RolloutWorker:
    """One actor: steps ``n_envs`` environments with a copy of the policy (see the module). Plain Python; the pool
    runs it remotely with ``ray.remote``, the tests run it in-process.

    :param policy_class: the learner's policy class, built here as the learner's ``_setup_model`` builds it.
    :param policy_args: ``(observation_space, action_space, lr_schedule, policy_kwargs)`` of the learner.
    :param env_fn: builds one environment.
    :param n_envs: environments stepped together (the learner's ``n_envs``: the buffer's columns).
    :param action_noise: exploration noise (copied), vectorised for ``n_envs > 1`` as by SB3.
    :param seed: the learner's seed; ``None``: not seeded.
    :param index: this actor's index; with ``seed`` and the incarnation, it seeds the environments, the uniform
        actions, the noise and torch (``np.random.SeedSequence([seed, index, incarnation])``).
    """

    def __init__(
        self,
        policy_class: type[BasePolicy],
        policy_args: tuple[spaces.Space, spaces.Space, Callable[[float], float], dict[str, Any]],
        env_fn: Callable[[], gym.Env],
        n_envs: int,
        action_noise: ActionNoise | None,
        seed: int | None,
        index: int,
    ) -> None:
        th.set_num_threads(1)  # small networks: threads only contend with the learner and the other actors
        observation_space, action_space, lr_schedule, policy_kwargs = policy_args
        self.policy = policy_class(observation_space, action_space, lr_schedule, **policy_kwargs).to("cpu")
        self.policy.set_training_mode(False)
        self.env_fn = env_fn
        self.n_envs = n_envs
        self.noise_template = action_noise
        self.seed = seed
        self.index = index
        self.incarnation = -1  # no environments yet
        self.version = -1  # no weights loaded yet
        self.process = uuid.uuid4().hex
        self.sent = 0

    def _start(self, incarnation: int) -> None:
        """(Re)build and seed the environments and the exploration for ``incarnation``."""
        if self.seed is None:
            env_seed, torch_seed, numpy_seed = np.random.SeedSequence().generate_state(3)
        else:
            env_seed, torch_seed, numpy_seed = np.random.SeedSequence([self.seed, self.index, incarnation]).generate_state(3)
        np.random.seed(int(numpy_seed))  # SB3's action noises draw from NumPy's global generator
        th.manual_seed(int(torch_seed))
        self.env = make_vec_env(self.env_fn, n_envs=self.n_envs, seed=int(env_seed) % 2**31)
        self.env.action_space.seed(int(numpy_seed))
        self.action_noise = copy.deepcopy(self.noise_template)
        if self.action_noise is not None and self.n_envs > 1 and not isinstance(self.action_noise, VectorizedActionNoise):
            self.action_noise = VectorizedActionNoise(self.action_noise, self.n_envs)
        self.observation = cast(Observation, self.env.reset())  # Box or Dict spaces: an array or a dict of arrays
        self.incarnation = incarnation

    def _action(self, uniform: bool) -> tuple[np.ndarray, np.ndarray]:
        """SB3's ``OffPolicyAlgorithm._sample_action``: the action for the env and the one for the buffer."""
        if uniform:
            unscaled = np.array([self.env.action_space.sample() for _ in range(self.n_envs)])
        else:
            unscaled, _ = self.policy.predict(self.observation, deterministic=False)  # type: ignore[arg-type]
        if not isinstance(self.env.action_space, spaces.Box):
            return unscaled, unscaled
        scaled = self.policy.scale_action(unscaled)
        if self.action_noise is not None:
            scaled = np.clip(scaled + self.action_noise(), -1, 1)
        return self.policy.unscale_action(scaled), scaled

    def collect(self, rows: int, uniform_rows: int, weights: list[Any], version: int, incarnation: int) -> Chunk:
        """Step the environments ``rows`` times.

        :param uniform_rows: the first ``uniform_rows`` steps take uniform random actions (before ``learning_starts``).
        :param weights: ``[ref]``, a Ray reference (or, in-process, the value) of the acting network's state dict as
            NumPy arrays; fetched only when ``version`` is new (in a list so that Ray does not fetch it every call).
        :param version: the weights' version.
        :param incarnation: the learner's count of this actor's restarts; a new one rebuilds and reseeds the envs.
        """
        if incarnation != self.incarnation:
            self._start(incarnation)
        if version != self.version:
            state = weights[0]
            if not isinstance(state, dict):
                state = require_ray().get(state)
            acting_network(self.policy).load_state_dict({key: th.tensor(value) for key, value in state.items()})
            self.version = version
        observations = _rows_of(self.observation, rows, self.n_envs)
        next_observations = _rows_of(self.observation, rows, self.n_envs)
        actions: np.ndarray | None = None
        rewards = np.empty((rows, self.n_envs), dtype=np.float32)
        dones = np.empty((rows, self.n_envs), dtype=bool)
        infos: list[list[dict[str, Any]]] = []
        for row in range(rows):
            action, buffer_action = self._action(uniform=row < uniform_rows)
            new_observation, reward, done, step_infos = self.env.step(action)
            if actions is None:
                actions = np.empty((rows, *buffer_action.shape), dtype=buffer_action.dtype)
            _write(observations, row, self.observation)
            _write(next_observations, row, cast(Observation, new_observation))
            for env_index in np.flatnonzero(done):  # the VecEnv has reset: the true next observation is in the infos
                terminal = step_infos[env_index].get("terminal_observation")
                if terminal is not None:
                    if isinstance(next_observations, dict):
                        for key, value in next_observations.items():
                            value[row, env_index] = terminal[key]
                    else:
                        next_observations[row, env_index] = terminal
                if self.action_noise is not None:
                    self.action_noise.reset(**({"indices": [env_index]} if self.n_envs > 1 else {}))
            actions[row] = buffer_action
            rewards[row] = reward
            dones[row] = done
            infos.append([{key: info[key] for key in _INFO_KEYS if key in info} for info in step_infos])
            self.observation = cast(Observation, new_observation)
        assert actions is not None
        self.sent += rows * self.n_envs
        return Chunk(
            self.index,
            self.incarnation,
            observations,
            next_observations,
            actions,
            rewards,
            dones,
            infos,
            self.process,
            self.sent,
        )

    def sent_transitions(self) -> int:
        """Transitions this process has returned from :meth:`collect`."""
        return self.sent


# ---------------------------------------------------------------------------------------------------- LEARNER SIDE
class Row(NamedTuple):
    """One vectorised step of a chunk, as the learner uses it."""

    observations: Observation  # [n, *obs]
    next_observations: Observation  # [n, *obs]
    actions: np.ndarray  # [n, *act]
    rewards: np.ndarray  # [n]
    dones: np.ndarray  # [n] true episode ends: callbacks, statistics
    infos: list[dict[str, Any]]
    buffer_dones: np.ndarray  # [n] what the buffer stores: the last row of a chunk is cut (see the module)
    buffer_infos: list[dict[str, Any]]


def chunk_row(chunk: Chunk, row: int) -> Row:
    """Row ``row`` of ``chunk``; the last row is stored as a time-limit truncation where no episode ended."""

    def take(observation: Observation) -> Observation:
        if isinstance(observation, dict):
            return {key: value[row] for key, value in observation.items()}
        return observation[row]

    dones, infos = chunk.dones[row], chunk.infos[row]
    buffer_dones, buffer_infos = dones, infos
    if row == len(chunk.rewards) - 1:
        buffer_dones = np.ones_like(dones)
        buffer_infos = [
            info if done else {**info, "TimeLimit.truncated": True} for info, done in zip(infos, dones, strict=True)
        ]
    return Row(
        take(chunk.observations),
        take(chunk.next_observations),
        chunk.actions[row],
        chunk.rewards[row],
        dones,
        infos,
        buffer_dones,
        buffer_infos,
    )


@dataclass
class ActorStats:
    """Counts of one actor slot, kept by the learner (transitions: steps x ``n_envs``)."""

    incarnation: int = 0  # restarts so far
    received: int = 0  # transitions received, all processes
    received_from_process: int = 0  # transitions received from the actor's current process
    stored: int = 0  # transitions put into the replay buffer
    lost: int = 0  # transitions requested from a failed process and never received
    sent: int | None = None  # the current process's own count, asked at shutdown (None: no answer)
    retired: bool = False  # failed more than max_restarts times
    process: str | None = None  # token of the process that sent the last chunk


@dataclass
class _Request:
    actor: int
    incarnation: int
    rows: int  # 0: a ping, asking a restarting actor whether it is up
    issued: float  # time.monotonic()


class ActorPool:
    """The learner's side of the actors (see the module): requests, weights, faults, shutdown.

    :param options: the validated options (``n_actors > 0``).
    :param worker_args: the :class:`RolloutWorker` arguments other than ``index``.
    :param n_envs: environments per actor.
    """

    def __init__(self, options: ActorOptions, worker_args: dict[str, Any], n_envs: int) -> None:
        self.ray = require_ray()
        self.options = options
        self.n_envs = n_envs
        if not self.ray.is_initialized():
            if options.ray_address is None:
                # A local instance without the dashboard (Ray's ports need its authentication token).
                self.ray.init(num_cpus=max(1, math.ceil(options.n_actors * options.num_cpus)), include_dashboard=False)
            else:
                self.ray.init(address=options.ray_address)
        remote_class = self.ray.remote(RolloutWorker).options(
            num_cpus=options.num_cpus,
            max_restarts=-1,  # restarts are counted (and limited) here, against options.max_restarts
            max_task_retries=0,  # a request to a dead actor fails; the learner asks again (new seeds, new weights)
        )
        self.handles = [remote_class.remote(**worker_args, index=index) for index in range(options.n_actors)]
        self.stats = [ActorStats() for _ in range(options.n_actors)]
        self.in_flight: dict[Any, _Request] = {}
        self.pending: deque[tuple[Chunk, int]] = deque()  # received chunks and the next row to hand out
        self.pending_rows = 0
        self.restarting: dict[int, float] = {}  # actor -> when its restart began
        self._next_actor = 0  # requests go to the actors in turn
        self.last_error: Exception | None = None
        for actor in range(options.n_actors):  # requests go to an actor once it answers a ping
            self.restarting[actor] = time.monotonic()
            self._ping(actor)
        self.weights: list[Any] = []
        self.version = -1

    # ------------------------------------------------------------------ weights
    def publish(self, acting_network: th.nn.Module) -> None:
        """Make ``acting_network``'s current parameters the ones of the next requests."""
        state = {key: value.detach().cpu().numpy() for key, value in acting_network.state_dict().items()}
        self.weights = [self.ray.put(state)]
        self.version += 1

    # ------------------------------------------------------------------ requests
    def _in_flight_rows(self) -> int:  # pings have rows=0
        return sum(request.rows for request in self.in_flight.values())

    def top_up(self, num_timesteps: int, total_timesteps: int, learning_starts: int) -> None:
        """Send requests, in turn, to the actors with fewer than ``REQUESTS_PER_ACTOR`` in flight, while the steps
        received or in flight stay within ``REQUESTS_PER_ACTOR`` chunks per live actor (the learner's backlog) and
        within the budget ``total_timesteps - num_timesteps``."""
        n_envs, chunk, n_actors = self.n_envs, self.options.chunk_size, len(self.handles)
        busy = [0] * n_actors
        for request in self.in_flight.values():
            busy[request.actor] += 1
        outstanding = self.pending_rows + self._in_flight_rows()
        cap = REQUESTS_PER_ACTOR * chunk * sum(not stats.retired for stats in self.stats)
        for turn in range(REQUESTS_PER_ACTOR * n_actors):
            actor = (self._next_actor + turn) % n_actors
            stats = self.stats[actor]
            start = num_timesteps + outstanding * n_envs  # the timestep this request's first step will have
            rows = min(chunk, math.ceil((total_timesteps - start) / n_envs))
            if rows <= 0 or outstanding + rows > cap:
                return
            if stats.retired or actor in self.restarting or busy[actor] >= REQUESTS_PER_ACTOR:
                continue
            uniform_rows = min(rows, max(0, math.ceil((learning_starts - start) / n_envs)))
            ref = self.handles[actor].collect.remote(rows, uniform_rows, self.weights, self.version, stats.incarnation)
            self.in_flight[ref] = _Request(actor, stats.incarnation, rows, time.monotonic())
            busy[actor] += 1
            outstanding += rows
            self._next_actor = (actor + 1) % n_actors

    def _receive(self, ref: Any) -> None:
        """Move a finished request's chunk into ``pending``; count a failed one as lost and restart its actor."""
        request = self.in_flight.pop(ref)
        stats = self.stats[request.actor]
        errors = self.ray.exceptions
        try:
            result = self.ray.get(ref, timeout=self.options.timeout)
        except (errors.RayActorError, errors.GetTimeoutError) as error:  # died, killed, restarting or gone for good
            stats.lost += request.rows * self.n_envs
            self.last_error = error
            if stats.retired:
                return
            if request.rows == 0:  # a ping to a (re)starting actor
                dead = isinstance(error, errors.ActorDiedError)  # Ray will not restart it (e.g. its constructor raised)
                if dead or time.monotonic() - self.restarting[request.actor] > self.options.start_timeout:
                    self._fail(request.actor, kill=not dead)
                else:  # not up yet
                    self._ping(request.actor)
            elif request.actor not in self.restarting and request.incarnation == stats.incarnation:
                self._fail(request.actor)  # the first failure seen of this process
            return
        if request.rows == 0:
            self.restarting.pop(request.actor, None)
            return
        chunk = cast(Chunk, result)
        if chunk.process != stats.process:  # a new process: the first, a restart seen as a failure, or an unseen one
            if stats.process is not None and chunk.incarnation == stats.incarnation:
                stats.incarnation += 1  # restarted (by Ray or by hand) between two requests: count it
            stats.process = chunk.process
            stats.received_from_process = 0
        transitions = len(chunk.rewards) * self.n_envs
        stats.received += transitions
        stats.received_from_process += transitions
        self.pending.append((chunk, 0))
        self.pending_rows += len(chunk.rewards)

    def _ping(self, actor: int) -> None:
        ref = self.handles[actor].sent_transitions.remote()
        self.in_flight[ref] = _Request(actor, self.stats[actor].incarnation, 0, time.monotonic())

    def _fail(self, actor: int, kill: bool = False) -> None:
        """An actor died (``kill=False``) or hung (``kill=True``: kill it): Ray restarts it (reruns its constructor);
        requests go to it again once a ping answers. After ``max_restarts`` restarts it is retired."""
        stats = self.stats[actor]
        if stats.incarnation >= self.options.max_restarts:
            self._retire(actor)
            return
        stats.incarnation += 1
        stats.process = None  # the next process is expected
        if kill:
            self.ray.kill(self.handles[actor], no_restart=False)
        self.restarting[actor] = time.monotonic()
        self._ping(actor)

    def _retire(self, actor: int) -> None:
        self.stats[actor].retired = True
        self.restarting.pop(actor, None)
        self.ray.kill(self.handles[actor], no_restart=True)
        if all(stats.retired for stats in self.stats):
            last = f"{type(self.last_error).__name__}: {self.last_error}"[:2000]
            raise RuntimeError(
                f"all {len(self.stats)} actors failed more than max_restarts={self.options.max_restarts} times; the "
                f"last error: {last}"
            ) from self.last_error

    def _wait(self) -> None:
        """Block until at least one request finishes (or fails); an actor whose chunk is ``timeout`` seconds late is
        presumed hung and restarted (killing its process also ends a hung ``env.step``)."""
        ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=self.options.timeout)
        for ref in ready:
            self._receive(ref)
        if ready:
            return
        now = time.monotonic()
        late = {r.actor for r in self.in_flight.values() if r.rows > 0 and now - r.issued >= self.options.timeout}
        for actor in late:
            if actor not in self.restarting:
                self._fail(actor, kill=True)

    def harvest(self) -> None:
        """Receive every finished request without blocking."""
        if self.in_flight:
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=0)
            for ref in ready:
                self._receive(ref)

    def next_row(self, num_timesteps: int, total_timesteps: int, learning_starts: int) -> tuple[Row, int] | None:
        """The next vectorised step and its actor's index, waiting for one if needed; ``None`` when the budget
        ``total_timesteps`` has been handed out (nothing received and nothing left to ask for)."""
        while not self.pending:
            self.top_up(num_timesteps, total_timesteps, learning_starts)
            collecting = any(request.rows for request in self.in_flight.values())
            if not collecting and (not self.restarting or num_timesteps >= total_timesteps):
                return None
            self._wait()
        chunk, row = self.pending[0]
        if row + 1 == len(chunk.rewards):
            self.pending.popleft()
        else:
            self.pending[0] = (chunk, row + 1)
        self.pending_rows -= 1
        return chunk_row(chunk, row), chunk.actor

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Ask each live actor how many transitions it sent (``stats[i].sent``), then kill them all; unreceived
        requests and steps not handed out are dropped."""
        queries = {
            index: handle.sent_transitions.remote()
            for index, (handle, stats) in enumerate(zip(self.handles, self.stats, strict=True))
            if not stats.retired
        }
        for index, ref in queries.items():
            try:
                self.stats[index].sent = self.ray.get(ref, timeout=min(self.options.timeout, 10.0))
            except (self.ray.exceptions.RayError, TimeoutError):
                self.stats[index].sent = None
        for handle in self.handles:
            self.ray.kill(handle, no_restart=True)
        for handle in self.handles:
            self._confirm_dead(handle)
        self.in_flight.clear()
        self.pending.clear()
        self.pending_rows = 0
        self.weights = []

    def _confirm_dead(self, handle: Any, attempts: int = 3) -> None:
        """``ray.kill`` is asynchronous, and a kill can be lost on an actor that Ray restarted shortly before (seen
        in tests/test_distributed_actors.py): call the actor until a call fails, killing it again while it answers."""
        for _ in range(attempts):
            try:
                self.ray.get(handle.sent_transitions.remote(), timeout=min(self.options.timeout, 10.0))
            except self.ray.exceptions.RayActorError:
                return
            except (self.ray.exceptions.RayError, TimeoutError):
                pass  # hung or failing otherwise: kill it again
            self.ray.kill(handle, no_restart=True)


# ---------------------------------------------------------------------------------------------------- ALGORITHM SIDE
SelfDistributed = TypeVar("SelfDistributed", bound="DistributedActorsMixin")

# Attributes that must not go into a saved model (Ray handles, live statistics).
ACTOR_EXCLUDED_SAVE_PARAMS = ("_actor_pool", "actor_stats")


class DistributedActorsMixin(OffPolicyAlgorithm):
    """``n_actors`` Ray actors for an off-policy algorithm (see the module). Put it first in the bases
    (``class D4PG(DistributedActorsMixin, OffPolicyAlgorithm)``), call :meth:`_init_actors` at the end of ``__init__``
    (after the replay buffer's class and kwargs are final); the mixin keeps ``ACTOR_EXCLUDED_SAVE_PARAMS`` out of
    saved models itself. The acting network is ``policy.actor`` (SB3's TD3 and SAC policies, contrib's TQC).

    The options are saved with the model as the flat arguments; the pool and the statistics are not.
    """

    n_actors: int
    actor_sync_interval: int
    ray_address: str | None
    actor_kwargs: dict[str, Any] | None
    actor_stats: list[ActorStats]
    _actor_pool: ActorPool | None
    _actors_synced_at: int

    def _init_actors(
        self,
        n_actors: int,
        actor_sync_interval: int,
        ray_address: str | None,
        actor_kwargs: dict[str, Any] | None,
    ) -> None:
        """Validate and store the options (``ValueError`` naming a bad value; ``ImportError`` without Ray)."""
        self.n_actors = n_actors
        self.actor_sync_interval = actor_sync_interval
        self.ray_address = ray_address
        self.actor_kwargs = actor_kwargs
        self.actor_stats = []
        self._actor_pool = None
        self._actors_synced_at = 0
        options = self._actor_options()
        if options.n_actors > 0:
            self._check_actor_support(options)

    def _actor_options(self) -> ActorOptions:
        return ActorOptions.from_arguments(
            type(self).__name__, self.n_actors, self.actor_sync_interval, self.ray_address, self.actor_kwargs
        )

    def _check_actor_support(self, options: ActorOptions) -> None:
        """What the actors cannot do, refused with a ``ValueError``."""
        owner = type(self).__name__
        if getattr(self, "_vec_normalize_env", None) is not None:
            raise ValueError(
                f"{owner}: n_actors > 0 does not support VecNormalize (the actors would not share its statistics)"
            )
        if self.optimize_memory_usage:
            raise ValueError(
                f"{owner}: n_actors > 0 needs optimize_memory_usage=False (chunks from several actors interleave)"
            )
        if not (self.replay_buffer_kwargs or {}).get("handle_timeout_termination", True):
            raise ValueError(
                f"{owner}: n_actors > 0 needs handle_timeout_termination=True in replay_buffer_kwargs (chunk ends are "
                "stored as truncations)"
            )
        if self.replay_buffer_class is not None and self.replay_buffer_class.__name__ == "HerReplayBuffer":
            raise ValueError(f"{owner}: n_actors > 0 does not support HerReplayBuffer")
        if getattr(self, "use_sde", False):
            raise ValueError(f"{owner}: n_actors > 0 does not support use_sde=True")
        if self.env is not None and options.env_fn is None:
            env_fn_from_spec(owner, self.env)

    def _start_actors(self) -> ActorPool:
        assert self.env is not None
        options = self._actor_options()
        self._check_actor_support(options)
        worker_args = {
            "policy_class": self.policy_class,
            "policy_args": (self.observation_space, self.action_space, self.lr_schedule, self.policy_kwargs),
            "env_fn": options.env_fn or env_fn_from_spec(type(self).__name__, self.env),
            "n_envs": self.n_envs,
            "action_noise": self.action_noise,
            "seed": self.seed,
        }
        pool = ActorPool(options, worker_args, self.n_envs)
        self.actor_stats = pool.stats
        pool.publish(acting_network(self.policy))
        self._actors_synced_at = self._n_updates
        return pool

    def _stop_actors(self) -> None:
        pool, self._actor_pool = getattr(self, "_actor_pool", None), None
        if pool is not None:
            pool.shutdown()

    def learn(
        self: SelfDistributed,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDistributed:
        """SB3's ``learn``; with actors, they are shut down when it returns or raises (an interrupt included)."""
        try:
            return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
        finally:
            self._stop_actors()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), *ACTOR_EXCLUDED_SAVE_PARAMS]

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        train_freq: TrainFreq,
        replay_buffer: ReplayBuffer,
        action_noise: ActionNoise | None = None,
        learning_starts: int = 0,
        log_interval: int | None = None,
    ) -> RolloutReturn:
        """SB3's ``collect_rollouts``; with actors, ``train_freq`` vectorised steps taken from them instead."""
        if not self.n_actors:
            return super().collect_rollouts(
                env, callback, train_freq, replay_buffer, action_noise, learning_starts, log_interval
            )
        return self._collect_from_actors(callback, train_freq, replay_buffer, learning_starts, log_interval)

    def _collect_from_actors(
        self,
        callback: BaseCallback,
        train_freq: TrainFreq,
        replay_buffer: ReplayBuffer,
        learning_starts: int,
        log_interval: int | None,
    ) -> RolloutReturn:
        """SB3's ``collect_rollouts`` loop on the actors' steps: the same callbacks, counters and logging."""
        if getattr(self, "_actor_pool", None) is None:  # absent on a model loaded from a file
            self._actor_pool = self._start_actors()
        assert self._actor_pool is not None
        pool = self._actor_pool
        if self._n_updates - self._actors_synced_at >= self.actor_sync_interval:
            pool.publish(acting_network(self.policy))
            self._actors_synced_at = self._n_updates
        pool.harvest()
        pool.top_up(self.num_timesteps, self._total_timesteps, learning_starts)

        n_envs = self.n_envs
        num_collected_steps, num_collected_episodes = 0, 0
        callback.on_rollout_start()
        while should_collect_more_steps(train_freq, num_collected_steps, num_collected_episodes):
            step = pool.next_row(self.num_timesteps, self._total_timesteps, learning_starts)
            if step is None:  # the budget is spent: SB3's learn() loop ends
                break
            row, actor = step
            self.num_timesteps += n_envs
            num_collected_steps += 1
            callback.update_locals(
                {"new_obs": row.next_observations, "rewards": row.rewards, "dones": row.dones, "infos": row.infos,
                 "actions": row.actions, "buffer_actions": row.actions, "actor": actor}
            )  # fmt: skip
            if not callback.on_step():
                return RolloutReturn(num_collected_steps * n_envs, num_collected_episodes, continue_training=False)
            self._update_info_buffer(row.infos, row.dones)
            replay_buffer.add(
                row.observations,  # type: ignore[arg-type]
                row.next_observations,  # type: ignore[arg-type]
                row.actions,
                row.rewards,
                row.buffer_dones,
                row.buffer_infos,
            )
            pool.stats[actor].stored += n_envs
            self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
            self._on_step()
            for done in row.dones:
                if done:
                    num_collected_episodes += 1
                    self._episode_num += 1
                    if log_interval is not None and self._episode_num % log_interval == 0:
                        self.dump_logs()
        callback.on_rollout_end()
        return RolloutReturn(num_collected_steps * n_envs, num_collected_episodes, continue_training=True)


__all__ = [
    "ACTOR_EXCLUDED_SAVE_PARAMS",
    "INSTALL_HINT",
    "ActorOptions",
    "ActorPool",
    "ActorStats",
    "Chunk",
    "DistributedActorsMixin",
    "RolloutWorker",
    "Row",
    "acting_network",
    "chunk_row",
    "env_fn_from_spec",
    "require_ray",
]
