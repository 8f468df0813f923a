import argparse
import sys

from ._options import add_device_argument, add_limit_argument, add_progress_argument, add_threads_argument, event_count
from ._source import add_source_arguments, load_source

NAME = "eval"
HELP = "streaming evaluation of recommenders on a data set (TGB-style chronological split, batches of 200)"


def configure(parser):
    add_source_arguments(parser)
    parser.add_argument(
        "--models",
        default="all",
        help="comma-separated model names, or all (the default), which is every model: streamrec, static_gat, tgn, sasrec, lightgcn, "
        "recency_popularity, base3, poptrack, edgebank, edgebank_window, itemknn, recent_pop, pop",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.json, report.md and the plots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=_seed_list,
        default=None,
        metavar="S,S,…",
        help="run every model once per seed and report mean ± std of its test figures (default: --seed alone)",
    )
    parser.add_argument(
        "--batch-size",
        type=event_count,
        default=200,
        help="test events per batch, each ranked from the state before its batch (1: per event, "
        "the published protocol); streamrec's validation pass uses it too",
    )
    parser.add_argument(
        "--train-batch-size",
        type=event_count,
        default=200,
        help="events (SASRec: sequences) per training step of the trained models",
    )
    parser.add_argument(
        "--diversity",
        type=_strength_list,
        default=None,
        metavar="L,L,…",
        help="diversity settings (λ of the MMR re-ranking, 0 = off): each model is fitted once and "
        "its test part run once per setting; report.md and diversity_tradeoff.png show the "
        "trade-off (default: STREAMREC_DIVERSITY alone, 0 unless set)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs of the trained models (default: streamrec and static_gat 5, tgn 10, sasrec and lightgcn 100, "
        "each early-stopped on validation)",
    )
    add_device_argument(parser)
    add_threads_argument(parser, default=1)
    add_limit_argument(parser)
    add_progress_argument(parser)


def run(args, settings) -> int:
    import time
    from pathlib import Path

    import torch

    from model_server import streaming
    from model_server.evaluation import protocol, registry, report

    torch.set_num_threads(max(1, args.threads))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if names == ["all"]:
        names = list(registry.MODELS)
    unknown = [m for m in names if m not in registry.MODELS]
    if unknown or not names:
        print(
            f"streamrec eval: unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(registry.MODELS)}",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    data = load_source(args, settings, NAME)
    if data is None:
        return 2
    stream = protocol.stream_of(data)
    if args.limit:
        stream = stream.slice(0, args.limit)
    parts = streaming.split_stream(stream)
    if not all(len(part) for part in parts):
        print(
            f"streamrec eval: {_too_few_events(args.events_csv or data.name, len(stream), args.limit)}", file=sys.stderr
        )
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "created": report.timestamp(),
        "git": report.git_commit(Path(__file__).resolve().parents[3]),
        "config": _config(args, names, device, settings),
        "dataset": _dataset_figures(data, stream, *parts),
        "models": {},
    }
    n_users, n_items = result["dataset"]["users"], result["dataset"]["items"]
    for name in names:
        runs = {}
        for seed in result["config"]["seeds"]:
            runs[seed] = _evaluate_seed(name, seed, args, device, data, n_users, n_items, parts, result["config"])
            if "error" in runs[seed]:
                break
        result["models"][name] = report.across_seeds(runs)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    report.write_json(result, out)
    report.write_markdown(result, out)
    report.write_plots(result, out)
    print((out / "report.md").read_text())
    return 0


def _config(args, names: list[str], device: str, settings) -> dict:
    """The report's `config`: the command, the models, seeds, batch sizes, device and diversity strengths."""
    import torch

    from model_server import streaming
    from model_server.evaluation import protocol

    seeds = args.seeds or [args.seed]
    return {
        "command": args.command_line,
        "models": names,
        "seed": seeds[0],
        "seeds": seeds,
        "batch_size": args.batch_size,
        "train_batch_size": args.train_batch_size,
        "epochs": args.epochs,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "limit": args.limit,
        "split": list(streaming.SPLIT),
        "top_k_lists": protocol.TOP_K,
        "torch": torch.__version__,
        "diversity": args.diversity or [settings.diversity],
    }


def _dataset_figures(data, stream, train, validation, test) -> dict:
    """The report's `dataset`: its size, the split, and the test events whose item or user is new."""
    known_items = set(train.items) | set(validation.items)
    known_users = set(train.users) | set(validation.users)
    return {
        "name": data.name,
        "rows": len(stream),
        "users": len(set(stream.users)),
        "items": len(set(stream.items)),
        "train": len(train),
        "validation": len(validation),
        "test": len(test),
        "test_new_item_share": (sum(i not in known_items for i in test.items) / len(test)) if len(test) else None,
        "test_new_user_share": (sum(u not in known_users for u in test.users) / len(test)) if len(test) else None,
        "checksums": data.checksums,
    }


def _evaluate_seed(name, seed, args, device, data, n_users, n_items, parts, config) -> dict:
    """One model and seed, with its progress lines."""
    multiple = len(config["seeds"]) > 1
    print(f"[eval] {data.name}: {name}" + (f" (seed {seed})" if multiple else ""), file=sys.stderr, flush=True)
    run = _evaluate(name, seed, args, device, data, n_users, n_items, *parts, config["diversity"])
    if "error" not in run:
        o = run["overall"]
        print(
            f"[eval] {name}: MRR {o['mrr']:.4f} R@20 {o['recall@20']:.4f} NDCG@20 {o['ndcg@20']:.4f} "
            f"({run['wall_s']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return run


def _evaluate(name, seed, args, device, data, n_users, n_items, train, validation, test, strengths=(0.0,)) -> dict:
    """One model, one seed, through the streaming protocol: its summary, or {"error": …} when it is not there.
    With several diversity settings the model is fitted once and the test part runs once per setting (the
    summary is the first setting's, plus a "diversity" section with every setting's figures)."""
    import gc
    import time

    import torch

    from model_server.evaluation import registry, tradeoff

    torch.manual_seed(seed)
    context = _model_context(seed, args, device, data, n_users, n_items)

    def build():
        model = registry.build(name, context)
        tradeoff.give_categories(model, data.item_info)
        return model

    try:
        model = build()
    except registry.ModelNotAvailable as exc:
        print(f"[eval] {exc}", file=sys.stderr)
        return {"error": str(exc)}
    started = time.perf_counter()
    options = {"batch_size": args.batch_size, "progress": not args.no_progress, "seed": seed}
    runs = _stream_settings(model, build, strengths, train, validation, test, data.item_info, options)
    summary = _summarise_settings(name, runs, strengths)
    summary["wall_s"] = round(time.perf_counter() - started, 2)
    _add_model_facts(summary, model)
    del model, runs  # a large model's tensors go before the next seed's are built
    gc.collect()
    return summary


def _model_context(seed, args, device, data, n_users, n_items):
    from model_server.evaluation import registry

    return registry.ModelContext(
        data.name,
        n_users,
        n_items,
        seed=seed,
        device=device,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_batch_size=args.train_batch_size,
        progress=not args.no_progress,
        item_info=data.item_info,
    )


def _stream_settings(model, build, strengths, train, validation, test, item_info, options) -> list[tuple]:
    """(strength, outcome, category coverage) for each diversity setting; one setting streams the model as built."""
    from model_server.evaluation import protocol, tradeoff

    if len(strengths) != 1:
        return tradeoff.run_settings(model, build, strengths, train, validation, test, item_info, **options)
    model.diversity = strengths[0]
    coverage = tradeoff.CategoryCoverage(item_info)
    return [(strengths[0], protocol.run_stream(model, train, validation, test, on_lists=coverage, **options), coverage)]


def _summarise_settings(name, runs, strengths) -> dict:
    """The first setting's summary with its lists' coverage; and, unless the only setting is no diversity, a
    "diversity" section with every setting's figures (each printed)."""
    from model_server.evaluation import protocol, tradeoff

    summaries = [(strength, protocol.summarise_result(outcome), coverage) for strength, outcome, coverage in runs]
    summary = summaries[0][1]
    summary["lists"].update(summaries[0][2].summary())
    if list(strengths) != [0.0]:
        summary["diversity"] = [tradeoff.setting_summary(*entry) for entry in summaries]
        for row in summary["diversity"]:
            print(
                f"[eval] {name} diversity {row['diversity']:g}: MRR {row['mrr']:.4f} NDCG@20 {row['ndcg@20']:.4f} "
                f"ILD@20 {_figure(row['intra_list_diversity@20'])} categories/list "
                f"{_figure(row['categories_per_list@20'], 2)}",
                file=sys.stderr,
                flush=True,
            )
    return summary


def _add_model_facts(summary: dict, model) -> None:
    """The model's version, its fit log and its parameters, where it has them."""
    summary["version"] = model.version()
    if getattr(model, "fit_log", None):
        summary["fit_log"] = model.fit_log
    params = _model_params(model)
    if params:
        summary["params"] = params


def _figure(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _strength_list(text: str) -> list[float]:
    from model_server.evaluation.tradeoff import parse_strengths

    try:
        return parse_strengths(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers separated by commas, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more distinct seeds, e.g. 0,1,2")
    return seeds


def _too_few_events(source: str, n_events: int, limit: int | None) -> str:
    from model_server.streaming import SPLIT, smallest_splittable

    split = "/".join(f"{round(100 * ratio)}" for ratio in SPLIT)
    return (
        f"{source} has {n_events} events{' (--limit)' if limit else ''}, too few to split {split} into train, "
        f"validation and test: at least {smallest_splittable()} are needed"
    )


def _model_params(model) -> dict:
    params = dict(getattr(model, "params", {}) or {})
    for key in ("half_life_s", "window_s", "epochs", "lr", "patience"):
        value = getattr(model, key, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            params[key] = value
    return params
