"""Speed of the analytic Fisher-vector product vs sb3-contrib's double-backprop Hessian-vector product.

For each policy size (64x64, 256x256 MLP) and distribution (Categorical on CartPole-v1, diagonal
Gaussian on Pendulum-v1), on a batch of 2048 observations, times

- ``product``: one product ``F v`` (our :class:`FisherVectorProduct`) vs one
  ``TRPO.hessian_vector_product`` of sb3-contrib, each on its prepared graph;
- ``solve``: what one TRPO update pays, i.e. preparing the graph (our ``J^T u`` graph; contrib's
  ``_compute_actor_grad`` with ``create_graph=True``) plus 15 products.

Repetitions are interleaved (ours, contrib, ours, ...) so that machine load affects both alike, and the
reported ratio is the median of the per-repetition ratios. Writes ``docs/benchmarks/fvp_speed.json`` and
``docs/benchmarks/fvp_speed.md``.

Usage (from the repository root)::

    python -m benchmarks micro --suite fvp_speed [--repeats 15] [--batch-size 2048] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch as th
from sb3_contrib import TRPO as ContribTRPO
from stable_baselines3.common.distributions import kl_divergence

from sb3_natgrad.common.fisher import FisherVectorProduct, detach_distribution
from sb3_natgrad.common.policies import actor_parameters

N_PRODUCTS = 15  # sb3-contrib's default cg_max_steps
OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_case(env_id: str, net: int, batch_size: int, repeats: int) -> dict[str, float | str | int]:
    th.manual_seed(0)
    model = ContribTRPO("MlpPolicy", env_id, policy_kwargs=dict(net_arch=[net, net]), n_steps=64, seed=0, device="cpu")
    policy = model.policy
    obs_space = model.observation_space
    obs = th.as_tensor([obs_space.sample() for _ in range(batch_size)], dtype=th.float32)
    if obs.dim() == 1:
        obs = obs.unsqueeze(-1)
    params = actor_parameters(policy)
    damping = model.cg_damping

    def ours_setup() -> FisherVectorProduct:
        dist = policy.get_distribution(obs)
        return FisherVectorProduct.from_distribution(dist, params, damping)

    def contrib_setup() -> Callable[[th.Tensor], th.Tensor]:
        dist = policy.get_distribution(obs)
        old = detach_distribution(dist)
        kl = kl_divergence(dist, old).mean()
        log_prob = dist.log_prob(dist.sample())
        objective = log_prob.mean()
        actor_params, _, grad_kl, _ = model._compute_actor_grad(kl, objective)
        return lambda v: model.hessian_vector_product(actor_params, grad_kl, v)

    n_params = sum(p.numel() for p in params)
    vector = th.randn(n_params)

    def solve(setup: Callable[[], Callable[[th.Tensor], th.Tensor]]) -> None:
        product = setup()
        v = vector
        for _ in range(N_PRODUCTS):
            v = product(v)
            v = v / v.norm()

    ours_fvp, contrib_hvp = ours_setup(), contrib_setup()
    # Sanity: both compute the same (damped) Fisher product at theta_old.
    diff = (ours_fvp(vector) - contrib_hvp(vector)).norm() / contrib_hvp(vector).norm()
    # warm-up
    for _ in range(3):
        ours_fvp(vector), contrib_hvp(vector)
    product_ours, product_contrib, solve_ours, solve_contrib = [], [], [], []
    for _ in range(repeats):
        product_ours.append(_timed(lambda: [ours_fvp(vector) for _ in range(5)]) / 5)
        product_contrib.append(_timed(lambda: [contrib_hvp(vector) for _ in range(5)]) / 5)
        solve_ours.append(_timed(lambda: solve(ours_setup)))
        solve_contrib.append(_timed(lambda: solve(contrib_setup)))
    ratio_product = statistics.median(o / c for o, c in zip(product_ours, product_contrib, strict=True))
    ratio_solve = statistics.median(o / c for o, c in zip(solve_ours, solve_contrib, strict=True))
    return {
        "env": env_id,
        "distribution": type(policy.action_dist).__name__,
        "net_arch": f"{net}x{net}",
        "n_params": n_params,
        "batch_size": batch_size,
        "product_ours_ms": 1e3 * statistics.median(product_ours),
        "product_contrib_ms": 1e3 * statistics.median(product_contrib),
        "product_ratio": ratio_product,
        "solve_ours_ms": 1e3 * statistics.median(solve_ours),
        "solve_contrib_ms": 1e3 * statistics.median(solve_contrib),
        "solve_ratio": ratio_solve,
        "relative_difference": float(diff),
    }


def main(argv: list[str] | None = None) -> int:
    """Time both products and write the JSON and markdown tables; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks micro --suite fvp_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.threads > 0:
        th.set_num_threads(args.threads)

    results = [
        bench_case(env_id, net, args.batch_size, args.repeats)
        for net in (64, 256)
        for env_id in ("CartPole-v1", "Pendulum-v1")
    ]
    header = (
        "| distribution | net | params | product ours (ms) | product contrib (ms) | ratio "
        "| setup+15 ours (ms) | setup+15 contrib (ms) | ratio |"
    )
    lines = [header, "|" + "---|" * 9]
    for r in results:
        lines.append(
            f"| {r['distribution']} ({r['env']}) | {r['net_arch']} | {r['n_params']} | {r['product_ours_ms']:.2f} "
            f"| {r['product_contrib_ms']:.2f} | {r['product_ratio']:.2f} | {r['solve_ours_ms']:.1f} "
            f"| {r['solve_contrib_ms']:.1f} | {r['solve_ratio']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return 0
    meta = {
        "torch": th.__version__,
        "threads": th.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "n_products": N_PRODUCTS,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "fvp_speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (OUT_DIR / "fvp_speed.md").write_text(
        "# Fisher-vector product speed\n\n"
        "Analytic Gauss-Newton Fisher-vector product (`sb3_natgrad.common.fisher.FisherVectorProduct`) vs "
        "sb3-contrib's double-backprop `TRPO.hessian_vector_product`, batch "
        f"{args.batch_size}, CPU ({meta['threads']} threads, torch {meta['torch']}). Ratios are medians of "
        f"{args.repeats} interleaved repetitions (ours / contrib, lower is better). 'setup+15' is the graph "
        "preparation plus 15 products, i.e. what one CG solve costs.\n\n"
        "Generated by `python -m benchmarks micro --suite fvp_speed "
        f"--repeats {args.repeats} --threads {args.threads}`.\n\n{table}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
