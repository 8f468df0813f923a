NAME = "bench-reads"
HELP = "time every graph read (neighbourhoods of hubs and leaves, the warm start) on a fresh local graph server"

OUT_FOLDER = "bench-reads"  # under STREAMREC_HOME unless --out
SYNTHETIC_NOTE = "synthetic hub: one item with --hub-users users, beyond the real sets' largest degree"


def configure(parser):
    parser.add_argument("--dataset", default="wikipedia", help="real events loaded first (wikipedia, rees46, ml-100k)")
    parser.add_argument("--hub-users", type=int, default=20_000, help="users of the synthetic hub item (0: none)")
    parser.add_argument("--k", type=int, default=20, help="neighbours per node, as the model reads them")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per read (after 5 untimed)")
    parser.add_argument(
        "--out", default=None, help=f"folder for bench_reads.json and .png (default: <STREAMREC_HOME>/{OUT_FOLDER})"
    )
    parser.add_argument(
        "--table", nargs="+", metavar="DIR", help="print the docs' table of earlier runs instead (default: measure)"
    )


def _events(dataset, hub_users: int):
    """The real events as graph-store rows, then the synthetic hub's (one event per user, after the real ones)."""
    from types import SimpleNamespace

    rows = [
        SimpleNamespace(user_id=u, item_id=i, type=t, ts=ts, topic="bench", partition=0, offset=k)
        for k, (u, i, t, ts) in enumerate(zip(dataset.users, dataset.items, dataset.types, dataset.ts))
    ]
    start, first_ts = len(rows), max(dataset.ts) + 1
    rows += [
        SimpleNamespace(
            user_id=f"hub-user-{k}",
            item_id="synthetic-hub",
            type="view",
            ts=first_ts + k,
            topic="bench",
            partition=0,
            offset=start + k,
        )
        for k in range(hub_users)
    ]
    return rows


def _degrees(dataset):
    from collections import Counter

    pairs = set(zip(dataset.users, dataset.items))
    return Counter(u for u, _ in pairs), Counter(i for _, i in pairs)


async def _time(read, repeats: int) -> dict:
    import time

    for _ in range(5):  # the server compiles and caches the query plan
        await read()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        await read()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {
        "median_ms": round(1000 * seconds[len(seconds) // 2], 3),
        "p90_ms": round(1000 * seconds[int(0.9 * (len(seconds) - 1))], 3),
    }


async def _measure(settings, dataset, args) -> tuple[list[dict], dict]:
    """Loads the events into a fresh graph, then times every read: one row each, and the graph's size."""
    from graph_store import GraphStore

    async with GraphStore.from_settings(settings) as store:
        await store.ensure_schema()
        events = _events(dataset, args.hub_users)
        for start in range(0, len(events), 2_000):
            await store.upsert_interactions(events[start : start + 2_000])
        size = await store.size()
        rows = await _time_reads(_reads(store, dataset, args.k, args.hub_users), args.repeats)
        rows.append(await _time_warm_start(store, size["edges"], args.repeats))
        return rows, size


def _reads(store, dataset, k: int, hub_users: int) -> list[tuple]:
    """(read, node, node id, degree, call) for each neighbourhood read of the most and the least connected item
    and user (the least: the first by id among the ties), and of the synthetic hub when there is one."""
    user_degree, item_degree = _degrees(dataset)
    hub_item, hub_user = item_degree.most_common(1)[0][0], user_degree.most_common(1)[0][0]
    leaf_item = min(item_degree, key=lambda i: (item_degree[i], i))
    leaf_user = min(user_degree, key=lambda u: (user_degree[u], u))
    users_of, items_of, edges_of = "recent users of an item", "recent items of a user", "edges of a user"
    reads = [
        (users_of, "hub", hub_item, item_degree[hub_item], lambda: store.recent_users_of_items([hub_item], k)),
        (users_of, "leaf", leaf_item, item_degree[leaf_item], lambda: store.recent_users_of_items([leaf_item], k)),
        (items_of, "hub", hub_user, user_degree[hub_user], lambda: store.recent_items_of_users([hub_user], k)),
        (items_of, "leaf", leaf_user, user_degree[leaf_user], lambda: store.recent_items_of_users([leaf_user], k)),
        (edges_of, "hub", hub_user, user_degree[hub_user], lambda: store.edges_of_users([hub_user])),
        (edges_of, "leaf", leaf_user, user_degree[leaf_user], lambda: store.edges_of_users([leaf_user])),
    ]
    if hub_users:
        hub = "synthetic-hub"
        reads.insert(2, (users_of, "synthetic hub", hub, hub_users, lambda: store.recent_users_of_items([hub], k)))
    return reads


async def _time_reads(reads: list[tuple], repeats: int) -> list[dict]:
    rows = []
    for read, node, node_id, degree, call in reads:
        rows.append({"read": read, "node": node, "id": node_id, "degree": degree, **await _time(call, repeats)})
        print(f"bench-reads: {read}, {node} (degree {degree}): {rows[-1]['median_ms']} ms")
    return rows


async def _time_warm_start(store, edges: int, repeats: int) -> dict:
    """The warm start's read of every edge: fewer timed calls than a neighbourhood (each reads the whole graph)."""
    warm = await _time(store.all_edges, max(3, repeats // 10))
    print(f"bench-reads: warm start, {edges} edges: {warm['median_ms']} ms")
    return {
        "read": "warm start: all edges",
        "node": "every user",
        "id": None,
        "degree": edges,
        **warm,
        "per_edge_us": round(1000 * warm["median_ms"] / max(1, edges), 3),
    }


def table(reports: list[dict]) -> str:
    """Markdown: one row per read, one column per run (its graph server), median ms."""

    def server(report):
        return next(v for k, v in report["stack"]["servers"].items())

    head = "| read | node (degree) | " + " | ".join(f"{server(r)}, ms" for r in reports) + " |"
    lines = [head, "|---|---|" + "---:|" * len(reports)]
    for k, row in enumerate(reports[0]["reads"]):
        degree = f"{row['degree']:,} edges" if row["id"] is None else f"{row['degree']:,}"
        cells = " | ".join(f"{r['reads'][k]['median_ms']:g}" for r in reports)
        lines.append(f"| {row['read']} | {row['node']} ({degree}) | {cells} |")
    commits = sorted({r["git"]["commit"][:7] if isinstance(r["git"], dict) else str(r["git"])[:7] for r in reports})
    lines.append(f"\n`{reports[0]['command']}` on {reports[0]['dataset']}, commit {', '.join(commits)}.")
    return "\n".join(lines)


def run(args, settings) -> int:
    import asyncio
    import json
    from pathlib import Path

    from model_server.evaluation.report import git_commit
    from streamrec.tools.bench import stack_description
    from streamrec.tools.datasets import DatasetError, load_dataset
    from streamrec.tools.live import isolated_env
    from streamrec.tools.servers import running_local_services
    from streamrec.runtime.settings import load_settings

    if args.table:
        print(table([json.loads((Path(d) / "bench_reads.json").read_text()) for d in args.table]))
        return 0
    try:
        dataset = load_dataset(args.dataset, settings.data_dir, settings.home / "data")
    except DatasetError as exc:
        print(f"streamrec bench-reads: {exc}")
        return 2
    out = Path(args.out) if args.out else settings.home / OUT_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    env = isolated_env(settings, out / "home")
    env.setdefault("STREAMREC_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # no broker is needed: start none
    fresh = load_settings(env)
    with running_local_services(fresh, report=lambda line: print(f"bench-reads: {line}")) as services:
        rows, size = asyncio.run(_measure(fresh, dataset, args))
        versions = {s.name: s.version() for s in services}
    report = {
        "command": args.command_line,
        "git": git_commit(Path(__file__).parent),
        "stack": stack_description(settings) | {"servers": versions},
        "dataset": dataset.name,
        "checksums": dataset.checksums,
        "graph": size,
        "k": args.k,
        "repeats": args.repeats,
        "synthetic": SYNTHETIC_NOTE if args.hub_users else None,
        "what": "client-side round trip of one call (median and p90 of --repeats calls after 5 untimed)",
        "reads": rows,
    }
    (out / "bench_reads.json").write_text(json.dumps(report, indent=1) + "\n")
    _plot(report, out / "bench_reads.png")
    print(f"wrote {out / 'bench_reads.json'} and {out / 'bench_reads.png'}")
    return 0


def _plot(report, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in report["reads"] if r["id"] is not None]
    labels = [f"{r['read']}\n{r['node']} (degree {r['degree']:,})" for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.55 * len(rows)))
    ax.barh(
        range(len(rows)),
        [r["median_ms"] for r in rows],
        xerr=[[0] * len(rows), [r["p90_ms"] - r["median_ms"] for r in rows]],
        color="#4c72b0",
    )
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(left=0.5)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    servers = ", ".join(report["stack"]["servers"].values())
    ax.set(xlabel="ms per call (median; whisker: p90)", title=f"graph reads on {servers}, {report['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
