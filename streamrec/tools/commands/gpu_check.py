"""`streamrec gpu-check`: the correctness of one device's path, as measured figures with thresholds.

Trains a small model on the device, then checks (max |Δ| against a threshold each, float32):
- incremental refresh (bounded fan-out, then the stale sweep) equals a full recompute on that device;
- a checkpoint trained on the device, loaded on the CPU and on the device, gives the same embeddings, the same
  scores and the same top-20 lists on the same events (before and after observing more of them);
- the same for a checkpoint trained on the CPU: it loads and serves on the device.
With --device cpu the "device" is the CPU, so the cross-device checks compare the CPU with itself: that proves the
command, not a GPU; the report says so. Exits 1 when a check fails.
"""

from __future__ import annotations

from ._options import add_threads_argument

NAME = "gpu-check"
HELP = (
    "check the device path: incremental == full recompute, CPU vs device embeddings/scores, checkpoints across devices"
)

OUT_FOLDER = "gpu-check"  # under STREAMREC_HOME unless --out
TOLERANCE = 1e-4
TOP = 20


def configure(parser):
    parser.add_argument(
        "--out",
        default=None,
        help=f"folder for gpu_check.json and the checkpoints (default: <STREAMREC_HOME>/{OUT_FOLDER})",
    )
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"), help="the device checked against the CPU")
    parser.add_argument("--events", type=int, default=6000, help="synthetic events (Zipf items); 2/3 train the model")
    parser.add_argument("--users", type=int, default=600, help="synthetic users")
    parser.add_argument("--items", type=int, default=400, help="synthetic items")
    parser.add_argument("--dim", type=int, default=64, help="embedding size of the small model")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="max |Δ| allowed in every check")
    parser.add_argument(
        "--max-fanout",
        type=int,
        default=64,
        help="fan-out bound of the incremental check (small: the stale path is exercised)",
    )
    add_threads_argument(parser)


def synthetic_events(n: int, users: int, items: int, seed: int = 0):
    """n events in time order: Zipf(1.1) item popularity, uniform users, mostly views, some clicks and purchases,
    several events sharing a millisecond (ties in the buffer's order)."""
    import torch

    from model_server.contract import InteractionBatch

    generator = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, items + 1, dtype=torch.float64) ** 1.1
    item = torch.multinomial(weights, n, replacement=True, generator=generator)
    user = torch.randint(users, (n,), generator=generator)
    kind = torch.multinomial(torch.tensor([0.2, 0.6, 0.1, 0.1]), n, replacement=True, generator=generator)
    names = ("click", "view", "add_to_cart", "purchase")
    ts = 1_600_000_000_000 + (torch.arange(n, dtype=torch.long) // 3) * 1000
    return InteractionBatch(
        [f"u{u}" for u in user.tolist()],
        [f"i{i}" for i in item.tolist()],
        [names[k] for k in kind.tolist()],
        ts.tolist(),
    )


def device_name(device) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment(device) -> dict:
    import platform

    import torch

    env = {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu_memory_bytes=props.total_memory, multiprocessors=props.multi_processor_count)
    return env


class Checks:
    def __init__(self, tolerance: float):
        self.tolerance, self.rows = tolerance, []

    def add(self, name: str, value: float, what: str, threshold: float | None = None, **extra) -> dict:
        threshold = self.tolerance if threshold is None else threshold
        row = {
            "name": name,
            "value": float(value),
            "threshold": threshold,
            "passed": bool(value <= threshold),
            "what": what,
            **extra,
        }
        self.rows.append(row)
        print(f"  {'PASS' if row['passed'] else 'FAIL'} {name}: {value:.3g} (threshold {threshold:g})", flush=True)
        return row

    def failed(self, name: str, error: BaseException) -> None:
        self.rows.append(
            {
                "name": name,
                "value": None,
                "threshold": self.tolerance,
                "passed": False,
                "error": f"{type(error).__name__}: {error}",
            }
        )
        print(f"  FAIL {name}: {type(error).__name__}: {error}", flush=True)


def _model(args, device, **options):
    from model_server.tgat import TGATConfig, TrainConfig, build_streamrec

    return build_streamrec(
        TGATConfig(dim=args.dim, k=10),
        TrainConfig(epochs=args.epochs, progress=False),
        device=device,
        text=False,
        **options,
    )


def _max_abs(a, b) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max()) if a.numel() else 0.0


def _fresh_error(rec) -> float:
    n = rec.graph.num_nodes
    fresh = rec.store.fresh[:n] & ~rec.store.stale[:n]
    return _max_abs(rec.store.embedding[:n][fresh], rec.full_recompute()[fresh])


def check_incremental(rec, stream, batch: int, checks: Checks, label: str) -> None:
    """Observe `stream` in micro-batches; after each, every row not marked stale must equal the full recompute;
    after the sweep, every row."""
    worst, peak_stale = 0.0, 0
    for start in range(0, len(stream), batch):
        rec.observe(stream.slice(start, start + batch))
        worst = max(worst, _fresh_error(rec))
        peak_stale = max(peak_stale, rec.staleness)
    rec.sweep_stale()
    n = rec.graph.num_nodes
    swept = _max_abs(rec.store.embedding[:n], rec.full_recompute())
    checks.add(
        f"incremental_vs_full_{label}",
        max(worst, swept),
        f"{label}: store rows not marked stale after each micro-batch of {batch}, and every row after the "
        "sweep, against full_recompute() on the same device",
        peak_stale=peak_stale,
        nodes=n,
        events=len(stream),
        stale_left=rec.staleness,
    )


def compare_served(a, b, users: list[str], checks: Checks, label: str) -> None:
    """Two recommenders holding the same checkpoint and events (a on the CPU, b on the device): embeddings,
    scores and top-20 lists."""
    import torch

    n = a.graph.num_nodes
    checks.add(
        f"embeddings_{label}",
        _max_abs(a.store.embedding[:n], b.store.embedding[:n]),
        f"{label}: every node's stored embedding, CPU vs device",
        nodes=n,
    )
    sa, sb = a.score(users), b.score(users)
    checks.add(
        f"scores_{label}",
        _max_abs(sa, sb),
        f"{label}: score() of {len(users)} users (one never seen) over {sa.shape[1]} items, CPU vs device",
        largest_abs_score=float(sa[torch.isfinite(sa)].abs().max()),
    )  # float32 rounds at ~6e-8 of this
    va, ia = a.top_k(users, TOP)
    vb, ib = b.top_k(users, TOP)
    finite = torch.isfinite(va) & torch.isfinite(vb.cpu())
    identical = float((ia.cpu() == ib.cpu()).all(1).float().mean())
    same_excluded = bool(torch.equal(torch.isfinite(va), torch.isfinite(vb.cpu())))
    value = _max_abs(va[finite], vb.cpu()[finite]) if same_excluded else float("inf")
    checks.add(
        f"top{TOP}_{label}",
        value,
        f"{label}: top-{TOP} values (exclude=purchased), rank by rank, CPU vs device; lists may differ only "
        "where scores tie within the threshold",
        lists_identical=identical,
    )
    ra, rb = a.recommend(users[:50], TOP), b.recommend(users[:50], TOP)
    checks.add(
        f"recommend_{label}",
        sum(x["item_id"] != y["item_id"] for la, lb in zip(ra, rb) for x, y in zip(la, lb))
        / max(1, sum(len(la) for la in ra)),
        f"{label}: recommend() with because, share of positions whose item differs (near-ties only)",
        threshold=0.05,
    )


def _step(checks: Checks, name: str, fn) -> None:
    import time

    print(f"[gpu-check] {name}", flush=True)
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # a check that crashes is a failed check; the others still run
        import traceback

        traceback.print_exc()
        checks.failed(name, exc)
    print(f"[gpu-check] {name}: {time.perf_counter() - t0:.1f} s", flush=True)


def run(args, settings) -> int:
    import time
    from pathlib import Path

    import torch

    from model_server.tgat.recommender import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out = Path(args.out) if args.out else settings.home / OUT_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return _no_cuda(args, out)
    checks = Checks(args.tolerance)
    _CrossDeviceSteps(args, out, device, checks).run()
    return _report(args, out, device, checks, started)


def _no_cuda(args, out) -> int:
    """--device cuda where torch sees none: said, and a failed report written."""
    import json

    import torch

    print(
        "streamrec gpu-check: --device cuda but torch sees no CUDA device "
        f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    )
    report = {
        "command": args.command_line,
        **environment(torch.device("cpu")),
        "passed": False,
        "error": "no CUDA device visible to torch",
        "checks": [],
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    return 1


class _CrossDeviceSteps:
    """The steps over one synthetic stream: a model trained on the device (and one on the CPU), each checked
    incremental vs full, then each checkpoint served on the CPU and on the device side by side. Each step is one
    `_step`: one that crashes is a failed check and the others still run."""

    def __init__(self, args, out, device, checks: Checks):
        import torch

        self.args, self.out, self.device, self.cpu, self.checks = args, out, device, torch.device("cpu"), checks
        stream = synthetic_events(args.events, args.users, args.items)
        n_train = args.events * 2 // 3
        n_val = (args.events - n_train) // 4
        self.train_part, self.val_part = stream.slice(0, n_train), stream.slice(n_train, n_train + n_val)
        self.later = stream.slice(n_train + n_val, args.events)  # observed after training, in micro-batches
        self.half = len(self.later) // 2
        self.users = sorted(set(self.later.users))[:300] + ["never-seen-user"]
        self.trained: dict = {}  # label -> checkpoint folder

    def run(self) -> None:
        _step(self.checks, "train on the device, incremental vs full", lambda: self.train_on(self.device, "device"))
        _step(self.checks, "device-trained checkpoint on the CPU and the device", lambda: self.serve("device"))
        if self.device.type != "cpu":
            _step(self.checks, "train on the CPU, incremental vs full", lambda: self.train_on(self.cpu, "cpu"))
        else:
            self.trained["cpu"] = self.trained.get("device")
        _step(self.checks, "CPU-trained checkpoint on the CPU and the device", lambda: self.serve("cpu"))

    def train_on(self, where, label: str) -> None:
        args = self.args
        rec = _model(args, where, max_fanout=args.max_fanout, sweep_per_observe=0)
        rec.fit(self.train_part, self.val_part)
        self.trained[label] = rec.save(self.out / f"trained-on-{label}")
        check_incremental(rec, self.later.slice(0, self.half), 100, self.checks, f"trained_on_{label}")

    def serve(self, label: str) -> None:
        from model_server.tgat import load_recommender

        path = self.trained[label]
        on_cpu = load_recommender(path, self.cpu, text=False)
        on_device = load_recommender(path, self.device, text=False)
        compare_served(on_cpu, on_device, self.users, self.checks, f"{label}_checkpoint_loaded")
        rest = self.later.slice(self.half, len(self.later))
        for start in range(0, len(rest), 250):  # the same events into both, then the same comparison
            on_cpu.observe(rest.slice(start, start + 250))
            on_device.observe(rest.slice(start, start + 250))
        compare_served(on_cpu, on_device, self.users, self.checks, f"{label}_checkpoint_after_more_events")


def _report(args, out, device, checks: Checks, started: float) -> int:
    """gpu_check.json and its one-line verdict; 0 when every check passed (and there was one)."""
    import json
    import time
    from pathlib import Path

    from model_server.evaluation.report import git_commit

    passed = all(row["passed"] for row in checks.rows) and bool(checks.rows)
    report = {
        "command": args.command_line,
        "git": git_commit(Path(__file__).parent),
        **environment(device),
        "compared_with": "cpu"
        if device.type != "cpu"
        else "cpu (--device cpu: the cross-device checks compare the CPU with itself; they prove the command only)",
        "tolerance": args.tolerance,
        "events": args.events,
        "users": args.users,
        "items": args.items,
        "dim": args.dim,
        "epochs": args.epochs,
        "max_fanout": args.max_fanout,
        "seconds": round(time.perf_counter() - started, 1),
        "passed": passed,
        "checks": checks.rows,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [row["name"] for row in checks.rows if not row["passed"]]
    print(
        f"wrote {out / 'gpu_check.json'}: {len(checks.rows) - len(failed)}/{len(checks.rows)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 0 if passed else 1
