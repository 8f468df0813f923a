"""`streamrec load`: a synthetic graph of N edges into the graph of record, for scale runs."""

from __future__ import annotations

NAME = "load"
HELP = "add a synthetic graph of N edges (heavy-tailed degrees) to the graph of record, for scale runs"


def configure(parser):
    parser.add_argument("--edges", type=int, required=True, metavar="N", help="distinct (user, item, type) edges")
    parser.add_argument("--users", type=int, default=None, help="user population (default: N / 20)")
    parser.add_argument("--items", type=int, default=None, help="item population (default: N / 100)")
    parser.add_argument("--days", type=float, default=30.0, help="the span of the event times, ending now")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic graph's random seed")
    parser.add_argument("--rows-per-transaction", type=int, default=5_000, help="edges written per transaction")
    parser.add_argument("--in-flight", type=int, default=2, help="transactions written at once")
    parser.add_argument("--prefix", default="synthetic-", help="the ids' prefix: <prefix>user-N, <prefix>item-N")
    parser.add_argument(
        "--out", default=None, help="write the load's figures to this JSON file (default: printed only)"
    )


def run(args, settings) -> int:
    import asyncio
    import json
    import time
    from pathlib import Path

    from graph_store import GraphStore
    from graph_store.errors import GraphUnavailable

    from ..preload import NodesExist, load_graph
    from ..synthetic_graph import synthetic_edges

    if min(args.edges, args.rows_per_transaction, args.in_flight) < 1:
        print("streamrec load: give --edges, --rows-per-transaction and --in-flight of 1 or more")
        return 2
    users = args.users or max(args.edges // 20, 1)
    items = args.items or max(args.edges // 100, 1)
    started = time.perf_counter()
    try:
        edges = synthetic_edges(
            args.edges, users=users, items=items, seed=args.seed, end_ms=int(time.time() * 1000), days=args.days
        )
    except ValueError as exc:
        print(f"streamrec load: {exc}")
        return 2
    generate_seconds = time.perf_counter() - started

    async def load():
        async with GraphStore.from_settings(settings) as store:
            return await load_graph(store, edges, args.prefix, args.rows_per_transaction, in_flight=args.in_flight)

    try:
        report = asyncio.run(load())
    except (NodesExist, GraphUnavailable) as exc:
        print(f"streamrec load: {exc}")
        return 2
    figures = {"command": args.command_line, "generate_seconds": round(generate_seconds, 2), **report.to_dict()}
    print(
        f"loaded {report.edges} synthetic edges ({report.users} users, {report.items} items) into the graph of "
        f"record: {report.edge_seconds:.1f} s for the edges ({report.edges_per_second:,.0f} edges/s), "
        f"{report.node_seconds:.1f} s for the nodes"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0
