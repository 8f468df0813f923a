"""Every PromQL expression of the provisioned dashboard and of the alert rules, ready to send to a Prometheus.

Grafana expressions contain template variables ($__rate_interval, $instance, ...) that a Prometheus does
not understand; they are replaced here by what Grafana would send: a duration for the interval
variables, the "All" value (a match-everything regex) for the dashboard's own variables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

DASHBOARD = Path("deploy/grafana/dashboards/streamrec.json")
ALERT_RULES = Path("deploy/prometheus/alerts.yml")

# Grafana's built-in variables, with a value Grafana could send for a 1 h range and a 15 s scrape interval
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "15000",
}
# $var, ${var}, ${var:format} and [[var]] are the spellings Grafana accepts
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


def dashboard_variables(dashboard: dict) -> dict[str, str]:
    """Values for the dashboard's own template variables: the "All" value where the variable has one."""
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            continue  # used in datasource references, never inside an expression
        if variable.get("includeAll"):
            values[name] = variable.get("allValue") or ".*"
        else:
            current = variable.get("current", {}).get("value")
            values[name] = current[0] if isinstance(current, list) and current else str(current or ".*")
    return values


def substitute(expr: str, variables: dict[str, str]) -> str:
    known = {**GRAFANA_BUILTINS, **variables}

    def replace(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        if name not in known:
            raise KeyError(f"unknown Grafana variable ${name} in expression: {expr}")
        return known[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows keep their panels inside


def dashboard_expressions(path: Path) -> list[str]:
    dashboard = json.loads(Path(path).read_text())
    variables = dashboard_variables(dashboard)
    return [
        substitute(target["expr"], variables)
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr", "").strip()
    ]


def rule_expressions(path: Path) -> list[str]:
    rules = yaml.safe_load(Path(path).read_text())
    return [rule["expr"].strip() for group in rules["groups"] for rule in group["rules"]]


def dashboard_and_rule_expressions(repo_root) -> list[str]:
    """Every PromQL expression of the dashboard and the alert rules, variables substituted, without duplicates."""
    root = Path(repo_root)
    expressions = dashboard_expressions(root / DASHBOARD) + rule_expressions(root / ALERT_RULES)
    return list(dict.fromkeys(expressions))
