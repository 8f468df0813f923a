"""How fast a warm start reads the graph of record: fresh local servers in a folder of their own, N synthetic edges
loaded (streamrec/tools/preload.py), then every edge read in each form, alternating, `--rounds` times: `rows`, a
dict per edge with all six fields, one page in flight (the warm start before 6efd296); `columns-1` and
`columns-2`, GraphStore.edge_pages (four columns) with one and two pages in flight (the next page's query runs
while this one is decoded and folded). Wall seconds and this process's CPU seconds per read (the driver's
decoding); the graph server's share is the rest.

    python deploy/profiling/warm_start_read.py --edges 1000000 --out .streamrec/warm-start-read
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--forms", default="rows,columns-1,columns-2", help="the read forms to compare")
    parser.add_argument("--out", required=True, help="folder for the servers' home and read.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = measure(args, out)
    (out / "read.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def measure(args: argparse.Namespace, out: Path) -> dict:
    from graph_store import GraphStore
    from streamrec.runtime.settings import load_settings
    from streamrec.tools.live import isolated_env
    from streamrec.tools.preload import load_graph
    from streamrec.tools.servers import running_local_services
    from streamrec.tools.synthetic_graph import synthetic_edges

    settings = load_settings(isolated_env(load_settings(), out / "home"))
    edges = synthetic_edges(args.edges, users=max(args.edges // 20, 1), items=max(args.edges // 100, 1))
    reads: dict[str, list[dict]] = {}

    async def load_then_read() -> dict:
        async with GraphStore.from_settings(settings) as store:
            loaded = (await load_graph(store, edges)).to_dict()
            for _ in range(args.rounds):
                for form in args.forms.split(","):
                    reads.setdefault(form, []).append(await read_all(store, form))
            return loaded

    with running_local_services(settings, report=lambda line: print(f"warm_start_read: {line}")):
        loaded = asyncio.run(load_then_read())
    return {
        "command": "python deploy/profiling/warm_start_read.py " + " ".join(sys.argv[1:]),
        "git": _commit(),
        "load": loaded,
        "reads": reads,
    }


async def read_all(store, form: str) -> dict:
    from graph_store.store import _usable

    started, cpu, edges = time.perf_counter(), time.process_time(), 0
    if form == "rows":  # as the warm start read and folded them then: a usable check and four lists from dicts
        async for rows in store._user_pages(store.edges_of_users, 5_000, in_flight=1):
            page = [e for e in rows if _usable(e)]
            columns = ([e[name] for e in page] for name in ("user", "item", "type", "last_ts"))
            edges += len(list(columns)[0])
    else:
        async for page in store.edge_pages(in_flight=int(form.split("-")[1])):
            edges += len(page)
    return {
        "edges": edges,
        "wall_s": round(time.perf_counter() - started, 2),
        "client_cpu_s": round(time.process_time() - cpu, 2),
    }


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
