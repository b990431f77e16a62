"""Runs a suite: one worker process per run, results appended to ``results.jsonl``, resumable.

Every finished run becomes one JSON line of ``<out_dir>/results.jsonl``. Runs whose key (profile, env,
label, seed, budget) is already in the file are skipped, so an interrupted suite resumes where it stopped
and a failed run (crash, timeout) is retried by running the command again. A worker's output goes to
``benchmarks/runs/<suite>/<run>.log`` (git-ignored), which is where to look when a run fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.spec import RunKey, RunSpec, Suite, plan_runs, record_key
from benchmarks.zoo import REPO_ROOT

#: Where the worker logs and scratch files go (ignored by git).
DEFAULT_WORK_ROOT = REPO_ROOT / "benchmarks" / "runs"


def default_out_dir(suite_name: str) -> Path:
    """``docs/benchmarks/<suite>``: where results, tables and plots are written."""
    return REPO_ROOT / "docs" / "benchmarks" / suite_name


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a ``results.jsonl`` (missing file: none). A truncated last line is ignored."""
    if not path.exists():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                print(f"warning: ignoring a truncated last line in {path}", file=sys.stderr)
                continue
            raise ValueError(f"{path}:{number} is not valid JSON") from None
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line, under an exclusive lock (several harnesses may share a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def split_pending(runs: Sequence[RunSpec], records: Iterable[dict[str, Any]]) -> tuple[list[RunSpec], list[RunSpec]]:
    """Runs still to do, and runs already done whose stored configuration differs from the suite's now.

    A run is done when a record with its key exists. A done run with another ``config_hash`` (the YAML
    or the suite changed since) is not re-run: it is returned as stale so the caller can say so.
    """
    hashes: dict[RunKey, str] = {record_key(record): record.get("config_hash", "") for record in records}
    pending = [run for run in runs if run.key not in hashes]
    stale = [run for run in runs if run.key in hashes and hashes[run.key] != run.config_hash()]
    return pending, stale


def git_commit() -> str | None:
    """Commit of the repository the harness runs from (None outside a git checkout)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def _worker_env() -> dict[str, str]:
    """Environment of a worker: repository importable, one BLAS/OpenMP thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


@dataclass
class RunOutcome:
    """What became of one run: its record, or why there is none."""

    spec: RunSpec
    record: dict[str, Any] | None
    error: str | None
    wall_s: float
    log_path: Path


@dataclass
class _Running:
    """Worker processes alive now, so an interrupt can end them."""

    processes: set[subprocess.Popen] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kill_all(self) -> None:
        with self.lock:
            for process in self.processes:
                _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    """End a worker and anything it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_unless_taken(
    spec: RunSpec, results: Path, work_dir: Path, timeout_s: float, running: _Running | None = None
) -> RunOutcome | None:
    """:func:`run_in_subprocess` under an exclusive lock on the run's ``.lock`` file in ``work_dir``, or ``None``
    when another harness holds the lock or ``results`` has gained the run since this harness planned it.

    Two harnesses whose selections overlap otherwise both run it, append it twice, and the later one resumes from the
    other's checkpoints (a different result for the same seed).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / f"{spec.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if not split_pending([spec], read_records(results))[0]:
            return None
        return run_in_subprocess(spec, work_dir, timeout_s, running)  # the lock is released when the file closes


def run_in_subprocess(spec: RunSpec, work_dir: Path, timeout_s: float, running: _Running | None = None) -> RunOutcome:
    """Run ``spec`` in ``python -m benchmarks.worker`` with a wall-clock limit."""
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path = work_dir / f"{spec.name}.spec.json"
    result_path = work_dir / f"{spec.name}.result.json"
    log_path = work_dir / f"{spec.name}.log"
    checkpoint_dir = work_dir / f"{spec.name}.ckpt"  # resumed from if an earlier attempt left one
    spec_path.write_text(json.dumps(spec.to_dict(), indent=1))
    result_path.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(result_path), str(checkpoint_dir)],
            cwd=REPO_ROOT,
            env=_worker_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if running is not None:
            with running.lock:
                running.processes.add(process)
        try:
            returncode = process.wait(timeout=timeout_s)
            error = None if returncode == 0 else f"worker exited with status {returncode}"
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.wait()
            error = f"timeout after {timeout_s:.0f} s"
        finally:
            if running is not None:
                with running.lock:
                    running.processes.discard(process)
    wall_s = time.perf_counter() - start
    record = None
    if error is None:
        try:
            record = json.loads(result_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            error = f"no result written ({exc})"
    return RunOutcome(spec=spec, record=record, error=error, wall_s=wall_s, log_path=log_path)


@dataclass
class SuiteRun:
    """Summary of :func:`run_suite`."""

    planned: int
    skipped: int
    finished: list[RunOutcome]
    failed: list[RunOutcome]
    stale: list[RunSpec]


def _describe(outcome: RunOutcome) -> str:
    spec = outcome.spec
    head = f"{spec.env_id} | {spec.label} | seed {spec.seed}"
    if outcome.record is None:
        return f"{head}: FAILED ({outcome.error}); log: {outcome.log_path}"
    record = outcome.record
    return (
        f"{head}: final return {record['final']['mean']:.1f} +/- {record['final']['std']:.1f}, "
        f"learn() {record['train_wall_s']:.1f} s + {record['eval_wall_s']:.1f} s evaluation, "
        f"{record['steps_per_s']:.0f} steps/s"
    )


def run_suite(
    suite: Suite,
    profile: str,
    out_dir: Path,
    jobs: int = 1,
    only_env: Sequence[str] | None = None,
    only_algo: Sequence[str] | None = None,
    device: str = "cpu",
    timeout_s: float | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> SuiteRun:
    """Run every pending run of ``suite`` and append each finished one to ``out_dir/results.jsonl``.

    :param jobs: number of worker processes at the same time (timings are only comparable between runs
        made with the same ``jobs`` on the same machine; each record stores it).
    :param timeout_s: overrides every run's own limit.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    results = out_dir / "results.jsonl"
    work_dir = work_dir if work_dir is not None else DEFAULT_WORK_ROOT / suite.name
    runs = plan_runs(suite, profile, only_env, only_algo, device, meta={"jobs": jobs, "git_commit": git_commit()})
    pending, stale = split_pending(runs, read_records(results))
    for spec in {(run.env_id, run.label): run for run in runs if run.zoo_key == "default"}.values():
        log(f"note: {spec.label} on {spec.env_id} uses the 'default' entry of {spec.zoo_file} (no entry for this env)")
    for spec in stale:
        log(
            f"note: {spec.name} is in {results} with another configuration (hash {spec.config_hash()} now); "
            "delete its line to run it again"
        )
    log(
        f"suite {suite.name} ({profile}): {len(runs)} runs planned, {len(runs) - len(pending)} already in {results}, "
        f"{len(pending)} to run with {jobs} job(s)"
    )
    finished: list[RunOutcome] = []
    failed: list[RunOutcome] = []
    running = _Running()
    taken = 0  # runs another harness was running or had finished
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures: set[Future[RunOutcome | None]] = {
            pool.submit(run_unless_taken, spec, results, work_dir, timeout_s or spec.timeout_s, running) for spec in pending
        }
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    if outcome is None:
                        taken += 1
                        continue
                    if outcome.record is not None:
                        append_record(results, outcome.record)
                        finished.append(outcome)
                    else:
                        failed.append(outcome)
                    log(f"[{len(finished) + len(failed) + taken}/{len(pending)}] {_describe(outcome)}")
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            running.kill_all()
            raise
    if taken:
        log(f"{taken} run(s) left to another harness (running or finished there)")
    return SuiteRun(planned=len(runs), skipped=len(runs) - len(pending) + taken, finished=finished, failed=failed, stale=stale)
