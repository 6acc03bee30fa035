"""`streamtrack operator` end to end: a real API server (tests/fixtures/kube.py), a real Apache
Kafka, the chart's release (its CRDs, RBAC, ServiceAccount, worker Deployment and
WorkerAutoscaler), and the operator as a subprocess holding the chart ServiceAccount's token, so
it can do only what the chart's Role and ClusterRole allow.

No kubelet runs: nothing consumes for the Deployment, so the test is the workers (a real
consumer in the group drains the backlog) and it asserts on spec.replicas of the scale
subresource. Each wait is bounded; each scenario prints its timeline (lag, recommended,
desired, current replicas at each poll) and writes it to tests/artifacts/.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.ports import free_ports
from tests.fixtures.kube import RELEASE_VALUES, KubeCluster, installable_chart

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
GROUP, VERSION, PLURAL = "streamtrack.io", "v1alpha1", "workerautoscalers"
RELEASE = "st"
AUTOSCALER = WORKER = "st-streamtrack-worker"
OPERATOR_SA = "st-streamtrack-operator"
POLL_S = 5  # the CRD's minimum pollIntervalSeconds
PARTITIONS = 4
BACKLOG = 1000  # records; 100 per replica asks for 10, capped at the 4 partitions with lag


@dataclasses.dataclass
class Release:
    """One chart release in a namespace of its own, for one scenario."""

    cluster: KubeCluster
    namespace: str
    kafka: KafkaCluster
    topic: str
    group: str
    work: Path

    @property
    def custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.cluster.api_client())

    def autoscaler(self) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, AUTOSCALER))

    def replicas(self) -> int:
        apps = kubernetes.client.AppsV1Api(self.cluster.api_client())
        return int(apps.read_namespaced_deployment_scale(WORKER, self.namespace).spec.replicas or 0)

    def events(self) -> list[tuple[str, str, str]]:
        core = kubernetes.client.CoreV1Api(self.cluster.api_client())
        found = core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={AUTOSCALER}").items
        return [(e.type, e.reason, e.message) for e in sorted(found, key=lambda e: e.metadata.creation_timestamp)]

    def produce(self, count: int) -> None:
        producer = Producer({"bootstrap.servers": self.kafka.bootstrap_servers, "linger.ms": 5})
        for i in range(count):
            producer.produce(self.topic, partition=i % PARTITIONS, value=f"event-{i}".encode())
        assert producer.flush(30) == 0

    def drain(self, count: int) -> None:
        """What the workers would do: consume `count` records in the group and commit them."""
        consumer = Consumer({"bootstrap.servers": self.kafka.bootstrap_servers, "group.id": self.group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            consumer.subscribe([self.topic])
            seen, deadline = 0, time.monotonic() + 60
            while seen < count and time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is not None and message.error() is None:
                    seen += 1
            assert seen == count, f"consumed {seen} of {count}"
            consumer.commit(asynchronous=False)
        finally:
            consumer.close()


@dataclasses.dataclass
class Operator:
    """`streamtrack operator` as a subprocess, with its own metrics port."""

    process: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    def decisions(self) -> float:
        """Polls this process decided or failed on (its Prometheus counters): 0 while it stands by."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name in ("streamtrack_operator_decisions", "streamtrack_operator_lag_read_failures")
                   for sample in family.samples if sample.name.endswith("_total"))

    def kill(self) -> None:
        """SIGKILL: no clean-up, its peering entry stays until it expires (a crashed pod)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Timeline:
    """Every poll the operator made, as the resource's status and the scale showed it."""

    def __init__(self, release: Release, title: str) -> None:
        self.release, self.title = release, title
        self.started = time.monotonic()
        self.rows: list[str] = []
        self._last_poll: str | None = None

    def sample(self) -> dict[str, Any]:
        status = self.release.autoscaler().get("status") or {}
        if status.get("lastPollTime") and status["lastPollTime"] != self._last_poll:
            self._last_poll = status["lastPollTime"]
            ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
            self.rows.append(
                f"{time.monotonic() - self.started:6.1f}s  lag={status.get('lag', '-'):<5} "
                f"recommended={status.get('recommendedReplicas', '-'):<2} desired={status.get('desiredReplicas', '-'):<2} "
                f"current={status.get('currentReplicas', '-'):<2} spec.replicas={self.release.replicas():<2} "
                f"Ready={ready.get('status', '-')}/{ready.get('reason', '-')}"
            )
        return status

    def wait_for(self, what: str, check: Callable[[dict[str, Any]], bool], polls: int) -> dict[str, Any]:
        """Wait at most `polls` poll intervals (plus a timer tick) until `check(status)` holds."""
        deadline = time.monotonic() + polls * POLL_S + 10
        while True:
            status = self.sample()
            if check(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {polls} polls: {what}\n{self.render()}")
            time.sleep(0.5)

    def render(self) -> str:
        return f"--- operator timeline: {self.title} ---\n" + "\n".join(self.rows)

    def publish(self, capsys: pytest.CaptureFixture[str]) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"operator-timeline-{self.title.split()[0]}.txt").write_text(self.render() + "\n")
        with capsys.disabled():
            print("\n" + self.render())


def _get_all(cluster: KubeCluster, namespace: str) -> list[str]:
    """What the release left in the namespace (the server's own default ServiceAccount aside)."""
    found = cluster.kubectl("get", "deployments,workerautoscalers,kopfpeerings,roles,rolebindings,serviceaccounts,"
                            "secrets,configmaps", "-n", namespace, "-o", "name").stdout.split()
    return [name for name in found if name != "serviceaccount/default"]


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installable_chart(tmp_path_factory.mktemp("chart"))


def _install(cluster: KubeCluster, kafka: KafkaCluster, chart: Path, work: Path) -> Release:
    """The chart's release pointed at `kafka`, with a topic and group of its own; the chart's
    WorkerAutoscaler patched to a short scale-down window (the default 300 s is for production)."""
    suffix = uuid.uuid4().hex[:6]
    release = Release(cluster, f"op-{suffix}", kafka, f"events-{suffix}", f"workers-{suffix}", work)
    futures = kafka.admin().create_topics([NewTopic(release.topic, num_partitions=PARTITIONS, replication_factor=1)])
    for future in futures.values():
        future.result(30)
    values = {
        **RELEASE_VALUES,
        # the auth Secret's keys reach the operator's Kafka client (authSecretRef)
        "kafka": {**RELEASE_VALUES["kafka"], "external": {"bootstrapServers": kafka.bootstrap_servers,
                                                          "properties": {"client.id": "streamtrack-operator"}}},
        "config": {"STREAMTRACK_TOPIC": release.topic, "STREAMTRACK_CONSUMER_GROUP": release.group},
        "operator": {"autoscaler": {"minReplicas": 1, "maxReplicas": 6, "lagPerReplica": 100, "activationLag": 1,
                                    "pollIntervalSeconds": POLL_S}},
    }
    path = work / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    cluster.helm("install", RELEASE, str(chart), "-n", release.namespace, "--create-namespace", "-f", str(path),
                 "--no-hooks")
    release.custom.patch_namespaced_custom_object(GROUP, VERSION, release.namespace, PLURAL, AUTOSCALER, {
        "spec": {"scaleDown": {"stabilizationWindowSeconds": 15}, "lagLookaheadSeconds": 0},
    })
    return release


def _start_operator(release: Release, name: str) -> Operator:
    """The operator with the chart ServiceAccount's token (TokenRequest), nothing else."""
    token = release.cluster.service_account_token(release.namespace, OPERATOR_SA)
    kubeconfig = release.cluster.kubeconfig(token, release.work / f"{name}.kubeconfig", release.namespace)
    metrics_port, liveness_port = free_ports(2)
    log = release.work / f"operator-{name}.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "STREAMTRACK_HOST": "127.0.0.1",
           "STREAMTRACK_OPERATOR_METRICS_PORT": str(metrics_port),
           "STREAMTRACK_OPERATOR_LIVENESS_PORT": str(liveness_port), "STREAMTRACK_LOG_LEVEL": "info"}
    with log.open("wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "streamtrack"), "operator",
                                    "--namespace", release.namespace],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Operator(process, metrics_port, log)


@pytest.fixture
def operators() -> Iterator[list[Operator]]:
    """Operators a test starts; all stopped at the end (their logs end up in a failure's report)."""
    started: list[Operator] = []
    yield started
    for operator in started:
        operator.stop()
        print(f"--- {operator.log.name} ---\n{operator.log.read_text(errors='replace')[-3000:]}")


@dataclasses.dataclass
class BacklogRun:
    release: Release
    timeline: Timeline
    peak: int


@pytest.fixture(scope="module")
def backlog_run(kube_cluster: KubeCluster, broker: KafkaCluster, chart: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[BacklogRun]:
    """The main scenario, once: idle, a backlog, drained by a consumer, scaled down."""
    release = _install(kube_cluster, broker, chart, tmp_path_factory.mktemp("backlog"))
    operator = _start_operator(release, "solo")
    timeline = Timeline(release, "backlog (scale up, drain, scale down)")
    try:
        timeline.wait_for("a first poll: no lag, minReplicas", lambda s: s.get("lag") == 0
                          and s.get("desiredReplicas") == 1, polls=6)
        release.produce(BACKLOG)
        up = timeline.wait_for("scaled up for the backlog", lambda s: s.get("lag") == BACKLOG
                               and s.get("desiredReplicas") == PARTITIONS == release.replicas(), polls=3)
        release.drain(BACKLOG)
        timeline.wait_for("the drained lag seen", lambda s: s.get("lag") == 0, polls=3)
        timeline.wait_for("scaled down after the 15 s window",
                          lambda s: s.get("desiredReplicas") == 1 == release.replicas(), polls=6)
        yield BacklogRun(release, timeline, int(up["desiredReplicas"]))
    finally:
        operator.stop()
        print(f"--- {operator.log.name} ---\n{operator.log.read_text(errors='replace')[-3000:]}")


def test_a_backlog_scales_the_workers_up_and_a_drain_scales_them_down(
    backlog_run: BacklogRun, capsys: pytest.CaptureFixture[str]
) -> None:
    backlog_run.timeline.publish(capsys)
    release = backlog_run.release
    status = release.autoscaler()["status"]

    assert backlog_run.peak == PARTITIONS  # 1000 / 100 asks for 10: capped at the partitions with lag
    assert release.replicas() == 1 and status["desiredReplicas"] == 1 and status["lag"] == 0
    assert (_ready(status)["status"], status["observedGeneration"]) == ("True", 2)  # the patched spec
    reasons = [(type_, reason) for type_, reason, _ in release.events()]
    assert reasons == [("Normal", "ScaledUp"), ("Normal", "ScaledDown")]
    assert release.events()[0][2].startswith(f"1 -> {PARTITIONS} replicas: lag {BACKLOG}")


def test_the_operator_role_grants_only_what_it_uses(backlog_run: BacklogRun, kube_cluster: KubeCluster) -> None:
    """Minimal RBAC: every (group, resource, verb) the chart's Role and ClusterRole grant was used
    by the operator's ServiceAccount in the run above (the API server's audit log), and nothing it
    asked for was refused (sufficient)."""
    namespace = backlog_run.release.namespace
    user = f"system:serviceaccount:{namespace}:{OPERATOR_SA}"
    requests = [e for e in kube_cluster.audit_events() if e["user"]["username"] == user and "objectRef" in e]
    refused = sorted({(e["verb"], e["requestURI"]) for e in requests if e["responseStatus"]["code"] == 403})
    used = {(e["objectRef"].get("apiGroup", ""),
             e["objectRef"]["resource"] + (f"/{e['objectRef']['subresource']}" if "subresource" in e["objectRef"] else ""),
             e["verb"]) for e in requests}
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube_cluster.api_client())
    role = rbac.read_namespaced_role(OPERATOR_SA, namespace)
    cluster_role = rbac.read_cluster_role(f"{namespace}-{OPERATOR_SA}")
    granted = {(group, resource, verb) for rule in [*role.rules, *(cluster_role.rules or [])]
               for group in rule.api_groups for resource in rule.resources for verb in rule.verbs}

    assert refused == []
    assert sorted(granted - used) == [], f"granted, never used; used: {sorted(used)}"
    assert sorted(used - granted) == []


def test_with_the_broker_down_the_scale_is_kept_and_ready_says_why(
    kube_cluster: KubeCluster, chart: Path, tmp_path: Path, operators: list[Operator],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with KafkaCluster(tmp_path / "kafka", nodes=1) as kafka:  # a broker of its own, to stop
        release = _install(kube_cluster, kafka, chart, tmp_path)
        operators.append(_start_operator(release, "solo"))
        timeline = Timeline(release, "broker-down (scale kept, Ready=False)")
        try:
            release.produce(BACKLOG)
            timeline.wait_for("scaled up for the backlog", lambda s: release.replicas() == PARTITIONS, polls=6)
            kafka.stop()
            down = timeline.wait_for("Ready=False while the broker is down",
                                     lambda s: _ready(s).get("status") == "False", polls=3)
            polls = len(timeline.rows)
            timeline.wait_for("two more polls without a broker", lambda s: len(timeline.rows) >= polls + 2, polls=3)
            kept = release.replicas()
            kafka.start()
            timeline.wait_for("Ready again with the broker back", lambda s: _ready(s).get("status") == "True", polls=4)
        finally:
            timeline.publish(capsys)

    assert (_ready(down)["reason"], kept) == ("BrokerUnavailable", PARTITIONS)
    assert "cannot read metadata" in _ready(down)["message"]
    assert down["lastDecision"].startswith("kept the current scale")
    assert [r for _, r, _ in release.events()] == ["ScaledUp", "BrokerUnavailable"]


def test_the_standby_operator_takes_over_when_the_leader_is_killed(
    kube_cluster: KubeCluster, broker: KafkaCluster, chart: Path, tmp_path: Path, operators: list[Operator],
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = _install(kube_cluster, broker, chart, tmp_path)
    operators.extend([_start_operator(release, "a"), _start_operator(release, "b")])
    timeline = Timeline(release, "failover (two operators, leader killed)")
    try:
        peering = lambda: release.custom.get_namespaced_custom_object(  # noqa: E731
            "kopf.dev", "v1", release.namespace, "kopfpeerings", "streamtrack").get("status") or {}
        timeline.wait_for("both operators in the peering", lambda s: len(peering()) == 2, polls=6)
        timeline.wait_for("a poll after both joined", lambda s: bool(s.get("lastPollTime")), polls=3)
        before = [o.decisions() for o in operators]
        polls = len(timeline.rows)
        timeline.wait_for("three more polls", lambda s: len(timeline.rows) >= polls + 3, polls=4)
        acted = [o.decisions() - b for o, b in zip(operators, before, strict=True)]
        leader, standby = (operators[0], operators[1]) if acted[0] else (operators[1], operators[0])
        leader.kill()
        standby_before, polls = standby.decisions(), len(timeline.rows)
        # the leader's peering entry expires (kopf's 60 s lifetime), then the standby resumes
        timeline.wait_for("the standby polling", lambda s: len(timeline.rows) >= polls + 2, polls=20)
        took_over = standby.decisions() - standby_before
    finally:
        timeline.publish(capsys)

    assert min(acted) == 0 and max(acted) >= 3  # one acted, the other stood by
    assert took_over >= 2


def test_uninstall_deletes_the_autoscaler(
    kube_cluster: KubeCluster, broker: KafkaCluster, chart: Path, tmp_path: Path, operators: list[Operator],
) -> None:
    """`helm uninstall` removes the operator's ServiceAccount (so its token) together with the
    WorkerAutoscaler: a finalizer on it could never be released and it would stay forever (kopf
    adds one for timers; the operator registers its timer without)."""
    release = _install(kube_cluster, broker, chart, tmp_path)
    operator = _start_operator(release, "solo")
    operators.append(operator)
    timeline = Timeline(release, "uninstall")
    timeline.wait_for("a first poll", lambda s: bool(s.get("lastPollTime")), polls=6)
    assert "finalizers" not in release.autoscaler()["metadata"]

    kube_cluster.kubectl("delete", "workerautoscaler", AUTOSCALER, "-n", release.namespace, "--timeout=10s")
    decisions, log_size = operator.decisions(), operator.log.stat().st_size
    polls_later = time.monotonic() + 3 * POLL_S
    while time.monotonic() < polls_later:  # kopf stops the timer of a deleted resource: no more polls
        time.sleep(1)
    assert operator.decisions() == decisions
    assert "Timer 'autoscale' failed" not in operator.log.read_text()[log_size:]

    kube_cluster.helm("uninstall", RELEASE, "-n", release.namespace)
    assert _get_all(kube_cluster, release.namespace) == []
