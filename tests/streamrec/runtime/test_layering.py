"""The runtime (what a production worker loads) must not depend on the tools (local servers, data sets,
benchmarks): a worker image needs neither, and a change to a tool must not be able to break a worker."""

from pathlib import Path

from imports_of import imported_modules

REPO = Path(__file__).resolve().parents[3]
RUNTIME_PACKAGES = ["streamrec/runtime", "stream", "graph_store", "model_server"]


def test_the_runtime_does_not_import_the_tools():
    offending = {}
    for folder in RUNTIME_PACKAGES:
        for path in sorted((REPO / folder).rglob("*.py")):
            package = ".".join(path.relative_to(REPO).parent.parts)
            tools = [
                m
                for m in imported_modules(path.read_text(), package)
                if m == "streamrec.tools" or m.startswith("streamrec.tools.")
            ]
            if tools:
                offending[str(path.relative_to(REPO))] = sorted(set(tools))
    assert offending == {}


def test_the_check_resolves_relative_imports():
    assert "streamrec.runtime.probes" in imported_modules("from .probes import x\n", "streamrec.runtime")
    assert "streamrec.tools.servers" in imported_modules("from ..tools.servers import x\n", "streamrec.runtime")
    assert "streamrec.tools.servers" in imported_modules("from ..tools import servers\n", "streamrec.runtime")
