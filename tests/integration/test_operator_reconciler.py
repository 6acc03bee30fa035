"""The reconciler's decisions, status and events: real Kafka lag, an in-memory Kubernetes API.

Kafka is the real local broker (a topic, a consumer group committing real offsets); the
Kubernetes API is the in-memory fake of the operator's `Kube` seam (tests/fixtures/fake_kube.py),
because no API server can run here. Time is a clock the test moves, so the stabilisation
windows and rates are exact without sleeping.
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

from streamtrack.kafka.lag_reader import lag_admin_client
from streamtrack.kafka.local_broker import LocalBroker
from streamtrack.operator.metrics import REGISTRY
from streamtrack.operator.reconciler import Reconciler, Target
from tests.fixtures.fake_kube import FakeKube

NS = "shop"
CRD = Path(__file__).resolve().parents[2] / "helm/streamtrack/crds/workerautoscalers.streamtrack.io.yaml"
STATUS_SCHEMA = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
COUNTS = {0: 12, 1: 9, 2: 5, 3: 0}  # lag 26 over 3 partitions


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def topic(broker: LocalBroker) -> str:
    admin = lag_admin_client({"bootstrap.servers": broker.bootstrap_servers})
    name = f"reconcile-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "batch.num.messages": 1, "linger.ms": 0})
    for partition, count in COUNTS.items():
        for i in range(count):
            producer.produce(name, partition=partition, value=str(i).encode())
    assert producer.flush(10) == 0
    return name


def _spec(broker: LocalBroker, topic: str, group: str, **changes: Any) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"name": "worker"},
        "kafka": {"bootstrapServers": broker.bootstrap_servers, "topic": topic, "consumerGroup": group},
        "minReplicas": 1, "maxReplicas": 10, "lagPerReplica": 5, **changes,
    }


def _commit(broker: LocalBroker, topic: str, group: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    consumer.close()


def _metric(name: str, target: Target, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": target.namespace, "autoscaler": target.name, **labels})


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_backlog_scales_up_then_down_after_the_window(broker: LocalBroker, topic: str) -> None:
    kube, clock = FakeKube(deployments={(NS, "worker"): 1}), Clock()
    reconciler = Reconciler(kube, clock)
    target = Target(NS, f"wa-{uuid.uuid4().hex[:6]}", uid="u-1", generation=3)
    group = f"g-{uuid.uuid4().hex[:8]}"
    spec = _spec(broker, topic, group)

    first = reconciler.reconcile(target, spec, {})

    # lag 26 at 5 per replica asks for 6, but only 3 partitions have lag
    assert kube.scale_patches == [(NS, "worker", 3)]
    status = kube.statuses[(NS, target.name)]
    jsonschema.validate(status, STATUS_SCHEMA)
    assert (status["lag"], status["partitions"], status["partitionsWithLag"]) == (26, 4, 3)
    assert (status["recommendedReplicas"], status["desiredReplicas"], status["currentReplicas"]) == (3, 3, 1)
    assert status["observedGeneration"] == 3 and status["lastScaleTime"] == "2027-01-15T08:00:00Z"
    assert _condition(status, "Ready")["reason"] == "Scaled"
    assert _condition(status, "Active")["status"] == "True"
    assert _condition(status, "ScalingLimited")["status"] == "True"
    assert "capped at the 3 partitions with lag" in status["lastDecision"]
    assert [(e.type, e.reason) for e in kube.events] == [("Normal", "ScaledUp")]
    assert kube.events[0].message.startswith("1 -> 3 replicas: lag 26")
    assert kube.events[0].involved == {"name": target.name, "uid": "u-1"}
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
    status = kube.statuses[(NS, target.name)]
    assert (status["lag"], status["desiredReplicas"], status["recommendedReplicas"]) == (0, 3, 1)
    assert status["consumedPerSecond"] == pytest.approx(26 / 15, abs=0.001)
    assert status["producedPerSecond"] == 0
    assert _condition(status, "Ready")["reason"] == "Holding"
    assert "scale-down stabilisation window" in status["lastDecision"]
    assert _condition(status, "Active")["status"] == "False"
    assert kube.scale_patches == [(NS, "worker", 3)]

    clock.t += 300
    reconciler.reconcile(target, spec, status)
    status = kube.statuses[(NS, target.name)]
    assert kube.scale_patches[-1] == (NS, "worker", 1)
    assert [e.reason for e in kube.events] == ["ScaledUp", "ScaledDown"]
    assert status["lastScaleTime"] == "2027-01-15T08:05:15Z"
    jsonschema.validate(status, STATUS_SCHEMA)


def test_scale_from_zero_only_above_the_activation_lag(broker: LocalBroker, topic: str) -> None:
    kube, clock = FakeKube(deployments={(NS, "worker"): 0}), Clock()
    reconciler = Reconciler(kube, clock)
    target = Target(NS, f"wa-{uuid.uuid4().hex[:6]}")
    group = f"g-{uuid.uuid4().hex[:8]}"
    _commit(broker, topic, group, {0: 12, 1: 9, 2: 0})  # lag 5, all in partition 2

    reconciler.reconcile(target, _spec(broker, topic, group, minReplicas=0, activationLag=10), {})
    assert kube.scale_patches == [] and kube.statuses[(NS, target.name)]["desiredReplicas"] == 0

    clock.t += 15
    reconciler.reconcile(target, _spec(broker, topic, group, minReplicas=0, activationLag=4), {})
    assert kube.scale_patches == [(NS, "worker", 1)]  # 5 > 4: activated; one partition with lag
    assert "activated from zero" in kube.events[-1].message


@pytest.mark.parametrize(
    ("case", "reason", "message"),
    [
        ("no target", "TargetMissing", "Deployment 'worker' not found in 'shop'"),
        ("bad spec", "InvalidSpec", "lagPerReplica"),
        ("no secret", "SecretMissing", "Secret 'kafka-auth' not found"),
        ("no topic", "TopicMissing", "does not exist"),
        ("broker down", "BrokerUnavailable", "cannot read metadata"),
    ],
)
def test_when_it_cannot_decide_it_keeps_the_scale_and_says_why(
    broker: LocalBroker, topic: str, case: str, reason: str, message: str
) -> None:
    kube = FakeKube(deployments={} if case == "no target" else {(NS, "worker"): 4})
    reconciler = Reconciler(kube, Clock(), kafka_timeout=1.5)
    target = Target(NS, f"wa-{uuid.uuid4().hex[:6]}")
    spec = _spec(broker, topic, "g")
    if case == "bad spec":
        spec["lagPerReplica"] = 0
    elif case == "no secret":
        spec["kafka"]["authSecretRef"] = {"name": "kafka-auth"}
    elif case == "no topic":
        spec["kafka"]["topic"] = f"gone-{uuid.uuid4().hex[:6]}"
    elif case == "broker down":
        spec["kafka"]["bootstrapServers"] = "127.0.0.1:9"

    reconciler.reconcile(target, spec, {"desiredReplicas": 4})
    status = kube.statuses[(NS, target.name)]
    reconciler.reconcile(target, spec, status)  # the same problem again: no second event

    assert kube.scale_patches == []
    assert kube.deployments.get((NS, "worker")) == (None if case == "no target" else 4)
    ready = _condition(kube.statuses[(NS, target.name)], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert message in ready["message"]
    assert [(e.type, e.reason) for e in kube.events] == [("Warning", reason)]
    assert kube.statuses[(NS, target.name)]["desiredReplicas"] == 4  # what was there is kept
    assert _metric("streamtrack_operator_lag_read_failures_total", target, reason=reason) == 2
    jsonschema.validate(kube.statuses[(NS, target.name)], STATUS_SCHEMA)


def test_the_auth_secret_reaches_the_kafka_client(broker: LocalBroker, topic: str) -> None:
    """The Secret's keys are librdkafka properties; a wrong one fails the read, a right one works."""
    kube = FakeKube(deployments={(NS, "worker"): 2})
    kube.secrets[(NS, "kafka-auth")] = {"client.id": "operator-test", "security.protocol": "plaintext"}
    kube.secrets[(NS, "bad-auth")] = {"security.protocol": "ssl", "socket.timeout.ms": "1000"}
    reconciler = Reconciler(kube, Clock(), kafka_timeout=1.5)
    good, bad = Target(NS, f"wa-{uuid.uuid4().hex[:6]}"), Target(NS, f"wa-{uuid.uuid4().hex[:6]}")
    spec = _spec(broker, topic, f"g-{uuid.uuid4().hex[:8]}")

    reconciler.reconcile(good, {**spec, "kafka": {**spec["kafka"], "authSecretRef": {"name": "kafka-auth"}}}, {})
    reconciler.reconcile(bad, {**spec, "kafka": {**spec["kafka"], "authSecretRef": {"name": "bad-auth"}}}, {})

    assert kube.statuses[(NS, good.name)]["lag"] == 26
    assert _condition(kube.statuses[(NS, bad.name)], "Ready")["reason"] == "BrokerUnavailable"


def test_exclude_persistent_lag_ignores_partitions_without_progress(broker: LocalBroker, topic: str) -> None:
    kube, clock = FakeKube(deployments={(NS, "worker"): 2}), Clock()
    reconciler = Reconciler(kube, clock)
    target = Target(NS, f"wa-{uuid.uuid4().hex[:6]}")
    group = f"g-{uuid.uuid4().hex[:8]}"
    spec = _spec(broker, topic, group, excludePersistentLag=True, scaleDown={"stabilizationWindowSeconds": 0})
    _commit(broker, topic, group, {0: 5, 1: 9})  # lag: partition 0 -> 7, partition 2 -> 5 (never committed)

    reconciler.reconcile(target, spec, {})
    first = kube.statuses[(NS, target.name)]
    assert (first["lag"], first["stuckPartitions"], first["recommendedReplicas"]) == (12, [], 2)
    assert first["sample"]["positions"] == {"0": 5, "1": 9, "2": 0, "3": 0}

    _commit(broker, topic, group, {0: 8})  # partition 0 progresses, partition 2 does not
    clock.t += 15
    reconciler.reconcile(target, spec, first)
    second = kube.statuses[(NS, target.name)]

    assert second["lag"] == 4 + 5 and second["stuckPartitions"] == [2]
    assert second["recommendedReplicas"] == 1 and second["desiredReplicas"] == 1  # ceil(4 / 5): the stuck 5 not counted
    assert "not counted: 5 records in partitions [2]" in second["lastDecision"]
    assert kube.events[-1].reason == "ScaledDown"
    jsonschema.validate(second, STATUS_SCHEMA)
