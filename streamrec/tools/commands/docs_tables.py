NAME = "docs-tables"
HELP = "rebuild the docs' tables of measured figures from the reports in docs/results/ (--check: only compare)"


def configure(parser):
    parser.add_argument("--docs", default="docs", help="the docs folder (default: %(default)s)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a table differs from its report"
    )


def run(args, settings) -> int:
    import sys
    from pathlib import Path

    from ..docs_tables import DocsTableError, stale_pages

    try:
        stale = stale_pages(Path(args.docs), write=not args.check)
    except DocsTableError as exc:
        print(f"streamrec docs-tables: {exc}", file=sys.stderr)
        return 2
    for page in stale:
        print(f"{page}: {'differs from its reports (run streamrec docs-tables)' if args.check else 'rebuilt'}")
    return 1 if args.check and stale else 0
