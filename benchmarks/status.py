"""Which recorded runs of a suite are stale, missing or historical (``python -m benchmarks status``).

For one suite and profile, the runs the suite plans now are compared with the lines of its ``results.jsonl``:

- *done*: a line with the run's key and the same ``config_hash``;
- *stale*: a line with the run's key but another ``config_hash`` (the suite or a YAML changed since);
- *missing*: no line with the run's key;
- *historical*: lines whose key the suite no longer plans (a removed variant, another budget or seed count),
  kept as records of earlier configurations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import split_pending
from benchmarks.spec import RunSpec, Suite, plan_runs, record_key


@dataclass(frozen=True)
class SuiteStatus:
    """Recorded runs of one suite and profile against what the suite plans now."""

    suite: str
    profile: str
    planned: int
    stale: list[RunSpec]
    missing: list[RunSpec]
    #: ``(env_id, label) -> number of recorded runs`` the suite no longer plans.
    historical: dict[tuple[str, str], int]

    @property
    def done(self) -> int:
        """Planned runs recorded with their current configuration."""
        return self.planned - len(self.stale) - len(self.missing)


def suite_status(suite: Suite, profile: str, records: Iterable[dict[str, Any]]) -> SuiteStatus:
    """Compare the runs ``suite`` plans in ``profile`` with the ``records`` of its ``results.jsonl``."""
    records = [record for record in records if record["profile"] == profile]
    runs = plan_runs(suite, profile)
    missing, stale = split_pending(runs, records)
    planned = {run.key for run in runs}
    historical = Counter((r["env_id"], r["label"]) for r in records if record_key(r) not in planned)
    return SuiteStatus(suite.name, profile, len(runs), stale, missing, dict(historical))


def _runs_by_algo(runs: list[RunSpec]) -> str:
    counts = Counter((run.env_id, run.label) for run in runs)
    return "; ".join(f"{env} | {label} x{n}" for (env, label), n in counts.items())


def render_status(status: SuiteStatus) -> list[str]:
    """Lines that say how many runs are done and name the stale, missing and historical ones."""
    lines = [
        f"{status.suite} ({status.profile}): {status.done}/{status.planned} done, {len(status.stale)} stale, "
        f"{len(status.missing)} missing, {sum(status.historical.values())} historical"
    ]
    if not (status.done or status.stale or status.historical):
        return lines  # nothing recorded: the missing runs are all of them
    if status.stale:
        lines.append(f"  stale (config_hash differs; delete the lines to rerun): {_runs_by_algo(status.stale)}")
    if status.missing:
        lines.append(f"  missing: {_runs_by_algo(status.missing)}")
    if status.historical:
        names = "; ".join(f"{env} | {label} x{n}" for (env, label), n in status.historical.items())
        lines.append(f"  historical (no longer planned by the suite): {names}")
    return lines
