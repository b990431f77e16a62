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
from benchmarks.zoo import load_zoo_entry

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
#: actor step on its trust region, as RMSprop normalises A2C's step. Statistics at every update, as these rows were
#: measured (the YAML's stats_interval is dropped, and the class default became 4 with issue 22).
ACKTR_AT_A2C_BATCH = {"learning_rate": 1.0, "kl_clip": 0.001, "vf_kl_clip": 0.01, "stats_interval": 1}
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
    # damping_mode="eigen": the paper code's damping (baselines' factored_damping=False), against the default factored
    # Tikhonov damping on the paper's own set-up (issue 22).
    return reference, [
        Algo("ACKTR", "sb3_natgrad:ACKTR", zoo="acktr"),
        Algo("ACKTR damping_mode=eigen", "sb3_natgrad:ACKTR", zoo="acktr", kwargs={"damping_mode": "eigen"}),
    ]


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
# acktr_broad: ACKTR as a new user gets it (class defaults, i.e. hyperparams/acktr.yml's `default` entry; not the
# per-env entries) against SB3 A2C with rl-zoo3's tuned entry, on ten environments nobody tuned ACKTR's defaults for.
# Matched: n_envs, n_steps and VecNormalize (A2C's); the network is both classes' default (separate 64x64 tanh MLPs).
# A2C's zoo entries also tune exploration (gSDE, log_std_init) and discount: those stay A2C's own. The rows are labelled
# by options, not by values: "ACKTR" runs whatever the class defaults are (config_hash does not see them), so after a
# change of defaults its old lines must be deleted, or relabelled with the option they ran with, by hand. Budgets: what
# two shared cores finish (classic control 200k-300k, Box2D and MuJoCo 300k-500k), below the zoo's 1M-5M for the long
# tasks.
# --------------------------------------------------------------------------------------------------
#: ``(env_id, zoo_keys, full budget, seeds)`` of the broad suite: discrete (CartPole, Acrobot, MountainCar, LunarLander)
#: and continuous (Pendulum, MountainCarContinuous, LunarLanderContinuous, BipedalWalker, HalfCheetah, Hopper). The
#: five envs whose runs take under a minute have 10 seeds: with 3, one seed that never finds a sparse reward (Acrobot,
#: MountainCarContinuous; A2C's too) decides the comparison.
ACKTR_BROAD_ENVS: tuple[tuple[str, tuple[str, ...], int, int], ...] = (
    ("CartPole-v1", (), 200_000, 10),
    ("Acrobot-v1", (), 200_000, 10),
    ("MountainCar-v0", (), 300_000, 10),
    ("LunarLander-v3", (), 300_000, 3),
    ("Pendulum-v1", (), 300_000, 10),
    ("MountainCarContinuous-v0", (), 100_000, 10),
    ("LunarLanderContinuous-v3", (), 500_000, 3),
    ("BipedalWalker-v3", (), 500_000, 3),
    ("HalfCheetah-v5", ("HalfCheetah-v4",), 500_000, 3),
    ("Hopper-v5", ("Hopper-v4",), 500_000, 3),
)
#: An option of the broad suite's ACKTR rows: its label and its constructor arguments.
AcktrOption = tuple[str, dict[str, Any]]
#: The critic eta_max of the class defaults before ACKTR detail 12 (``vf_learning_rate`` followed ``learning_rate``,
#: 0.25): the first defaults, on as many seeds as the defaults. The variants below that ran with it keep it.
ACKTR_BROAD_FIRST_CRITIC = ("vf_learning_rate=0.25", {"vf_learning_rate": 0.25})
#: The critic eta_max of the defaults from detail 12 until it became 0.02 (issue 22): the second defaults, on as many
#: seeds as the defaults. The variants below that ran with it keep it.
ACKTR_BROAD_SECOND_CRITIC = ("vf_learning_rate=0.05", {"vf_learning_rate": 0.05})
#: Further ACKTR variants of the broad suite (3 seeds each), on the first critic eta_max: the paper code's damping,
#: and the critic momentum of the defaults before issue 22's critic fix (0.9, baselines').
ACKTR_BROAD_VARIANTS: tuple[AcktrOption, ...] = (
    ("damping_mode=eigen", {"damping_mode": "eigen"}),
    ("vf_momentum=0.9", {"vf_momentum": 0.9}),
)
#: The entropy bonus the defaults had on Box actions before ``ent_coef=None`` (ACKTR detail 11), on the first critic.
#: Not on HalfCheetah-v5, where its 6 runs (then the defaults and both variants) ended in K-FAC's FloatingPointError
#: once the log-std passed ~30, nor on Hopper-v5 (budget).
ACKTR_BROAD_ENTROPY_VARIANT = ("ent_coef=0.01", {"ent_coef": 0.01})
ACKTR_BROAD_ENTROPY_ENVS = ("Pendulum-v1", "MountainCarContinuous-v0", "LunarLanderContinuous-v3", "BipedalWalker-v3")
#: The second defaults (critic eta_max 0.05) with standardised advantages (the paper's MuJoCo code, baselines
#: ``acktr_cont``), on as many seeds as the defaults (a candidate default then): where the actor's trust region does
#: not bind, the K-FAC step is proportional to the advantages' scale, which reward normalisation makes small on long
#: episodes (Hopper-v5: KL of the step ~1e-5 against kl_clip 1e-3).
ACKTR_BROAD_NORMALIZED_VARIANT = ("normalize_advantage=True", {"normalize_advantage": True})
#: The second defaults with gSDE (SB3's ``use_sde=True`` as it comes: ``log_std_init=0``, noise resampled at each
#: rollout) on the Box envs, on as many seeds as the defaults: exploration noise as the cause where ACKTR loses
#: (MountainCarContinuous: 3 of 10 seeds never reach the goal; Hopper: the action std falls from 0.79 to 0.41 in 95k
#: steps), and A2C's zoo entries explore with gSDE on four of the six. Not made the default: it won on
#: MountainCarContinuous only (docs/algorithms/acktr.md, "Exploration noise: gSDE").
ACKTR_BROAD_SDE_VARIANT = ("use_sde=True", {"use_sde": True})
ACKTR_BROAD_BOX_ENVS = (
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "HalfCheetah-v5",
    "Hopper-v5",
)
#: gSDE together with the smaller actor trust region and slower critic of the ``acktr`` benchmark's Hopper settings
#: (``ACKTR_HOPPER_AT_A2C_BATCH``), where a single-seed 300k probe reached 1289 with gSDE and 325 without: is it the
#: noise, or the noise with smaller steps, that Hopper needs?
ACKTR_BROAD_SDE_SMALL_STEPS = (
    "use_sde=True, kl_clip=0.0002, vf_learning_rate=0.005",
    {"use_sde": True, "kl_clip": 0.0002, "vf_learning_rate": 0.005},
)
#: The same without the slower critic (on the second defaults' critic): which of the three does Hopper need?
ACKTR_BROAD_SDE_SMALL_ACTOR_STEPS = ("use_sde=True, kl_clip=0.0002", {"use_sde": True, "kl_clip": 0.0002})
ACKTR_BROAD_SDE_SMALL_STEPS_ENVS = ("Hopper-v5",)
#: The slower critic alone (the defaults' action noise and actor trust region), as many seeds as the defaults: the lift
#: above needs it. It lost MountainCar (9 of 10 seeds at -167 to -200) and was stopped there: the seeds it ran per env.
#: Between it and the second defaults' 0.05, 0.02 became the default.
ACKTR_BROAD_SLOW_CRITIC = ("vf_learning_rate=0.005", {"vf_learning_rate": 0.005})
ACKTR_BROAD_SLOW_CRITIC_SEEDS = {
    "CartPole-v1": 10,
    "Acrobot-v1": 10,
    "MountainCar-v0": 10,
    "LunarLander-v3": 3,
    "Pendulum-v1": 10,
    "MountainCarContinuous-v0": 10,
    "LunarLanderContinuous-v3": 1,
    "Hopper-v5": 3,
}
#: The slower critic with standardised advantages: on MountainCar the slower critic lags the returns that VecNormalize
#: keeps rescaling, so nearly every advantage is negative (batch mean ~ -|A|) and the policy is pushed to the uniform
#: one; does subtracting the batch mean save it? No (4 MountainCar seeds at -133.5 to -200): stopped there, after
#: Acrobot's 10.
ACKTR_BROAD_SLOW_CRITIC_NORMALIZED = (
    "vf_learning_rate=0.005, normalize_advantage=True",
    {"vf_learning_rate": 0.005, "normalize_advantage": True},
)
ACKTR_BROAD_SLOW_CRITIC_NORMALIZED_SEEDS = {"Acrobot-v1": 10, "MountainCar-v0": 4}
#: The second defaults without a critic trust region (a radius no update reaches), on the two envs A2C's zoo runs
#: without reward normalisation, where ``vf_kl_clip`` (a bound on ``0.5 E[dV^2]`` in reward units) binds on nearly
#: every update: does the bound hold the critic back there?
ACKTR_BROAD_UNBOUNDED_CRITIC = ("vf_kl_clip=1e9", {"vf_kl_clip": 1e9})
#: Seeds per env: on CartPole 2 of 3 collapsed and LunarLander's first fell to -117.1, so its others were not run.
ACKTR_BROAD_UNBOUNDED_CRITIC_SEEDS = {"CartPole-v1": 3, "LunarLander-v3": 1}


def _acktr_broad_entry(env_id: str, zoo_keys: tuple[str, ...], full_steps: int, seeds: int) -> Entry:
    """One env of ``acktr_broad``: zoo-tuned A2C against ACKTR's class defaults at A2C's batch and VecNormalize."""
    # VecNormalize is not a constructor argument (share_with_reference cannot fall back to a default): read A2C's entry
    normalize = load_zoo_entry("rl_zoo3:a2c", env_id, zoo_keys)[0].get("normalize", False)

    def acktr(variant: AcktrOption | None = None, critic: AcktrOption | None = None, max_seeds: int | None = None) -> Algo:
        """The class defaults, or a variant of them, on a former defaults' critic eta_max if ``critic`` is given;
        labelled by the options it sets."""
        options = [option for option in (variant, critic) if option is not None]
        label = " ".join(["ACKTR", ", ".join(name for name, _ in options)]).strip()
        kwargs = {"normalize": normalize, **{k: v for _, extra in options for k, v in extra.items()}}
        return Algo(label, "sb3_natgrad:ACKTR", kwargs=kwargs, share_with_reference=("n_envs", "n_steps"), max_seeds=max_seeds)

    def stopped(variant: AcktrOption, seeds_by_env: dict[str, int], critic: AcktrOption | None = None) -> list[Algo]:
        """A variant stopped before the whole plan: on the envs and as many seeds as it ran."""
        return [acktr(variant, critic, max_seeds=seeds_by_env[env_id])] if env_id in seeds_by_env else []

    first, second = ACKTR_BROAD_FIRST_CRITIC, ACKTR_BROAD_SECOND_CRITIC
    return Entry(
        env_id,
        reference=Algo("A2C (zoo)", "stable_baselines3:A2C", zoo="rl_zoo3:a2c", zoo_keys=zoo_keys),
        candidates=[
            acktr(),
            acktr(critic=second),
            acktr(critic=first),
            *(acktr(variant, first, max_seeds=3) for variant in ACKTR_BROAD_VARIANTS),
            *([acktr(ACKTR_BROAD_ENTROPY_VARIANT, first, max_seeds=3)] if env_id in ACKTR_BROAD_ENTROPY_ENVS else []),
            acktr(ACKTR_BROAD_NORMALIZED_VARIANT, second),
            *([acktr(ACKTR_BROAD_SDE_VARIANT, second)] if env_id in ACKTR_BROAD_BOX_ENVS else []),
            *stopped(ACKTR_BROAD_SLOW_CRITIC, ACKTR_BROAD_SLOW_CRITIC_SEEDS),
            *stopped(ACKTR_BROAD_SLOW_CRITIC_NORMALIZED, ACKTR_BROAD_SLOW_CRITIC_NORMALIZED_SEEDS),
            *(
                [acktr(ACKTR_BROAD_SDE_SMALL_STEPS), acktr(ACKTR_BROAD_SDE_SMALL_ACTOR_STEPS, second)]
                if env_id in ACKTR_BROAD_SDE_SMALL_STEPS_ENVS
                else []
            ),
            *stopped(ACKTR_BROAD_UNBOUNDED_CRITIC, ACKTR_BROAD_UNBOUNDED_CRITIC_SEEDS, second),
        ],
        quick=Budget(10_000, seeds=1, eval_freq=5_000, n_eval_episodes=2, n_final_episodes=3),
        full=Budget(full_steps, seeds=seeds, eval_freq=full_steps // 10, n_eval_episodes=5, n_final_episodes=10),
    )


ACKTR_BROAD = Suite(
    name="acktr_broad",
    description="sb3_natgrad ACKTR's class defaults against zoo-tuned SB3 A2C at A2C's n_envs, n_steps and VecNormalize.",
    entries=[_acktr_broad_entry(*row) for row in ACKTR_BROAD_ENVS],
)


# --------------------------------------------------------------------------------------------------
# acktr_default_speed: train() of ACKTR at its class defaults against A2C's at 8 envs x 128 steps (1024 samples per
# update), 64x64 networks, Pendulum-v1 (issue 22: the defaults must cost <= 1.25x A2C's update at >= 1,000 samples).
# Both classes' defaults otherwise; the variants are the settings the defaults were chosen from. Meant for `speed`.
# --------------------------------------------------------------------------------------------------
#: The statistics settings of ACKTR's class defaults before issue 22: factors on the whole rollout at every update.
ACKTR_EVERY_UPDATE_STATS = {
    "stats_interval": 1,
    "stat_decay": 0.99,
    "stats_replay": False,
    "stats_batch_size": None,
    "inverse_interval": 10,
}
#: Statistics every 4th update on 256 samples drawn from the 4 rollouts since the last recording.
ACKTR_REPLAYED_STATS_4_256 = {**ACKTR_REPLAYED_STATS, "stats_interval": 4, "stat_decay": 0.96, "stats_batch_size": 256}
ACKTR_DEFAULT_SPEED = Suite(
    name="acktr_default_speed",
    description="train() time of sb3_natgrad ACKTR's class defaults vs SB3 A2C's, 8 envs x 128 steps, 64x64, Pendulum-v1.",
    entries=[
        Entry(
            "Pendulum-v1",
            reference=Algo(
                "A2C 8x128",
                "stable_baselines3:A2C",
                kwargs={"n_envs": 8, "n_steps": 128, "policy_kwargs": "dict(net_arch=dict(pi=[64, 64], vf=[64, 64]))"},
            ),
            candidates=[
                Algo("ACKTR", "sb3_natgrad:ACKTR"),
                Algo("ACKTR damping_mode=eigen", "sb3_natgrad:ACKTR", kwargs={"damping_mode": "eigen"}),
                Algo("ACKTR statistics every update", "sb3_natgrad:ACKTR", kwargs=ACKTR_EVERY_UPDATE_STATS),
                Algo("ACKTR replay/6 (128)", "sb3_natgrad:ACKTR", kwargs=ACKTR_REPLAYED_STATS_128),
                Algo("ACKTR replay/4 (256)", "sb3_natgrad:ACKTR", kwargs=ACKTR_REPLAYED_STATS_4_256),
            ],
            quick=Budget(20_000, seeds=1, n_eval_episodes=3, n_final_episodes=5),
            full=Budget(300_000, seeds=3, eval_freq=30_000, n_eval_episodes=5, n_final_episodes=10),
        ),
    ],
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


# --------------------------------------------------------------------------------------------------
# actors: returns at equal environment steps of D4PG with 2 Ray actors against the in-process loop (issue 23), as
# hyperparams/d4pg.yml's Pendulum-v1 entry. Throughput and the cost of n_actors=0 are `micro --suite actors`.
# --------------------------------------------------------------------------------------------------
ACTORS = Suite(
    name="actors",
    description="sb3_natgrad D4PG with n_actors=2 Ray actors against D4PG's in-process loop, returns at equal env steps.",
    entries=[
        Entry(
            "Pendulum-v1",
            reference=Algo("D4PG", "sb3_natgrad:D4PG", zoo="d4pg"),
            candidates=[Algo("D4PG n_actors=2", "sb3_natgrad:D4PG", zoo="d4pg", kwargs={"n_actors": 2})],
            quick=Budget(2_000, seeds=1, eval_freq=1_000, n_eval_episodes=2, n_final_episodes=2),
            full=Budget(20_000, seeds=3, eval_freq=1_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=3600.0),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# tqc: sb3_natgrad's TQC variants against sb3-contrib's TQC with identical hyperparameters (issue 19). Every algorithm
# reads rl-zoo3's tqc.yml entry: hyperparams/tqc.yml holds only the v5 MuJoCo entries, copies of the zoo's -v4 ones
# (tested), and falls back to the zoo's file for every other env, so this is the entry `--algo tqc` trains with. The
# variants differ from the reference by their own flat keys only. sb3_natgrad.TQC with every variant off is not a row:
# its updates are contrib's bit for bit (tests/test_tqc.py); tqc_speed times it.
# n_steps = 3: the returns are uncorrected off-policy n-step targets from a 1M-transition replay, whose bias grows
# with n and with how far the policy moved since a transition was collected; and the entropy bonus enters only at
# the bootstrap state, so every extra step drifts further from the soft target. n = 3 is Rainbow's choice (Hessel et
# al. 2018, better than 1 and 5 in their ablation) and the one the TQC example's sanity runs used; D4PG's paper
# N = 5 (hyperparams/d4pg.yml) is for a deterministic policy without an entropy term.
# --------------------------------------------------------------------------------------------------
#: The variants of issue 19, each ``(label, overrides)``.
TQC_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("TQC PER", {"prioritized_replay": True}),
    ("TQC n_steps=3", {"n_steps": 3}),
    ("TQC PER n_steps=3", {"prioritized_replay": True, "n_steps": 3}),
    ("TQC K-FAC critic", {"critic_optimizer": "kfac"}),
)
#: Quick profile: one short run per algorithm past learning_starts (100 on Pendulum, 10k on the other envs).
TQC_QUICK_PENDULUM = Budget(4_000, seeds=1, eval_freq=2_000, n_eval_episodes=2, n_final_episodes=3)
TQC_QUICK = Budget(12_000, seeds=1, eval_freq=6_000, n_eval_episodes=2, n_final_episodes=3)
#: The issue's 300k-step budget (LunarLanderContinuous-v3, HalfCheetah-v5, Hopper-v5), 20 curve points.
TQC_300K = Budget(300_000, seeds=3, eval_freq=15_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=12 * 3600.0)


def _tqc_entry(env_id: str, quick: Budget, full: Budget, zoo_keys: tuple[str, ...] = ()) -> Entry:
    """One env of the ``tqc`` suite: contrib TQC and the four variants, rl-zoo3's tqc.yml entry for all."""

    def tqc(label: str, cls: str, kwargs: dict[str, Any]) -> Algo:
        return Algo(label, cls, zoo="rl_zoo3:tqc", zoo_keys=zoo_keys, kwargs=kwargs)

    return Entry(
        env_id,
        reference=tqc("TQC (sb3-contrib)", "sb3_contrib:TQC", {}),
        candidates=[tqc(label, "sb3_natgrad:TQC", kwargs) for label, kwargs in TQC_VARIANTS],
        quick=quick,
        full=full,
    )


TQC = Suite(
    name="tqc",
    description=(
        "sb3_natgrad TQC with prioritized replay, n_steps=3, both, and a K-FAC critic against sb3-contrib TQC, "
        "identical zoo hyperparameters (rl-zoo3's tqc.yml, which hyperparams/tqc.yml falls back to)."
    ),
    entries=[
        # 5 seeds on Pendulum: cheap, and one seed's evaluation spread (std ~80) is the size of the gaps looked for
        _tqc_entry(
            "Pendulum-v1",
            TQC_QUICK_PENDULUM,
            Budget(20_000, seeds=5, eval_freq=1_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=3 * 3600.0),
        ),
        _tqc_entry("LunarLanderContinuous-v3", TQC_QUICK, TQC_300K),
        _tqc_entry("HalfCheetah-v5", TQC_QUICK, TQC_300K, zoo_keys=("HalfCheetah-v4",)),
        _tqc_entry("Hopper-v5", TQC_QUICK, TQC_300K, zoo_keys=("Hopper-v4",)),
    ],
)


# --------------------------------------------------------------------------------------------------
# tqc_speed: train() per gradient step (python -m benchmarks speed) of each TQC variant, and of sb3_natgrad.TQC with
# every variant off, against contrib TQC on the same batch and networks (issue 19: PER <= 1.1x, K-FAC reported), on
# Pendulum-v1 (3-dim observations, 256x256) and HalfCheetah-v5 (17-dim, 256x256). Its `full` profile trains like tqc.
# --------------------------------------------------------------------------------------------------
_TQC_SPEED_ENVS = ("Pendulum-v1", "HalfCheetah-v5")
TQC_SPEED = Suite(
    name="tqc_speed",
    description="train() time of sb3_natgrad TQC (variants off, PER, n_steps=3, both, K-FAC critic) vs sb3-contrib TQC.",
    entries=[
        replace(
            entry,
            candidates=[
                Algo("TQC", "sb3_natgrad:TQC", zoo="rl_zoo3:tqc", zoo_keys=entry.reference.zoo_keys),
                *entry.candidates,
            ],
        )
        for entry in TQC.entries
        if entry.env_id in _TQC_SPEED_ENVS
    ],
)


# --------------------------------------------------------------------------------------------------
# ppg: sb3_natgrad's PPG (hyperparams/ppg.yml) against SB3 PPO with rl-zoo3's tuned ppo.yml entries (issue 20). ppg.yml
# starts from the same entries; the network, n_envs, n_steps and minibatch are copied from PPO's resolved settings all
# the same (PPG_MATCHED), so both see the same rollouts through the same networks. Budgets: the zoo's (CartPole 1e5,
# LunarLander 1e6, MuJoCo 1e6).
# Wall clock per environment step (issue: <= 1.5x PPO): every run records its learn() time without the evaluations,
# and results.md gives the median over seeds of PPG / PPO for the same seed (runs alternate seed by seed, so with
# --jobs 1 both see the same machine). For a measurement on an idle machine, `speed` times the updates on one shared
# rollout: --train-calls N_pi (the entry's n_policy_iterations: CartPole 16, LunarLander 4, MuJoCo 32) makes each
# timed block hold exactly one auxiliary phase, and --learn-steps N times whole learn(N) runs in ABBA order.
# --------------------------------------------------------------------------------------------------
#: Keys PPG takes from the PPO reference (the issue: same networks, n_envs and n_steps; the same minibatch too).
PPG_MATCHED = ("n_envs", "n_steps", "batch_size", "policy_kwargs")


#: ppg.yml normalizes rewards where the zoo's PPO entry does not (CartPole, LunarLander): the reference code's rnorm;
#: acer.yml does the same on LunarLander (the acer suite's "A2C norm_reward" row).
PPG_NORM_REWARD = "dict(norm_obs=False, norm_reward=True)"


def _ppg_entry(
    env_id: str,
    full_steps: int,
    eval_freq: int,
    zoo_keys: tuple[str, ...] = (),
    seeds: int = 5,
    norm_reward_row: bool = False,
) -> Entry:
    """One env of the ``ppg`` suite: PPG against zoo-tuned PPO at equal rollouts and network; with
    ``norm_reward_row``, PPO with PPG's reward normalization as a second row (what normalization alone does)."""
    candidates = [Algo("PPG", "sb3_natgrad:PPG", zoo="ppg", share_with_reference=PPG_MATCHED)]
    if norm_reward_row:
        candidates.append(
            Algo(
                "PPO norm_reward",
                "stable_baselines3:PPO",
                zoo="rl_zoo3:ppo",
                zoo_keys=zoo_keys,
                kwargs={"normalize": PPG_NORM_REWARD},
            )
        )
    return Entry(
        env_id,
        reference=Algo("PPO", "stable_baselines3:PPO", zoo="rl_zoo3:ppo", zoo_keys=zoo_keys),
        candidates=candidates,
        # past one auxiliary phase on every env but LunarLander (65,536 samples per phase)
        quick=Budget(20_000, seeds=1, eval_freq=10_000, n_eval_episodes=2, n_final_episodes=3),
        full=Budget(
            full_steps, seeds=seeds, eval_freq=eval_freq, n_eval_episodes=5, n_final_episodes=10, timeout_s=6 * 3600.0
        ),
    )


PPG = Suite(
    name="ppg",
    description="sb3_natgrad PPG against SB3 PPO (zoo-tuned) with the same n_envs, n_steps, minibatch and network.",
    entries=[
        # 5 seeds: the target is "PPG >= PPO on every env and clearly better on at least two"
        _ppg_entry("CartPole-v1", 100_000, 5_000, norm_reward_row=True),
        _ppg_entry("LunarLander-v3", 1_000_000, 50_000, norm_reward_row=True),
        _ppg_entry("HalfCheetah-v5", 1_000_000, 50_000, ("HalfCheetah-v4",)),
        _ppg_entry("Hopper-v5", 1_000_000, 50_000, ("Hopper-v4",)),
    ],
)


# --------------------------------------------------------------------------------------------------
# ppg_atari: PPG against PPO on Pong with rl-zoo3's `atari` PPO entry (zoo Atari wrappers, 4 stacked frames, CnnPolicy,
# 8 envs x 128 steps, minibatch 256, 4 epochs): hyperparams/ppg.yml has no Atari entry, so PPG reads the same entry
# with the zoo's n_epochs as E_pi = E_V and the paper's Procgen values for its own keys (N_pi 32, E_aux 6,
# beta_clone 1); its auxiliary buffer holds 32 x 1024 frame stacks, 0.9 GiB of uint8. The documented longer run of
# issue 20: hours per run on a CPU; runs checkpoint at every curve point and resume across sessions, seed by seed.
# --------------------------------------------------------------------------------------------------
#: PPG's keys on top of the zoo's PPO `atari` entry.
PPG_ATARI = {"n_policy_epochs": 4, "n_value_epochs": 4, "n_policy_iterations": 32, "n_aux_epochs": 6, "beta_clone": 1.0}
PPG_ATARI_SUITE = Suite(
    name="ppg_atari",
    description="sb3_natgrad PPG on PongNoFrameskip-v4 (zoo Atari wrappers, CnnPolicy) against SB3 PPO, zoo PPO settings.",
    entries=[
        Entry(
            "PongNoFrameskip-v4",
            reference=Algo("PPO", "stable_baselines3:PPO", zoo="rl_zoo3:ppo"),
            candidates=[
                Algo(
                    "PPG",
                    "sb3_natgrad:PPG",
                    zoo="rl_zoo3:ppo",
                    drop=("n_epochs",),
                    kwargs={**PPG_ATARI, "aux_batch_size": 256},
                    share_with_reference=PPG_MATCHED,
                )
            ],
            quick=Budget(10_000, seeds=1, eval_freq=5_000, n_eval_episodes=1, n_final_episodes=1),
            full=Budget(2_000_000, seeds=3, eval_freq=100_000, n_eval_episodes=3, n_final_episodes=5, timeout_s=24 * 3600.0),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# acer: sb3_natgrad's ACER (hyperparams/acer.yml) against SB3 A2C (rl-zoo3's a2c.yml) (issue 21).
# Discrete (CartPole-v1, LunarLander-v3): the same n_envs, n_steps and network (A2C's 64x64 sizes; ACER's trunk is
# shared by its policy and Q heads), budgets of a2c.yml. The target is ACER reaching A2C's final return in <= 1/2 the
# samples: results.md's "Steps to reach ref. final return" (first timestep where the mean-over-seeds curve reaches
# A2C's final mean) and its ratio to A2C's own (<= 0.5), as the d4pg report's "TD3's final at 15k". Curve points
# every 5k steps resolve it.
# Continuous (Pendulum-v1, HalfCheetah-v5): equal samples against A2C (the reference) and PPO (a second row: one
# reference per entry), each zoo-tuned at its own batch. acer.yml has no HalfCheetah entry: the suite gives ACER A2C's
# batch there (1 env x 5 steps, normalized observations and rewards) and the ACER keys of acer.yml's Pendulum entry.
# --------------------------------------------------------------------------------------------------
_ACER_MATCHED = ("n_envs", "n_steps", "policy_kwargs")
#: ACER on HalfCheetah-v5 (no acer.yml entry): acer.yml's Pendulum ACER keys; the batch is A2C's (shared).
ACER_HALFCHEETAH = {"ent_coef": 0.0, "buffer_size": 100_000, "replay_ratio": 4.0, "replay_start": 2_000}
ACER_QUICK = Budget(10_000, seeds=1, eval_freq=5_000, n_eval_episodes=2, n_final_episodes=3)


def _acer_discrete_entry(env_id: str, full_steps: int, eval_freq: int, norm_reward_row: bool = False) -> Entry:
    """One discrete env of the ``acer`` suite: ACER against A2C at equal batch and network; with
    ``norm_reward_row``, A2C with ACER's reward normalization as a second row (what normalization alone does)."""
    candidates = [Algo("ACER", "sb3_natgrad:ACER", zoo="acer", share_with_reference=_ACER_MATCHED)]
    if norm_reward_row:
        candidates.append(
            Algo("A2C norm_reward", "stable_baselines3:A2C", zoo="rl_zoo3:a2c", kwargs={"normalize": PPG_NORM_REWARD})
        )
    return Entry(
        env_id,
        reference=Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c"),
        candidates=candidates,
        quick=ACER_QUICK,
        full=Budget(full_steps, seeds=5, eval_freq=eval_freq, n_eval_episodes=5, n_final_episodes=10),
    )


def _acer_continuous_entry(env_id: str, seeds: int, zoo_keys: tuple[str, ...] = (), acer: Algo | None = None) -> Entry:
    """One Box env of the ``acer`` suite: ACER and PPO against A2C, each zoo-tuned, 1M steps."""
    return Entry(
        env_id,
        reference=Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c", zoo_keys=zoo_keys),
        candidates=[
            acer or Algo("ACER", "sb3_natgrad:ACER", zoo="acer"),
            Algo("PPO", "stable_baselines3:PPO", zoo="rl_zoo3:ppo", zoo_keys=zoo_keys),
        ],
        quick=ACER_QUICK,
        full=Budget(1_000_000, seeds=seeds, eval_freq=20_000, n_eval_episodes=5, n_final_episodes=10, timeout_s=6 * 3600.0),
    )


ACER = Suite(
    name="acer",
    description=(
        "sb3_natgrad ACER against SB3 A2C: discrete envs at the same n_envs, n_steps and network (samples to reach "
        "A2C's final return); Box envs at equal samples, with SB3 PPO as a second row, each zoo-tuned."
    ),
    entries=[
        _acer_discrete_entry("CartPole-v1", 500_000, 5_000),
        _acer_discrete_entry("LunarLander-v3", 200_000, 5_000, norm_reward_row=True),
        _acer_continuous_entry("Pendulum-v1", seeds=5),
        _acer_continuous_entry(
            "HalfCheetah-v5",
            seeds=3,
            zoo_keys=("HalfCheetah-v4",),
            acer=Algo(
                "ACER",
                "sb3_natgrad:ACER",
                zoo="acer",
                kwargs=ACER_HALFCHEETAH,
                share_with_reference=("n_envs", "n_steps", "normalize"),
            ),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# acer_atari: ACER against A2C on Pong with rl-zoo3's `atari` A2C entry (zoo Atari wrappers, 4 stacked frames,
# CnnPolicy, 16 envs x 5 steps, ent_coef 0.01), the same n_envs and n_steps for both (issue 21). acer.yml has no
# Atari entry: ACER reads A2C's without vf_coef (ACER's critic weight is q_coef) and policy_kwargs (A2C's RMSprop
# settings; ACER's policy builds RMSprop alpha 0.99, eps 1e-5 itself), with baselines' ACER replay (50,000
# transitions: 625 segments of 6 x 16 uint8 frame stacks, 1.6 GiB; replay ratio 4, replay from 10,000). The documented
# longer run: hours per run on a CPU; runs checkpoint at every curve point and resume across sessions, seed by seed.
# --------------------------------------------------------------------------------------------------
ACER_ATARI = Suite(
    name="acer_atari",
    description="sb3_natgrad ACER on PongNoFrameskip-v4 (zoo Atari wrappers, CnnPolicy) against SB3 A2C, same batch.",
    entries=[
        Entry(
            "PongNoFrameskip-v4",
            reference=Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c"),
            candidates=[
                Algo(
                    "ACER",
                    "sb3_natgrad:ACER",
                    zoo="rl_zoo3:a2c",
                    drop=("vf_coef", "policy_kwargs"),
                    kwargs={"buffer_size": 50_000, "replay_ratio": 4.0, "replay_start": 10_000},
                    share_with_reference=("n_envs", "n_steps"),
                )
            ],
            quick=Budget(12_000, seeds=1, eval_freq=6_000, n_eval_episodes=1, n_final_episodes=1),
            full=Budget(2_000_000, seeds=3, eval_freq=100_000, n_eval_episodes=3, n_final_episodes=5, timeout_s=24 * 3600.0),
        ),
    ],
)


# --------------------------------------------------------------------------------------------------
# acer_speed: wall clock per environment step of ACER at replay ratio 4 (acer.yml) and without replay
# (replay_ratio=0: the cost of ACER's own update) against A2C at the same batch (issue 21). `speed` cannot time ACER's
# train() alone (its replay is not a rollout buffer to copy A2C's data into), so this suite is run with `returns`:
# each record holds learn() time without the evaluations, results.md the per-seed median ratio to A2C (= the ratio of
# wall clock per env step, equal budgets) and steps/s. Short runs past replay_start, one curve point; --jobs 1.
# --------------------------------------------------------------------------------------------------
def _acer_speed_entry(env_id: str, shared: tuple[str, ...] = _ACER_MATCHED) -> Entry:
    def acer(label: str, kwargs: dict[str, Any]) -> Algo:
        return Algo(label, "sb3_natgrad:ACER", zoo="acer", kwargs=kwargs, share_with_reference=shared)

    a2c = Algo("A2C", "stable_baselines3:A2C", zoo="rl_zoo3:a2c")
    return Entry(
        env_id,
        reference=a2c,
        candidates=[acer("ACER replay_ratio=4", {"replay_ratio": 4.0}), acer("ACER replay_ratio=0", {"replay_ratio": 0.0})],
        quick=Budget(5_000, seeds=1, eval_freq=5_000, n_eval_episodes=1, n_final_episodes=1),
        full=Budget(50_000, seeds=5, eval_freq=50_000, n_eval_episodes=1, n_final_episodes=3),
    )


ACER_SPEED = Suite(
    name="acer_speed",
    description="learn() wall clock per env step of sb3_natgrad ACER (replay ratio 4 and 0) vs SB3 A2C, same batch.",
    entries=[
        _acer_speed_entry("CartPole-v1"),
        _acer_speed_entry("LunarLander-v3"),
        # A2C's Pendulum policy_kwargs (gSDE's log_std_init, ortho_init) are A2C's; acer.yml's entry has A2C's 8 x 8 batch
        _acer_speed_entry("Pendulum-v1", shared=("n_envs", "n_steps")),
    ],
)


#: Every suite by name (``python -m benchmarks returns --suite NAME``).
SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        *(SMOKE, TRPO, TRPO_SPEED, ACKTR, ACKTR_PAPER, ACKTR_ATARI, ACKTR_SPEED, D4PG, D4PG_SPEED, D4PG_PER_SPEED),
        ACTORS,
        *(TQC, TQC_SPEED, PPG, PPG_ATARI_SUITE, ACER, ACER_ATARI, ACER_SPEED),
        *(ACKTR_BROAD, ACKTR_DEFAULT_SPEED),
    )
}
