"""The docs' tables of measured figures are generated from the reports they come from, never typed: each table
sits between two markers that name its kind and its reports (JSON files kept in docs/results/, each holding
the command that produced it and the commit it ran on), and `streamrec docs-tables` rebuilds every such table
from those files (`--check`: only says which pages differ; a test runs it).

    <!-- table eval results/eval-rees46.json results/eval-wikipedia.json -->
    …generated…
    <!-- end table -->
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from . import bench_table

BLOCK = re.compile(
    r"(?P<open><!-- table (?P<kind>[\w-]+) (?P<files>[^>]*?) -->\n)(?P<body>.*?)(?P<close><!-- end table -->)", re.S
)
EVAL_MODELS = (
    "streamrec",
    "static_gat",
    "tgn",
    "sasrec",
    "lightgcn",
    "recency_popularity",
    "base3",
    "edgebank_window",
    "edgebank",
    "itemknn",
    "poptrack",
    "recent_pop",
    "pop",
)
EVAL_METRICS = {"mrr": "test MRR", "ndcg@20": "test NDCG@20", "recall@20": "test R@20"}


def _commit(report: dict) -> str:
    git = report.get("git") or {}
    return (git.get("commit") or "?")[:7] + (" (uncommitted changes)" if git.get("dirty") else "")


def _figure(result: dict, metric: str) -> tuple[float, float | None]:
    """(mean, std) over the run's seeds, or (the figure, None) for a run of one seed."""
    spread = result.get("across_seeds", {}).get(metric)
    return (spread["mean"], spread["std"]) if spread else (result["overall"][metric], None)


def _cell(mean: float, std: float | None, bold: bool) -> str:
    text = f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"
    return f"**{text}**" if bold else text


def _protocol_label(report: dict) -> str:
    """The row's name: the data set, and its test batch size where it is not the default 200 (figures ranked
    per event and in batches of 200 are different figures: a row never mixes the two)."""
    name, size = report["dataset"]["name"], report["config"].get("batch_size", 200)
    return name if size == 200 else f"{name}, per event" if size == 1 else f"{name}, batches of {size}"


def _by_data_set(reports: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Row label -> (its data set's description, model -> result): several reports of one data set and test
    batch size merge, a later report's model replacing an earlier one's (e.g. every model at one commit, then
    streamrec again at a later one)."""
    rows: dict[str, tuple[dict, dict]] = {}
    for report in reports:
        data, results = rows.setdefault(_protocol_label(report), (report["dataset"], {}))
        results.update({m: r for m, r in report["models"].items() if "error" not in r})
    return rows


def eval_markdown(reports: list[dict], metric: str = "mrr") -> str:
    """One test metric of every model, one row per data set (the best in bold), then each run's command and
    commit."""
    models = [m for m in EVAL_MODELS if any(m in r["models"] for r in reports)]
    models += sorted({m for r in reports for m in r["models"]} - set(models))
    lines = [f"| {EVAL_METRICS[metric]} | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for label, (data, results) in _by_data_set(reports).items():
        scores = {m: _figure(r, metric) for m, r in results.items()}
        best = max((mean for mean, _ in scores.values()), default=None)
        cells = ["–" if m not in scores else _cell(*scores[m], bold=scores[m][0] == best) for m in models]
        lines.append(f"| {label} ({data['rows']:,} events) | " + " | ".join(cells) + " |")
    lines.append("")
    for report in reports:
        lines.append(f"- `{report['config']['command']}` (commit {_commit(report)})")
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def refresh_markdown(reports: list[dict]) -> str:
    """`streamrec bench-refresh`: per graph size, a full recompute against one incremental refresh per event, one
    event at a time and in micro-batches (how many times cheaper; in brackets with the later stale sweep)."""
    report = reports[0]
    sizes = [b["batch_size"] for b in report["results"][0]["micro_batches"]]
    lines = [
        "| edges | source | full recompute | "
        + " | ".join(
            "refresh per event, one at a time" if size == 1 else f"per event, micro-batches of {size}" for size in sizes
        )
        + " |",
        "|---|---|---|" + "---|" * len(sizes),
    ]
    for row in report["results"]:
        cells = [
            f"{b['ratio']:,.1f}× cheaper ({b['ratio_with_sweep']:,.1f}× with the sweep)" for b in row["micro_batches"]
        ]
        source = row["source"].split(" (")[0]  # the details stay in the report
        lines.append(
            f"| {row['edges']:,} | {source} | {_duration(row['full_recompute_s'])} | " + " | ".join(cells) + " |"
        )
    device = report["device"] + (f" ({report['device_name']})" if report.get("device_name") else "")
    lines += ["", f"- `{report['command']}` (device {device}, {report['threads']} thread(s), commit {_commit(report)})"]
    return "\n".join(lines) + "\n"


def demo_markdown(reports: list[dict]) -> str:
    """`streamrec demo`'s summary.json: what went in and out, the freshness measured outside the worker."""
    lines = [
        "| data set | events in | dead letters | lists published | users with a list | freshness p50 | p99 | max "
        "| graph |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        graph = r["graph"]
        lines.append(
            f"| {r['dataset']} | {r['events_in']:,} | {r['dlq']:,} | {r['lists_published']:,} | "
            f"{r['users_with_lists']:,} | {r['freshness_p50_s']:.3f} s | {r['freshness_p99_s']:.3f} s | "
            f"{r['freshness_max_s']:.2f} s | {graph['users']:,} users, {graph['items']:,} items, "
            f"{graph['edges']:,} edges |"
        )
    lines.append("")
    lines += [
        f"- `{r['command']}` at {r['target_rate']:,.0f} events/s, the first {r['warmup_events']:,} untimed "
        f"(commit {_commit(r)})"
        for r in reports
    ]
    return "\n".join(lines) + "\n"


def _reads_markdown(reports: list[dict]) -> str:
    from .commands.bench_reads import table

    return table(reports) + "\n"


DIVERSITY_COLUMNS = {
    "mrr": "MRR",
    "ndcg@20": "NDCG@20",
    "recall@20": "R@20",
    "intra_list_diversity@20": "ILD@20",
    "categories_per_list@20": "categories per list",
    "category_coverage@20": "category coverage",
}


def diversity_markdown(reports: list[dict]) -> str:
    """`streamrec eval --diversity …`: per data set, model and MMR strength λ the test figures and how varied the
    lists are (report.json's "diversity" sections), then each run's command and commit."""
    lines = [
        "| data set | model | λ | " + " | ".join(DIVERSITY_COLUMNS.values()) + " |",
        "|---|---|---|" + "---|" * len(DIVERSITY_COLUMNS),
    ]
    for report in reports:
        for model, result in report["models"].items():
            for setting in result.get("diversity", []):
                cells = [f"{setting[key]:.4f}" if key in setting else "–" for key in DIVERSITY_COLUMNS]
                lines.append(
                    f"| {report['dataset']['name']} | {model} | {setting['diversity']:g} | " + " | ".join(cells) + " |"
                )
    lines.append("")
    lines += [f"- `{r['config']['command']}` (commit {_commit(r)})" for r in reports]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[list[dict]], str]] = {
    "bench": bench_table.markdown,
    "bench-workers": lambda reports: "\n".join(bench_table.workers_markdown(r) for r in reports),
    "eval": eval_markdown,
    "eval-ndcg": lambda reports: eval_markdown(reports, "ndcg@20"),
    "eval-recall": lambda reports: eval_markdown(reports, "recall@20"),
    "eval-diversity": diversity_markdown,
    "bench-reads": _reads_markdown,
    "bench-refresh": refresh_markdown,
    "demo": demo_markdown,
}


class DocsTableError(ValueError):
    pass


def _render(kind: str, files: str, page: Path) -> str:
    if kind not in RENDERERS:
        raise DocsTableError(f"{page}: unknown table kind {kind!r} (known: {', '.join(RENDERERS)})")
    reports = []
    for name in files.split():
        path = page.parent / name
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise DocsTableError(f"{page}: the {kind} table's report {name}: {exc}") from exc
    return RENDERERS[kind](reports)


def rebuild(text: str, page: Path) -> str:
    """`text` (the page at `page`) with every generated table rebuilt from its reports."""
    return BLOCK.sub(lambda m: m["open"] + _render(m["kind"], m["files"], page) + m["close"], text)


def stale_pages(docs: Path, write: bool) -> list[Path]:
    """The pages under `docs` whose tables differ from their reports; rewritten when `write`."""
    stale = []
    readme = docs.parent / "README.md"  # the README's short results table too
    for page in sorted(docs.glob("*.md")) + ([readme] if readme.is_file() else []):
        text = page.read_text()
        fresh = rebuild(text, page)
        if fresh != text:
            stale.append(page)
            if write:
                page.write_text(fresh)
    return stale
