"""The runtime (what a production worker loads) must not depend on the tools (local servers, data sets,
benchmarks): a worker image needs neither, and a change to a tool must not be able to break a worker."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
RUNTIME_PACKAGES = ["streamrec/runtime", "stream", "graph_store", "model_server"]


def imported_modules(source: str, package: str) -> list[str]:
    """Every module a file of `package` imports, relative imports resolved against the package."""
    parts = package.split(".")
    modules = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            modules += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return modules


def test_the_runtime_does_not_import_the_tools():
    offending = {}
    for folder in RUNTIME_PACKAGES:
        for path in sorted((REPO / folder).rglob("*.py")):
            package = ".".join(path.relative_to(REPO).parent.parts)
            tools = [m for m in imported_modules(path.read_text(), package) if m == "streamrec.tools" or m.startswith("streamrec.tools.")]
            if tools:
                offending[str(path.relative_to(REPO))] = sorted(set(tools))
    assert offending == {}


def test_the_check_resolves_relative_imports():
    assert "streamrec.runtime.probes" in imported_modules("from .probes import x\n", "streamrec.runtime")
    assert "streamrec.tools.servers" in imported_modules("from ..tools.servers import x\n", "streamrec.runtime")
    assert "streamrec.tools.servers" in imported_modules("from ..tools import servers\n", "streamrec.runtime")
