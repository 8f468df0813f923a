from ._source import add_source_arguments, load_source

NAME = "bench"
HELP = "freshness, throughput and CPU per event of the live pipeline (local servers) per input rate and worker count"


def parse_worker_counts(text: str) -> list[int]:
    """ "1,2,4" -> [1, 2, 4] (sorted, each once); ValueError, saying why, for anything but positive integers."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"--workers {text!r} must be positive integers separated by commas, e.g. 1,2,4")
    return sorted({int(part) for part in parts})


def configure(parser):
    add_source_arguments(parser)
    parser.add_argument("--rates", default="100,1000,5000", help="events per second, comma-separated")
    parser.add_argument(
        "--workers",
        default="1",
        help="worker counts, comma-separated: each count runs every rate with that many workers in one consumer group",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of input per rate")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of unreported input first (JVM warm-up)")
    parser.add_argument("--out", required=True, help="folder for bench.json and the plots")
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--checkpoint",
        help="folder of the temporal GAT checkpoint to serve "
        "(default: train or reuse the demo checkpoint of the data set)",
    )
    model.add_argument("--baseline", action="store_true", help="serve the co-occurrence baseline")
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="N",
        help="start each run's graph with N synthetic edges (as `streamrec load`) and remap the events onto their ids",
    )
    parser.add_argument("--preload-users", type=int, default=None, help="users of the preloaded graph (default N / 20)")
    parser.add_argument(
        "--preload-items", type=int, default=None, help="items of the preloaded graph (default N / 100)"
    )


class _Usage(Exception):
    """Flags that cannot run, with the line that says why."""


def run(args, settings) -> int:
    from pathlib import Path

    from ..bench import run_bench
    from ..bench_preload import Preload

    try:
        rates, worker_counts = _rates_and_worker_counts(args)
        data = load_source(args, settings, NAME)
        if data is None:
            return 2
        model_dir = _model_dir(args, settings)
        if min(args.preload, args.preload_users or 1, args.preload_items or 1) < 0:
            raise _Usage("--preload, --preload-users and --preload-items must not be negative")
    except _Usage as usage:
        print(f"streamrec bench: {usage}")
        return 2
    preload = Preload.of(args.preload, args.preload_users, args.preload_items) if args.preload else None
    report = run_bench(
        data,
        rates,
        args.duration,
        Path(args.out),
        model_dir,
        args.warmup,
        worker_counts,
        command=args.command_line,
        preload=preload,
    )
    _print_summary(report)
    print(f"report: {Path(args.out) / 'bench.json'}")
    return 0


def _rates_and_worker_counts(args) -> tuple[list[float], list[int]]:
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        raise _Usage(f"--rates {args.rates!r} must be numbers separated by commas") from None
    if not rates or min(rates) <= 0 or args.duration <= 0:
        raise _Usage("rates and duration must be positive")
    try:
        return rates, parse_worker_counts(args.workers)
    except ValueError as error:
        raise _Usage(str(error)) from None


def _model_dir(args, settings):
    """The checkpoint folder the workers serve, or None for the baseline; events of the user's own have no demo
    checkpoint, so with --events-csv one of the two flags is needed."""
    from pathlib import Path

    from ..demo import ensure_demo_checkpoint

    if args.baseline:
        return None
    if args.checkpoint:
        return Path(args.checkpoint)
    if args.events_csv:
        raise _Usage("with --events-csv, pass --checkpoint DIR (from `streamrec train`) or --baseline")
    return ensure_demo_checkpoint(args.dataset, settings.home)


def _print_summary(report: dict) -> None:
    """The highest sustainable rates, and each run's rates, freshness and CPU, as JSON on stdout."""
    import json

    summary = {
        f"{r['workers']} workers @ {r['target_rate']:g}": {
            k: r[k]
            for k in (
                "achieved_input_rate",
                "achieved_output_rate",
                "freshness_s",
                "cpu_ms_per_event",
                "events_per_cpu_second",
                "sustainable",
            )
        }
        for r in report["runs"]
    }
    print(
        json.dumps(
            {
                "highest_sustainable_rate": report["highest_sustainable_rate"],
                "highest_sustainable_rate_by_workers": report["highest_sustainable_rate_by_workers"],
                "runs": summary,
            },
            indent=2,
        )
    )
