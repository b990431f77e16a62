"""Command line of the benchmarks: ``python -m benchmarks returns|speed|micro|status``.

Examples::

    python -m benchmarks returns --list
    python -m benchmarks returns --suite smoke --jobs 2                 # train what is missing, then report
    python -m benchmarks returns --suite trpo --full --only-env Hopper-v5 --dry-run
    python -m benchmarks returns --suite smoke --report-only            # table and plots from results.jsonl
    python -m benchmarks speed --suite acktr_speed --train-calls 10     # time train() alone
    python -m benchmarks micro --list
    python -m benchmarks micro --suite fvp_speed --repeats 5            # further arguments go to the module
    python -m benchmarks status [--suite trpo]                          # stale / missing recorded runs

Results go to ``docs/benchmarks/<suite>/`` (``--out-dir`` to change it); an interrupted ``returns`` resumes
when the same command is run again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks import micro
from benchmarks.harness import default_out_dir, read_records, run_suite, split_pending
from benchmarks.spec import PROFILES, Suite, plan_runs
from benchmarks.status import render_status, suite_status
from benchmarks.suites import SUITES


def _add_suite_arguments(parser: argparse.ArgumentParser, required_suite: bool = False) -> None:
    parser.add_argument("--suite", choices=sorted(SUITES), required=required_suite, help="suite (see --list)")
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="budget profile (default: quick)")
    parser.add_argument("--quick", dest="profile", action="store_const", const="quick", help="same as --profile quick")
    parser.add_argument("--full", dest="profile", action="store_const", const="full", help="same as --profile full")
    parser.add_argument("--only-env", nargs="+", metavar="ENV", help="restrict to these env ids")
    parser.add_argument("--only-algo", nargs="+", metavar="LABEL", help="restrict to these algorithm labels")
    parser.add_argument("--out-dir", type=Path, help="results folder (default: docs/benchmarks/<suite>)")
    parser.add_argument("--list", action="store_true", help="list suites and their entries")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    returns = commands.add_parser("returns", help="train a suite's runs (resumable), then write results.md and plots")
    _add_suite_arguments(returns)
    returns.add_argument("--jobs", type=int, default=1, help="worker processes at the same time (default: 1)")
    returns.add_argument("--report-only", action="store_true", help="only rebuild results.md and the plots")
    returns.add_argument("--no-report", action="store_true", help="train without rebuilding the report")
    returns.add_argument("--dry-run", action="store_true", help="print the planned runs and whether each is done")
    returns.add_argument("--timeout", type=float, help="wall-clock limit of each run in seconds (default: per budget)")
    returns.add_argument("--device", default="cpu", help="torch device of the models (default: cpu)")

    speed = commands.add_parser("speed", help="time train() of candidate vs reference on identical data")
    _add_suite_arguments(speed)
    speed.add_argument("--repeats", type=int, help="timed calls per model (default from the profile)")
    speed.add_argument("--train-calls", type=int, default=1, help="consecutive train() calls per timed block")
    speed.add_argument("--learn-steps", type=int, default=0, help="also time learn(N) of fresh models (0: off)")
    speed.add_argument("--learn-repeats", type=int, default=4, help="timed learn() calls per model")

    micro_parser = commands.add_parser(
        "micro", help="a micro-benchmark of benchmarks/micro/ (further arguments go to its main)"
    )
    micro_parser.add_argument("--suite", help="module name in benchmarks/micro/ (see --list)")
    micro_parser.add_argument("--list", action="store_true", help="list the micro-benchmarks")

    status = commands.add_parser("status", help="recorded runs that are stale, missing or historical, per suite")
    status.add_argument("--suite", choices=sorted(SUITES), help="one suite (default: all)")
    status.add_argument("--profile", choices=PROFILES, help="one profile (default: both)")
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


def _returns(args: argparse.Namespace, suite: Suite, out_dir: Path) -> int:
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
        from benchmarks.report import write_report

        path = write_report(out_dir, args.profile, suite)
        if path is None:
            print(f"no {args.profile} results in {out_dir / 'results.jsonl'} yet", file=sys.stderr)
            return 1
        print(f"report: {path}")
    return status


def _speed(args: argparse.Namespace, suite: Suite, out_dir: Path) -> int:
    from benchmarks.overhead import OVERHEAD_PROFILES, measure_suite, write_overhead

    settings = OVERHEAD_PROFILES[args.profile]
    if args.repeats:
        settings = replace(settings, repeats=args.repeats)
    settings = replace(settings, train_calls=args.train_calls, learn_steps=args.learn_steps, learn_repeats=args.learn_repeats)
    results = measure_suite(suite, settings, args.only_env, args.only_algo)
    for path in write_overhead(out_dir, suite, args.profile, results):
        print(f"overhead: {path}")
    return 0


def _status(args: argparse.Namespace) -> int:
    suites = [SUITES[args.suite]] if args.suite else list(SUITES.values())
    for suite in suites:
        records = read_records(default_out_dir(suite.name) / "results.jsonl")
        for profile in [args.profile] if args.profile else PROFILES:
            print("\n".join(render_status(suite_status(suite, profile, records))))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 if a run failed or there was nothing to report, 2 on a setup error)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "micro":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "micro":
            if args.list or args.suite is None:
                print("\n".join(micro.available()))
                return 0 if args.list else 2
            return micro.load(args.suite)(rest)
        if args.command == "status":
            return _status(args)
        if args.list:
            _list_suites()
            return 0
        if args.suite is None:
            parser.error(f"{args.command} needs --suite (or --list)")
        suite = SUITES[args.suite]
        out_dir = args.out_dir or default_out_dir(suite.name)
        return _returns(args, suite, out_dir) if args.command == "returns" else _speed(args, suite, out_dir)
    except (FileNotFoundError, KeyError, ValueError) as error:
        # Missing YAML file or entry, unknown env or micro-benchmark, bad suite definition: say what, not where.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
