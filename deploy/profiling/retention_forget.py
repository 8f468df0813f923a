"""What one move of the retention cutoff costs the model host (docs/scaling.md, "Retention"): a host warm-started
from a synthetic graph of N edges over 30 days (streamrec/tools/synthetic_graph.py) forgets the edges older than
`--forget-days` before the newest; the figures are this thread's CPU time for the exclusion sets and for the
graph state, and the nodes left stale for the sweep.

    python deploy/profiling/retention_forget.py --checkpoint .streamrec/demo-models/rees46 --edges 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DAY_MS = 86_400_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a model version folder (holds model.pt)")
    parser.add_argument("--edges", type=int, default=1_000_000, help="synthetic edges in the host's state")
    parser.add_argument("--forget-days", type=float, default=15.0, help="of the 30 days, how many to forget")
    args = parser.parse_args()
    os.environ["STREAMREC_MODEL_DIR"] = args.checkpoint
    print(json.dumps(measure(args), indent=2))


def measure(args: argparse.Namespace) -> dict:
    import torch

    from streamrec.runtime.model_host import ModelHost
    from streamrec.runtime.settings import load_settings
    from streamrec.schema import EVENT_TYPES
    from streamrec.tools.synthetic_graph import item_id, synthetic_edges, user_id

    host = ModelHost(load_settings(), Path(args.checkpoint) / "model.pt")
    model = host.model
    edges = synthetic_edges(args.edges, users=max(1, args.edges // 20), items=max(1, args.edges // 100), days=30.0)
    with torch.inference_mode():
        started = time.perf_counter()
        model.rebuild_from_edges(
            [user_id(int(r)) for r in edges.users],
            [item_id(int(r)) for r in edges.items],
            [EVENT_TYPES[int(t)] for t in edges.types],
            [int(t) for t in edges.last_ts],
        )
        rebuild_s = time.perf_counter() - started
        pairs_before = len(model.graph.pairs)
        cutoff = int(edges.last_ts.max()) - round((30.0 - args.forget_days) * DAY_MS)
        began = time.thread_time()
        model.history.forget_before(cutoff)
        history_s = time.thread_time() - began
        began = time.thread_time()
        model._forget_before(cutoff)
        graph_s = time.thread_time() - began
    return {
        "command": "python deploy/profiling/retention_forget.py " + " ".join(sys.argv[1:]),
        "git": _commit(),
        "edges": args.edges,
        "nodes": model.graph.num_nodes,
        "pairs_before": pairs_before,
        "pairs_after": len(model.graph.pairs),
        "rebuild_s": round(rebuild_s, 1),
        "forget_history_cpu_ms": round(1000 * history_s, 1),
        "forget_graph_cpu_ms": round(1000 * graph_s, 1),
        "stale_nodes_for_the_sweep": int(model.staleness),
    }


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
