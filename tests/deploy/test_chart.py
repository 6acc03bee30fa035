"""The Helm chart, rendered offline with helm-python-sdk and validated in strict mode.

Each value set CI renders (default, external Kafka/ClickHouse, HA, minimal) must produce
manifests that the Kubernetes API of every supported version would accept, and the settings
each process gets must be ones StreamTrack reads. The dependency charts (Strimzi, Altinity)
cannot be downloaded here, so their own resources are not rendered; the Kafka and ClickHouse
custom resources this chart writes for them are (see scripts/chart_tool.py).
"""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from streamtrack.config import SETTINGS
from tests.deploy.scripts import chart_tool


def rendered(value_set: str, **overrides: Any) -> list[dict[str, Any]]:
    values = chart_tool.load_values(chart_tool.VALUE_SETS[value_set])
    return chart_tool.documents(chart_tool.render(_merge(values, overrides)))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return one(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def test_helm_lint_reports_nothing_but_the_undownloadable_dependencies() -> None:
    assert chart_tool.lint() == []


@pytest.mark.parametrize("value_set", list(chart_tool.VALUE_SETS))
def test_every_manifest_is_valid_for_each_kubernetes_version_in_strict_mode(value_set: str) -> None:
    docs = rendered(value_set)
    assert len(docs) >= 10
    problems = [p for doc in docs for p in chart_tool.validate(doc)]
    assert problems == []


def test_the_validation_is_strict_and_uses_the_crd() -> None:
    docs = rendered("default")
    deployment = one(docs, "Deployment", "streamtrack-api")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    assert chart_tool.validate(deployment, ["1.37.0"]) == [
        "Deployment streamtrack-api (Kubernetes 1.37.0): spec/template/spec/containers/0/livenessProbe/httpGet: "
        "Additional properties are not allowed ('paht' was unexpected)"
    ]
    autoscaler = one(docs, "WorkerAutoscaler", "streamtrack-worker")
    autoscaler["spec"]["minReplicas"] = "two"
    assert chart_tool.validate(autoscaler)
    assert all("spec/minReplicas" in p for p in chart_tool.validate(autoscaler))


def test_the_crds_ship_through_helms_crds_folder_and_are_valid() -> None:
    crds = chart_tool.crds()
    assert {c["metadata"]["name"] for c in crds} >= {"workerautoscalers.streamtrack.io", "kopfpeerings.kopf.dev"}
    assert [p for crd in crds for p in chart_tool.validate(crd)] == []


def test_default_values_bundle_kafka_and_clickhouse_through_their_operators() -> None:
    docs = rendered("default")
    assert kinds(docs) == [
        "ClickHouseInstallation/streamtrack",
        "ClusterRole/streamtrack-streamtrack-operator",
        "ClusterRoleBinding/streamtrack-streamtrack-operator",
        "ConfigMap/streamtrack",
        "Deployment/streamtrack-api",
        "Deployment/streamtrack-operator",
        "Deployment/streamtrack-worker",
        "Job/streamtrack-migrate",
        "Kafka/streamtrack-kafka",
        "KafkaNodePool/streamtrack-kafka-pool",
        "KopfPeering/streamtrack",
        "PodDisruptionBudget/streamtrack-api",
        "PodDisruptionBudget/streamtrack-worker",
        "Role/streamtrack-operator",
        "RoleBinding/streamtrack-operator",
        "Secret/streamtrack-secrets",
        "Service/streamtrack-api",
        "ServiceAccount/streamtrack",
        "ServiceAccount/streamtrack-operator",
        "WorkerAutoscaler/streamtrack-worker",
    ]
    config = one(docs, "ConfigMap", "streamtrack")["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "streamtrack-kafka-kafka-bootstrap:9092"
    assert config["STREAMTRACK_CLICKHOUSE_CLUSTER"] == ""  # one node: the plain schema
    secret = one(docs, "Secret", "streamtrack-secrets")["stringData"]
    password = secret["clickhouse-password"]
    assert len(password) == 32
    assert secret["CLICKHOUSE_URL"] == f"http://streamtrack:{password}@clickhouse-streamtrack:8123/streamtrack"


def test_probes_drain_and_security_of_the_api_and_worker() -> None:
    docs = rendered("default")
    api = one(docs, "Deployment", "streamtrack-api")
    pod = api["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"] == ["api"]
    assert (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]) == ("/healthz", "/readyz")
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert api["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert set(api["spec"]["template"]["metadata"]["annotations"]) == {"checksum/config", "checksum/secret"}
    worker = one(docs, "Deployment", "streamtrack-worker")
    assert "replicas" not in worker["spec"]  # the WorkerAutoscaler owns the count
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    assert container(docs, "Deployment", "streamtrack-worker")["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert env(c)["CLICKHOUSE_URL"] == {"secretKeyRef": {"name": "streamtrack-secrets", "key": "CLICKHOUSE_URL"}}


def test_migration_job_is_a_hook_that_fails_the_release_before_pods_change() -> None:
    job = one(rendered("default"), "Job", "streamtrack-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_operator_runs_namespaced_with_the_agreed_rbac_and_a_default_autoscaler() -> None:
    docs = rendered("default")
    operator = container(docs, "Deployment", "streamtrack-operator")
    assert operator["args"] == ["operator", "--namespace", "streamtrack"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    rules = {(g, r): rule["verbs"] for rule in one(docs, "Role", "streamtrack-operator")["rules"]
             for g in rule["apiGroups"] for r in rule["resources"]}
    # exactly what the operator uses (tests/e2e/test_operator.py checks it against an audit log)
    assert rules == {
        ("streamtrack.io", "workerautoscalers"): ["list", "watch"],
        ("streamtrack.io", "workerautoscalers/status"): ["patch"],
        ("apps", "deployments/scale"): ["get", "patch"],
        ("", "events"): ["create"],
        ("", "secrets"): ["get"],
        ("kopf.dev", "kopfpeerings"): ["list", "watch", "patch"],
    }
    cluster = one(docs, "ClusterRole", "streamtrack-streamtrack-operator")["rules"]
    assert {r for rule in cluster for r in rule["resources"]} == {"customresourcedefinitions", "namespaces"}
    spec = one(docs, "WorkerAutoscaler", "streamtrack-worker")["spec"]
    assert spec["scaleTargetRef"] == {"name": "streamtrack-worker"}
    assert spec["kafka"] == {"bootstrapServers": "streamtrack-kafka-kafka-bootstrap:9092", "topic": "events", "consumerGroup": "streamtrack-worker"}
    # Peering is mandatory in the operator: the release must create the KopfPeering it elects its leader in.
    peering = one(docs, "KopfPeering", "streamtrack")
    assert peering["apiVersion"] == "kopf.dev/v1" and chart_tool.validate(peering) == []


def test_external_kafka_and_clickhouse_come_from_existing_secrets() -> None:
    docs = rendered("external")
    assert not {d["kind"] for d in docs} & {"Kafka", "KafkaNodePool", "ClickHouseInstallation", "Secret"}
    config = one(docs, "ConfigMap", "streamtrack")["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "b-1.kafka.example.internal:9096,b-2.kafka.example.internal:9096"
    assert config["STREAMTRACK_CLICKHOUSE_CLUSTER"] == "analytics"
    variables = env(container(docs, "Deployment", "streamtrack-worker"))
    assert variables["CLICKHOUSE_URL"] == {"secretKeyRef": {"name": "clickhouse-credentials", "key": "url"}}
    assert variables["STREAMTRACK_KAFKA_PROPERTY_3"] == {"secretKeyRef": {"name": "kafka-credentials", "key": "sasl.password"}}
    assert variables["STREAMTRACK_KAFKA_OPTIONS"] == (
        "security.protocol=$(STREAMTRACK_KAFKA_PROPERTY_0),sasl.mechanism=$(STREAMTRACK_KAFKA_PROPERTY_1),"
        "sasl.username=$(STREAMTRACK_KAFKA_PROPERTY_2),sasl.password=$(STREAMTRACK_KAFKA_PROPERTY_3)"
    )
    autoscaler = one(docs, "WorkerAutoscaler", "streamtrack-worker")
    assert autoscaler["spec"]["kafka"]["authSecretRef"] == {"name": "kafka-credentials"}
    assert one(docs, "Service", "streamtrack-api")["spec"]["type"] == "LoadBalancer"


def test_inline_kafka_properties_go_to_a_secret_of_their_own() -> None:
    docs = rendered("external", kafka={"external": {"authSecret": "", "properties": {"security.protocol": "SSL"}}})
    assert one(docs, "Secret", "streamtrack-kafka-auth")["stringData"] == {"security.protocol": "SSL"}
    assert env(container(docs, "Deployment", "streamtrack-api"))["STREAMTRACK_KAFKA_OPTIONS"] == "security.protocol=$(STREAMTRACK_KAFKA_PROPERTY_0)"


def test_ha_uses_the_replicated_schema_keeper_hpa_and_ingress() -> None:
    docs = rendered("ha")
    assert one(docs, "ConfigMap", "streamtrack")["data"]["STREAMTRACK_CLICKHOUSE_CLUSTER"] == "streamtrack"
    chi = one(docs, "ClickHouseInstallation", "streamtrack")["spec"]["configuration"]
    assert chi["clusters"][0]["layout"] == {"shardsCount": 2, "replicasCount": 2}
    assert chi["zookeeper"]["nodes"] == [{"host": "keeper-streamtrack", "port": 2181}]
    assert one(docs, "ClickHouseKeeperInstallation", "streamtrack")["spec"]["configuration"]["clusters"][0]["layout"] == {"replicasCount": 3}
    kafka = one(docs, "Kafka", "streamtrack-kafka")["spec"]["kafka"]["config"]
    assert (kafka["default.replication.factor"], kafka["min.insync.replicas"]) == (3, 2)
    assert one(docs, "ConfigMap", "streamtrack")["data"]["STREAMTRACK_TOPIC_REPLICATION"] == "3"
    assert "replicas" not in one(docs, "Deployment", "streamtrack-api")["spec"]
    assert one(docs, "HorizontalPodAutoscaler", "streamtrack-api")["spec"]["minReplicas"] == 3
    ingress = one(docs, "Ingress", "streamtrack-api")["spec"]
    assert ingress["rules"][0]["host"] == "track.example.com" and ingress["tls"][0]["secretName"] == "streamtrack-tls"
    assert container(docs, "Deployment", "streamtrack-api")["image"] == "ghcr.io/streamtrack/streamtrack-api:3f2c1e0"
    assert container(docs, "Deployment", "streamtrack-operator")["image"] == "ghcr.io/streamtrack/streamtrack-worker:3f2c1e0"


def test_minimal_has_one_of_everything_and_no_operator() -> None:
    docs = rendered("minimal")
    assert not [d for d in docs if d["kind"] in ("PodDisruptionBudget", "WorkerAutoscaler", "Role", "ClusterRole")]
    assert one(docs, "Deployment", "streamtrack-worker")["spec"]["replicas"] == 1
    assert "minimal-dev-password@" in one(docs, "Secret", "streamtrack-secrets")["stringData"]["CLICKHOUSE_URL"]


@pytest.mark.parametrize("value_set", list(chart_tool.VALUE_SETS))
def test_every_setting_the_chart_passes_is_one_streamtrack_reads(value_set: str) -> None:
    known = {s.env for s in SETTINGS.values()}
    docs = rendered(value_set)
    passed = set(one(docs, "ConfigMap", "streamtrack")["data"])
    for kind, name in [("Deployment", "streamtrack-api"), ("Deployment", "streamtrack-worker")]:
        passed |= {v for v in env(container(docs, kind, name)) if not v.startswith("STREAMTRACK_KAFKA_PROPERTY_")}
    assert sorted(passed - known) == []


@pytest.mark.parametrize(("values", "message"), [
    ({"api": {"replicas": 0}}, "/api/replicas': minimum: got 0, want 1"),
    ({"kafka": {"enabled": False}}, "kafka.external.bootstrapServers is required when kafka.enabled is false"),
    ({"clickhouse": {"enabled": False}}, "clickhouse.external.url or clickhouse.external.existingSecret is required"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
])
def test_bad_values_are_refused_with_a_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        chart_tool.render(values)


def test_notes_print_how_to_reach_the_endpoint() -> None:
    assert "streamtrack smoke --url https://track.example.com" in chart_tool.render_notes(
        chart_tool.load_values(chart_tool.VALUE_SETS["ha"])
    )
    assert "port-forward service/streamtrack-api 8000:80" in chart_tool.render_notes({})


def test_k8s_folder_is_what_the_chart_renders() -> None:
    assert chart_tool.stale_k8s() == [], "k8s/ is out of date: run `make k8s` and commit it"
    kustomization = chart_tool.documents([(chart_tool.K8S / "kustomization.yaml").read_text()])[0]
    assert "crds/workerautoscalers.streamtrack.io.yaml" in kustomization["resources"]
    manifests = [text for name, text in chart_tool.k8s_files().items() if name != "kustomization.yaml"]
    assert [p for doc in chart_tool.documents(manifests) for p in chart_tool.validate(doc)] == []
