"""Command line of the benchmark harness.

Examples::

    python -m benchmarks.run --list
    python -m benchmarks.run --suite smoke --profile quick --jobs 2     # train, then write the report
    python -m benchmarks.run --suite trpo --quick --only-env CartPole-v1 --dry-run
    python -m benchmarks.run --suite smoke --report-only                # table and plots from results.jsonl
    python -m benchmarks.run --suite smoke --overhead                   # time train() alone

Results go to ``docs/benchmarks/<suite>/`` (``--out-dir`` to change it); an interrupted run resumes when the
same command is run again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import default_out_dir, read_records, run_suite, split_pending
from benchmarks.spec import PROFILES, plan_runs
from benchmarks.suites import SUITES


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m benchmarks.run``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), help="suite to run (see --list)")
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="budget profile (default: quick)")
    parser.add_argument("--quick", dest="profile", action="store_const", const="quick", help="same as --profile quick")
    parser.add_argument("--full", dest="profile", action="store_const", const="full", help="same as --profile full")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes at the same time (default: 1)")
    parser.add_argument("--only-env", nargs="+", metavar="ENV", help="restrict to these env ids")
    parser.add_argument("--only-algo", nargs="+", metavar="LABEL", help="restrict to these algorithm labels")
    parser.add_argument("--report-only", action="store_true", help="only rebuild results.md and the plots")
    parser.add_argument("--no-report", action="store_true", help="train without rebuilding the report")
    parser.add_argument("--overhead", action="store_true", help="time train() of candidate vs reference instead of training")
    parser.add_argument("--repeats", type=int, help="--overhead: timed calls per model (default from the profile)")
    parser.add_argument("--train-calls", type=int, default=1, help="--overhead: consecutive train() calls per timed block")
    parser.add_argument("--learn-steps", type=int, default=0, help="--overhead: also time learn(N) of fresh models (0: off)")
    parser.add_argument("--learn-repeats", type=int, default=4, help="--overhead: timed learn() calls per model")
    parser.add_argument("--dry-run", action="store_true", help="print the planned runs and whether each is done")
    parser.add_argument("--list", action="store_true", help="list suites and their entries")
    parser.add_argument("--timeout", type=float, help="wall-clock limit of each run in seconds (default: per budget)")
    parser.add_argument("--device", default="cpu", help="torch device of the models (default: cpu)")
    parser.add_argument("--out-dir", type=Path, help="results folder (default: docs/benchmarks/<suite>)")
    return parser


def _list_suites() -> None:
    for suite in SUITES.values():
        print(f"{suite.name}: {suite.description}")
        for entry in suite.entries:
            algos = ", ".join(f"{a.label} [{a.cls}]" for a in entry.candidates)
            print(
                f"  {entry.env_id}: {algos} vs {entry.reference.label} [{entry.reference.cls}]; "
                f"quick {entry.quick.timesteps:,} x {entry.quick.seeds} seeds, "
                f"full {entry.full.timesteps:,} x {entry.full.seeds} seeds"
            )


def _report(out_dir: Path, profile: str, suite: str) -> int:
    from benchmarks.report import write_report

    path = write_report(out_dir, profile, suite)
    if path is None:
        print(f"no {profile} results in {out_dir / 'results.jsonl'} yet", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 if a run failed or there was nothing to report, 2 on a setup error)."""
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (FileNotFoundError, KeyError, ValueError) as error:
        # Missing YAML file or entry, unknown env, bad suite definition: say what, not where.
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    if args.list:
        _list_suites()
        return 0
    if args.suite is None:
        build_parser().error("--suite is required (or --list)")
    suite = SUITES[args.suite]
    out_dir = args.out_dir or default_out_dir(suite.name)

    if args.overhead:
        from dataclasses import replace

        from benchmarks.overhead import OVERHEAD_PROFILES, measure_suite, write_overhead

        settings = OVERHEAD_PROFILES[args.profile]
        if args.repeats:
            settings = replace(settings, repeats=args.repeats)
        settings = replace(
            settings, train_calls=args.train_calls, learn_steps=args.learn_steps, learn_repeats=args.learn_repeats
        )
        results = measure_suite(suite, settings, args.only_env, args.only_algo)
        for path in write_overhead(out_dir, suite, args.profile, results):
            print(f"overhead: {path}")
        return 0
    if args.dry_run:
        runs = plan_runs(suite, args.profile, args.only_env, args.only_algo, args.device)
        pending, stale = split_pending(runs, read_records(out_dir / "results.jsonl"))
        todo = {run.key for run in pending}
        for run in runs:
            state = "to run" if run.key in todo else "stale" if run in stale else "done"
            source = f"{run.zoo_file} [{run.zoo_key}]" if run.zoo_file else "kwargs only"
            print(f"{state:7s} {run.name}  {run.algo}, {run.n_timesteps:,} steps, {source}, config {run.config_hash()}")
        return 0
    status = 0
    if not args.report_only:
        summary = run_suite(suite, args.profile, out_dir, args.jobs, args.only_env, args.only_algo, args.device, args.timeout)
        status = 1 if summary.failed else 0
    if not args.no_report:
        status = max(status, _report(out_dir, args.profile, suite.name))
    return status


if __name__ == "__main__":
    sys.exit(main())
