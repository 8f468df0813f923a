"""The README's benchmark table is generated from bench.json: rows per rate and stack, commands and commits."""

import json

from streamrec.tools.bench_table import load_reports, markdown


def report(stack: str, p99: float, commit: str) -> dict:
    run = {
        "target_rate": 1000.0,
        "achieved_input_rate": 999.6,
        "achieved_output_rate": 998.1,
        "freshness_s": {"p50_s": 0.0214, "p95_s": 0.05, "p99_s": p99, "max_s": 1.5},
        "stage_ms_per_batch": {"batch": 12.3},
        "events_per_batch": 9.1,
        "sustainable": p99 < 1,
    }
    return {
        "dataset": "rees46",
        "stack": {"local_stack": stack},
        "command": f"streamrec bench --out {stack}",
        "git": {"commit": commit, "dirty": False},
        "runs": [run, {**run, "target_rate": 100.0}],
    }


def test_the_table_puts_stacks_side_by_side_per_rate_and_names_each_command_and_commit(tmp_path):
    for stack, p99, commit in (("apache", 0.08, "a" * 40), ("light", 1.2, "b" * 40)):
        (tmp_path / stack).mkdir()
        (tmp_path / stack / "bench.json").write_text(json.dumps(report(stack, p99, commit)))
    text = markdown(load_reports([tmp_path / "apache", tmp_path / "light" / "bench.json"]))
    lines = text.splitlines()
    assert lines[0].startswith("| data set | stack | target rate |")
    body = [line for line in lines if line.startswith("| rees46")]
    assert [line.split(" | ")[1:3] for line in body] == [
        ["apache", "100/s"],
        ["light", "100/s"],
        ["apache", "1,000/s"],
        ["light", "1,000/s"],
    ]
    # (these reports carry no CPU figures: "–"; each row names its commit)
    assert "| 21 ms | 50 ms | 80 ms | 1.50 s | 12 (9.1) | – | yes | aaaaaaa |" in body[2]
    assert body[3].endswith("| 1.20 s | 1.50 s | 12 (9.1) | – | no | bbbbbbb |")
    assert "- `streamrec bench --out apache` (apache, commit aaaaaaa)" in lines
