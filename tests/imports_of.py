"""The modules a source file imports, for the layering tests (tests/streamrec/runtime/test_layering.py,
tests/model_server/test_model_layering.py)."""

import ast


def imported_modules(source: str, package: str) -> list[str]:
    """Every module a file of `package` imports (at the top or inside a function), relative imports resolved
    against the package; `from a import b` names both a and a.b."""
    parts = package.split(".")
    modules = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            modules += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return modules
