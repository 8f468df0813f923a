"""The shared event schema has one home (streamrec/schema.py) and no arrow goes up or across through it: the
schema imports nothing of the project; the models and the graph store do not reach into the stream layer; of
streamrec, the three layers import the schema alone (the runtime and the tools compose them, not the reverse)."""

from pathlib import Path

from imports_of import imported_modules

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("stream", "graph_store", "model_server")
PROJECT = LAYERS + ("streamrec",)


def _imports(folder: str) -> dict[str, set[str]]:
    """file -> the project modules it imports."""
    found = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        package = ".".join(path.relative_to(REPO).parent.parts)
        modules = {m for m in imported_modules(path.read_text(), package) if m.split(".")[0] in PROJECT}
        found[str(path.relative_to(REPO))] = modules
    return found


def test_the_schema_imports_nothing_of_the_project():
    source = (REPO / "streamrec" / "schema.py").read_text()
    assert not [m for m in imported_modules(source, "streamrec") if m.split(".")[0] in PROJECT]


def test_the_models_and_the_graph_store_do_not_reach_into_the_stream_layer():
    offending = {
        path: sorted(m for m in modules if m.split(".")[0] == "stream")
        for folder in ("model_server", "graph_store")
        for path, modules in _imports(folder).items()
        if any(m.split(".")[0] == "stream" for m in modules)
    }
    assert offending == {}


def _beyond_the_schema(module: str) -> bool:
    return module.split(".")[0] == "streamrec" and not module.startswith("streamrec.schema")


def test_of_streamrec_the_layers_import_the_schema_alone():
    offending = {
        path: sorted(m for m in modules if _beyond_the_schema(m))
        for folder in LAYERS
        for path, modules in _imports(folder).items()
        if any(_beyond_the_schema(m) for m in modules)
    }
    assert offending == {}
    uses = {path for folder in LAYERS for path, modules in _imports(folder).items() if "streamrec.schema" in modules}
    assert {"stream/events.py", "model_server/contract.py"} <= uses  # the check sees the imports it forbids
