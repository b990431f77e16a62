"""The table of comparisons: one :class:`~benchmarks.spec.Suite` per algorithm family.

Adding an algorithm's benchmark is adding one ``Suite`` (a list of entries) to :data:`SUITES`. Classes
are import-path strings resolved only when a run starts, so a suite may name a class before it exists.
Hyperparameters come from zoo YAMLs (``"trpo"`` = this repository's ``hyperparams/trpo.yml`` when it
exists, else rl-zoo3's; ``"rl_zoo3:a2c"`` = rl-zoo3's); ``kwargs`` override single keys in zoo syntax.

Budgets of the ``full`` profile are the zoo's ``n_timesteps`` unless the issue fixes them; the
``quick`` profile is a short end-to-end check (a few minutes on two cores), not a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from benchmarks.spec import Algo, Budget, Entry, Suite

#: Budgets of the MuJoCo speed and paper-set-up suites: the trpo suite's 1M-step evaluation (the `full` profiles
#: of trpo_speed and acktr_speed train like trpo and acktr_paper, so their returns are comparable).
MUJOCO_QUICK = Budget(20_000, seeds=2, n_eval_episodes=3, n_final_episodes=5)
MUJOCO_1M = Budget(1_000_000, seeds=3, eval_freq=50_000, n_eval_episodes=5, n_final_episodes=10)


def _mujoco_pair_suite(
    name: str, description: str, algos: Callable[[str], tuple[Algo, list[Algo]]], full: Budget = MUJOCO_1M
) -> Suite:
    """A suite of HalfCheetah-v5 and Hopper-v5 with the MuJoCo 1M budgets.

    :param algos: ``algos(zoo_key)`` gives the entry's reference and candidates (the zoo's YAML files know the
        envs as -v4).
    :param full: the ``full`` profile's budget.
    """
    entries = []
    for env_id, zoo_key in (("HalfCheetah-v5", "HalfCheetah-v4"), ("Hopper-v5", "Hopper-v4")):
        reference, candidates = algos(zoo_key)
        entries.append(Entry(env_id, reference=reference, candidates=candidates, quick=MUJOCO_QUICK, full=full))
    return Suite(name=name, description=description, entries=entries)


# --------------------------------------------------------------------------------------------------
# smoke: two existing SB3 algorithms, to check the harness itself end to end.
# --------------------------------------------------------------------------------------------------
SMOKE = Suite(
    name="smoke",
    description="Harness check: SB3 A2C and its Adam variant (candidates) against SB3 PPO (reference), zoo hyperparameters.",
    entries=[
        Entry(
            "CartPole-v1",
            reference=Algo("PPO", "stable_baselines3:PPO", zoo="rl_zoo3:ppo"),
            candidates=[
                Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c"),
                # A variant of a candidate is one more Algo with a kwargs override (here: Adam instead of RMSprop).
                Algo("A2C use_rms_prop=False", "stable_baselines3:A2C", zoo="rl_zoo3:a2c", kwargs={"use_rms_prop": False}),
            ],
            quick=Budget(50_000, seeds=3, eval_freq=5_000, n_eval_episodes=5, n_final_episodes=10),
            full=Budget(100_000, seeds=5, eval_freq=5_000, n_eval_episodes=10, n_final_episodes=20),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# trpo: sb3_natgrad's TRPO against sb3-contrib's, identical zoo hyperparameters (hyperparams/trpo.yml,
# rl-zoo3's trpo.yml until that file exists), plus two variants of the candidate.
# --------------------------------------------------------------------------------------------------
def _trpo_entry(env_id: str, full_steps: int, quick_steps: int, zoo_keys: tuple[str, ...] = ()) -> Entry:
    """One env of the ``trpo`` suite: contrib TRPO, natgrad TRPO and its two variants."""
    return Entry(
        env_id,
        reference=Algo("TRPO (sb3-contrib)", "sb3_contrib:TRPO", zoo="trpo", zoo_keys=zoo_keys),
        candidates=[
            Algo("TRPO", "sb3_natgrad:TRPO", zoo="trpo", zoo_keys=zoo_keys),
            Algo(
                "TRPO critic=trust_region",
                "sb3_natgrad:TRPO",
                zoo="trpo",
                zoo_keys=zoo_keys,
                kwargs={"critic": "trust_region"},
            ),
            Algo("TRPO line_search=False", "sb3_natgrad:TRPO", zoo="trpo", zoo_keys=zoo_keys, kwargs={"line_search": False}),
        ],
        quick=Budget(quick_steps, seeds=2, n_eval_episodes=3, n_final_episodes=5),
        full=Budget(full_steps, seeds=3, eval_freq=full_steps // 20, n_eval_episodes=5, n_final_episodes=10),
    )


TRPO = Suite(
    name="trpo",
    description="sb3_natgrad TRPO (and its critic=trust_region / line_search=False variants) against sb3-contrib TRPO.",
    entries=[
        _trpo_entry("CartPole-v1", 100_000, 20_000),
        _trpo_entry("Pendulum-v1", 100_000, 20_000),
        _trpo_entry("LunarLander-v3", 200_000, 20_000),
        _trpo_entry("HalfCheetah-v5", 1_000_000, 20_000, zoo_keys=("HalfCheetah-v4",)),
        _trpo_entry("Hopper-v5", 1_000_000, 20_000, zoo_keys=("Hopper-v4",)),
    ],
)


# --------------------------------------------------------------------------------------------------
# trpo_speed: the train() timing set-up, 2048 samples per update (2 envs x 1024 steps), zoo MuJoCo
# settings otherwise, with a 64x64 and a 256x256 network (one env each: a suite has one entry per env).
# Meant for `speed`; its `full` profile trains like the `trpo` suite.
# --------------------------------------------------------------------------------------------------
def _trpo_speed_entry(env_id: str, width: int, zoo_key: str) -> Entry:
    net = f"dict(net_arch=dict(pi=[{width}, {width}], vf=[{width}, {width}]))"
    common = {"n_envs": 2, "n_steps": 1024, "policy_kwargs": net}
    return Entry(
        env_id,
        reference=Algo(
            f"TRPO (sb3-contrib) {width}x{width}", "sb3_contrib:TRPO", zoo="trpo", zoo_keys=(zoo_key,), kwargs=common
        ),
        candidates=[
            Algo(f"TRPO {width}x{width}", "sb3_natgrad:TRPO", zoo="trpo", zoo_keys=(zoo_key,), kwargs=common),
            Algo(
                f"TRPO line_search=False {width}x{width}",
                "sb3_natgrad:TRPO",
                zoo="trpo",
                zoo_keys=(zoo_key,),
                kwargs={**common, "line_search": False},
            ),
        ],
        quick=MUJOCO_QUICK,
        full=MUJOCO_1M,
    )


TRPO_SPEED = Suite(
    name="trpo_speed",
    description="train() time of sb3_natgrad TRPO vs sb3-contrib TRPO at 2048 samples per update, 64x64 and 256x256 MLPs.",
    entries=[
        _trpo_speed_entry("HalfCheetah-v5", 64, "HalfCheetah-v4"),
        _trpo_speed_entry("Hopper-v5", 256, "Hopper-v4"),
    ],
)


# --------------------------------------------------------------------------------------------------
# acktr: sb3_natgrad's ACKTR (hyperparams/acktr.yml) against SB3 A2C (rl-zoo3's a2c.yml), with the
# reference's n_envs, n_steps and network so that both see the same batches.
# --------------------------------------------------------------------------------------------------
_SAME_BATCH_AND_NETWORK = ("n_envs", "n_steps", "policy_kwargs")


#: Settings of ACKTR's MuJoCo YAML entries tuned for their own ~2500-sample batch, not used at A2C's 5 samples
#: (standardised advantages put every step on the trust region; a KL measured on 5 samples is noise).
ACKTR_PAPER_BATCH_ONLY = ("target_kl", "normalize_advantage", "kl_batch_size", "stats_interval")
#: Trust regions at A2C's batch, on the scale of one A2C update (docs/benchmarks/findings.md); eta_max 1 puts every
#: actor step on its trust region, as RMSprop normalises A2C's step.
ACKTR_AT_A2C_BATCH = {"learning_rate": 1.0, "kl_clip": 0.001, "vf_kl_clip": 0.01}
#: Hopper at A2C's batch: a smaller actor trust region, a slower critic and gSDE kept the action std from collapsing.
ACKTR_HOPPER_AT_A2C_BATCH = {**ACKTR_AT_A2C_BATCH, "kl_clip": 0.0002, "vf_learning_rate": 0.005, "use_sde": True}
#: Fisher statistics every 6th update, the running average's decay matched to the same memory (0.99^6 = 0.94).
ACKTR_AMORTISED_STATS = {"stats_interval": 6, "stat_decay": 0.94}
#: Statistics every 6th update on the 6 rollouts since the last recording (at most 64 samples drawn), inverses every
#: 12 updates.
ACKTR_REPLAYED_STATS = {**ACKTR_AMORTISED_STATS, "stats_replay": True, "stats_batch_size": 64, "inverse_interval": 12}
#: ``ACKTR replay/6`` drawing 128 pooled samples; only on entries whose pool of 6 rollouts exceeds 64 samples.
ACKTR_REPLAYED_STATS_128 = {**ACKTR_REPLAYED_STATS, "stats_batch_size": 128}
_POOL_OVER_64 = (("ACKTR replay/6 (128)", ACKTR_REPLAYED_STATS_128),)


def _acktr_entry(
    env_id: str,
    full_steps: int,
    quick_steps: int,
    zoo_keys: tuple[str, ...] = (),
    eval_freq: int | None = None,
    drop: tuple[str, ...] = (),
    kwargs: dict[str, Any] | None = None,
    variants: tuple[tuple[str, dict[str, Any]], ...] = (),
    seeds: int = 5,
) -> Entry:
    """One env of the ``acktr`` suite: A2C against ACKTR at equal batch and network.

    :param eval_freq: learning-curve spacing of the ``full`` profile (default: 1/20 of the budget).
    :param drop: keys of ACKTR's YAML entry not used at A2C's batch.
    :param kwargs: ACKTR overrides at A2C's batch.
    :param variants: ``(label, overrides)`` of further ACKTR candidates on this env only.
    :param seeds: seeds of the ``full`` profile.
    """
    kwargs = kwargs or {}

    def acktr(label: str, extra: dict[str, Any]) -> Algo:
        return Algo(
            label,
            "sb3_natgrad:ACKTR",
            zoo="acktr",
            zoo_keys=zoo_keys,
            kwargs={**kwargs, **extra},
            share_with_reference=_SAME_BATCH_AND_NETWORK,
            drop=drop,
        )

    return Entry(
        env_id,
        reference=Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c", zoo_keys=zoo_keys),
        candidates=[
            acktr("ACKTR", {}),
            acktr("ACKTR stats/6", ACKTR_AMORTISED_STATS),
            acktr("ACKTR replay/6", ACKTR_REPLAYED_STATS),
            *(acktr(label, extra) for label, extra in variants),
        ],
        quick=Budget(quick_steps, seeds=2, n_eval_episodes=3, n_final_episodes=5),
        # 5 seeds: with 3, A2C's seed-to-seed spread on MuJoCo (Hopper 718-2193) was wider than the gap being measured
        full=Budget(full_steps, seeds=seeds, eval_freq=eval_freq or full_steps // 20, n_eval_episodes=5, n_final_episodes=10),
    )


ACKTR = Suite(
    name="acktr",
    description="sb3_natgrad ACKTR against SB3 A2C with the same n_envs, n_steps and network.",
    entries=[
        # Budgets: a2c.yml's n_timesteps (CartPole 5e5, LunarLander 2e5, Pendulum 1e6, MuJoCo 1e6).
        # Both reach 500 within 100k steps: 5k spacing resolves "steps to reach A2C's final return".
        _acktr_entry("CartPole-v1", 500_000, 20_000, eval_freq=5_000, variants=_POOL_OVER_64),
        _acktr_entry("LunarLander-v3", 200_000, 20_000, variants=_POOL_OVER_64),
        _acktr_entry("Pendulum-v1", 1_000_000, 20_000, variants=_POOL_OVER_64),
        _acktr_entry(
            "HalfCheetah-v5", 1_000_000, 20_000, ("HalfCheetah-v4",), drop=ACKTR_PAPER_BATCH_ONLY, kwargs=ACKTR_AT_A2C_BATCH
        ),
        _acktr_entry(
            "Hopper-v5",
            1_000_000,
            20_000,
            ("Hopper-v4",),
            drop=ACKTR_PAPER_BATCH_ONLY,
            kwargs=ACKTR_HOPPER_AT_A2C_BATCH,
            # 10 seeds: with 5, every algorithm's final return spread over 250-3100 (std 650-1170), wider than the gaps
            seeds=10,
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# acktr_paper: ACKTR's MuJoCo YAML entries as they are (the paper's set-up: 4 envs x 640 steps, adaptive eta_max)
# against sb3-contrib's TRPO with the zoo's settings (the paper's other baseline), each at its own batch. Same
# budget and evaluation as the trpo suite, so its TRPO rows there are comparable.
# --------------------------------------------------------------------------------------------------
def _acktr_paper_algos(zoo_key: str) -> tuple[Algo, list[Algo]]:
    reference = Algo("TRPO (sb3-contrib)", "sb3_contrib:TRPO", zoo="trpo", zoo_keys=(zoo_key,))
    # The runs of an "ACKTR stats_warmup" variant stay in results.jsonl as history (docs/benchmarks/findings.md).
    return reference, [Algo("ACKTR", "sb3_natgrad:ACKTR", zoo="acktr")]


ACKTR_PAPER = _mujoco_pair_suite(
    "acktr_paper",
    "sb3_natgrad ACKTR with the paper's MuJoCo set-up against sb3-contrib TRPO (zoo), each at its own batch.",
    _acktr_paper_algos,
    # 5 seeds: the 3-seed spreads (TRPO 988-4558 on HalfCheetah, ACKTR 1136-3135 on Hopper) hid the differences
    full=replace(MUJOCO_1M, seeds=5),
)


# --------------------------------------------------------------------------------------------------
# acktr_atari: ACKTR's `atari` entry (baselines' settings: 16 envs x 20 steps, CnnPolicy) on Pong with
# the zoo's Atari wrappers; A2C's `atari` entry (16 envs x 5 steps) as the reference. Each algorithm
# keeps its own zoo batch: A2C's policy_kwargs name an RMSprop optimizer, which K-FAC replaces.
# Runs take hours on a CPU; they checkpoint at every curve point and resume across sessions.
# --------------------------------------------------------------------------------------------------
ACKTR_ATARI = Suite(
    name="acktr_atari",
    description="sb3_natgrad ACKTR on PongNoFrameskip-v4 (zoo Atari wrappers, CnnPolicy) against SB3 A2C, zoo settings.",
    entries=[
        Entry(
            "PongNoFrameskip-v4",
            reference=Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c"),
            # Statistics every 10 updates instead of baselines' every update: on one CPU core the factors of
            # NatureCNN's convolutions (128k patch rows per batch of 320) would triple the update's cost.
            candidates=[Algo("ACKTR", "sb3_natgrad:ACKTR", zoo="acktr", kwargs={"stats_interval": 10})],
            quick=Budget(20_000, seeds=1, eval_freq=10_000, n_eval_episodes=1, n_final_episodes=1),
            full=Budget(2_000_000, seeds=1, eval_freq=100_000, n_eval_episodes=3, n_final_episodes=5, timeout_s=12 * 3600.0),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# acktr_speed: train() of ACKTR against A2C on the paper's MuJoCo batch (4 envs x 640 steps = 2560 samples,
# separate 64x64 networks), where K-FAC's per-update work is amortised over many samples; the `acktr` suite's
# `speed` covers A2C's own batches (5 to 64 samples). ACKTR as its YAML entry (statistics every 10 updates,
# inverses every 2, target_kl's KL on 320 rows), with statistics every update (on all rows or on 320 of them), and
# with the KL on the whole batch. Meant for `speed`; its `full` profile trains like the `acktr_paper` suite.
# --------------------------------------------------------------------------------------------------
def _acktr_speed_algos(zoo_key: str) -> tuple[Algo, list[Algo]]:
    batch = {"n_envs": 4, "n_steps": 640, "policy_kwargs": "dict(net_arch=dict(pi=[64, 64], vf=[64, 64]))"}

    def acktr(label: str, **kwargs: Any) -> Algo:
        return Algo(label, "sb3_natgrad:ACKTR", zoo="acktr", kwargs=kwargs)

    reference = Algo("A2C 4x640", "stable_baselines3:A2C", zoo="rl_zoo3:a2c", zoo_keys=(zoo_key,), kwargs=batch)
    every_update = {"stats_interval": 1, "kl_batch_size": None}  # statistics every update, KL on the whole batch
    return reference, [
        acktr("ACKTR (YAML: stats_interval=10, kl_batch_size=320)"),
        acktr("ACKTR stats_interval=1", **every_update),
        acktr("ACKTR stats_interval=1 stats_batch_size=320", **every_update, stats_batch_size=320),
        acktr("ACKTR stats_interval=1 stats_batch_size=320 kl_batch_size=320", stats_interval=1, stats_batch_size=320),
        acktr("ACKTR kl_batch_size=None", kl_batch_size=None),
    ]


ACKTR_SPEED = _mujoco_pair_suite(
    "acktr_speed",
    "train() time of sb3_natgrad ACKTR vs SB3 A2C at the paper's MuJoCo batch (4 x 640 samples, 64x64).",
    _acktr_speed_algos,
)


# --------------------------------------------------------------------------------------------------
# d4pg: sb3_natgrad's D4PG (hyperparams/d4pg.yml) against SB3 TD3 (reference) and SB3 DDPG (a second row,
# the harness takes one reference per entry), zoo-tuned. rl-zoo3's td3.yml and ddpg.yml entries are identical on
# all four envs (checked with rl-zoo3 2.x: network, gamma, buffer, learning_starts, noise, train_freq,
# gradient_steps, learning rate; batch size from the constructors, 256 for both), so TD3 is the reference because
# the issue's target is D4PG >= TD3. D4PG and DDPG take from TD3's resolved settings everything that defines the
# data and the network (D4PG_MATCHED); the learning rate, tau and D4PG's own keys (n_steps, v_min/v_max,
# prioritized_replay) stay each algorithm's own.
# --------------------------------------------------------------------------------------------------
#: Keys copied from the TD3 reference: network, batch, buffer, replay ratio, exploration noise, discount, warm-up.
D4PG_MATCHED = (
    "n_envs",
    "policy_kwargs",
    "batch_size",
    "buffer_size",
    "learning_starts",
    "train_freq",
    "gradient_steps",
    "noise_type",
    "noise_std",
    "gamma",
)
#: Budgets of the issue (Pendulum 20k, the others 300k); quick is one short end-to-end run past learning_starts.
D4PG_QUICK = Budget(12_000, seeds=1, eval_freq=6_000, n_eval_episodes=2, n_final_episodes=3)


def _d4pg_entry(env_id: str, full: Budget, zoo_keys: tuple[str, ...] = (), ablations: bool = False) -> Entry:
    """One env of the ``d4pg`` suite: D4PG (and on some envs its PER / n_steps=1 ablations) and DDPG against TD3."""

    def algo(label: str, cls: str, zoo: str, kwargs: dict[str, Any] | None = None) -> Algo:
        return Algo(label, cls, zoo=zoo, zoo_keys=zoo_keys, kwargs=kwargs or {}, share_with_reference=D4PG_MATCHED)

    candidates = [algo("D4PG", "sb3_natgrad:D4PG", "d4pg")]
    if ablations:
        candidates += [
            algo("D4PG PER", "sb3_natgrad:D4PG", "d4pg", {"prioritized_replay": True}),
            algo("D4PG n_steps=1", "sb3_natgrad:D4PG", "d4pg", {"n_steps": 1}),
        ]
    candidates.append(algo("DDPG", "stable_baselines3:DDPG", "rl_zoo3:ddpg"))
    return Entry(
        env_id,
        reference=Algo("TD3", "stable_baselines3:TD3", zoo="rl_zoo3:td3", zoo_keys=zoo_keys),
        candidates=candidates,
        quick=D4PG_QUICK,
        full=full,
    )


D4PG = Suite(
    name="d4pg",
    description=(
        "sb3_natgrad D4PG (and its PER / n_steps=1 ablations on Pendulum and LunarLanderContinuous) against SB3 TD3 "
        "(reference) and SB3 DDPG (a second row: one reference per entry), zoo-tuned; D4PG and DDPG take TD3's network, "
        "batch, buffer, learning_starts, train_freq, gradient_steps, noise and gamma."
    ),
    entries=[
        _d4pg_entry(
            "Pendulum-v1",
            Budget(20_000, seeds=3, eval_freq=1_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=3600.0),
            ablations=True,
        ),
        _d4pg_entry(
            "LunarLanderContinuous-v3",
            Budget(300_000, seeds=3, eval_freq=15_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=8 * 3600.0),
            ablations=True,
        ),
        _d4pg_entry(
            "HalfCheetah-v5",
            Budget(300_000, seeds=3, eval_freq=15_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=8 * 3600.0),
            zoo_keys=("HalfCheetah-v4",),
        ),
        _d4pg_entry(
            "Hopper-v5",
            Budget(300_000, seeds=3, eval_freq=15_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=8 * 3600.0),
            zoo_keys=("Hopper-v4",),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# d4pg_speed / d4pg_per_speed: train() per gradient step (python -m benchmarks speed) of D4PG against TD3 on the same
# batch and 400x300 networks (target <= 1.3x; DDPG as a second row), and of D4PG with prioritized replay against
# D4PG without (target <= 1.1x), on Pendulum-v1 (3-dim observations) and HalfCheetah-v5 (17-dim). Their `full`
# profiles train like the d4pg suite's entries.
# --------------------------------------------------------------------------------------------------
def _d4pg_per_entry(env_id: str, full: Budget, zoo_keys: tuple[str, ...] = ()) -> Entry:
    def d4pg(label: str, kwargs: dict[str, Any]) -> Algo:
        return Algo(label, "sb3_natgrad:D4PG", zoo="d4pg", zoo_keys=zoo_keys, kwargs=kwargs)

    return Entry(
        env_id,
        reference=d4pg("D4PG", {"prioritized_replay": False}),
        candidates=[d4pg("D4PG PER", {"prioritized_replay": True})],
        quick=D4PG_QUICK,
        full=full,
    )


_D4PG_SPEED_ENVS = ("Pendulum-v1", "HalfCheetah-v5")
D4PG_SPEED = Suite(
    name="d4pg_speed",
    description="train() time of sb3_natgrad D4PG (and SB3 DDPG) vs SB3 TD3 on the same batch and networks.",
    entries=[
        replace(entry, candidates=[algo for algo in entry.candidates if algo.label in ("D4PG", "DDPG")])
        for entry in D4PG.entries
        if entry.env_id in _D4PG_SPEED_ENVS
    ],
)
D4PG_PER_SPEED = Suite(
    name="d4pg_per_speed",
    description="train() time of sb3_natgrad D4PG with prioritized replay vs without, same batch and networks.",
    entries=[
        _d4pg_per_entry(entry.env_id, entry.full, entry.reference.zoo_keys)
        for entry in D4PG.entries
        if entry.env_id in _D4PG_SPEED_ENVS
    ],
)


#: Every suite by name (``python -m benchmarks returns --suite NAME``).
SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (SMOKE, TRPO, TRPO_SPEED, ACKTR, ACKTR_PAPER, ACKTR_ATARI, ACKTR_SPEED, D4PG, D4PG_SPEED, D4PG_PER_SPEED)
}
