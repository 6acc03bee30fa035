"""Render, validate and export the Helm chart, offline (no helm binary, no cluster).

    python scripts/chart_tool.py check   # lint; render every value set; validate each manifest
    python scripts/chart_tool.py k8s     # regenerate k8s/ (plain manifests for kubectl -k)
    python scripts/chart_tool.py k8s --check   # fail when k8s/ differs from the chart

Used by `make lint-deploy`, `make k8s`, Jenkins' lint stage and tests/deploy/.

Why it looks like this: the chart's dependencies (the Strimzi and Altinity operator charts)
cannot be downloaded here, so what is rendered is StreamTrack's own templates (the Kafka and
ClickHouse custom resources included); the subcharts' resources are those charts' own concern.
Built-in kinds are validated in strict mode against the Kubernetes JSON schemas of several
current versions (kubernetes-validate); our WorkerAutoscaler against the CRD in
helm/streamtrack/crds/; Strimzi's and Altinity's custom resources cannot be validated offline
(their CRDs come with the subcharts) and are reported as such.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "streamtrack"
K8S = ROOT / "k8s"
K8S_VALUES = K8S / "chart-values.yaml"
RELEASE, NAMESPACE = "streamtrack", "streamtrack"
# The three minor versions Kubernetes supports upstream at the time of writing.
KUBE_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    "external": CHART / "ci" / "external-values.yaml",
    "ha": CHART / "ci" / "ha-values.yaml",
    "minimal": CHART / "ci" / "minimal-values.yaml",
}
# Custom resources of the dependency charts' operators: their CRDs are not available offline.
THIRD_PARTY_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
    ("clickhouse-keeper.altinity.com/v1", "ClickHouseKeeperInstallation"),
}
# What contracts.md promises about the WorkerAutoscaler's spec; checked even before the CRD exists.
WORKER_AUTOSCALER_CONTRACT: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {"spec": {
        "type": "object",
        "additionalProperties": False,
        "required": ["scaleTargetRef", "kafka", "minReplicas", "maxReplicas", "lagPerReplica"],
        "properties": {
            "scaleTargetRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            "kafka": {
                "type": "object",
                "additionalProperties": False,
                "required": ["bootstrapServers", "topic", "consumerGroup"],
                "properties": {
                    "bootstrapServers": {"type": "string"}, "topic": {"type": "string"},
                    "consumerGroup": {"type": "string"},
                    "authSecretRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                },
            },
            "minReplicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer", "minimum": 1},
            "lagPerReplica": {"type": "integer", "minimum": 1}, "activationLag": {"type": "integer", "minimum": 0},
            "pollIntervalSeconds": {"type": "integer", "minimum": 1},
        },
    }},
}


def load_values(path: Path | None) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) if path else {}


def render(values: dict[str, Any], *, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, NOTES.txt and empty templates left out."""
    chart = helm_python.Chart.load(CHART)
    try:
        rendered = chart.render(values, name=name, namespace=namespace, is_install=True)
    finally:
        chart.close()
    return {path: text for path, text in rendered.items() if not path.endswith("NOTES.txt") and text.strip()}


def render_notes(values: dict[str, Any]) -> str:
    chart = helm_python.Chart.load(CHART)
    try:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def documents(rendered: dict[str, str] | Iterable[str]) -> list[dict[str, Any]]:
    texts = rendered.values() if isinstance(rendered, dict) else rendered
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions the chart installs through Helm's crds/ folder."""
    folder = CHART / "crds"
    return documents(p.read_text() for p in sorted(folder.glob("*.yaml"))) if folder.is_dir() else []


def _crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.partition("/")
    for crd in crds():
        spec = crd["spec"]
        if spec["group"] == group and spec["names"]["kind"] == kind:
            for served in spec["versions"]:
                if served["name"] == version:
                    return served["schema"]["openAPIV3Schema"]
    return None


def validate(doc: dict[str, Any], kube_versions: Iterable[str] = KUBE_VERSIONS) -> list[str]:
    """Problems with one manifest (empty: valid). Raises nothing for a well-formed document."""
    api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    where = f"{kind} {doc.get('metadata', {}).get('name', '?')}"
    if (api_version, kind) in THIRD_PARTY_KINDS:
        return []
    crd_schema = _crd_schema(api_version, kind)  # our own CRDs: WorkerAutoscaler, kopf's KopfPeering
    if crd_schema is not None or api_version.startswith("streamtrack.io/"):
        schemas = [WORKER_AUTOSCALER_CONTRACT] if kind == "WorkerAutoscaler" else []
        if crd_schema is not None:
            schemas.append(crd_schema)
        return [
            f"{where}: {'/'.join(map(str, error.absolute_path))}: {error.message}"
            for schema in schemas for error in jsonschema.Draft7Validator(schema).iter_errors(doc)
        ]
    problems = []
    for version in kube_versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.absolute_path))
            problems.append(f"{where} (Kubernetes {version}): {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: Kubernetes {version} has no {kind} in {api_version}")
    return problems


def lint() -> list[str]:
    """Helm lint problems (warnings and errors), the missing downloaded dependencies excepted."""
    result = helm_python.lint(CHART, strict=False, quiet=True)
    problems = [f"{m['path']}: {m['error']}" for m in result["messages"] if m["severity"] >= 2] + result["errors"]
    return [p for p in problems if "missing these dependencies" not in p]


def k8s_files() -> dict[str, str]:
    """k8s/ as the chart renders it: one file per template, the CRDs, a kustomization."""
    header = "# Generated by `make k8s` from helm/streamtrack with k8s/chart-values.yaml. Do not edit.\n"
    files: dict[str, str] = {}
    for path, text in sorted(render(load_values(K8S_VALUES)).items()):
        name = Path(path).name
        text = text.replace("app.kubernetes.io/managed-by: Helm", "app.kubernetes.io/managed-by: kustomize")
        files[name] = header + text.lstrip("-\n")
    crd_folder = CHART / "crds"
    for crd in sorted(crd_folder.glob("*.yaml")) if crd_folder.is_dir() else []:
        files[f"crds/{crd.name}"] = header + crd.read_text()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": [name for name in sorted(files, key=lambda n: (not n.startswith("crds/"), n))],
        "images": [
            {"name": "ghcr.io/streamtrack/streamtrack-api", "newTag": _app_version()},
            {"name": "ghcr.io/streamtrack/streamtrack-worker", "newTag": _app_version()},
        ],
    }
    files["kustomization.yaml"] = header + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def _app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def stale_k8s() -> list[str]:
    """Files of k8s/ that differ from what the chart renders, are missing or are left over."""
    expected = k8s_files()
    present = {str(p.relative_to(K8S)) for p in K8S.rglob("*.yaml")} - {K8S_VALUES.name}
    return sorted(
        [n for n, text in expected.items() if not (K8S / n).is_file() or (K8S / n).read_text() != text]
        + [n for n in present if n not in expected]
    )


def write_k8s() -> None:
    for path in K8S.rglob("*.yaml"):
        if path != K8S_VALUES:
            path.unlink()
    for name, text in k8s_files().items():
        (K8S / name).parent.mkdir(parents=True, exist_ok=True)
        (K8S / name).write_text(text)


def check() -> list[str]:
    problems = lint()
    for crd in crds():
        problems += validate(crd)
    for value_set, path in VALUE_SETS.items():
        docs = documents(render(load_values(path)))
        print(f"{value_set}: {len(docs)} manifests rendered")
        problems += [f"[{value_set}] {p}" for doc in docs for p in validate(doc)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "k8s"])
    parser.add_argument("--check", action="store_true", help="with k8s: only report stale files")
    args = parser.parse_args(argv)
    if args.command == "k8s":
        if args.check:
            if stale := stale_k8s():
                print("k8s/ is out of date with the chart (run `make k8s`): " + ", ".join(stale), file=sys.stderr)
                return 1
            print("k8s/ is up to date")
            return 0
        write_k8s()
        print(f"wrote {K8S.relative_to(ROOT)}/")
        return 0
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"chart: {'FAILED' if problems else 'ok'} (Kubernetes {', '.join(KUBE_VERSIONS)}, strict)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
