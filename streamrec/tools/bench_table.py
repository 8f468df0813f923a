"""Markdown tables from bench.json files, so that the docs' benchmark figures are generated, not typed.
Several reports (one per stack or data set) become one side-by-side table, one row per rate and report."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = (
    "data set",
    "stack",
    "target rate",
    "input",
    "output",
    "freshness p50",
    "p95",
    "p99",
    "max",
    "ms per batch (events)",
    "CPU ms per event: streamrec / all processes",
    "sustainable",
    "commit",
)


def load_reports(paths: list[Path]) -> list[dict]:
    reports = []
    for path in paths:
        file = path / "bench.json" if path.is_dir() else path
        reports.append(json.loads(file.read_text()))
    return reports


def _seconds(value) -> str:
    return "–" if value is None else (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s")


def _rate(value) -> str:
    return "–" if value is None else f"{value:,.0f}/s"


def _stack(report: dict) -> str:
    stack = report.get("stack") or {}
    return stack.get("local_stack") or f"kafka {stack.get('kafka')}, graph {stack.get('graph')}"


def _cpu(per_event: dict) -> str:
    """streamrec's processes (worker + model host) / every process of the pipeline, the servers included (older
    reports counted streamrec's only)."""
    ours, everyone = per_event.get("total"), per_event.get("all_processes")
    if ours is None:
        return "–"
    return f"{ours:.2f} / {everyone:.2f}" if everyone is not None else f"{ours:.2f} / –"


def rows(report: dict) -> list[list[str]]:
    out = []
    for run in report["runs"]:
        fresh = run["freshness_s"]
        batch = run.get("stage_ms_per_batch", {}).get("batch")
        out.append(
            [
                report["dataset"],
                _stack(report),
                _rate(run["target_rate"]),
                _rate(run["achieved_input_rate"]),
                _rate(run["achieved_output_rate"]),
                _seconds(fresh["p50_s"]),
                _seconds(fresh["p95_s"]),
                _seconds(fresh["p99_s"]),
                _seconds(fresh["max_s"]),
                f"{batch:.0f} ({run.get('events_per_batch')})" if batch is not None else "–",
                _cpu(run.get("cpu_ms_per_event") or {}),
                "yes" if run["sustainable"] else "no",
                ((report.get("git") or {}).get("commit") or "?")[:7],
            ]
        )
    return out


def markdown(reports: list[dict]) -> str:
    """The table, rows ordered by data set, rate, then stack; and the commands and commits below it."""
    body = sorted(
        (row for report in reports for row in rows(report)),
        key=lambda r: (r[0], float(r[2].rstrip("/s").replace(",", "")), r[1]),
    )
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    lines.append("")
    for report in reports:
        git = report.get("git") or {}
        commit = (git.get("commit") or "?")[:7] + (" (uncommitted changes)" if git.get("dirty") else "")
        lines.append(f"- `{report.get('command', '?')}` ({_stack(report)}, commit {commit})")
    return "\n".join(lines) + "\n"


WORKER_COLUMNS = (
    "workers",
    "output events/s",
    "freshness p50 / p99",
    "CPU ms per event: event loops + model hosts = total",
    "events per CPU second",
    "follow delay p50 / p99",
    "graph upsert per batch",
)


def _pair(values: dict) -> str:
    return f"{values['p50_s']:.2f} / {values['p99_s']:.2f} s"


def workers_markdown(report: dict) -> str:
    """One row per worker count of a `streamrec bench --workers` run, and its command and commit."""
    lines = ["| " + " | ".join(WORKER_COLUMNS) + " |", "|" + "---|" * len(WORKER_COLUMNS)]
    for run in sorted(report["runs"], key=lambda r: (r["target_rate"], r["workers"])):
        cpu = run["cpu_ms_per_event"]
        lines.append(
            f"| {run['workers']} | {run['achieved_output_rate']:,.0f} | {_pair(run['freshness_s'])} | "
            f"{cpu['worker']:.2f} + {cpu['model_host']:.2f} = {cpu['total']:.2f} | "
            f"{run['events_per_cpu_second']:,.0f} | {_pair(run['follow_delay_s'])} | "
            f"{run['stage_ms_per_batch']['graph_upsert']:.0f} ms |"
        )
    git = report.get("git") or {}
    commit = (git.get("commit") or "?")[:7] + (" (uncommitted changes)" if git.get("dirty") else "")
    lines += ["", f"- `{report.get('command', '?')}` ({_stack(report)}, commit {commit})"]
    return "\n".join(lines) + "\n"
