"""The WorkerAutoscaler CRD: its schema accepts the sample, rejects bad specs, and its
defaults (as the API server applies them) equal the operator's own.

The API server fills defaults from the openAPIV3Schema before storing a resource; the
`apply_defaults` below does the same walk, so a drift between the CRD and
streamtrack/operator/resource.py fails here. jsonschema ignores the `x-kubernetes-*`
keywords; the one CEL rule (min <= max) is checked through parse_spec.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml

from streamtrack.errors import ConfigError
from streamtrack.operator import resource
from streamtrack.operator.resource import parse_spec

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "helm/streamtrack/crds/workerautoscalers.streamtrack.io.yaml"
SAMPLE = ROOT / "operator/examples/workerautoscaler.yaml"
MINIMAL = {
    "apiVersion": "streamtrack.io/v1alpha1",
    "kind": "WorkerAutoscaler",
    "metadata": {"name": "w"},
    "spec": {
        "scaleTargetRef": {"name": "streamtrack-worker"},
        "kafka": {"bootstrapServers": "kafka:9092", "topic": "events", "consumerGroup": "streamtrack-worker"},
    },
}


def _crd() -> dict[str, Any]:
    return yaml.safe_load(CRD.read_text())


def _schema() -> dict[str, Any]:
    return _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: missing properties with a default get it."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    out = dict(value)
    for key, sub in schema["properties"].items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = apply_defaults(sub, out[key])
    return out


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def test_crd_names_match_the_contract() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == f"{resource.PLURAL}.{resource.GROUP}"
    assert crd["spec"]["group"] == resource.GROUP and crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (resource.KIND, resource.PLURAL, ["wa"])
    version = crd["spec"]["versions"][0]
    assert version["name"] == resource.VERSION and version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Lag"] == ".status.lag" and columns["Desired"] == ".status.desiredReplicas"
    status_fields = _schema()["properties"]["status"]["properties"]
    for path in columns.values():
        top, _, rest = path.lstrip(".").partition(".")
        if top == "status":
            assert rest.split("[")[0] in status_fields, path


def test_the_crd_defaults_equal_the_operators_defaults() -> None:
    schema = _schema()
    jsonschema.validate(MINIMAL, schema)
    defaulted = apply_defaults(schema, MINIMAL)["spec"]
    parsed = _without_none(msgspec.to_builtins(parse_spec(MINIMAL["spec"])))
    assert defaulted == parsed
    assert defaulted["minReplicas"] == 1 and defaulted["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert defaulted["kafka"]["offsetResetPolicy"] == "earliest"


def test_the_sample_resource_is_valid_for_both() -> None:
    sample = yaml.safe_load(SAMPLE.read_text())
    jsonschema.validate(sample, _schema())
    spec = parse_spec(sample["spec"])
    assert (spec.min_replicas, spec.max_replicas, spec.lag_per_replica) == (1, 12, 5000)
    assert spec.kafka.topic == "events" and spec.scale_target_ref.name == "streamtrack-worker"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"minReplicas": -1}, "minReplicas"),
        ({"maxReplicas": 0}, "maxReplicas"),
        ({"lagPerReplica": 0}, "lagPerReplica"),
        ({"pollIntervalSeconds": 1}, "pollIntervalSeconds"),
        ({"kafka": {"bootstrapServers": "k:9092", "consumerGroup": "g"}}, "topic"),
        ({"kafka": {"bootstrapServers": "k:9092", "topic": "t", "consumerGroup": "g", "offsetResetPolicy": "smallest"}},
         "offsetResetPolicy"),
        ({"scaleUp": {"maxStep": 0}}, "maxStep"),
        ({"scaleTargetRef": {}}, "name"),
    ],
)
def test_bad_specs_are_rejected_by_both(change: dict[str, Any], field: str) -> None:
    bad = {**MINIMAL, "spec": {**MINIMAL["spec"], **change}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema())
    with pytest.raises(ConfigError, match=field):
        parse_spec(bad["spec"])


def test_min_above_max_is_rejected() -> None:
    rule = _schema()["properties"]["spec"]["x-kubernetes-validations"][0]["rule"]
    assert rule == "self.minReplicas <= self.maxReplicas"
    with pytest.raises(ConfigError, match=r"minReplicas \(5\) must not exceed maxReplicas \(3\)"):
        parse_spec({**MINIMAL["spec"], "minReplicas": 5, "maxReplicas": 3})


def test_the_peering_crd_is_kopfs_namespaced_peering() -> None:
    crd = yaml.safe_load((ROOT / "helm/streamtrack/crds/kopfpeerings.kopf.dev.yaml").read_text())
    assert crd["metadata"]["name"] == "kopfpeerings.kopf.dev"
    assert (crd["spec"]["group"], crd["spec"]["scope"], crd["spec"]["names"]["kind"]) == (
        "kopf.dev", "Namespaced", "KopfPeering"
    )


def test_the_kind_manifests_are_valid_offline() -> None:
    """Built-in kinds against Kubernetes' own schemas (strict: no unknown fields); our
    resources against our CRD; the CRDs themselves as CustomResourceDefinitions."""
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    crds = [CRD, ROOT / "helm/streamtrack/crds/kopfpeerings.kopf.dev.yaml"]
    manifests = sorted((ROOT / "operator/examples/kind").glob("*.yaml")) + [SAMPLE]
    kinds = []
    for path in crds + manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            kinds.append(doc["kind"])
            if doc["kind"] == "WorkerAutoscaler":
                jsonschema.validate(doc, _schema())
                parse_spec(doc["spec"])
            elif doc["kind"] == "KopfPeering":
                assert doc["apiVersion"] == "kopf.dev/v1" and doc["metadata"]["name"] == "streamtrack"
            elif doc["kind"] != "Cluster":  # kind's own cluster config is not a Kubernetes object
                kubernetes_validate.validate(doc, version, strict=True)
    assert kinds.count("WorkerAutoscaler") == 2 and "KopfPeering" in kinds and "ClusterRole" in kinds
