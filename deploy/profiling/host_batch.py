"""The model host's CPU per micro-batch, in one process: what a worker's model lane costs for batches of a given
size, without Kafka, Neo4j or the pipe (docs/benchmarks.md, "The model lane in process").

The host is warm-started with the first half of a real data set's events as edges, then refreshes (observe and
rank) the second half in batches, in order, inside inference mode as the host process answers requests. The
figure is this thread's CPU time per batch (steadier than wall time on a shared machine), after a warm-up.

    python deploy/profiling/host_batch.py --dataset rees46 --checkpoint .streamrec/demo-models/rees46 \
        --batch-sizes 3,24 --batches 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WARMUP_BATCHES = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="rees46", choices=("rees46", "wikipedia", "ml-100k"))
    parser.add_argument("--checkpoint", required=True, help="a model version folder (holds model.pt)")
    parser.add_argument("--batch-sizes", default="3,24", help="events per batch, comma-separated")
    parser.add_argument("--batches", type=int, default=200, help="timed batches per size (after a warm-up)")
    parser.add_argument(
        "--no-inference-mode", action="store_true", help="time it as hosts before 380b788 served (autograd's mode)"
    )
    args = parser.parse_args()
    os.environ["STREAMREC_MODEL_DIR"] = args.checkpoint
    print(json.dumps(measure(args), indent=2))


def measure(args: argparse.Namespace) -> dict:
    import torch

    from streamrec.runtime.model_host import ModelHost
    from streamrec.runtime.settings import load_settings
    from streamrec.schema import Interaction
    from streamrec.tools.datasets import load_dataset

    settings = load_settings()
    data = load_dataset(args.dataset, settings.data_dir, settings.home / "data")
    half = len(data.users) // 2
    figures: dict = {
        "command": "python deploy/profiling/host_batch.py " + " ".join(sys.argv[1:]),
        "git": _commit(),
        "dataset": args.dataset,
        "inference_mode": not args.no_inference_mode,
        "torch_threads": torch.get_num_threads(),
        "sizes": {},
    }
    for size in (int(s) for s in args.batch_sizes.split(",")):
        host = ModelHost(settings, Path(args.checkpoint) / "model.pt")
        model = host.model
        with torch.inference_mode(not args.no_inference_mode):
            model.rebuild_from_edges(data.users[:half], data.items[:half], data.types[:half], data.ts[:half])
            events = [
                Interaction(f"e{k}", data.users[k], data.items[k], data.types[k], data.ts[k])
                for k in range(half, min(len(data.users), half + size * (WARMUP_BATCHES + args.batches)))
            ]
            cpu, steps = [], {"observe": [], "rank": []}
            for start in range(0, len(events), size):
                batch = events[start : start + size]
                began = time.thread_time()
                refreshed = host.refresh(batch, batch)
                if start >= WARMUP_BATCHES * size:
                    cpu.append(time.thread_time() - began)
                    for step in steps:
                        steps[step].append(refreshed.seconds[step])
        figures["sizes"][size] = {
            "batches": len(cpu),
            "cpu_ms_median": round(1000 * statistics.median(cpu), 2),
            "cpu_ms_p10": round(1000 * statistics.quantiles(cpu, n=10)[0], 2),
            **{f"{step}_ms_median": round(1000 * statistics.median(v), 2) for step, v in steps.items()},
        }
    return figures


def _commit() -> str:
    """The commit of the code measured: the checkout this runs in (PYTHONPATH may point at another's)."""
    import model_server

    folder = Path(model_server.__file__).parent
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
