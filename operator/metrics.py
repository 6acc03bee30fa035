"""The operator's Prometheus metrics, in a registry of its own (served on its metrics port).

Per WorkerAutoscaler (`namespace`, `autoscaler` labels): lag in total and per partition,
the rates, recommended/desired/current/max replicas, decisions by action, failed lag reads by
reason. Series of a deleted resource are removed (`forget`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from streamtrack.kafka.lag_reader import TopicLag
from streamtrack.operator.policy import Decision

REGISTRY = CollectorRegistry(auto_describe=True)
LABELS = ("namespace", "autoscaler")

LAG = Gauge("streamtrack_operator_lag", "Records not yet consumed, all partitions", LABELS, registry=REGISTRY)
PARTITION_LAG = Gauge(
    "streamtrack_operator_partition_lag", "Records not yet consumed, per partition", (*LABELS, "partition"),
    registry=REGISTRY,
)
PRODUCED = Gauge("streamtrack_operator_produced_per_second", "Production rate of the topic", LABELS, registry=REGISTRY)
CONSUMED = Gauge("streamtrack_operator_consumed_per_second", "Consumption rate of the group", LABELS, registry=REGISTRY)
RECOMMENDED = Gauge(
    "streamtrack_operator_recommended_replicas", "Replicas the lag asks for now", LABELS, registry=REGISTRY
)
DESIRED = Gauge(
    "streamtrack_operator_desired_replicas", "Replicas after stabilisation and steps", LABELS, registry=REGISTRY
)
CURRENT = Gauge("streamtrack_operator_current_replicas", "Replicas the Deployment had", LABELS, registry=REGISTRY)
# The spec's bound, as kube-state-metrics exports an HPA's: "current at max while lag stays" is an alert.
MAX_REPLICAS = Gauge("streamtrack_operator_max_replicas", "The autoscaler's maxReplicas", LABELS, registry=REGISTRY)
DECISIONS = Counter(
    "streamtrack_operator_decisions", "Decisions by action (scale_up, scale_down, hold)", (*LABELS, "action"),
    registry=REGISTRY,
)
FAILURES = Counter(
    "streamtrack_operator_lag_read_failures", "Polls that could not decide, by reason", (*LABELS, "reason"),
    registry=REGISTRY,
)

REASONS = ("InvalidSpec", "TargetMissing", "SecretMissing", "BrokerUnavailable", "TopicMissing")
_partitions_seen: dict[tuple[str, str], set[str]] = {}


def record(namespace: str, name: str, report: TopicLag, decision: Decision, produced: float, consumed: float,
           max_replicas: int) -> None:
    key = (namespace, name)
    LAG.labels(*key).set(report.total)
    seen = _partitions_seen.setdefault(key, set())
    now = {str(p.partition) for p in report.partitions}
    for gone in seen - now:
        PARTITION_LAG.remove(*key, gone)
    for p in report.partitions:
        PARTITION_LAG.labels(*key, str(p.partition)).set(p.lag)
    _partitions_seen[key] = now
    PRODUCED.labels(*key).set(produced)
    CONSUMED.labels(*key).set(consumed)
    RECOMMENDED.labels(*key).set(decision.recommended)
    DESIRED.labels(*key).set(decision.desired)
    CURRENT.labels(*key).set(decision.current)
    MAX_REPLICAS.labels(*key).set(max_replicas)
    DECISIONS.labels(*key, decision.action).inc()


def failed(namespace: str, name: str, reason: str) -> None:
    FAILURES.labels(namespace, name, reason).inc()


def forget(namespace: str, name: str) -> None:
    """Remove every series of a deleted resource."""
    key = (namespace, name)
    for partition in _partitions_seen.pop(key, set()):
        PARTITION_LAG.remove(*key, partition)
    for gauge in (LAG, PRODUCED, CONSUMED, RECOMMENDED, DESIRED, CURRENT, MAX_REPLICAS):
        try:
            gauge.remove(*key)
        except KeyError:
            pass  # never recorded
    for counter, extra in ((DECISIONS, ("scale_up", "scale_down", "hold")), (FAILURES, REASONS)):
        for value in extra:
            try:
                counter.remove(*key, value)
            except KeyError:
                pass  # never counted


def serve(port: int, host: str) -> None:
    """Serve /metrics on `host`:`port` in a background thread."""
    start_http_server(port, addr=host, registry=REGISTRY)
