#!/usr/bin/env bash
# Validates every deployment file offline: promtool (config, rules, rule unit tests, dashboard PromQL),
# the compose files against the compose-spec schema, the Kubernetes manifests and rendered kustomizations
# against the Kubernetes schemas (strict), the Dockerfiles with BuildKit's parser. Installs a missing
# tool from the package registries first (deploy/ci-prereqs.sh, pip into .streamrec/tools/py).
# The same checks run in `make test` (tests/deploy/test_deploy_files.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
exec "$PY" tests/deploy/deploy_checks.py "$@"
