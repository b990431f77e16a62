"""Cost of a K-FAC update vs an RMSprop update on the same actor-critic network and batch.

Wu et al. (2017) report that an ACKTR update costs 10-25% more than an A2C (RMSprop) update. This
script times, for a separate actor / critic tanh MLP (A2C-style 64x64 with batch 5 * 16 = 80, and a
256x256 one with batch 20 * 16 = 320):

- ``rmsprop``: forward, A2C loss, backward, ``RMSprop.step``;
- ``kfac``: forward and sampled Fisher backward inside ``record_stats`` (every ``T_s`` steps; ``T_s = 1``,
  ACKTR's default, and ``T_s = 10``), A2C loss backward, ``KFAC.step`` with eigendecompositions every
  ``T_f = 10`` steps (amortised: each timed block is ``T_f`` updates).

Also timed alone: the two ``step()`` calls (``*_step``), and K-FAC's statistics (forward + Fisher backward
in the context vs a plain forward). Repetitions are interleaved (rmsprop, kfac, rmsprop, ...) and each
ratio is the median of per-repetition ratios. One thread (``torch.set_num_threads(1)``, set here, not in
the library), CPU. Writes ``docs/benchmarks/kfac_overhead.json`` and ``.md``.

Usage (from the repository root): ``python -m benchmarks micro --suite kfac_overhead [--repeats 15]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from benchmarks.harness import git_commit
from sb3_natgrad.optim import KFAC, fisher_backward

OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
INVERSE_INTERVAL = 10
CASES = [
    # name, obs dim (channels for "cnn"), hidden (0: NatureCNN), actions, batch, statistics rows (0: the batch)
    ("mlp64_b80", 8, 64, 4, 80, 0),  # A2C/ACKTR discrete control: 16 envs x 5 steps
    ("mlp64_b2560", 17, 64, 6, 2560, 0),  # the ACKTR paper's MuJoCo batch (~2500 steps per update)
    ("mlp64_b2560", 17, 64, 6, 2560, 320),  # the same with the statistics on 1/8 of it (ACKTR's stats_batch_size)
    ("mlp256_b320", 64, 256, 18, 320, 0),
    ("nature_cnn_b80", 4, 0, 6, 80, 0),  # Atari: NatureCNN on 4 x 84 x 84 frames, 16 envs x 5 steps, shared trunk
]


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, hidden: int, n_actions: int) -> None:
        super().__init__()
        self.pi = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, n_actions)
        )
        self.vf = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.pi(obs), self.vf(obs).squeeze(-1)  # [B, n_actions], [B]


class NatureCNNActorCritic(nn.Module):
    """SB3's ``NatureCNN`` (Mnih et al. 2015) with policy and value heads on the shared trunk (``CnnPolicy``)."""

    def __init__(self, channels: int, n_actions: int) -> None:
        super().__init__()
        self.trunk = NatureCNN(spaces.Box(0, 255, (channels, 84, 84), dtype=np.uint8), features_dim=512)
        self.pi = nn.Linear(512, n_actions)
        self.vf = nn.Linear(512, 1)

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        features = self.trunk(obs)  # [B, 512]
        return self.pi(features), self.vf(features).squeeze(-1)  # [B, n_actions], [B]


def a2c_loss(logits: th.Tensor, values: th.Tensor, actions: th.Tensor, advantages: th.Tensor, returns: th.Tensor) -> th.Tensor:
    log_probs = F.log_softmax(logits, dim=-1)  # [B, n_actions]
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    policy_loss = -(advantages * log_probs.gather(1, actions[:, None]).squeeze(1)).mean()
    return policy_loss + 0.5 * F.mse_loss(values, returns) - 0.01 * entropy


def sampled_fisher_loss(logits: th.Tensor, values: th.Tensor) -> th.Tensor:
    """-log pi(a~pi | s) + 0.5 (V - (V + N(0, 1)))^2, the ACKTR sampled Fisher loss."""
    sampled = th.distributions.Categorical(logits=logits.detach()).sample()  # [B]
    nll = F.cross_entropy(logits, sampled)
    noisy_target = values.detach() + th.randn_like(values)
    return nll + 0.5 * (values - noisy_target).pow(2).mean()


def block(fn: Callable[[], None], n: int = INVERSE_INTERVAL) -> Callable[[], float]:
    """A timer of ``n`` consecutive calls of ``fn``."""

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - start

    return timed


def step_all(optimizers: list[KFAC]) -> None:
    """``step()`` of every optimizer."""
    for optimizer in optimizers:
        optimizer.step()


def step_only(update: Callable[[], None], step: Callable[[], None]) -> Callable[[], float]:
    """A timer of ``step`` alone, on the gradients left by one ``update``."""
    update()
    return block(step)


def time_pairs(pairs: dict[str, tuple[Callable[[], float], Callable[[], float]]], repeats: int) -> dict[str, float]:
    """Interleaved repetitions; per-update medians (ms) and the median of per-repetition ratios."""
    for base, cand in pairs.values():  # warm-up
        base()
        cand()
    result: dict[str, float] = {}
    for key, (base, cand) in pairs.items():
        base_times, cand_times, ratios = [], [], []
        for _ in range(repeats):
            b, c = base(), cand()
            base_times.append(b / INVERSE_INTERVAL)
            cand_times.append(c / INVERSE_INTERVAL)
            ratios.append(c / b)
        result[f"{key}_rmsprop_ms"] = round(1e3 * statistics.median(base_times), 4)
        result[f"{key}_kfac_ms"] = round(1e3 * statistics.median(cand_times), 4)
        result[f"{key}_ratio"] = round(statistics.median(ratios), 3)
    return result


def bench_case(
    name: str,
    obs_dim: int,
    hidden: int,
    n_actions: int,
    batch: int,
    stats_rows: int,
    repeats: int,
    stats_interval: int = 1,
) -> dict[str, object]:
    th.manual_seed(0)
    cnn = hidden == 0
    obs = th.rand(batch, obs_dim, 84, 84) if cnn else th.randn(batch, obs_dim)
    actions = th.randint(0, n_actions, (batch,))
    advantages, returns = th.randn(batch), th.randn(batch)

    rms_model: ActorCritic | NatureCNNActorCritic = (
        NatureCNNActorCritic(obs_dim, n_actions) if cnn else ActorCritic(obs_dim, hidden, n_actions)
    )
    kfac_model: ActorCritic | NatureCNNActorCritic = (
        NatureCNNActorCritic(obs_dim, n_actions) if cnn else ActorCritic(obs_dim, hidden, n_actions)
    )
    kfac_model.load_state_dict(rms_model.state_dict())
    rmsprop = th.optim.RMSprop(rms_model.parameters(), lr=7e-4, alpha=0.99, eps=1e-5)
    if cnn:  # shared trunk: one joint optimizer (ACKTR with CnnPolicy)
        kfacs = [KFAC(kfac_model, lr=0.25, kl_clip=0.001, stats_interval=stats_interval, inverse_interval=INVERSE_INTERVAL)]
    else:  # separate actor and critic optimizers, as ACKTR with MlpPolicy
        kfacs = [
            KFAC(kfac_model.pi, lr=0.25, kl_clip=0.001, stats_interval=stats_interval, inverse_interval=INVERSE_INTERVAL),
            KFAC(kfac_model.vf, lr=0.25, kl_clip=0.01, stats_interval=stats_interval, inverse_interval=INVERSE_INTERVAL),
        ]

    def rms_update() -> None:
        logits, values = rms_model(obs)
        loss = a2c_loss(logits, values, actions, advantages, returns)
        rmsprop.zero_grad()
        loss.backward()
        rmsprop.step()

    def kfac_update() -> None:
        with ExitStack() as stack:
            recording = any([stack.enter_context(opt.record_stats()) for opt in kfacs])
            if stats_rows and recording:  # statistics on a random subset, by a forward pass of its own
                sub_logits, sub_values = kfac_model(obs[th.randperm(batch)[:stats_rows]])
                fisher_backward(sampled_fisher_loss(sub_logits, sub_values), kfacs, retain_graph=False)
            if not stats_rows:
                logits, values = kfac_model(obs)
                if recording:
                    fisher_backward(sampled_fisher_loss(logits, values), kfacs)
        if stats_rows:
            logits, values = kfac_model(obs)
        loss = a2c_loss(logits, values, actions, advantages, returns)
        for opt in kfacs:
            opt.zero_grad()
        loss.backward()
        for opt in kfacs:
            opt.step()

    def rms_stats_baseline() -> None:
        with th.enable_grad():
            rms_model(obs)

    def kfac_stats() -> None:
        if stats_rows:
            kfac_model(obs)  # the losses' forward pass, outside the context as in kfac_update
        with ExitStack() as stack:
            for opt in kfacs:
                stack.enter_context(opt.record_stats(force=True))
            logits, values = kfac_model(obs[th.randperm(batch)[:stats_rows]] if stats_rows else obs)
            fisher_backward(sampled_fisher_loss(logits, values), kfacs, retain_graph=False)

    pairs = {
        "update": (block(rms_update), block(kfac_update)),
        "step": (
            step_only(rms_update, rmsprop.step),
            step_only(kfac_update, partial(step_all, kfacs)),
        ),
        "forward_plus_statistics": (block(rms_stats_baseline), block(kfac_stats)),
    }
    result: dict[str, object] = {
        "case": name,
        "obs_dim": obs_dim,
        "hidden": hidden,
        "batch": batch,
        "stats_rows": stats_rows or batch,
        "stats_interval": stats_interval,
    }
    result.update(time_pairs(pairs, repeats))
    return result


def write_markdown(meta: dict[str, object], results: list[dict[str, object]]) -> str:
    """``docs/benchmarks/kfac_overhead.md`` from the measurements."""
    lines = [
        "# K-FAC update cost vs RMSprop",
        "",
        "Generated by `python -m benchmarks micro --suite kfac_overhead`; per update, medians over interleaved repetitions, "
        f"one CPU thread, torch {meta['torch']}, commit {meta.get('commit', '?')}. MLP cases: separate actor and "
        "critic tanh MLPs (two K-FAC optimizers, as ACKTR with `MlpPolicy`); `nature_cnn`: NatureCNN trunk "
        "shared by both heads (one joint optimizer, as ACKTR with `CnnPolicy`). Statistics every T_s steps, "
        f"damped inverses every T_f = {meta['inverse_interval']} steps (both amortised: each timed block is "
        "T_f updates). The last two columns always record statistics.",
        "",
        "| case | batch | statistics rows | T_s | RMSprop update (ms) | K-FAC update (ms) | update ratio "
        "| RMSprop step (ms) | K-FAC step (ms) | step ratio | forward (ms) | forward + Fisher backward + factors (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['batch']} | {r.get('stats_rows', r['batch'])} | {r['stats_interval']} "
            f"| {r['update_rmsprop_ms']} | {r['update_kfac_ms']} | **{r['update_ratio']}** "
            f"| {r['step_rmsprop_ms']} | {r['step_kfac_ms']} | {r['step_ratio']} "
            f"| {r['forward_plus_statistics_rmsprop_ms']} | {r['forward_plus_statistics_kfac_ms']} |"
        )
    lines += [
        "",
        "Reading. Per layer of width d (inputs and outputs) and batch B, an RMSprop update costs about three",
        "matmuls of 2 B d^2 flops (forward and two backward). K-FAC adds, when statistics are recorded, the",
        "Fisher backward and the factors A and G (about three more of 2 B d^2), and at every step two 2 d^3",
        "matmuls to precondition, plus a Cholesky inversion of both factors every T_f steps. The 1.25x target",
        "(the ACKTR paper's 10-25%) is therefore reachable only when B >> d and the statistics are cheap:",
        "recorded every T_s = 10 steps, or on a random subset of the batch (the `statistics rows` column:",
        "ACKTR's `stats_batch_size`, a forward and Fisher backward of their own on those rows, as TF-KFAC's",
        "`subsample_inputs`). Small A2C-sized batches miss it: there",
        "the fixed per-layer cost of the step (about 10 small tensor ops per layer) is comparable to the whole",
        "RMSprop update. NatureCNN on a CPU is the worst case: the dense layer's input factor is 3137 x 3137,",
        "so preconditioning it costs 2 x 512 x 3137^2 = 10 GFLOP per step (more than the whole forward-backward",
        "pass of the batch), and the first convolution's input factor is accumulated over 80 x 400 patch rows.",
        "The paper's figure is for a GPU with inverses computed asynchronously.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Time both updates and write the JSON and markdown tables; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks micro --suite kfac_overhead", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--stats-intervals", default="1,10", help="comma-separated T_s values to time")
    parser.add_argument("--cnn-repeats", type=int, default=3, help="repetitions of the (slow) NatureCNN case")
    parser.add_argument("--report-only", action="store_true", help="rebuild the markdown from the JSON")
    args = parser.parse_args(argv)
    json_path, md_path = OUT_DIR / "kfac_overhead.json", OUT_DIR / "kfac_overhead.md"
    if args.report_only:
        data = json.loads(json_path.read_text())
        md_path.write_text(write_markdown(data["meta"], data["results"]))
        return 0
    th.set_num_threads(1)
    intervals = [int(t) for t in args.stats_intervals.split(",")]
    results: list[dict[str, object]] = []
    for case in CASES:
        for ts in intervals:
            repeats = args.cnn_repeats if case[2] == 0 else args.repeats
            print(f"timing {case[0]}, T_s = {ts}, {repeats} repetitions", flush=True)
            results.append(bench_case(*case, repeats=repeats, stats_interval=ts))
    meta: dict[str, object] = {
        "torch": th.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "commit": (git_commit() or "unknown")[:10],
        "threads": 1,
        "repeats": args.repeats,
        "cnn_repeats": args.cnn_repeats,
        "inverse_interval": INVERSE_INTERVAL,
        "stats_intervals": intervals,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md_path.write_text(write_markdown(meta, results))
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
