"""Reports of an evaluation run: report.json (every figure), report.md (the tables) and PNG plots."""

from __future__ import annotations

import json
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path

# TGB leaderboard, tgbl-wiki-v2, test MRR (each true item ranked against all destination nodes); the
# heuristic is the recency + popularity of Cornell et al., "On the Power of Heuristics in Temporal Graphs" (2025)
TGB_WIKI_ANCHORS = {
    "TPNet": 0.827,
    "recency + popularity heuristic": 0.821,
    "HyperEvent": 0.810,
    "DyGFormer": 0.798,
    "TNCN": 0.718,
    "EdgeBank": 0.571,
    "TGN": 0.396,
    "TGAT": 0.141,
}

PROTOCOL_DIFFERENCES = [
    "Split 70/15/15 by event position (TGB: by time quantiles, also 70/15/15).",
    "Test events are ranked in batches of {batch_size} using only what came before the batch, then the batch "
    "is observed. Our recency + popularity heuristic scores the published 0.821 only per event "
    "(--batch-size 1: 0.820) and 0.729 in batches of 200, so the leaderboard's figures are compared per event.",
    "The candidate set is every item seen in an event before the batch, with no sampled negatives; an event "
    "whose item was never seen is a miss (MRR 0). TGB ranks against every destination node of the whole "
    "data set (for tgbl-wiki that is all ~1,000 pages), including pages not yet seen.",
    "Ties are broken at the average of the optimistic and pessimistic rank (as TGB's evaluator).",
    "Our Wikipedia file holds no edge features (TGB's tgbl-wiki has 172-d LIWC features); the TGN here gets "
    "a one-hot of the event type as its message and trains for a few CPU epochs, not 50.",
    "TGB's EdgeBank figure is from its own code; ours is our re-implementation under this harness.",
]

MAIN_COLUMNS = [
    ("mrr", "MRR"),
    ("recall@10", "R@10"),
    ("recall@20", "R@20"),
    ("ndcg@20", "NDCG@20"),
    ("user_hit_rate@10", "user HR@10"),
]


def git_commit(cwd: Path | None = None) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


SEED_METRICS = (("mrr", "MRR"), ("ndcg@20", "NDCG@20"), ("recall@20", "R@20"), ("recall@10", "R@10"))


def across_seeds(runs: dict[int, dict]) -> dict:
    """A model's summary over one or more seeds: the first seed's full summary (breakdowns, plots), plus, with
    several seeds, each seed's overall figures and their mean and sample standard deviation."""
    first = next(iter(runs.values()))
    failed = next((r for r in runs.values() if "error" in r), None)
    if failed is not None or len(runs) == 1:
        return failed or first
    summary = dict(first)
    summary["seeds"] = {
        str(seed): {
            "overall": r["overall"],
            "wall_s": r["wall_s"],
            **({"params": r["params"]} if "params" in r else {}),
        }
        for seed, r in runs.items()
    }
    summary["across_seeds"] = {
        key: {"mean": statistics.fmean(values), "std": statistics.stdev(values), "n": len(values)}
        for key, _ in SEED_METRICS
        for values in [[r["overall"][key] for r in runs.values()]]
    }
    return summary


def _seed_lines(results: dict) -> list[str]:
    spread = {name: r["across_seeds"] for name, r in results.items() if "across_seeds" in r}
    if not spread:
        return []
    n = next(iter(spread.values()))["mrr"]["n"]
    lines = [
        "",
        f"## Across {n} seeds (mean ± sample standard deviation, test part)",
        "",
        "| model | " + " | ".join(label for _, label in SEED_METRICS) + " |",
        "|" + "---|" * (len(SEED_METRICS) + 1),
    ]
    for name, figures in spread.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{figures[key]['mean']:.4f} ± {figures[key]['std']:.4f}" for key, _ in SEED_METRICS)
            + " |"
        )
    return lines


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_json(report: dict, out: Path) -> Path:
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1, sort_keys=False))
    return path


def render_markdown(report: dict) -> str:
    data, config, results = report["dataset"], report["config"], report["models"]
    ok = {name: r for name, r in results.items() if "error" not in r}
    lines = [f"# Streaming evaluation: {data['name']}", ""]
    lines += _header_lines(report)
    lines += _seed_lines(results)
    lines += _overall_lines(config, results)
    if data["name"] == "wikipedia":
        lines += _leaderboard_lines(config, ok)
    lines += _diversity_lines(ok)
    lines += _breakdown_lines(ok)
    lines += _note_lines(ok)
    plots = ["metrics_by_model.png", "mrr_over_time.png"] + (["diversity_tradeoff.png"] if _tradeoffs(ok) else [])
    lines += [
        "",
        "Plots: " + ", ".join(f"`{name}`" for name in plots) + ".",
        "",
        f"Command: `{config['command']}` — wall time {report['wall_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def _header_lines(report: dict) -> list[str]:
    """The data set, the split, the protocol's settings and the commit; the shares of new items and users."""
    data, config = report["dataset"], report["config"]
    return [
        f"{data['rows']:,} events, {data['users']:,} users, {data['items']:,} items; "
        f"train {data['train']:,} / validation {data['validation']:,} / test {data['test']:,} events; "
        f"test batches of {config['batch_size']}; seed {config['seed']}; device {config['device']}; "
        f"commit {(report['git']['commit'] or 'unknown')[:12]}{' (dirty)' if report['git']['dirty'] else ''}.",
        f"Share of test events whose item had no event before the test part: {_fmt(data['test_new_item_share'], 3)}; "
        f"whose user had none: {_fmt(data['test_new_user_share'], 3)}. (The breakdowns count an item or user as "
        f"new only until the batch after its first event; an event whose item is new then is unrankable, a miss.)",
    ]


def _overall_lines(config: dict, results: dict) -> list[str]:
    """The table of every model on the whole test part (a model that failed: its error)."""
    seeds = config.get("seeds") or [config["seed"]]
    title = "## Overall (test part" + (
        f", seed {seeds[0]}; breakdowns below are of that seed too" if len(seeds) > 1 else ""
    )
    header = (
        ["model"]
        + [label for _, label in MAIN_COLUMNS]
        + ["coverage@20", "ILD@20", "s / 1k events", "fit s", "peak RSS MiB"]
    )
    lines = ["", title + ")", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | " + " | ".join(["–"] * (len(header) - 2)) + f" | {result['error']} |")
            continue
        o, lists, cost = result["overall"], result["lists"], result["cost"]
        cells = (
            [name]
            + [_fmt(o[key]) for key, _ in MAIN_COLUMNS]
            + [
                _fmt(lists["catalogue_coverage@20"], 3),
                _fmt(lists["intra_list_diversity@20"], 3),
                _fmt(cost["s_per_1000_test_events"], 3),
                _fmt(cost["fit_s"], 1),
                _fmt(cost["peak_rss_mib"], 0),
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _leaderboard_lines(config: dict, ok: dict) -> list[str]:
    """Wikipedia: our MRRs beside the TGB leaderboard's, with the protocol differences."""
    lines = ["", "## Beside the TGB leaderboard (tgbl-wiki-v2, test MRR)", "", "| | MRR |", "|---|---|"]
    lines += [f"| TGB {name} (published) | {value:.3f} |" for name, value in TGB_WIKI_ANCHORS.items()]
    lines += [f"| ours: {name} | {r['overall']['mrr']:.3f} |" for name, r in ok.items()]
    lines += ["", "Protocol differences (the figures are beside each other, not interchangeable):", ""]
    lines += [f"- {item.format(batch_size=config['batch_size'])}" for item in PROTOCOL_DIFFERENCES]
    return lines


def _breakdown_lines(ok: dict) -> list[str]:
    """MRR / Recall@20 of each model on each group of test events (new users, returning users by item, ...)."""
    lines = ["", "## Breakdowns (MRR / Recall@20; events)", ""]
    groups = _breakdown_groups(ok)
    if not groups:
        return lines
    lines.append("| model | " + " | ".join(label for label, _ in groups) + " |")
    lines.append("|" + "---|" * (len(groups) + 1))
    for name, result in ok.items():
        cells = []
        for _, getter in groups:
            s = getter(result)
            cells.append(f"{_fmt(s['mrr'], 3)} / {_fmt(s['recall@20'], 3)}" if s and s["events"] else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    first = next(iter(ok.values()))
    lines.append("| events | " + " | ".join(str((getter(first) or {}).get("events", 0)) for _, getter in groups) + " |")
    return lines


def _note_lines(ok: dict) -> list[str]:
    """How to read the tables, and each model's fit log and parameters."""
    lines = [
        "",
        "## Notes",
        "",
        "- Ranking is over every item seen before the batch; ties take the average rank; an event with a "
        "never-seen item is a miss. 'known items' restricts to rankable events. 'returning: …': a "
        "returning user's events by where the item stood among the user's own items before the batch.",
        "- user HR@10: share of test users with at least one event ranked in the top 10.",
        "- coverage@20: share of the final catalogue appearing in any top-20 list; ILD@20: mean pairwise "
        "1 − cosine within a top-20 list, on item vectors from a rank-64 SVD of the train+validation "
        "item × user incidence (model-independent; items first seen in the test count as dissimilar).",
        "- s / 1k events: seconds of score + observe per 1,000 test events (the model's own time, not the "
        "harness's); fit s: fit plus observing the validation part; peak RSS: the process's peak resident "
        "memory while this model ran (VmHWM reset before each model), which includes the data set and "
        "the harness (the 'rss_before_mib' in report.json is the baseline).",
    ]
    for name, result in ok.items():
        if result.get("fit_log"):
            lines.append(
                f"- {name} fit log: "
                + "; ".join(", ".join(f"{k} {_fmt(v, 4)}" for k, v in entry.items()) for entry in result["fit_log"])
            )
        if result.get("params"):
            lines.append(f"- {name} parameters: " + ", ".join(f"{k}={_fmt(v, 4)}" for k, v in result["params"].items()))
    return lines


DIVERSITY_COLUMNS = [
    ("mrr", "MRR", 4),
    ("ndcg@20", "NDCG@20", 4),
    ("recall@20", "R@20", 4),
    ("intra_list_diversity@20", "ILD@20", 3),
    ("categories_per_list@20", "categories / list", 2),
    ("category_coverage@20", "category coverage", 3),
    ("catalogue_coverage@20", "coverage@20", 3),
    ("s_per_1000_test_events", "s / 1k events", 3),
]


def _tradeoffs(results: dict) -> dict:
    return {name: r["diversity"] for name, r in results.items() if r.get("diversity")}


def _diversity_lines(results: dict) -> list[str]:
    """The trade-off table of `eval --diversity`: one row per model and setting."""
    tradeoffs = _tradeoffs(results)
    if not tradeoffs:
        return []
    lines = [
        "",
        "## Diversity trade-off (test part; λ of the MMR re-ranking, 0 = off)",
        "",
        "| model | λ | " + " | ".join(label for _, label, _ in DIVERSITY_COLUMNS) + " |",
        "|" + "---|" * (len(DIVERSITY_COLUMNS) + 2),
    ]
    for name, rows in tradeoffs.items():
        for row in rows:
            lines.append(
                f"| {name} | {row['diversity']:g} | "
                + " | ".join(_fmt(row.get(key), digits) for key, _, digits in DIVERSITY_COLUMNS)
                + " |"
            )
    lines += [
        "",
        "Each model is fitted once; the test part then runs once per λ on a copy of the fitted state, its "
        "lists re-ranked by maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998) over each list's top "
        "100 candidates, with the model's item vectors (streamrec: its item embeddings) or, without them, the "
        "items' categories as the similarity. ILD@20 uses the harness's model-independent item vectors (below); "
        "categories / list: distinct categories (REES46 category codes, or category numbers where an item has "
        "no code; MovieLens genres) in a top-20 list; "
        "category coverage: share of the catalogue's categories in any list.",
    ]
    return lines


def _breakdown_groups(results: dict) -> list:
    types = sorted({t for r in results.values() for t in r["by_type"]})
    groups = [
        ("known items", lambda r: r["known_items_only"]),
        ("new users", lambda r: r["by_user"]["new"]),
        ("returning users", lambda r: r["by_user"]["returning"]),
    ]
    own_items = dict.fromkeys(kind for r in results.values() for kind in r.get("by_own_item", {}))  # as written
    groups += [(f"returning: {kind}", (lambda r, k=kind: r.get("by_own_item", {}).get(k))) for kind in own_items]
    if len(types) > 1:
        groups += [(t, (lambda r, t=t: r["by_type"].get(t))) for t in types]
    return groups


def write_markdown(report: dict, out: Path) -> Path:
    path = out / "report.md"
    path.write_text(render_markdown(report))
    return path


def write_plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = {name: r for name, r in report["models"].items() if "error" not in r}
    if not ok:
        return []
    paths = []
    keys = [key for key, _ in MAIN_COLUMNS]
    fig, ax = plt.subplots(figsize=(11.5, 4.5))
    width = 0.8 / len(ok)
    colours = model_colours(list(ok))
    for k, (name, result) in enumerate(ok.items()):
        values = [result["overall"][key] or 0.0 for key in keys]
        ax.bar([x + k * width for x in range(len(keys))], values, width, label=name, color=colours[name])
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(keys))], [label for _, label in MAIN_COLUMNS])
    ax.set_title(f"{report['dataset']['name']}: test metrics by model")
    paths.append(_save(fig, ax, out / "metrics_by_model.png"))

    fig, ax = mrr_over_time_figure(report, ok, plt)
    paths.append(_save(fig, ax, out / "mrr_over_time.png"))
    if _tradeoffs(ok):
        paths.append(diversity_tradeoff_plot(report, ok, out / "diversity_tradeoff.png", plt))
    return paths


def diversity_tradeoff_plot(report: dict, ok: dict, path: Path, plt) -> Path:
    """MRR and NDCG@20 (and categories per list, when the data set has categories) against intra-list
    diversity: one line per model (colour), one point per λ (marker shape, in its own legend), so close or equal
    points never hide each other's labels."""
    from matplotlib.lines import Line2D

    tradeoffs = _tradeoffs(ok)
    with_categories = any(row.get("categories_per_list@20") is not None for rows in tradeoffs.values() for row in rows)
    panels = [("mrr", "MRR"), ("ndcg@20", "NDCG@20")] + (
        [("categories_per_list@20", "categories per top-20 list")] if with_categories else []
    )
    strengths = sorted({row["diversity"] for rows in tradeoffs.values() for row in rows})
    shapes = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">"]
    marker = {strength: shapes[k % len(shapes)] for k, strength in enumerate(strengths)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels) + 2.2, 4.4), squeeze=False)
    colours = model_colours(list(ok))
    for ax, (key, label) in zip(axes[0], panels):
        for name, rows in tradeoffs.items():
            points = [
                (row["intra_list_diversity@20"], row[key], row["diversity"])
                for row in rows
                if row.get("intra_list_diversity@20") is not None and row.get(key) is not None
            ]
            if not points:
                continue
            xs, ys, _ = zip(*points)
            ax.plot(xs, ys, color=colours[name], linewidth=1.4, alpha=0.8, zorder=1)
            for x, y, strength in points:  # each later λ smaller and on top: equal points show nested
                rank = strengths.index(strength)
                ax.scatter(
                    [x],
                    [y],
                    marker=marker[strength],
                    s=max(24, 90 - 16 * rank),
                    color=colours[name],
                    edgecolors="black",
                    linewidths=0.6,
                    zorder=2 + rank,
                )
        ax.set_xlabel("intra-list diversity@20 (more varied →)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs diversity", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.12, y=0.12)
    model_keys = [Line2D([], [], color=colours[name], linewidth=2, label=name) for name in tradeoffs]
    setting_keys = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=marker[s],
            color="0.6",
            markeredgecolor="black",
            markersize=7,
            label=f"λ = {s:g}",
        )
        for s in strengths
    ]
    fig.legend(
        handles=model_keys + setting_keys,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.02),
        ncol=len(model_keys) + len(setting_keys),
        fontsize=9,
        frameon=False,
    )  # one row under the panels
    fig.suptitle(
        f"{report['dataset']['name']}: accuracy vs list diversity under MMR re-ranking (test part)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the legend sits below the panels
    plt.close(fig)
    return path


def mrr_series(mrr_by_batch: list[dict]) -> tuple[str, list[float], list[float]]:
    """(time unit, time since the first test batch, running mean MRR) over the batches that had an MRR."""
    points = [(p["ts"], p["mrr"]) for p in mrr_by_batch if p["mrr"] is not None]
    if not points:
        return "hours", [], []
    start = points[0][0]
    window = max(1, len(points) // 30)  # a running mean over ~1/30 of the test batches
    span_h = (points[-1][0] - start) / 3.6e6
    unit, scale = ("days", 8.64e7) if span_h > 72 else ("hours", 3.6e6) if span_h > 2 else ("minutes", 6e4)
    xs = [(ts - start) / scale for ts, _ in points]
    ys = [
        sum(v for _, v in points[max(0, i - window + 1) : i + 1]) / len(points[max(0, i - window + 1) : i + 1])
        for i in range(len(points))
    ]
    return unit, xs, ys


def mrr_over_time_figure(report: dict, ok: dict, plt):
    """MRR over the test part, one line per model; with few batches each batch is a marker (a line through one
    point draws nothing), and a single batch is said in the plot."""
    fig, ax = plt.subplots(figsize=(11.5, 4.5))
    unit, most_batches = "hours", 0
    colours = model_colours(list(ok))
    for name, result in ok.items():
        unit, xs, ys = mrr_series(result["mrr_by_batch"])
        if xs:
            ax.plot(
                xs,
                ys,
                marker="o" if len(xs) <= 30 else None,
                label=name,
                color=colours[name],
                linewidth=2.5 if name == "streamrec" else 1.2,
            )
            most_batches = max(most_batches, len(xs))
    ax.set_xlabel(f"{unit} since the start of the test part")
    if most_batches == 1:  # no time axis to speak of: say so instead of ticks around 0
        ax.set_xticks([0.0], ["the only test batch"])
        ax.set_xlabel("")
        ax.set_ylim(bottom=0)
        ax.text(
            0.02,
            0.96,
            "one test batch:\none point per model,\nno trend over time",
            transform=ax.transAxes,
            ha="left",
            va="top",
        )  # left of the points, which sit in the middle
    ax.set_ylabel("MRR (running mean)")
    ax.set_title(f"{report['dataset']['name']}: MRR over test time (batches of {report['config']['batch_size']})")
    return fig, ax


def model_colours(names: list[str]) -> dict[str, tuple]:
    """One colour per model, none repeated: matplotlib's default cycle has 10, an eval may run a dozen."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"].colors
    return {name: palette[(2 * k) % 20 + (2 * k) // 20 % 2] for k, name in enumerate(names)}


def _save(fig, ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the data
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
