from ._options import (
    add_deprecated_alias,
    add_device_argument,
    add_limit_argument,
    add_progress_argument,
    add_threads_argument,
    event_count,
)
from ._source import add_source_arguments, load_source
from .models import promote_trained

NAME = "train"
HELP = "train the temporal GAT on a data set's chronological 70/15/15 split and write a versioned checkpoint"


def configure(parser):
    add_source_arguments(parser)
    parser.add_argument(
        "--out",
        required=True,
        help="checkpoint folder (model.pt + metadata.json): a version when "
        "directly under STREAMREC_MODEL_DIR, promoted if it is the first one there",
    )
    parser.add_argument(
        "--promote",
        action="store_true",
        help="promote the new version: running workers swap to it (`streamrec models`)",
    )
    add_device_argument(parser)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--patience", type=int, default=1, help="epochs without a better validation MRR")
    parser.add_argument("--batch-size", type=event_count, default=200, help="training events per step")
    parser.add_argument(
        "--eval-batch-size",
        type=event_count,
        default=None,
        help="events per batch, each ranked from the state before its batch, of the validation pass "
        "that chooses the score's weights and of --test (1: one event at a time, as a worker "
        "refreshes lists; default: --batch-size)",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--negatives", type=int, default=256, help="sampled catalogue items per batch")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--k", type=int, default=10, help="recent neighbours per node")
    parser.add_argument("--no-repeat", action="store_true", help="drop the learned repeat/recency score term")
    parser.add_argument("--no-text", action="store_true", help="ignore item text (ids, category, brand only)")
    add_deprecated_alias(parser, "--max-events", add_limit_argument(parser))
    parser.add_argument("--test", action="store_true", help="also stream the test split and report its MRR")
    parser.add_argument("--seed", type=int, default=0)
    add_threads_argument(parser)
    add_progress_argument(parser)


def run(args, settings) -> int:
    import json
    import time

    import torch

    from model_server.contract import InteractionBatch
    from model_server.streaming import split_stream

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("streamrec train: --device cuda but no CUDA device is available")
        return 2
    data = load_source(args, settings, NAME)
    if data is None:
        return 2
    n = min(len(data), args.limit or len(data))
    whole = InteractionBatch(data.users[:n], data.items[:n], data.types[:n], data.ts[:n])
    train, validation, test = split_stream(whole)  # the split `streamrec eval` uses
    rec = _model(args)
    started = time.perf_counter()
    texts = [data.item_info[i] for i in dict.fromkeys(whole.items) if i in data.item_info]
    if texts:
        rec.observe_items(texts)
    print(
        f"{data.name}: {n} events ({len(train)} train / {len(validation)} validation / {len(test)} test), "
        f"{len(texts)} items with text/category/brand, device {rec.device}"
    )
    rec.fit(train, validation)
    seconds = round(time.perf_counter() - started, 1)
    test_metrics = _tested(args, rec, train, validation, test) if args.test and len(test) else None
    metadata = _metadata(args, data, n, rec, (train, validation, test), test_metrics, seconds)
    path = rec.save(args.out, metadata)
    summary = {
        "checkpoint": str(path),
        "model_version": rec.model_version,
        "validation": metadata["validation"],
        "test": test_metrics,
        "train_seconds": seconds,
        "batch_seconds": metadata["batch_seconds"],
    }
    print(json.dumps(summary, indent=2))
    print(promote_trained(args.out, settings, asked=args.promote))
    return 0


def _metadata(args, data, n: int, rec, parts, test_metrics, seconds: float) -> dict:
    """What the checkpoint's metadata.json records of its training: the data, the split, the figures, where."""
    from pathlib import Path

    from model_server.evaluation.report import git_commit
    from model_server.tgat.train import BATCH_COST

    train, validation, test = parts
    return {
        "dataset": data.name,
        "dataset_checksums": data.checksums,
        "events_used": n,
        "split": {
            "train": len(train),
            "validation": len(validation),
            "test": len(test),
            "train_end_ts": train.ts[-1],
            "validation_end_ts": validation.ts[-1] if len(validation) else None,
        },
        "validation": rec.train_report.get("validation"),
        "test": test_metrics,
        "eval_batch_size": args.eval_batch_size or args.batch_size,
        "git_commit": git_commit(Path(__file__).resolve().parent)["commit"],
        "train_seconds": seconds,
        # seconds per training batch at the start and the end of each epoch (issue 31: flat, not growing)
        "batch_seconds": [
            {"epoch": record["epoch"], **{name: record[name] for name in BATCH_COST if name in record}}
            for record in rec.train_report.get("epochs", [])
        ],
        "device": str(rec.device),
    }


def _model(args):
    """The temporal GAT the flags describe, untrained."""
    from model_server.tgat import TGATConfig, TrainConfig, build_streamrec

    config = TGATConfig(dim=args.dim, heads=args.heads, layers=args.layers, k=args.k, repeat=not args.no_repeat)
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        negatives=args.negatives,
        patience=args.patience,
        seed=args.seed,
        validation_batch_size=args.eval_batch_size or 0,
        progress=not args.no_progress,
    )
    text = False if args.no_text else "auto"
    return build_streamrec(config, train_config, seed=args.seed, device=args.device, text=text)


def _tested(args, rec, train, validation, test) -> dict:
    """The test split's figures, streamed through the fitted model; then the model's state is set back to after
    train + validation, which is what the checkpoint holds."""
    from model_server.contract import InteractionBatch
    from model_server.ids import IdMap
    from model_server.tgat.train import evaluate_stream

    rec.users.add(test.users)
    rec.items.add(test.items)
    rec._sync()
    seen = InteractionBatch(train.users + validation.users, train.items + validation.items, [], [])
    figures = evaluate_stream(
        rec.model,
        rec.graph,
        test,
        rec.users,
        rec.items,
        IdMap(seen.items),
        set(seen.users),
        args.eval_batch_size or args.batch_size,
        progress=not args.no_progress,
        desc="test",
    )
    rec.rebuild_from_edges(
        train.users + validation.users,
        train.items + validation.items,
        train.types + validation.types,
        train.ts + validation.ts,
    )
    return figures
