"""Markdown table and learning-curve plots from a suite's ``results.jsonl``.

For each env and algorithm (records of one profile; a run key present twice counts once, the last line):

- final return: mean and standard deviation (``ddof=0``) over seeds of each seed's final evaluation mean, and
  their interquartile mean (IQM) with a 95% stratified bootstrap confidence interval (:mod:`benchmarks.stats`);
- steps/s: median over seeds of ``learn()`` steps per second, evaluation time excluded;
- time ratio: median over seeds present for both of (candidate ``learn()`` time / reference ``learn()`` time),
  evaluation time excluded;
- sample efficiency: first timestep at which the algorithm's mean learning curve (mean over seeds, seeds
  interpolated onto a common grid) reaches the reference's final mean return, and its ratio to the same
  timestep of the reference's own mean curve (< 1: the candidate gets there with fewer samples).

Plots: ``<env>.png``, IQM over seeds of the learning curve of each algorithm with its 95% bootstrap interval as a
band, the reference's final mean as a dashed line. The report reads only the JSONL, so it can be regenerated
anywhere; rows whose label the suite no longer has are marked *historical*.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import read_records
from benchmarks.spec import REFERENCE, Suite, record_key
from benchmarks.stats import iqm_with_ci

#: Relative tolerance when comparing a curve with a target return (the reference's curve ends exactly there).
_REACH_RTOL = 1e-9


def latest_records(records: Iterable[dict[str, Any]], profile: str) -> list[dict[str, Any]]:
    """Records of ``profile``, one per run key (the last one written wins), in file order."""
    by_key = {record_key(record): record for record in records if record["profile"] == profile}
    return list(by_key.values())


def group_by_env(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{env_id: {label: [records sorted by seed]}}`` in order of first appearance."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record["env_id"]][record["label"]].append(record)
    return {
        env: {label: sorted(runs, key=lambda r: r["seed"]) for label, runs in labels.items()} for env, labels in groups.items()
    }


def curves_on_grid(runs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Learning curves of the seeds on the timesteps of the first seed, ``(grid, [n_seeds, len(grid)])``.

    Seeds are linearly interpolated onto that grid, cut where the shortest curve ends. When every seed ran its whole
    budget (``n_timesteps``), the last point is each seed's own final evaluation, placed where the shortest seed ends:
    a run resumed from a checkpoint rounds its last segment to whole rollouts by itself, so seeds can end a few
    rollouts apart (1,000,176 and 1,000,448 steps), and cutting or interpolating there would drop or blur that point.
    """
    end = min(run["curve"]["timesteps"][-1] for run in runs)
    budget = runs[0].get("n_timesteps")
    finished = budget is not None and end >= budget
    grid = np.asarray(runs[0]["curve"]["timesteps"], dtype=float)
    grid = grid[grid < budget] if finished else grid[grid <= end]
    values = np.stack(
        [np.interp(grid, np.asarray(r["curve"]["timesteps"], float), np.asarray(r["curve"]["mean"], float)) for r in runs]
    )
    if finished:
        grid = np.append(grid, float(end))
        values = np.column_stack([values, [float(run["curve"]["mean"][-1]) for run in runs]])
    return grid, values


def mean_curve(runs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds of the learning curves (:func:`curves_on_grid`)."""
    grid, values = curves_on_grid(runs)
    return grid, values.mean(axis=0), values.std(axis=0)


def first_reach(timesteps: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    """First timestep where ``curve >= target`` (None if never)."""
    reached = np.flatnonzero(curve >= target - _REACH_RTOL * max(1.0, abs(target)))
    return float(timesteps[reached[0]]) if reached.size else None


@dataclass
class Row:
    """One line of the results table."""

    env_id: str
    label: str
    algo: str
    role: str
    n_seeds: int
    n_timesteps: int
    final_mean: float
    final_std: float
    final_iqm: float
    final_iqm_low: float
    final_iqm_high: float
    steps_per_s: float
    time_ratio: float | None
    reach_timestep: float | None
    reach_ratio: float | None
    historical: bool = False


def _reference_label(env_id: str, labels: dict[str, list[dict[str, Any]]]) -> str | None:
    refs = {label for label, runs in labels.items() if runs[0]["role"] == REFERENCE}
    if len(refs) > 1:
        raise ValueError(f"{env_id}: several references in the results: {sorted(refs)}")
    return next(iter(refs), None)


def _time_ratio(runs: Sequence[dict[str, Any]], ref_runs: Sequence[dict[str, Any]]) -> float | None:
    """Median over seeds present in both of the ratio of ``learn()`` times (evaluation excluded)."""
    ref_by_seed = {r["seed"]: r["train_wall_s"] for r in ref_runs}
    ratios = [r["train_wall_s"] / ref_by_seed[r["seed"]] for r in runs if r["seed"] in ref_by_seed]
    return float(np.median(ratios)) if ratios else None


def summarize(records: Iterable[dict[str, Any]], current: set[tuple[str, str]] | None = None) -> list[Row]:
    """Table rows (reference first within each env) from the records of one profile.

    :param current: ``(env_id, label)`` pairs the suite has now; rows of other labels are marked historical
        (None: no row is).
    """
    rows: list[Row] = []
    for env_id, labels in group_by_env(records).items():
        ref_label = _reference_label(env_id, labels)
        ref_runs = labels.get(ref_label, []) if ref_label else []
        target = ref_reach = None
        if ref_runs:
            target = float(np.mean([r["final"]["mean"] for r in ref_runs]))
            ref_t, ref_mean, _ = mean_curve(ref_runs)
            ref_reach = first_reach(ref_t, ref_mean, target)
        ordered = sorted(labels, key=lambda label: (label != ref_label, label))  # reference, then candidates A-Z
        for label in ordered:
            runs = labels[label]
            finals = np.array([r["final"]["mean"] for r in runs])
            final_iqm = iqm_with_ci(finals)
            reach = ratio = None
            if target is not None:
                t, mean, _ = mean_curve(runs)
                reach = first_reach(t, mean, target)
                ratio = reach / ref_reach if reach is not None and ref_reach else None  # undefined if ref_reach == 0
            rows.append(
                Row(
                    env_id=env_id,
                    label=label,
                    algo=runs[0]["algo"],
                    role=runs[0]["role"],
                    n_seeds=len(runs),
                    n_timesteps=int(runs[0]["n_timesteps"]),
                    final_mean=float(finals.mean()),
                    final_std=float(finals.std()),
                    final_iqm=float(final_iqm.iqm),
                    final_iqm_low=float(final_iqm.low),
                    final_iqm_high=float(final_iqm.high),
                    steps_per_s=float(np.median([r["steps_per_s"] for r in runs])),
                    time_ratio=_time_ratio(runs, ref_runs) if ref_runs else None,
                    reach_timestep=reach,
                    reach_ratio=ratio,
                    historical=current is not None and (env_id, label) not in current,
                )
            )
    return rows


def env_file_name(env_id: str) -> str:
    """File name of an env's plot (``ALE/Pong-v5`` -> ``ALE_Pong-v5.png``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id) + ".png"


def plot_env(env_id: str, labels: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Learning curves of one env (IQM over seeds, 95% bootstrap CI as a band) as a PNG, with the Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    ref_label = _reference_label(env_id, labels)
    for label, runs in sorted(labels.items(), key=lambda item: (item[0] != ref_label, item[0])):
        t, values = curves_on_grid(runs)
        curve = iqm_with_ci(values)
        name = f"{label} ({'reference' if label == ref_label else 'candidate'}, {len(runs)} seeds)"
        (line,) = axes.plot(t, curve.iqm, label=name, linewidth=2 if label == ref_label else 1.5)
        axes.fill_between(t, curve.low, curve.high, color=line.get_color(), alpha=0.15, linewidth=0)
        if label == ref_label:
            final = float(np.mean([r["final"]["mean"] for r in runs]))
            axes.axhline(
                final, color=line.get_color(), linestyle="--", linewidth=1, label=f"reference final mean ({final:.1f})"
            )
    axes.set_title(title)
    axes.set_xlabel("environment steps")
    axes.set_ylabel("evaluation return: IQM over seeds, 95% CI band")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.savefig(path, dpi=110)


def _fmt_steps(value: float | None, budget: int) -> str:
    return f"{value:,.0f}" if value is not None else f"not reached (> {budget:,})"


def _fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def _unique(records: Sequence[dict[str, Any]], getter: Any) -> str:
    values = sorted({str(getter(r)) for r in records})
    return ", ".join(values) if values else "n/a"


_SUMMARY_HEADER = (
    "| Env | Algorithm | Role | Budget | Seeds | Final return (mean ± std over seeds) | Final return IQM [95% CI] "
    "| Steps/s | learn() time ratio vs ref. | Steps to reach ref. final return | Sample-efficiency ratio vs ref. |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)
_DEFINITIONS = [
    "- Final return: each seed's mean over its final deterministic evaluation episodes, then mean ± std (ddof=0) over seeds.",
    "- IQM: interquartile mean over seeds (rliable's `aggregate_iqm`: int(n/4) seeds cut at each end, so with fewer than "
    "4 seeds it is the mean), with a 95% percentile bootstrap interval over seeds (2000 resamples, seeded; "
    "Agarwal et al. 2021). The learning-curve plots show the same IQM and interval per evaluation point.",
    "- Steps/s and learn() time exclude the periodic evaluations; the time ratio is the median over seeds of "
    "candidate / reference for the same seed (< 1: candidate faster).",
    "- Steps to reach: first timestep at which the mean-over-seeds learning curve reaches the reference's final "
    "mean return; the ratio divides it by the reference's own (< 1: candidate more sample-efficient).",
]
_HISTORICAL = (
    "- *historical*: an algorithm label the suite no longer has; its runs are kept as a record of an earlier configuration."
)
_RUNS_HEADER = (
    "| Env | Algorithm | Seed | Final return (mean ± std over episodes) | learn() s | eval s | Steps/s "
    "| Hyperparameters from | Config |\n"
    "|---|---|---:|---:|---:|---:|---:|---|---|"
)


def _summary_line(row: Row) -> str:
    role = f"{row.role}, *historical*" if row.historical else row.role
    return (
        f"| {row.env_id} | {row.label} (`{row.algo}`) | {role} | {row.n_timesteps:,} | {row.n_seeds} "
        f"| {row.final_mean:.1f} ± {row.final_std:.1f} "
        f"| {row.final_iqm:.1f} [{row.final_iqm_low:.1f}, {row.final_iqm_high:.1f}] "
        f"| {row.steps_per_s:,.0f} | {_fmt_ratio(row.time_ratio)} "
        f"| {_fmt_steps(row.reach_timestep, row.n_timesteps)} | {_fmt_ratio(row.reach_ratio)} |"
    )


def _run_line(record: dict[str, Any]) -> str:
    source = f"{record.get('zoo_file')} [{record.get('zoo_key')}]" if record.get("zoo_file") else "kwargs only"
    final = record["final"]
    return (
        f"| {record['env_id']} | {record['label']} | {record['seed']} | {final['mean']:.1f} ± {final['std']:.1f} "
        f"| {record['train_wall_s']:.1f} | {record['eval_wall_s']:.1f} | {record['steps_per_s']:,.0f} | {source} "
        f"| `{record['config_hash']}` |"
    )


def _provenance(records: Sequence[dict[str, Any]]) -> list[str]:
    def versions(record: dict[str, Any]) -> str:
        return ", ".join(f"{name} {version}" for name, version in sorted(record.get("versions", {}).items()))

    return [
        f"- CPU: {_unique(records, lambda r: r.get('cpu', 'n/a'))}; "
        f"concurrent jobs: {_unique(records, lambda r: r['meta'].get('jobs'))}; "
        f"torch threads per run: {_unique(records, lambda r: r.get('torch_threads'))}",
        f"- Versions: {_unique(records, versions)}",
        f"- Commits: {_unique(records, lambda r: (r['meta'].get('git_commit') or 'n/a')[:10])}",
        f"- Runs started: {min(r['started_at'] for r in records)} to {max(r['started_at'] for r in records)}",
    ]


def render_markdown(
    rows: Sequence[Row], records: Sequence[dict[str, Any]], suite: str, profile: str, plots: dict[str, str]
) -> str:
    """The ``results.md`` text: summary table, definitions, plots, provenance, per-run details."""
    lines = [
        f"# Benchmark `{suite}` — profile `{profile}`",
        "",
        "Generated by `python -m benchmarks returns --report-only` from `results.jsonl` (do not edit by hand).",
        "",
        _SUMMARY_HEADER,
        *map(_summary_line, rows),
        "",
        *_DEFINITIONS,
        *([_HISTORICAL] if any(row.historical for row in rows) else []),
        "",
        "## Learning curves",
        "",
        *(f"![{env_id}]({name})" for env_id, name in plots.items()),
        "",
        "## Provenance",
        "",
        *_provenance(records),
        "",
        "## Runs",
        "",
        _RUNS_HEADER,
        *map(_run_line, sorted(records, key=lambda r: (r["env_id"], r["role"] != REFERENCE, r["label"], r["seed"]))),
    ]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, profile: str, suite: Suite | None = None) -> Path | None:
    """Write ``results.md`` and one PNG per env from ``out_dir/results.jsonl``; returns the markdown path.

    :param suite: the suite as it is now, to mark the labels it no longer has as historical (None: none marked).
    :return: None (and nothing written) when the file has no record of ``profile``.
    """
    records = latest_records(read_records(out_dir / "results.jsonl"), profile)
    if not records:
        return None
    current = {(entry.env_id, algo.label) for entry in suite.entries for algo in entry.algos} if suite else None
    name = suite.name if suite else records[0]["suite"]
    rows = summarize(records, current)
    plots: dict[str, str] = {}
    for env_id, labels in group_by_env(records).items():
        file_name = env_file_name(env_id)
        budget = int(next(iter(labels.values()))[0]["n_timesteps"])
        plot_env(env_id, labels, out_dir / file_name, title=f"{env_id} — {name} ({profile}, {budget:,} steps)")
        plots[env_id] = file_name
    path = out_dir / "results.md"
    path.write_text(render_markdown(rows, records, name, profile, plots))
    return path
