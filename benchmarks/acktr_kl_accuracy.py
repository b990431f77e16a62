"""How well ACKTR's trust region predicts the KL divergence of its own updates.

ACKTR bounds ``0.5 eta^2 dtheta^T F_kfac dtheta`` by ``kl_clip``, with ``F_kfac`` the damped, block-diagonal,
Kronecker-factored Fisher (Wu et al. 2017, §3.2; Martens & Grosse 2015). Two approximations separate that model
from the KL the update actually causes: the Fisher is taken block-diagonal over layers (cross-layer terms dropped),
and each block is ``A (x) G`` (activations and output gradients treated as independent). This trains ACKTR as the
``acktr`` suite configures it for an env (A2C's batch, or with ``--yaml-batch`` the YAML entry's own batch), with
``momentum=0`` unless overridden (so that the applied step is the one the trust region bounds), and for each of
the last ``--updates`` updates records, on that update's rollout observations:

- ``kfac``: the K-FAC model of the step's KL (ACKTR's ``train/kl``);
- ``block_diagonal``: ``0.5 dtheta^T F dtheta`` with the exact Fisher restricted to its diagonal blocks, one per layer
  (weight and bias together) and one per other parameter (e.g. ``log_std``);
- ``exact``: ``0.5 dtheta^T F dtheta`` with the exact Fisher (:class:`~sb3_natgrad.common.fisher.FisherVectorProduct`);
- ``measured``: the mean KL (summed over action dimensions) between the policies before and after the update.

The exact Fisher is the one of the update's own rollout, whereas K-FAC's factors are running averages over past
rollouts (``stat_decay``), so ``block_diagonal / kfac`` also holds the difference between the two estimates.

Records are written to ``docs/benchmarks/acktr/kl_accuracy.json`` (one per env, batch, seed, warm-up and
overrides, replaced when re-measured), with the medians of the ratios ``block_diagonal / kfac``,
``exact / block_diagonal`` and ``measured / exact``, and a table of them to ``kl_accuracy.md``.

Usage (from the repository root)::

    python -m benchmarks.acktr_kl_accuracy HalfCheetah-v5 0 --yaml-batch --warmup 15000 --updates 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.acktr_batch_probe import parse_overrides, probe_config

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "acktr" / "kl_accuracy.json"


def _groups(policy: Any, params: list[Any]) -> list[list[int]]:
    """Indices of ``params`` grouped by the module that owns them (one K-FAC block per layer)."""
    names = {id(p): name for name, p in policy.named_parameters()}
    groups: dict[str, list[int]] = {}
    for i, param in enumerate(params):
        name = names[id(param)]
        owner = name.rsplit(".", 1)[0] if "." in name else name
        groups.setdefault(owner, []).append(i)
    return list(groups.values())


def measure(
    env_id: str, seed: int, warmup: int, updates: int, yaml_batch: bool = False, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    import torch as th

    from benchmarks.zoo import build_vec_env
    from sb3_natgrad import ACKTR
    from sb3_natgrad.common.fisher import FisherVectorProduct, detach_distribution, flatten, mean_kl
    from sb3_natgrad.common.policies import actor_parameters

    th.set_num_threads(1)
    config = probe_config(env_id, yaml_batch)
    kwargs = {key: value for key, value in config.algo_kwargs.items() if value is not None}
    kwargs.update({"momentum": 0.0, **(overrides or {})})
    env = build_vec_env(env_id, config, config.n_envs, seed=seed)
    model = ACKTR(env=env, seed=seed, **kwargs)
    batch = model.n_steps * model.n_envs
    model.learn(max(warmup, batch))

    params = actor_parameters(model.policy)
    groups = _groups(model.policy, params)
    rows: list[dict[str, float]] = []
    train = model.train

    def measured_train() -> None:
        obs = next(model.rollout_buffer.get(batch_size=None)).observations
        theta_before = [p.detach().clone() for p in params]
        with th.no_grad():
            before = detach_distribution(model.policy.get_distribution(obs))
        train()
        theta_after = [p.detach().clone() for p in params]
        with th.no_grad():
            measured = float(mean_kl(before, model.policy.get_distribution(obs)))
            for param, value in zip(params, theta_before, strict=True):  # the Fisher at the pre-update parameters
                param.copy_(value)
        fvp = FisherVectorProduct.from_policy(model.policy, obs, params)
        steps = [after - before for after, before in zip(theta_after, theta_before, strict=True)]
        delta = flatten(steps)
        exact = 0.5 * float(delta @ fvp(delta))
        block_diagonal = 0.0
        for group in groups:
            block = flatten([step if i in group else th.zeros_like(step) for i, step in enumerate(steps)])
            block_diagonal += 0.5 * float(block @ fvp(block))
        with th.no_grad():
            for param, value in zip(params, theta_after, strict=True):
                param.copy_(value)
        kfac = float(model.logger.name_to_value["train/kl"])
        rows.append({"kfac": kfac, "block_diagonal": block_diagonal, "exact": exact, "measured": measured})

    model.train = measured_train  # type: ignore[method-assign]
    model.learn(updates * batch, reset_num_timesteps=False)

    def median_ratio(top: str, bottom: str) -> float:
        return float(np.median([row[top] / row[bottom] for row in rows if row[bottom] > 0]))

    return {
        "env": env_id,
        "seed": seed,
        "batch": "yaml" if yaml_batch else "a2c",
        "samples_per_update": batch,
        "warmup_steps": model.num_timesteps - updates * batch,
        "overrides": {"momentum": kwargs["momentum"], **(overrides or {})},
        "median_ratios": {
            "block_diagonal/kfac": median_ratio("block_diagonal", "kfac"),
            "exact/block_diagonal": median_ratio("exact", "block_diagonal"),
            "measured/exact": median_ratio("measured", "exact"),
            "measured/kfac": median_ratio("measured", "kfac"),
        },
        "updates": rows,
    }


def _record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a measurement in the JSON (a new one with the same key replaces it)."""
    overrides = json.dumps(record["overrides"], sort_keys=True)
    return (record["env"], record["seed"], record["batch"], record["warmup_steps"], overrides)


def render_markdown(records: list[dict[str, Any]]) -> str:
    """A table of the median ratios of every record (``kl_accuracy.md``)."""
    lines = [
        "# How well ACKTR's trust region predicts the KL of its updates",
        "",
        "Generated by `python -m benchmarks.acktr_kl_accuracy` from `kl_accuracy.json` (see the module docstring for what",
        "each quantity is). Medians over the measured updates; the exact Fisher and the measured KL are those of each",
        "update's own rollout. The last column is how much larger the update's real KL is than ACKTR's `train/kl`.",
        "",
        "| Env | Batch | Samples / update | Steps before | Overrides | K-FAC `train/kl` | block-diagonal / K-FAC "
        "| exact / block-diagonal | measured / exact | measured / K-FAC |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for record in sorted(records, key=lambda r: (r["env"], r["batch"], r["warmup_steps"], json.dumps(r["overrides"]))):
        ratios = record["median_ratios"]
        overrides = ", ".join(f"{key}={value}" for key, value in record["overrides"].items())
        kfac = float(np.median([row["kfac"] for row in record["updates"]]))
        lines.append(
            f"| {record['env']} | {record['batch']} | {record['samples_per_update']:,} | {record['warmup_steps']:,} | "
            f"{overrides} | {kfac:.2g} | {ratios['block_diagonal/kfac']:.2f} | {ratios['exact/block_diagonal']:.2f} | "
            f"{ratios['measured/exact']:.2f} | {ratios['measured/kfac']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("seed", type=int)
    parser.add_argument("overrides", nargs="*", help="constructor arguments as key=value")
    parser.add_argument("--yaml-batch", action="store_true", help="ACKTR at the YAML entry's own batch and network")
    parser.add_argument("--warmup", type=int, default=15_000, help="training steps before the measured updates")
    parser.add_argument("--updates", type=int, default=10, help="measured updates")
    args = parser.parse_args()
    record = measure(args.env_id, args.seed, args.warmup, args.updates, args.yaml_batch, parse_overrides(args.overrides))
    records = json.loads(OUT_PATH.read_text()) if OUT_PATH.exists() else []
    records = [r for r in records if _record_key(r) != _record_key(record)]
    records.append(record)
    OUT_PATH.write_text(json.dumps(records, indent=1) + "\n")
    OUT_PATH.with_suffix(".md").write_text(render_markdown(records))
    print(json.dumps({k: v for k, v in record.items() if k != "updates"}, indent=1))


if __name__ == "__main__":
    main()
