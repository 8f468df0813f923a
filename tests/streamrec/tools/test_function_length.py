"""Short functions in the tools (issue 28): none longer than 60 lines, counted from its `def` line to the last
line of its body (a decorator above the `def` does not count; a nested function counts in the one that holds it,
and on its own)."""

import ast
from pathlib import Path

import streamrec.tools

LIMIT = 60
TOOLS = Path(streamrec.tools.__file__).parent


def functions_longer_than(limit: int, root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_tools_is_longer_than_60_lines():
    assert functions_longer_than(LIMIT, TOOLS) == []


def test_the_count_runs_from_the_def_line_to_the_last_line_of_the_body(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    body = "\n".join(f"    x{k} = {k}" for k in range(LIMIT - 1))
    (package / "sub" / "m.py").write_text(f"@decorator\ndef at_limit():\n{body}\n\n\ndef over():\n{body}\n    y = 1\n")
    over_line = 2 + (LIMIT - 1) + 3  # the decorator, the 60-line function at the limit, two blank lines
    assert functions_longer_than(LIMIT, package) == [f"pkg/sub/m.py:{over_line} over ({LIMIT + 1} lines)"]
