from ._options import add_device_argument, add_threads_argument

NAME = "bench-refresh"
HELP = "measure one incremental re-embedding per event against a full recompute at 10k/100k/1M edges"

OUT_FOLDER = "bench"  # under STREAMREC_HOME unless --out
SYNTHETIC_NOTE = (
    "synthetic Zipf edges (Zipf item popularity, {users:,} users, {items:,} items), because the real "
    "data sets here hold at most 157k events"
)
DTYPES = ("float32", "bf16", "both")


def configure(parser):
    parser.add_argument(
        "--out", default=None, help=f"folder for bench_refresh.json and .png (default: <STREAMREC_HOME>/{OUT_FOLDER})"
    )
    parser.add_argument("--scales", default="10000,100000,1000000", help="edge counts (events folded in)")
    parser.add_argument("--events", type=int, default=200, help="events timed per scale and micro-batch size")
    parser.add_argument("--batch-sizes", default="1,100", help="micro-batch sizes: one refresh per micro-batch")
    parser.add_argument("--repeats", type=int, default=3, help="full recomputes timed per scale (median)")
    parser.add_argument(
        "--checkpoint", default=None, help="use trained weights (default: untrained; the cost does not depend on them)"
    )
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument(
        "--max-fanout",
        type=int,
        default=None,
        help="most nodes re-embedded per micro-batch; the rest are marked stale and swept later "
        "(default: the serving bound, model_server/tgat/refresh.py)",
    )
    parser.add_argument(
        "--min-batches",
        type=int,
        default=1,
        help="micro-batches timed per size at least (a size above --events gets this many batches)",
    )
    parser.add_argument(
        "--serve-batch",
        type=int,
        default=0,
        help="also time observe(N events) + top-K for their users, the serving step (0: not timed)",
    )
    parser.add_argument("--serve-repeats", type=int, default=5, help="serving steps timed per scale (median)")
    parser.add_argument("--k", type=int, default=20, help="list length of the top-K timings and the bf16 overlap")
    parser.add_argument(
        "--topk-items",
        type=int,
        default=0,
        help="also time top-K over this many items (random embeddings on the device; 0: not timed)",
    )
    parser.add_argument("--topk-users", type=int, default=10_000, help="users ranked in the --topk-items timing")
    parser.add_argument("--topk-chunk", type=int, default=1024, help="users scored per matrix product there")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=DTYPES,
        help="bf16/both: also time the full recompute, a refresh and top-K under bf16 autocast and "
        "measure the top-K overlap with float32",
    )


def synthetic_shape(n: int) -> tuple[int, int]:
    """(users, items) of n synthetic edges: 200k users and 20k items up to 1M edges (the figures of the docs),
    then growing with n (10M edges: 2M users, 200k items), so that a bigger graph is not just denser."""
    return max(200_000, n // 5), max(20_000, n // 50)


def _synthetic(n: int, seed: int = 0, users: int | None = None, items: int | None = None):
    import torch

    shape = synthetic_shape(n)
    users, items = users or shape[0], items or shape[1]

    generator = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, items + 1, dtype=torch.float64) ** 1.1
    item = torch.multinomial(weights, n, replacement=True, generator=generator)
    user = torch.randint(users, (n,), generator=generator)
    ts = 1_600_000_000_000 + torch.arange(n, dtype=torch.long) * 1000
    return ([f"s{u}" for u in user.tolist()], [f"t{i}" for i in item.tolist()], ["click"] * n, ts.tolist())


def events_for(size: int, events: int, min_batches: int = 1) -> int:
    """Events timed for micro-batches of `size`: at least `events`, at least min_batches whole batches."""
    batches = max(min_batches, -(-events // size))
    return batches * size


class _CountingRefresh:
    """Wraps the refresh that observe, score and sweep_stale all end in (the recommender's refresher where it has
    one, else its own refresh) to count the nodes re-embedded."""

    def __init__(self, rec):
        self.target = getattr(rec, "refresher", rec)
        self.inner, self.nodes = self.target.refresh, 0
        self.target.refresh = self

    def __call__(self, nodes):
        count = self.inner(nodes)
        self.nodes += count
        return count

    def remove(self):
        del self.target.refresh


def _incremental(rec, stream, start, size, events, full_s, sync) -> dict:
    import time

    times = []
    counter = _CountingRefresh(rec)
    for k in range(start, start + events, size):
        sync()
        t0 = time.perf_counter()
        rec.observe(stream.slice(k, min(k + size, start + events)))  # fold in + affected_nodes + refresh
        sync()
        times.append(time.perf_counter() - t0)
    refreshed = counter.nodes
    stale = rec.staleness
    sync()
    t0 = time.perf_counter()
    rec.sweep_stale()
    sync()
    sweep_s = time.perf_counter() - t0
    swept = counter.nodes - refreshed
    counter.remove()
    per_event = sum(times) / events
    with_sweep = per_event + sweep_s / events
    return {
        "batch_size": size,
        "incremental_per_event_s": round(per_event, 7),
        "stale_marked": stale,
        "sweep_s": round(sweep_s, 5),
        "incremental_with_sweep_per_event_s": round(with_sweep, 7),
        "ratio": round(full_s / per_event, 1),
        "ratio_with_sweep": round(full_s / with_sweep, 1),
        "events_timed": events,
        "micro_batch_s_median": round(_median(times), 6),
        "micro_batch_s_max": round(max(times), 6),
        "nodes_refreshed": refreshed,
        "nodes_swept": swept,
        "node_embeddings_per_s": round(refreshed / max(sum(times), 1e-12)),
        "node_embeddings_per_s_with_sweep": round((refreshed + swept) / max(sum(times) + sweep_s, 1e-12)),
    }


def _serve(rec, stream, start, size, repeats, k, sync, autocast) -> dict:
    """The serving step: observe a micro-batch (refresh included), then top-K (exclude=purchased) for its users."""
    import time

    observe_s, topk_s, users_n = [], [], []
    for r in range(repeats):
        batch = stream.slice(start + r * size, start + (r + 1) * size)
        users = list(dict.fromkeys(batch.users))
        with autocast():
            sync()
            t0 = time.perf_counter()
            rec.observe(batch)
            sync()
            t1 = time.perf_counter()
            rec.top_k(users, k)
            sync()
            t2 = time.perf_counter()
        observe_s.append(t1 - t0)
        topk_s.append(t2 - t1)
        users_n.append(len(users))
    total = [a + b for a, b in zip(observe_s, topk_s)]
    return {
        "batch_size": size,
        "repeats": repeats,
        "k": k,
        "users_median": _median(users_n),
        "observe_s_median": round(_median(observe_s), 6),
        "top_k_s_median": round(_median(topk_s), 6),
        "total_s_median": round(_median(total), 6),
        "total_s_max": round(max(total), 6),
        "what": "observe(batch) (buffer, affected nodes, refresh, exact sweep off) then top_k of the batch's "
        "distinct users over the whole catalogue (ranked on the device; only the top-K reaches the CPU)",
    }


def _overlap(a, b) -> float:
    """Mean share of each row's top-K items that both index lists hold."""
    hits = (a[:, :, None] == b[:, None, :]).any(2).float().sum(1)
    return float((hits / a.shape[1]).mean())


def _bf16(rec, stream, start, size, k, sync, full32, full_times32, repeats) -> dict:
    """bf16 autocast against float32 at the same state: full recompute speed, the embeddings' error, and how much
    the top-K lists of 2,000 users change (overlap of the two top-K sets, the store holding one or the other)."""
    import time

    import torch

    kind = rec.device.type
    autocast = lambda: torch.autocast(kind, dtype=torch.bfloat16)  # noqa: E731
    with autocast():
        rec.full_recompute()  # warm-up
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            full16 = rec.full_recompute()
            sync()
            times.append(time.perf_counter() - t0)
    n = rec.graph.num_nodes
    users = list(dict.fromkeys(stream.users[:start]))[:2000]
    lists = {}
    for name, z in (("float32", full32), ("bf16", full16.float())):
        rec.store.write(
            torch.arange(n, device=rec.device), z, rec.store.attention[:n].clone(), rec.graph.buffer.nbr[:n]
        )
        lists[name] = rec.top_k(users, k, exclude="none")[1]
    error = (full16.float() - full32).abs()
    row = {
        "full_recompute_s": round(_median(times), 5),
        "float32_full_recompute_s": round(_median(full_times32), 5),
        "speedup": round(_median(full_times32) / _median(times), 2),
        "node_embeddings_per_s": round(n / _median(times)),
        "max_abs_error": round(float(error.max()), 5),
        "mean_abs_error": round(float(error.mean()), 6),
        f"top{k}_overlap": round(_overlap(lists["float32"], lists["bf16"]), 4),
        f"top{k}_identical_lists": round(float((lists["float32"] == lists["bf16"]).all(1).float().mean()), 4),
        "users_compared": len(users),
    }
    rec.store.write(
        torch.arange(n, device=rec.device), full32, rec.store.attention[:n].clone(), rec.graph.buffer.nbr[:n]
    )
    if size:
        try:  # refresh under autocast writes bf16 rows into the float32 caches: recorded, not fatal
            row["serve"] = _serve(rec, stream, start, size, 3, k, sync, autocast)
        except RuntimeError as exc:
            row["serve"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return row


def _topk_timing(n_items, n_users, dim, k, chunk, device, sync, dtype) -> dict:
    """top-K over n_items for n_users: random dim-d embeddings on the device, one matrix product and torch.topk per
    chunk of users (the dot-product part of the score; the model's extra terms read graph rows)."""
    import time

    import torch

    generator = torch.Generator(device=device).manual_seed(0)
    items = torch.randn(n_items, dim, device=device, generator=generator).to(dtype)
    users = torch.randn(n_users, dim, device=device, generator=generator).to(dtype)

    def once():
        out = []
        for part in users.split(chunk):
            out.append(torch.topk(part @ items.T, k, dim=1).indices)
        return torch.cat(out)

    once()  # warm-up
    times = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        indices = once()
        sync()
        times.append(time.perf_counter() - t0)
    seconds = _median(times)
    return {
        "items": n_items,
        "users": n_users,
        "dim": dim,
        "k": k,
        "chunk": chunk,
        "dtype": str(dtype).split(".")[-1],
        "seconds": round(seconds, 5),
        "users_per_s": round(n_users / seconds),
        "ms_per_1000_users": round(seconds / n_users * 1000 * 1000, 3),
        "indices": indices,
    }


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def run(args, settings) -> int:
    import json
    from pathlib import Path

    import torch

    from model_server.tgat.recommender import pick_device
    from model_server.tgat.refresh import DEFAULT_MAX_FANOUT

    from .gpu_check import environment

    if args.max_fanout is None:
        args.max_fanout = DEFAULT_MAX_FANOUT
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else settings.home / OUT_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    cuda = pick_device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        print("streamrec bench-refresh: --device cuda but torch sees no CUDA device")
        return 2
    env = environment(pick_device(args.device))
    topk = _topk_entries(args, cuda) if args.topk_items else []
    _write_report(out, args, env, [], topk, None)
    wiki = _wikipedia_or_none(settings)
    results, config = [], None
    for scale in [int(s) for s in args.scales.split(",")]:
        row, config = _scale_row(args, scale, wiki, cuda)
        results.append(row)
        print(json.dumps(row), flush=True)
        _write_report(out, args, env, results, topk, config)  # after each scale: a run cut short keeps its rows
        if cuda:
            torch.cuda.empty_cache()  # the scale's model is gone: the next one starts from free memory
    print(f"wrote {out / 'bench_refresh.json'} and {out / 'bench_refresh.png'}")
    return 0


def _write_report(out, args, env: dict, results: list, topk: list, config: dict | None) -> None:
    """bench_refresh.json (and its plot once a scale is done) with what has been measured so far."""
    import json
    from pathlib import Path

    import torch

    from model_server.evaluation.report import git_commit

    report = {
        "command": args.command_line,
        "git": git_commit(Path(__file__).parent),
        "device": env["device"],
        "device_name": env["device_name"],
        "environment": env,
        "threads": torch.get_num_threads(),
        "config": config,
        "max_fanout": args.max_fanout,
        "events_timed": args.events,
        "weights": args.checkpoint or "untrained",
        "what": "incremental = observe a micro-batch (buffer update, affected_nodes with bounded fan-out, "
        "one batched refresh), divided by its events; full = every node, layer by layer; "
        "ratio = full / incremental per event; with_sweep adds the later sweep of the stale nodes",
        "results": results,
        "topk": topk,
        "goal": "≥ 1,000,000 node embeddings/s; a 1,000-event refresh + top-K under 5 ms at 1M edges",
    }
    (out / "bench_refresh.json").write_text(json.dumps(report, indent=2) + "\n")
    if results:
        _plot(results, out / "bench_refresh.png", env["device"] if env["device"] == "cpu" else env["device_name"])


def _topk_entries(args, cuda: bool) -> list[dict]:
    """The top-K timing over a synthetic catalogue, in float32 (and bf16 with --dtype bf16/both)."""
    import json

    import torch

    from model_server.tgat import TGATConfig
    from model_server.tgat.recommender import pick_device

    kinds = [torch.float32] + ([torch.bfloat16] if args.dtype in ("bf16", "both") else [])
    entries = []
    for dtype in kinds:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        entry = _topk_timing(
            args.topk_items,
            args.topk_users,
            TGATConfig().dim,
            args.k,
            args.topk_chunk,
            pick_device(args.device),
            sync,
            dtype,
        )
        if cuda:
            entry["gpu_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
        entries.append(entry)
    if len(entries) == 2:
        entries[1][f"top{args.k}_overlap_vs_float32"] = round(_overlap(entries[0]["indices"], entries[1]["indices"]), 4)
    for entry in entries:
        del entry["indices"]
        print(json.dumps({"topk": entry}), flush=True)
    return entries


def _wikipedia_or_none(settings):
    from streamrec.tools.datasets import DatasetError, load_wikipedia

    try:
        return load_wikipedia(settings.data_dir)
    except DatasetError:
        return None


def _scale_events(args, scale: int, wiki) -> tuple[str, tuple]:
    """(what the events are, (users, items, types, ts)): the scale's graph plus the events the timings observe
    after it; JODIE Wikipedia's first events where it has enough, synthetic ones beyond."""
    timed = [events_for(size, args.events, args.min_batches) for size in _batch_sizes(args)]
    bf16 = args.dtype in ("bf16", "both")
    extra = sum(timed) + args.serve_batch * (args.serve_repeats + (3 if bf16 else 0))
    if wiki is not None and scale + extra <= len(wiki):
        columns = tuple(getattr(wiki, c)[: scale + extra] for c in ("users", "items", "types", "ts"))
        return f"JODIE Wikipedia, first {scale} events", columns
    n_users, n_items = synthetic_shape(scale + extra)
    return SYNTHETIC_NOTE.format(users=n_users, items=n_items), _synthetic(scale + extra)


def _batch_sizes(args) -> list[int]:
    return [int(s) for s in args.batch_sizes.split(",")]


def _model(args):
    from model_server.tgat import build_streamrec, load_recommender

    options = dict(text=False, auto_refresh=False, max_fanout=args.max_fanout, sweep_per_observe=0)
    if args.checkpoint:
        return load_recommender(args.checkpoint, args.device, **options)
    return build_streamrec(device=args.device, **options)


def _scale_row(args, scale: int, wiki, cuda: bool) -> tuple[dict, dict]:
    """(the row of one graph size: build time, full recompute, each micro-batch size's incremental refresh, the
    serving and bf16 timings asked for; the model's config)."""
    import time
    from contextlib import nullcontext

    import torch

    from model_server.contract import InteractionBatch
    from model_server.tgat.footprint import footprint

    source, columns = _scale_events(args, scale, wiki)
    print(f"[bench-refresh] {scale:,} edges: building ({source.split(',')[0]})", flush=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stream = InteractionBatch(*columns)
    rec = _model(args)
    started = time.perf_counter()
    for start in range(0, scale, 100_000):
        rec.observe(stream.slice(start, min(start + 100_000, scale)))
    sync = torch.cuda.synchronize if rec.device.type == "cuda" else (lambda: None)
    sync()
    build_s = time.perf_counter() - started
    print(f"[bench-refresh] {scale:,} edges: built in {build_s:.1f} s; timing", flush=True)
    full, full_times = _full_recomputes(rec, args.repeats, sync)
    rec.store.ensure(rec.graph.num_nodes)
    rec.store.write(
        torch.arange(rec.graph.num_nodes, device=rec.device),
        full,
        torch.zeros(rec.graph.num_nodes, rec.config.k, device=rec.device),
        rec.graph.buffer.nbr[: rec.graph.num_nodes],
    )
    rec.auto_refresh = True
    row = {
        "edges": scale,
        "source": source,
        "nodes": rec.graph.num_nodes,
        "buffer_edges": rec.graph.buffer.edge_count(),
        "build_s": round(build_s, 3),
        "full_recompute_s": round(_median(full_times), 5),
        "full_node_embeddings_per_s": round(rec.graph.num_nodes / _median(full_times)),
        "memory": footprint(rec),
        "micro_batches": [],
    }
    cursor = scale
    for size in _batch_sizes(args):
        events = events_for(size, args.events, args.min_batches)
        row["micro_batches"].append(_incremental(rec, stream, cursor, size, events, row["full_recompute_s"], sync))
        cursor += events
    if args.serve_batch:
        row["serve"] = _serve(rec, stream, cursor, args.serve_batch, args.serve_repeats, args.k, sync, nullcontext)
        cursor += args.serve_batch * args.serve_repeats
    if args.dtype in ("bf16", "both"):
        rec.auto_refresh = False
        full32 = rec.full_recompute()
        rec.auto_refresh = True
        row["bf16"] = _bf16(rec, stream, cursor, args.serve_batch, args.k, sync, full32, full_times, args.repeats)
    if cuda:
        row["gpu_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return row, rec.config.to_dict()


def _full_recomputes(rec, repeats: int, sync) -> tuple:
    """(the last full recompute, the times of `repeats` of them after one warm-up)."""
    import time

    rec.full_recompute()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        full = rec.full_recompute()
        sync()
        times.append(time.perf_counter() - started)
    return full, times


def _plot(results, path, device):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = [r["edges"] for r in results]
    rates = all("full_node_embeddings_per_s" in r for r in results)
    fig, axes = plt.subplots(1, 3 if rates else 2, figsize=(16 if rates else 11, 4.2))
    left, right = axes[0], axes[1]
    left.loglog(edges, [r["full_recompute_s"] for r in results], "o-", color="black", label="full recompute")
    for k, entry in enumerate(results[0]["micro_batches"]):
        size = entry["batch_size"]
        per_event = [r["micro_batches"][k]["incremental_per_event_s"] for r in results]
        swept = [r["micro_batches"][k]["incremental_with_sweep_per_event_s"] for r in results]
        left.loglog(edges, per_event, "s-", label=f"incremental per event (batch {size})")
        left.loglog(edges, swept, "^--", label=f"  + sweep (batch {size})")
        right.semilogx(edges, [r["micro_batches"][k]["ratio"] for r in results], "s-", label=f"batch {size}")
        right.semilogx(
            edges,
            [r["micro_batches"][k]["ratio_with_sweep"] for r in results],
            "^--",
            label=f"batch {size}, with sweep",
        )
    left.set_xlabel("edges folded in")
    left.set_ylabel("seconds")
    left.set_title(f"re-embedding cost ({device})")
    left.legend(fontsize=7)
    right.axhline(100, color="grey", linestyle=":", label="goal 100x")
    right.set_yscale("log")
    right.set_xlabel("edges folded in")
    right.set_ylabel("full recompute / incremental per event")
    right.legend(fontsize=7)
    if rates:
        third = axes[2]
        third.loglog(
            edges, [r["full_node_embeddings_per_s"] for r in results], "o-", color="black", label="full recompute"
        )
        for k, entry in enumerate(results[0]["micro_batches"]):
            third.loglog(
                edges,
                [r["micro_batches"][k]["node_embeddings_per_s"] for r in results],
                "s-",
                label=f"incremental, batch {entry['batch_size']}",
            )
        if all("bf16" in r for r in results):
            third.loglog(
                edges,
                [r["bf16"]["node_embeddings_per_s"] for r in results],
                "o--",
                color="grey",
                label="full recompute, bf16",
            )
        third.axhline(1e6, color="grey", linestyle=":", label="goal 1M/s")
        third.set_xlabel("edges folded in")
        third.set_ylabel("node embeddings per second")
        third.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
