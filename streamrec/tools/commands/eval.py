from ._source import add_source_arguments, load_source

NAME = "eval"
HELP = "streaming evaluation of recommenders on a data set (TGB-style chronological split, batches of 200)"

DEFAULT_MODELS = "streamrec,static_gat,pop,recent_pop,edgebank,edgebank_window,itemknn,tgn"


def configure(parser):
    add_source_arguments(parser)
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help=f"comma-separated, from: streamrec, pop, recent_pop, edgebank, edgebank_window, itemknn, "
                             f"static_gat, tgn (default {DEFAULT_MODELS})")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.json, report.md and the plots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=200, help="test events per batch (default 200)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of the trained models (tgn: 10)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N events (smoke runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args, settings) -> int:
    import gc
    import shlex
    import sys
    import time
    from pathlib import Path

    import torch

    from model_server.evaluation import protocol, registry, report

    torch.set_num_threads(max(1, args.threads))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in registry.MODELS]
    if unknown or not names:
        print(f"streamrec eval: unknown model(s) {', '.join(unknown) or '(none given)'}; "
              f"choose from {', '.join(registry.MODELS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    data = load_source(args, settings, NAME)
    if data is None:
        return 2
    stream = protocol.stream_of(data)
    if args.limit:
        stream = stream.slice(0, args.limit)
    train, validation, test = protocol.split_stream(stream)
    known_items = set(train.items) | set(validation.items)
    known_users = set(train.users) | set(validation.users)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_users, n_items = len(set(stream.users)), len(set(stream.items))
    result = {
        "created": report.timestamp(),
        "git": report.git_commit(Path(__file__).resolve().parents[3]),
        "config": {"command": "streamrec " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                   "models": names, "seed": args.seed, "batch_size": args.batch_size, "epochs": args.epochs,
                   "device": device, "torch_threads": torch.get_num_threads(), "limit": args.limit,
                   "split": list(protocol.SPLIT), "top_k_lists": protocol.TOP_K, "torch": torch.__version__},
        "dataset": {"name": data.name, "rows": len(stream), "users": n_users, "items": n_items,
                    "train": len(train), "validation": len(validation), "test": len(test),
                    "test_new_item_share": (sum(i not in known_items for i in test.items) / len(test)) if len(test) else None,
                    "test_new_user_share": (sum(u not in known_users for u in test.users) / len(test)) if len(test) else None,
                    "checksums": data.checksums},
        "models": {},
    }
    for name in names:
        print(f"[eval] {data.name}: {name}", file=sys.stderr, flush=True)
        torch.manual_seed(args.seed)
        context = registry.ModelContext(data.name, n_users, n_items, seed=args.seed, device=device, epochs=args.epochs,
                                        batch_size=args.batch_size, progress=not args.no_progress,
                                        item_info=data.item_info)
        try:
            model = registry.build(name, context)
        except registry.ModelNotAvailable as exc:
            print(f"[eval] {exc}", file=sys.stderr)
            result["models"][name] = {"error": str(exc)}
            continue
        model_started = time.perf_counter()
        outcome = protocol.run_stream(model, train, validation, test, batch_size=args.batch_size,
                                      progress=not args.no_progress, seed=args.seed)
        summary = protocol.summarise_result(outcome)
        summary["wall_s"] = round(time.perf_counter() - model_started, 2)
        summary["version"] = model.version()
        if getattr(model, "fit_log", None):
            summary["fit_log"] = model.fit_log
        params = _model_params(model)
        if params:
            summary["params"] = params
        result["models"][name] = summary
        o = summary["overall"]
        print(f"[eval] {name}: MRR {o['mrr']:.4f} R@20 {o['recall@20']:.4f} NDCG@20 {o['ndcg@20']:.4f} "
              f"({summary['wall_s']:.1f} s)", file=sys.stderr, flush=True)
        del model, outcome
        gc.collect()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    report.write_json(result, out)
    report.write_markdown(result, out)
    report.write_plots(result, out)
    print((out / "report.md").read_text())
    return 0


def _model_params(model) -> dict:
    params = dict(getattr(model, "params", {}) or {})
    for key in ("half_life_s", "window_s", "epochs", "lr", "patience"):
        value = getattr(model, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            params[key] = value
    return params
