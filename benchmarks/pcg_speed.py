"""Does a K-FAC preconditioner help TRPO's conjugate gradient? (``TRPO(cg_preconditioner="kfac")``)

For each environment a TRPO policy (``n_steps=2048``, one env, seed 0, default 64x64 MLP) is trained for
``--warmup-steps`` so that its Fisher is not the one at initialisation; on the next rollout, exactly as
``TRPO._policy_step`` builds them, we take the policy gradient ``g``, the damped Fisher-vector product
``A v = (F + cg_damping I) v`` (analytic) and the damped K-FAC preconditioner (factors of this batch, one
sampled-action backward pass). CG and preconditioned CG then run from ``x0 = 0`` and after each
iteration ``k`` we record

- ``relative residual`` ``||g - A x_k|| / ||g||`` (recomputed, not the recursive residual);
- ``step quality`` ``(g^T x_k / sqrt(x_k^T A x_k)) / sqrt(g^T A^-1 g)``: the surrogate improvement the
  closed-form trust-region step along ``x_k`` predicts, as a fraction of the best possible (1 for the
  exact natural gradient; Cauchy-Schwarz in the ``A`` norm). ``A^-1 g`` is approximated by 100 CG
  iterations.

Also timed (medians over ``--repeats``, interleaved): one product ``A v``, one preconditioner application,
and the preconditioner's set-up (Fisher backward and factor inverses). One thread, CPU. Writes
``docs/benchmarks/pcg_speed.json`` and ``.md``.

Usage (from the repository root): ``python -m benchmarks.pcg_speed [--warmup-steps 20480] [--repeats 10]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import set_random_seed

from benchmarks.harness import git_commit
from sb3_natgrad import TRPO
from sb3_natgrad.common.cg import conjugate_gradient
from sb3_natgrad.common.fisher import FisherVectorProduct, flatten, sample_fisher_actions, unflatten
from sb3_natgrad.common.policies import actor_parameters
from sb3_natgrad.optim.kfac import KFAC

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
ENVS = ("Pendulum-v1", "LunarLander-v3", "HalfCheetah-v5")
ITERATIONS = (1, 2, 3, 5, 10, 15, 20, 30)
REFERENCE_ITERATIONS = 100


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_env(env_id: str, warmup_steps: int, repeats: int) -> dict[str, Any]:
    set_random_seed(0)
    model = TRPO("MlpPolicy", env_id, n_steps=2048, seed=0, device="cpu", cg_preconditioner="kfac")
    model.learn(warmup_steps)
    _, callback = model._setup_learn(model.n_steps, None, reset_num_timesteps=False)
    callback.on_training_start(locals(), globals())
    assert model.env is not None
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    data = next(iter(model.rollout_buffer.get(batch_size=None)))
    policy, kfac = model.policy, model._cg_kfac
    assert isinstance(kfac, KFAC)
    discrete = isinstance(model.action_space, spaces.Discrete)
    actions = data.actions.long().flatten() if discrete else data.actions
    params = actor_parameters(policy)
    advantages = (data.advantages - data.advantages.mean()) / (data.advantages.std() + 1e-8)

    def setup_preconditioner() -> Any:
        with kfac.record_stats(force=True):
            distribution = policy.get_distribution(data.observations)
            kfac.fisher_backward(-distribution.log_prob(sample_fisher_actions(distribution)).mean())
        kfac.update_inverses()
        return distribution

    distribution = setup_preconditioner()
    objective = (advantages * th.exp(distribution.log_prob(actions) - data.old_log_prob)).mean()
    grad = flatten(th.autograd.grad(objective, params, retain_graph=True, materialize_grads=True))
    fvp = FisherVectorProduct.from_distribution(distribution, params, model.cg_damping, model.kl_reduction)

    def precondition(v: th.Tensor) -> th.Tensor:
        return flatten(kfac.precondition(unflatten(v, params), params))

    reference, _ = conjugate_gradient(fvp, grad, max_iter=REFERENCE_ITERATIONS, residual_tol=0.0)
    best = float(grad.dot(reference).sqrt())  # sqrt(g^T A^-1 g)
    curves: dict[str, dict[str, list[float]]] = {}
    for name, preconditioner in (("cg", None), ("pcg_kfac", precondition)):
        residuals, quality = [], []
        for k in ITERATIONS:
            x, _ = conjugate_gradient(fvp, grad, max_iter=k, residual_tol=0.0, preconditioner=preconditioner)
            residuals.append(float((grad - fvp(x)).norm() / grad.norm()))
            quality.append(float(grad.dot(x) / x.dot(fvp(x)).sqrt()) / best)
        curves[name] = {"relative_residual": residuals, "step_quality": quality}

    vector = th.randn_like(grad)
    timings = {
        "product_ms": 1e3 * _median_time(lambda: fvp(vector), repeats),
        "precondition_ms": 1e3 * _median_time(lambda: precondition(vector), repeats),
        "setup_ms": 1e3 * _median_time(setup_preconditioner, repeats),
    }
    return {
        "env_id": env_id,
        "n_params": grad.numel(),
        "batch": int(data.advantages.shape[0]),
        "cg_damping": model.cg_damping,
        "iterations": list(ITERATIONS),
        "curves": curves,
        **timings,
    }


def write_markdown(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "# K-FAC-preconditioned CG for TRPO",
        "",
        "Generated by `python -m benchmarks.pcg_speed`; TRPO defaults (`n_steps=2048`, 64x64 MLP, `cg_damping=0.1`), "
        f"policy trained {meta['warmup_steps']:,} steps first, seed 0, one thread, torch {meta['torch']}, commit "
        f"{meta['commit']}. Relative residual `||g - A x_k|| / ||g||` and step quality (predicted improvement of "
        "the trust-region step along `x_k` as a fraction of the exact natural gradient's) after k iterations from "
        "x0 = 0; sb3-contrib's default is k = 15.",
        "",
        "| env | params | method | "
        + " | ".join(f"k={k}" for k in results[0]["iterations"])
        + " | product (ms) | preconditioner (ms) | set-up (ms) |",
        "| --- | ---: | --- | " + " | ".join("---:" for _ in results[0]["iterations"]) + " | ---: | ---: | ---: |",
    ]
    for r in results:
        for name, label in (
            ("cg", "CG residual"),
            ("pcg_kfac", "PCG residual"),
            ("cg", "CG quality"),
            ("pcg_kfac", "PCG quality"),
        ):
            key = "relative_residual" if "residual" in label else "step_quality"
            values = " | ".join(f"{v:.3g}" for v in r["curves"][name][key])
            timing = (
                f"{r['product_ms']:.2f} | {r['precondition_ms']:.2f} | {r['setup_ms']:.2f}"
                if label == "CG residual"
                else " | | "
            )
            lines.append(f"| {r['env_id']} | {r['n_params']:,} | {label} | {values} | {timing} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup-steps", type=int, default=20_480)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    args = parser.parse_args()
    th.set_num_threads(1)
    results = []
    for env_id in args.envs:
        print(f"measuring {env_id}", flush=True)
        results.append(measure_env(env_id, args.warmup_steps, args.repeats))
    meta = {
        "torch": th.__version__,
        "python": platform.python_version(),
        "commit": (git_commit() or "unknown")[:10],
        "warmup_steps": args.warmup_steps,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "pcg_speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    markdown = write_markdown(meta, results)
    (OUT_DIR / "pcg_speed.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
