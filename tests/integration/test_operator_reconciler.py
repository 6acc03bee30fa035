"""The reconciler's decisions, status and events: real Kafka lag, a real Kubernetes API server.

Kafka is the session's Apache Kafka (a topic, a consumer group committing real offsets); the
Kubernetes API is the test bed's kube-apiserver (tests/fixtures/kube.py) through the operator's
own `KubernetesApi`: the status it writes is merge-patched, validated and pruned by the CRD's
schema as in a cluster, the scale is the Deployment's scale subresource, the Events are real.
Time is a clock the test moves, so the stabilisation windows and rates are exact without
sleeping (the operator end to end, in real time: tests/e2e/test_operator.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.lag_reader import lag_admin_client
from streamtrack.operator.kube import KubernetesApi
from streamtrack.operator.metrics import REGISTRY
from streamtrack.operator.reconciler import Reconciler, Target
from tests.fixtures.kube import KubeNamespace

CRD = Path(__file__).resolve().parents[2] / "helm/streamtrack/crds/workerautoscalers.streamtrack.io.yaml"
STATUS_SCHEMA = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
COUNTS = {0: 12, 1: 9, 2: 5, 3: 0}  # lag 26 over 3 partitions


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def topic(broker: KafkaCluster) -> str:
    admin = lag_admin_client({"bootstrap.servers": broker.bootstrap_servers})
    name = f"reconcile-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
    for partition, count in COUNTS.items():
        for i in range(count):
            producer.produce(name, partition=partition, value=str(i).encode())
    assert producer.flush(10) == 0
    return name


@pytest.fixture(scope="module")
def kube(kube_namespace: KubeNamespace) -> KubernetesApi:
    """The operator's own seam, authenticated as the test's admin."""
    return KubernetesApi(kube_namespace.cluster.api_client())


def _spec(broker: KafkaCluster, topic: str, group: str, target: str, **changes: Any) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"name": target},
        "kafka": {"bootstrapServers": broker.bootstrap_servers, "topic": topic, "consumerGroup": group},
        "minReplicas": 1, "maxReplicas": 10, "lagPerReplica": 5, **changes,
    }


def _resources(ns: KubeNamespace, broker: KafkaCluster, topic: str, group: str, replicas: int | None,
               **changes: Any) -> tuple[Target, dict[str, Any], str]:
    """A worker Deployment (unless `replicas` is None) and a WorkerAutoscaler of their own."""
    suffix = uuid.uuid4().hex[:6]
    worker = f"worker-{suffix}"
    if replicas is not None:
        ns.create_deployment(worker, replicas)
    spec = _spec(broker, topic, group, worker, **changes)
    name = f"wa-{suffix}"
    uid = ns.create_autoscaler(name, spec)
    return Target(ns.name, name, uid=uid, generation=1), spec, worker


def _commit(broker: KafkaCluster, topic: str, group: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    consumer.close()


def _metric(name: str, target: Target, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": target.namespace, "autoscaler": target.name, **labels})


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _reasons(ns: KubeNamespace, target: Target) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in ns.events(target.name)]


def test_backlog_scales_up_then_down_after_the_window(
    broker: KafkaCluster, topic: str, kube: KubernetesApi, kube_namespace: KubeNamespace
) -> None:
    ns, clock = kube_namespace, Clock()
    reconciler = Reconciler(kube, clock)
    group = f"g-{uuid.uuid4().hex[:8]}"
    target, spec, worker = _resources(ns, broker, topic, group, replicas=1)

    first = reconciler.reconcile(target, spec, {})

    # lag 26 at 5 per replica asks for 6, but only 3 partitions have lag
    assert ns.replicas(worker) == 3
    status = ns.status(target.name)
    jsonschema.validate(status, STATUS_SCHEMA)
    assert status == {k: v for k, v in first.status.items() if v is not None}  # nothing pruned by the CRD
    assert (status["lag"], status["partitions"], status["partitionsWithLag"]) == (26, 4, 3)
    assert (status["recommendedReplicas"], status["desiredReplicas"], status["currentReplicas"]) == (3, 3, 1)
    assert status["observedGeneration"] == 1 and status["lastScaleTime"] == "2027-01-15T08:00:00Z"
    assert _condition(status, "Ready")["reason"] == "Scaled"
    assert _condition(status, "Active")["status"] == "True"
    assert _condition(status, "ScalingLimited")["status"] == "True"
    assert "capped at the 3 partitions with lag" in status["lastDecision"]
    [event] = ns.events(target.name)
    assert (event.type, event.reason, event.source.component) == ("Normal", "ScaledUp", "streamtrack-operator")
    assert event.message.startswith("1 -> 3 replicas: lag 26")
    assert (event.involved_object.name, event.involved_object.uid) == (target.name, target.uid)
    assert (event.involved_object.kind, event.involved_object.api_version) == ("WorkerAutoscaler", "streamtrack.io/v1alpha1")
    assert first.report is not None and {p.partition: p.lag for p in first.report.partitions} == COUNTS
    assert _metric("streamtrack_operator_lag", target) == 26
    assert _metric("streamtrack_operator_partition_lag", target, partition="0") == 12
    assert _metric("streamtrack_operator_desired_replicas", target) == 3
    assert _metric("streamtrack_operator_decisions_total", target, action="scale_up") == 1

    # the workers consume everything within 15 s: rates from the offsets, no lag, but the
    # scale-down window (300 s) holds the replicas
    _commit(broker, topic, group, COUNTS)
    clock.t += 10
    assert not reconciler.due(spec, status)
    clock.t += 5
    assert reconciler.due(spec, status)
    reconciler.reconcile(target, spec, status)
    status = ns.status(target.name)
    assert (status["lag"], status["desiredReplicas"], status["recommendedReplicas"]) == (0, 3, 1)
    assert status["consumedPerSecond"] == pytest.approx(26 / 15, abs=0.001)
    assert status["producedPerSecond"] == 0
    assert _condition(status, "Ready")["reason"] == "Holding"
    assert "scale-down stabilisation window" in status["lastDecision"]
    assert _condition(status, "Active")["status"] == "False"
    assert ns.replicas(worker) == 3

    clock.t += 300
    reconciler.reconcile(target, spec, status)
    status = ns.status(target.name)
    assert ns.replicas(worker) == 1
    assert _reasons(ns, target) == [("Normal", "ScaledUp"), ("Normal", "ScaledDown")]
    assert status["lastScaleTime"] == "2027-01-15T08:05:15Z"
    jsonschema.validate(status, STATUS_SCHEMA)


def test_scale_from_zero_only_above_the_activation_lag(
    broker: KafkaCluster, topic: str, kube: KubernetesApi, kube_namespace: KubeNamespace
) -> None:
    ns, clock = kube_namespace, Clock()
    reconciler = Reconciler(kube, clock)
    group = f"g-{uuid.uuid4().hex[:8]}"
    target, _, worker = _resources(ns, broker, topic, group, replicas=0, minReplicas=0)
    _commit(broker, topic, group, {0: 12, 1: 9, 2: 0})  # lag 5, all in partition 2

    reconciler.reconcile(target, _spec(broker, topic, group, worker, minReplicas=0, activationLag=10), {})
    assert ns.replicas(worker) == 0 and ns.status(target.name)["desiredReplicas"] == 0

    clock.t += 15
    reconciler.reconcile(target, _spec(broker, topic, group, worker, minReplicas=0, activationLag=4), {})
    assert ns.replicas(worker) == 1  # 5 > 4: activated; one partition with lag
    assert "activated from zero" in ns.events(target.name)[-1].message


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        ("no target", "TargetMissing", "Deployment 'worker-"),
        ("bad spec", "InvalidSpec", "lagPerReplica"),
        ("no secret", "SecretMissing", "Secret 'kafka-auth' not found"),
        ("no topic", "TopicMissing", "does not exist"),
        ("broker down", "BrokerUnavailable", "cannot read metadata"),
    ],
)
def test_when_it_cannot_decide_it_keeps_the_scale_and_says_why(
    broker: KafkaCluster, topic: str, kube: KubernetesApi, kube_namespace: KubeNamespace,
    case: str, reason: str, message: str,
) -> None:
    ns = kube_namespace
    reconciler = Reconciler(kube, Clock(), kafka_timeout=1.5)
    target, spec, worker = _resources(ns, broker, topic, "g", replicas=None if case == "no target" else 4)
    if case == "bad spec":  # what an older CRD without the bound would let through
        spec["lagPerReplica"] = 0
    elif case == "no secret":
        spec["kafka"]["authSecretRef"] = {"name": "kafka-auth"}
    elif case == "no topic":
        spec["kafka"]["topic"] = f"gone-{uuid.uuid4().hex[:6]}"
    elif case == "broker down":
        spec["kafka"]["bootstrapServers"] = "127.0.0.1:9"

    reconciler.reconcile(target, spec, {"desiredReplicas": 4})
    status = ns.status(target.name)
    reconciler.reconcile(target, spec, status)  # the same problem again: no second event

    if case != "no target":
        assert ns.replicas(worker) == 4
    status = ns.status(target.name)
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert message in ready["message"]
    assert _reasons(ns, target) == [("Warning", reason)]
    assert status["desiredReplicas"] == 4  # what was there is kept
    assert _metric("streamtrack_operator_lag_read_failures_total", target, reason=reason) == 2
    jsonschema.validate(status, STATUS_SCHEMA)


def test_the_auth_secret_reaches_the_kafka_client(
    broker: KafkaCluster, topic: str, kube: KubernetesApi, kube_namespace: KubeNamespace
) -> None:
    """The Secret's keys are librdkafka properties; a wrong one fails the read, a right one works."""
    import kubernetes

    ns = kube_namespace
    core = kubernetes.client.CoreV1Api(ns.cluster.api_client())
    suffix = uuid.uuid4().hex[:6]
    core.create_namespaced_secret(ns.name, {"metadata": {"name": f"good-{suffix}"},
                                            "stringData": {"client.id": "operator-test", "security.protocol": "plaintext"}})
    core.create_namespaced_secret(ns.name, {"metadata": {"name": f"bad-{suffix}"},
                                            "stringData": {"security.protocol": "ssl", "socket.timeout.ms": "1000"}})
    reconciler = Reconciler(kube, Clock(), kafka_timeout=1.5)
    group = f"g-{uuid.uuid4().hex[:8]}"
    good, spec, _ = _resources(ns, broker, topic, group, replicas=2)
    bad, bad_spec, _ = _resources(ns, broker, topic, group, replicas=2)

    reconciler.reconcile(good, {**spec, "kafka": {**spec["kafka"], "authSecretRef": {"name": f"good-{suffix}"}}}, {})
    reconciler.reconcile(bad, {**bad_spec, "kafka": {**bad_spec["kafka"], "authSecretRef": {"name": f"bad-{suffix}"}}}, {})

    assert ns.status(good.name)["lag"] == 26
    assert _condition(ns.status(bad.name), "Ready")["reason"] == "BrokerUnavailable"


def test_exclude_persistent_lag_ignores_partitions_without_progress(
    broker: KafkaCluster, topic: str, kube: KubernetesApi, kube_namespace: KubeNamespace
) -> None:
    ns, clock = kube_namespace, Clock()
    reconciler = Reconciler(kube, clock)
    group = f"g-{uuid.uuid4().hex[:8]}"
    target, spec, worker = _resources(ns, broker, topic, group, replicas=2, excludePersistentLag=True,
                                      scaleDown={"stabilizationWindowSeconds": 0})
    _commit(broker, topic, group, {0: 5, 1: 9})  # lag: partition 0 -> 7, partition 2 -> 5 (never committed)

    reconciler.reconcile(target, spec, {})
    first = ns.status(target.name)
    assert (first["lag"], first["stuckPartitions"], first["recommendedReplicas"]) == (12, [], 2)
    assert first["sample"]["positions"] == {"0": 5, "1": 9, "2": 0, "3": 0}

    _commit(broker, topic, group, {0: 8})  # partition 0 progresses, partition 2 does not
    clock.t += 15
    reconciler.reconcile(target, spec, first)
    second = ns.status(target.name)

    assert second["lag"] == 4 + 5 and second["stuckPartitions"] == [2]
    assert second["recommendedReplicas"] == 1 and second["desiredReplicas"] == 1  # ceil(4 / 5): the stuck 5 not counted
    assert "not counted: 5 records in partitions [2]" in second["lastDecision"]
    assert ns.events(target.name)[-1].reason == "ScaledDown" and ns.replicas(worker) == 1
    jsonschema.validate(second, STATUS_SCHEMA)
