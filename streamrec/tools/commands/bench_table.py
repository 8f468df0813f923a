NAME = "bench-table"
HELP = "print one markdown table (the docs' style) from the bench.json of one or more `streamrec bench` runs"


def configure(parser):
    parser.add_argument("reports", nargs="+", help="bench.json files or the folders that hold them")


def run(args, settings) -> int:
    from pathlib import Path

    from ..bench_table import load_reports, markdown

    try:
        reports = load_reports([Path(p) for p in args.reports])
    except (OSError, ValueError, KeyError) as exc:
        print(f"streamrec bench-table: {exc}")
        return 2
    print(markdown(reports), end="")
    return 0
