from ._options import add_device_argument, add_threads_argument

NAME = "bench-refresh"
HELP = "measure one incremental re-embedding per event against a full recompute at 10k/100k/1M edges"

OUT_FOLDER = "bench"  # under STREAMREC_HOME unless --out
SYNTHETIC_NOTE = ("1M: synthetic edges (Zipf item popularity, 200k users, 20k items), because the real data "
                  "sets here hold at most 157k events")


def configure(parser):
    parser.add_argument("--out", default=None,
                        help=f"folder for bench_refresh.json and .png (default: <STREAMREC_HOME>/{OUT_FOLDER})")
    parser.add_argument("--scales", default="10000,100000,1000000", help="edge counts (events folded in)")
    parser.add_argument("--events", type=int, default=200, help="events timed per scale and micro-batch size")
    parser.add_argument("--batch-sizes", default="1,100", help="micro-batch sizes: one refresh per micro-batch")
    parser.add_argument("--repeats", type=int, default=3, help="full recomputes timed per scale (median)")
    parser.add_argument("--checkpoint", default=None,
                        help="use trained weights (default: untrained; the cost does not depend on them)")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--max-fanout", type=int, default=2048,
                        help="most nodes re-embedded per micro-batch; the rest are marked stale and swept later")


def _synthetic(n: int, seed: int = 0, users: int = 200_000, items: int = 20_000):
    import torch

    generator = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, items + 1, dtype=torch.float64) ** 1.1
    item = torch.multinomial(weights, n, replacement=True, generator=generator)
    user = torch.randint(users, (n,), generator=generator)
    ts = 1_600_000_000_000 + torch.arange(n, dtype=torch.long) * 1000
    return ([f"s{u}" for u in user.tolist()], [f"t{i}" for i in item.tolist()], ["click"] * n, ts.tolist())


def _incremental(rec, stream, start, size, events, full_s, sync) -> dict:
    import time

    times = []
    for k in range(start, start + events, size):
        sync()
        t0 = time.perf_counter()
        rec.observe(stream.slice(k, min(k + size, start + events)))  # fold in + affected_nodes + refresh
        sync()
        times.append(time.perf_counter() - t0)
    stale = rec.staleness
    sync()
    t0 = time.perf_counter()
    rec.sweep_stale()
    sync()
    sweep_s = time.perf_counter() - t0
    per_event = sum(times) / events
    with_sweep = per_event + sweep_s / events
    return {"batch_size": size, "incremental_per_event_s": round(per_event, 7), "stale_marked": stale,
            "sweep_s": round(sweep_s, 5), "incremental_with_sweep_per_event_s": round(with_sweep, 7),
            "ratio": round(full_s / per_event, 1), "ratio_with_sweep": round(full_s / with_sweep, 1)}


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def run(args, settings) -> int:
    import json
    import time
    from pathlib import Path

    import torch

    from model_server.contract import InteractionBatch
    from model_server.tgat import build_streamrec, load_recommender
    from model_server.tgat.footprint import footprint
    from streamrec.tools.datasets import DatasetError, load_wikipedia

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else settings.home / OUT_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    scales = [int(s) for s in args.scales.split(",")]
    batch_sizes = [int(s) for s in args.batch_sizes.split(",")]
    try:
        wiki = load_wikipedia(settings.data_dir)
    except DatasetError:
        wiki = None
    results = []
    for scale in scales:
        extra = args.events * len(batch_sizes)
        real = wiki is not None and scale + extra <= len(wiki)
        if real:
            source = f"JODIE Wikipedia, first {scale} events"
            users, items, types, ts = (getattr(wiki, c)[:scale + extra] for c in ("users", "items", "types", "ts"))
        else:
            source = "synthetic: " + SYNTHETIC_NOTE
            users, items, types, ts = _synthetic(scale + extra)
        stream = InteractionBatch(users, items, types, ts)
        if args.checkpoint:
            rec = load_recommender(args.checkpoint, args.device, text=False, auto_refresh=False,
                                   max_fanout=args.max_fanout, sweep_per_observe=0)
        else:
            rec = build_streamrec(device=args.device, text=False, auto_refresh=False, max_fanout=args.max_fanout,
                                  sweep_per_observe=0)
        started = time.perf_counter()
        for start in range(0, scale, 100_000):
            rec.observe(stream.slice(start, min(start + 100_000, scale)))
        build_s = time.perf_counter() - started
        sync = torch.cuda.synchronize if rec.device.type == "cuda" else (lambda: None)
        rec.full_recompute()  # warm-up
        full_times = []
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            full = rec.full_recompute()
            sync()
            full_times.append(time.perf_counter() - t0)
        rec.store.ensure(rec.graph.num_nodes)
        rec.store.write(torch.arange(rec.graph.num_nodes, device=rec.device), full,
                        torch.zeros(rec.graph.num_nodes, rec.config.k, device=rec.device),
                        rec.graph.buffer.nbr[:rec.graph.num_nodes])
        rec.auto_refresh = True
        row = {"edges": scale, "source": source, "nodes": rec.graph.num_nodes,
               "buffer_edges": rec.graph.buffer.edge_count(), "build_s": round(build_s, 3),
               "full_recompute_s": round(_median(full_times), 5), "memory": footprint(rec), "micro_batches": []}
        cursor = scale
        for size in batch_sizes:
            row["micro_batches"].append(_incremental(rec, stream, cursor, size, args.events, row["full_recompute_s"], sync))
            cursor += args.events
        results.append(row)
        print(json.dumps(row))
    from model_server.evaluation.report import git_commit

    report = {"command": args.command_line, "git": git_commit(Path(__file__).parent),
              "device": str(rec.device), "threads": torch.get_num_threads(), "config": rec.config.to_dict(),
              "max_fanout": args.max_fanout, "events_timed": args.events, "weights": args.checkpoint or "untrained",
              "what": "incremental = observe a micro-batch (buffer update, affected_nodes with bounded fan-out, one "
                      "batched refresh), divided by its events; full = every node, layer by layer; "
                      "ratio = full / incremental per event; with_sweep adds the later sweep of the stale nodes",
              "results": results}
    (out / "bench_refresh.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(results, out / "bench_refresh.png", report["device"])
    print(f"wrote {out / 'bench_refresh.json'} and {out / 'bench_refresh.png'}")
    return 0


def _plot(results, path, device):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = [r["edges"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.loglog(edges, [r["full_recompute_s"] for r in results], "o-", color="black", label="full recompute")
    for k, entry in enumerate(results[0]["micro_batches"]):
        size = entry["batch_size"]
        per_event = [r["micro_batches"][k]["incremental_per_event_s"] for r in results]
        swept = [r["micro_batches"][k]["incremental_with_sweep_per_event_s"] for r in results]
        left.loglog(edges, per_event, "s-", label=f"incremental per event (batch {size})")
        left.loglog(edges, swept, "^--", label=f"  + sweep (batch {size})")
        right.semilogx(edges, [r["micro_batches"][k]["ratio"] for r in results], "s-", label=f"batch {size}")
        right.semilogx(edges, [r["micro_batches"][k]["ratio_with_sweep"] for r in results], "^--",
                       label=f"batch {size}, with sweep")
    left.set_xlabel("edges folded in")
    left.set_ylabel("seconds")
    left.set_title(f"re-embedding cost ({device})")
    left.legend(fontsize=7)
    right.axhline(100, color="grey", linestyle=":", label="goal 100x")
    right.set_yscale("log")
    right.set_xlabel("edges folded in")
    right.set_ylabel("full recompute / incremental per event")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
