"""The models do not depend on the evaluation harness: model_server.evaluation imports the baselines and the
temporal GAT (its registry builds them), so a model importing it would make a cycle, and a model could then
measure itself with something other than the split and the loop (model_server/streaming.py) and the metrics
(model_server/ranking.py) that the harness uses."""

from pathlib import Path

from imports_of import imported_modules

REPO = Path(__file__).resolve().parents[2]
MODEL_SERVER = REPO / "model_server"
EVALUATION = "model_server.evaluation"


def model_files() -> list[Path]:
    """Every module of model_server outside the evaluation package: the baselines, the temporal GAT and the
    shared modules at the top (contract, ids, ranking, streaming, ...)."""
    return [path for path in sorted(MODEL_SERVER.rglob("*.py")) if (MODEL_SERVER / "evaluation") not in path.parents]


def test_no_model_imports_the_evaluation_package():
    offending = {}
    for path in model_files():
        package = ".".join(path.relative_to(REPO).parent.parts)
        imports = [
            m for m in imported_modules(path.read_text(), package) if m == EVALUATION or m.startswith(EVALUATION + ".")
        ]
        if imports:
            offending[str(path.relative_to(REPO))] = sorted(set(imports))
    assert offending == {}


def test_the_check_sees_the_baselines_and_the_temporal_gat():
    names = {str(path.relative_to(MODEL_SERVER)) for path in model_files()}
    assert {
        "baselines/tgn.py",
        "baselines/sasrec.py",
        "baselines/selection.py",
        "tgat/train.py",
        "streaming.py",
        "ranking.py",
    } <= names
    assert not any(name.startswith("evaluation/") for name in names)


def test_the_check_resolves_relative_imports():
    assert EVALUATION + ".metrics" in imported_modules("from ..evaluation.metrics import x\n", "model_server.baselines")
    assert EVALUATION + ".protocol" in imported_modules("from ..evaluation import protocol\n", "model_server.tgat")
    assert EVALUATION in imported_modules("from . import evaluation\n", "model_server")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the model_server modules it imports (at the top or inside a function); package __init__
    files are left out (importing a submodule names its package too)."""
    modules = {_module_name(path): path for path in model_files() if path.name != "__init__.py"}
    graph = {}
    for name, path in modules.items():
        package = ".".join(path.relative_to(REPO).parent.parts)
        graph[name] = {m for m in imported_modules(path.read_text(), package) if m in modules and m != name}
    return graph


def test_no_import_cycle_among_the_models():
    """The temporal GAT's checkpoint module used to build the recommender that imports it (a cycle hidden by
    imports inside functions): each module's imports must form a tree-like order."""
    graph, state, cycles = import_graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for other in sorted(graph[node]):
            if state.get(other) == "open":
                cycles.append(path[path.index(other) :] + [other] if other in path else [node, other])
            elif other not in state:
                visit(other, path + [other])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_cycle_check_sees_lazy_imports():
    assert "model_server.tgat.recommender" in imported_modules(
        "def load():\n    from .recommender import TGATRecommender\n", "model_server.tgat"
    )
    assert "model_server.tgat.checkpoint" in import_graph()["model_server.tgat.recommender"]
