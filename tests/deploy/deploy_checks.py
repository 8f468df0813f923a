"""Offline validation of the deployment files in deploy/: the tools, found or installed, and one function per check.

Tools:
- promtool (Debian's package `prometheus`, unpacked into .streamrec/tools/bin by deploy/ci-prereqs.sh);
- check-jsonschema (ships the compose-spec JSON schema), kubernetes-validate (ships the Kubernetes JSON
  schemas of every minor version since 1.25), dockerfile (BuildKit's Dockerfile parser): from the `dev`
  extra, or, when the interpreter lacks them, installed with pip into .streamrec/tools/py;
- kubectl or kustomize (to render the kustomizations), when the machine has one.
Nothing reaches a network at check time; the installs above need only the package registries.

Run every check: `deploy/validate.sh` (or `python tests/deploy/deploy_checks.py`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TOOLS = REPO / ".streamrec" / "tools"
PY_TOOLS_DIR = TOOLS / "py"

PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamrec.json"
COMPOSE_FILES = (DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.kafka-security.yml")
DOCKERFILES = (DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda")
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = (K8S / "base", K8S / "overlays" / "gpu")
# the oldest Kubernetes still commonly run and the newest the schemas know: a manifest must fit both
K8S_VERSIONS = ("1.29.0", "1.37.0")

# module name -> pip requirement; the same pins as the `dev` extra in pyproject.toml
PYTHON_TOOLS = {
    "check_jsonschema": "check-jsonschema==0.37.4",
    "kubernetes_validate": "kubernetes-validate==1.37.0",
    "dockerfile": "dockerfile==3.4.0",
}


class ToolMissing(RuntimeError):
    """A validation tool is not on this machine and could not be installed from the registries."""


@dataclass
class Result:
    ok: bool
    output: str

    def __bool__(self) -> bool:
        return self.ok


def _run(
    cmd: list[str], cwd: Path | None = None, env: dict | None = None, stdin: str | None = None, timeout: float = 300
) -> Result:
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode == 0, (proc.stdout + proc.stderr).strip())


# ---------------------------------------------------------------------------------------------- tools


def prometheus_tool(name: str) -> str:
    """Path of `promtool` or `prometheus`: in .streamrec/tools/bin, on PATH, or unpacked now by deploy/ci-prereqs.sh."""
    local = TOOLS / "bin" / name
    for candidate in (local, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    result = _run(["bash", str(DEPLOY / "ci-prereqs.sh")], cwd=REPO, timeout=600)
    if os.access(local, os.X_OK):
        return str(local)
    raise ToolMissing(f"{name} is not installed and deploy/ci-prereqs.sh could not fetch it:\n{result.output}")


def promtool() -> str:
    return prometheus_tool("promtool")


def prometheus_binary() -> str:
    """The Prometheus server binary (for a live test: start it on 127.0.0.1 only, stop it by its pid)."""
    return prometheus_tool("prometheus")


def python_tools_env() -> dict:
    """An environment in which `python -m check_jsonschema` / `kubernetes_validate` / `import dockerfile` work.

    The dev extra brings them; otherwise they go into .streamrec/tools/py (pip --target), apart from the
    project's own packages, so their dependencies cannot disturb the worker's (click, for one).
    """
    env = dict(os.environ)
    if all(importlib.util.find_spec(module) for module in PYTHON_TOOLS):
        return env
    marker = PY_TOOLS_DIR / ".installed"
    wanted = " ".join(sorted(PYTHON_TOOLS.values()))
    if not (marker.exists() and marker.read_text() == wanted):
        result = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--upgrade",
                "--target",
                str(PY_TOOLS_DIR),
                *PYTHON_TOOLS.values(),
            ],
            timeout=900,
        )
        if not result:
            raise ToolMissing(f"could not install {wanted} into {PY_TOOLS_DIR}:\n{result.output}")
        marker.write_text(wanted)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PY_TOOLS_DIR), env.get("PYTHONPATH")]))
    return env


def kustomize_command() -> list[str]:
    """`kubectl kustomize` or `kustomize build`, whichever this machine has (both render offline)."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    raise ToolMissing("neither kubectl nor kustomize is on PATH: the kustomizations cannot be rendered here")


# --------------------------------------------------------------------------------------- prometheus


def check_prometheus_config() -> Result:
    return _run([promtool(), "check", "config", PROMETHEUS_CONFIG.name], cwd=PROMETHEUS_CONFIG.parent)


def check_alert_rules(path: Path = ALERT_RULES) -> Result:
    return _run([promtool(), "check", "rules", str(path)])


def run_alert_unit_tests() -> Result:
    """promtool's unit tests of the alerts, against a copy of the rules without annotations (see alerts_test.yml)."""
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, ALERT_RULES.name).write_text(yaml.safe_dump(rules, sort_keys=False))
        shutil.copy(ALERT_TESTS, Path(tmp, ALERT_TESTS.name))
        return _run([promtool(), "test", "rules", ALERT_TESTS.name], cwd=Path(tmp))


def check_dashboard_expressions(expressions: list[str] | None = None) -> Result:
    """Parses every dashboard expression with Prometheus' own parser: each becomes a recording rule."""
    sys.path.insert(0, str(Path(__file__).parent))
    from promql import dashboard_expressions

    expressions = expressions if expressions is not None else dashboard_expressions(DASHBOARD)
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"streamrec:dashboard_expression_{i}", "expr": expr}
                    for i, expr in enumerate(expressions)
                ],
            }
        ]
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "dashboard_rules.yml")
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        return check_alert_rules(path)


# -------------------------------------------------------------------------------- compose, k8s, docker


def check_compose(paths=COMPOSE_FILES) -> Result:
    """The compose files against the compose-spec JSON schema (vendored in check-jsonschema)."""
    return _run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", *map(str, paths)],
        env=python_tools_env(),
    )


def k8s_manifest_files() -> list[Path]:
    """Complete Kubernetes resources: the kustomizations' own files and the overlays' patches are not."""
    files = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or "overlays" in path.relative_to(K8S).parts:
            continue
        if any(
            doc and doc.get("apiVersion", "").startswith("monitoring.coreos.com/")
            for doc in yaml.safe_load_all(path.read_text())
        ):
            continue  # a Prometheus Operator CRD: no schema among Kubernetes' own (checked in the tests)
        files.append(path)
    return files


def check_k8s(paths: list[Path] | None = None, version: str = K8S_VERSIONS[-1], stdin: str | None = None) -> Result:
    """Strict schema validation (unknown fields are errors) for one Kubernetes version."""
    targets = ["-"] if stdin is not None else [str(p) for p in (paths or k8s_manifest_files())]
    return _run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version, *targets],
        env=python_tools_env(),
        stdin=stdin,
    )


def render_kustomization(path: Path) -> str:
    result = _run([*kustomize_command(), str(path)])
    if not result:
        raise AssertionError(f"kustomize cannot render {path.relative_to(REPO)}:\n{result.output}")
    return result.output


def parse_dockerfile(path: Path) -> list[dict]:
    """The instructions of a Dockerfile, from BuildKit's own parser (raises on a syntax error)."""
    code = "import json, sys, dockerfile\nprint(json.dumps([c._asdict() for c in dockerfile.parse_file(sys.argv[1])]))"
    result = _run([sys.executable, "-c", code, str(path)], env=python_tools_env())
    if not result:
        raise AssertionError(f"{path.relative_to(REPO)} does not parse:\n{result.output}")
    import json

    return json.loads(result.output)


# -------------------------------------------------------------------------------------------- main


def main() -> int:
    checks = [
        ("promtool check config", check_prometheus_config),
        ("promtool check rules", check_alert_rules),
        ("promtool test rules", run_alert_unit_tests),
        ("dashboard PromQL parses", check_dashboard_expressions),
        ("compose files vs compose-spec", check_compose),
        *[(f"k8s manifests vs Kubernetes {v} (strict)", lambda v=v: check_k8s(version=v)) for v in K8S_VERSIONS],
        *[
            (
                f"kustomize {p.relative_to(REPO)} vs Kubernetes {v} (strict)",
                lambda p=p, v=v: check_k8s(version=v, stdin=render_kustomization(p)),
            )
            for p in KUSTOMIZATIONS
            for v in K8S_VERSIONS
        ],
        *[(f"{p.relative_to(REPO)} parses", lambda p=p: Result(bool(parse_dockerfile(p)), "")) for p in DOCKERFILES],
    ]
    failed = skipped = 0
    for name, check in checks:
        try:
            result = check()
        except ToolMissing as exc:
            skipped += 1
            print(f"SKIP {name}: {exc}")
            continue
        except AssertionError as exc:
            result = Result(False, str(exc))
        print(f"{'ok  ' if result else 'FAIL'} {name}")
        if not result:
            failed += 1
            print("     " + result.output.replace("\n", "\n     "))
    passed = len(checks) - failed - skipped
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
