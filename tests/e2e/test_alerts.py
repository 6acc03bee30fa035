"""The chart's alerts on a real Prometheus (built by scripts/gotools.py) scraping a running pipeline
on loopback: the API and a worker as processes with their metrics ports, Apache Kafka (`broker`),
and the operator holding the chart ServiceAccount's token against the Kubernetes test bed
(`kube_cluster`), so the lag it reads from Kafka is scraped too.

- Every metric that the rules and the dashboards name is exported by one of the three processes,
  as the running Prometheus's own parser (/api/v1/parse_query) reads each expression.
- The worker is frozen (SIGSTOP) while events stream in: StreamTrackIngestionStalled and
  StreamTrackConsumerLagGrowing fire (and StreamTrackTargetDown for the frozen worker); after
  SIGCONT each resolves. The rules are the chart's, rendered with short test-only windows and
  `for` values (chart values), so the run takes about a minute; the timeline is printed and kept
  in tests/artifacts/alerts-timeline.txt.
Each wait is bounded; every process started here is stopped at the end.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from streamtrack.kafka.apache import KafkaCluster
from streamtrack.kafka.ports import free_ports
from tests.fixtures import monitoring
from tests.fixtures.kube import RELEASE_VALUES, KubeCluster, installable_chart
from tests.fixtures.pipeline import pipeline_env

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
RELEASE = "st"
SCRAPE_S = 1
POLL_S = 5  # the operator's poll (the CRD's minimum)
# Short test-only windows: rates over 10 s of 1 s scrapes, conditions held 10 s.
TEST_RULES = {
    "window": "10s",
    "ingestionStalled": {"for": "10s"},
    # lag is counted from committed offsets: a flowing pipeline at 200 events/s keeps ~60 uncommitted
    "consumerLag": {"for": "10s", "minLag": 300, "maxDrainSeconds": 30},
    "targetDown": {"for": "10s"},
}
WATCHED = ("StreamTrackIngestionStalled", "StreamTrackConsumerLagGrowing", "StreamTrackTargetDown")
WAIT_S = 120.0


@dataclasses.dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)

    def tail(self) -> str:
        return f"--- {self.name} ---\n{self.log.read_text(errors='replace')[-2000:]}"


def spawn(name: str, command: list[str], env: dict[str, str], work: Path) -> Process:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return Process(name, popen, log)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> float:
    """Poll until `condition()` holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.25)
    return time.monotonic() - started


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Sender:
    """Streams events to the API (/batch of 20 every 0.1 s) until stopped; counts the 202s."""

    def __init__(self, url: str) -> None:
        self.url, self.accepted, self.errors = url, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts-sender", daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.wait(0.1):
                batch = [{"event_type": "view", "user_id": f"u{uuid.uuid4().hex[:6]}"} for _ in range(20)]
                try:
                    answer = client.post("/batch", json=batch)
                    self.accepted += answer.json().get("accepted", 0) if answer.status_code == 202 else 0
                except httpx.HTTPError:
                    self.errors += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


@dataclasses.dataclass
class Stack:
    namespace: str
    api: str
    worker: Process
    metrics: dict[str, str]  # job -> /metrics URL
    prometheus: str
    processes: list[Process]

    def alerts(self) -> dict[str, str]:
        """Alert name -> state (pending or firing) of the watched alerts, as Prometheus has them now."""
        found = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        states: dict[str, str] = {}
        for alert in found:
            name = alert["labels"]["alertname"]
            if name in WATCHED and states.get(name) != "firing":
                states[name] = alert["state"]
        return states


def _install_release(cluster: KubeCluster, kafka: KafkaCluster, work: Path, topic: str, group: str) -> str:
    """The chart's release (its CRDs, RBAC, worker Deployment and WorkerAutoscaler) in a namespace of
    its own, pointed at the test's Kafka topic and group; the operator polls every 5 s."""
    namespace = f"alerts-{uuid.uuid4().hex[:6]}"
    values = {
        **RELEASE_VALUES,
        "kafka": {**RELEASE_VALUES["kafka"], "external": {"bootstrapServers": kafka.bootstrap_servers}},
        "config": {"STREAMTRACK_TOPIC": topic, "STREAMTRACK_CONSUMER_GROUP": group},
        "operator": {"autoscaler": {"minReplicas": 1, "maxReplicas": 4, "lagPerReplica": 100, "activationLag": 1,
                                    "pollIntervalSeconds": POLL_S}},
    }
    path = work / "release-values.yaml"
    path.write_text(yaml.safe_dump(values))
    chart = installable_chart(work)
    cluster.helm("install", RELEASE, str(chart), "-n", namespace, "--create-namespace", "-f", str(path), "--no-hooks")
    return namespace


def _prometheus_config(namespace: str, targets: dict[str, str], rules: Path) -> dict[str, Any]:
    """Static targets named as the chart's ServiceMonitors name their jobs, with the namespace
    label the Prometheus Operator adds, so the chart's rules select them unchanged."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S}s",
                   "evaluation_interval": f"{SCRAPE_S}s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target], "labels": {"namespace": namespace}}]}
            for job, target in targets.items()
        ],
    }


@pytest.fixture(scope="module")
def stack(kube_cluster: KubeCluster, broker: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("alerts")
    env = pipeline_env(broker, f"alerts_{uuid.uuid4().hex[:8]}", work / "unused")
    topic, group = env["STREAMTRACK_TOPIC"], env["STREAMTRACK_CONSUMER_GROUP"]
    for future in broker.admin().create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]).values():
        future.result(30)
    namespace = _install_release(kube_cluster, broker, work, topic, group)

    api_port, worker_port, operator_port, liveness_port, prometheus_port = free_ports(5)
    streamtrack = str(Path(sys.executable).parent / "streamtrack")
    base = {**env, "STREAMTRACK_HOST": "127.0.0.1", "STREAMTRACK_LOG_LEVEL": "info",
            "STREAMTRACK_BATCH_MAX_WAIT_MS": "200"}
    processes: list[Process] = []
    try:
        # API and worker each on an embedded ClickHouse of its own (one process per data folder).
        processes.append(spawn("api", [streamtrack, "api"], {
            **base, "STREAMTRACK_PORT": str(api_port), "STREAMTRACK_DATA_DIR": str(work / "api-data")}, work))
        worker = spawn("worker", [streamtrack, "worker"], {
            **base, "STREAMTRACK_WORKER_METRICS_PORT": str(worker_port),
            "STREAMTRACK_DATA_DIR": str(work / "worker-data")}, work)
        processes.append(worker)
        token = kube_cluster.service_account_token(namespace, f"{RELEASE}-streamtrack-operator")
        kubeconfig = kube_cluster.kubeconfig(token, work / "operator.kubeconfig", namespace)
        processes.append(spawn("operator", [streamtrack, "operator", "--namespace", namespace], {
            "KUBECONFIG": str(kubeconfig), "STREAMTRACK_HOST": "127.0.0.1",
            "STREAMTRACK_OPERATOR_METRICS_PORT": str(operator_port),
            "STREAMTRACK_OPERATOR_LIVENESS_PORT": str(liveness_port)}, work))

        targets = {"api": f"127.0.0.1:{api_port}", "worker-metrics": f"127.0.0.1:{worker_port}",
                   "operator-metrics": f"127.0.0.1:{operator_port}"}
        jobs = {f"{RELEASE}-streamtrack-{name}": target for name, target in targets.items()}
        metrics = {job: f"http://{target}/metrics" for job, target in jobs.items()}
        wait_for(lambda: all(http_ok(url) for url in metrics.values()), "API, worker and operator /metrics")

        groups = monitoring.rule_groups(monitoring.render(work, monitoring.enabled(**TEST_RULES), namespace=namespace))
        rules = work / "rules.yaml"
        rules.write_text(yaml.safe_dump(groups))
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(_prometheus_config(namespace, jobs, rules)))
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        processes.append(spawn("prometheus", [
            str(monitoring.binary("prometheus")), f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn",
        ], {}, work))
        wait_for(lambda: http_ok(f"{prometheus}/-/ready"), "Prometheus ready")
        yield Stack(namespace, f"http://127.0.0.1:{api_port}", worker, metrics, prometheus, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        print("\n".join(p.tail() for p in processes))
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def exported(url: str) -> set[str]:
    """Every series name a /metrics page declares (families without samples yet included)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def selectors(prometheus: str, expr: str) -> set[str]:
    """The metric names an expression selects, from the Prometheus server's own parser."""
    answer = httpx.post(f"{prometheus}/api/v1/parse_query", data={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", (expr, answer)
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("vectorSelector", "matrixSelector") and node.get("name"):
                found.add(node["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(answer["data"])
    return found


def test_every_metric_of_the_rules_and_dashboards_is_exported(stack: Stack, tmp_path: Path) -> None:
    real = set().union(*(exported(url) for url in stack.metrics.values())) | {"up"}  # up: Prometheus' own
    operator_only = exported(stack.metrics[f"{RELEASE}-streamtrack-operator-metrics"])
    assert "streamtrack_operator_max_replicas" in operator_only
    groups = monitoring.rule_groups(monitoring.render(tmp_path, monitoring.enabled()))  # production values
    expressions = [(name, rule["expr"]) for name, rule in monitoring.alerts(groups).items()]
    expressions += [(f"{board} / {title}", expr) for board, title, expr in monitoring.dashboard_queries()]
    used: dict[str, set[str]] = {}
    for where, expr in expressions:
        names = selectors(stack.prometheus, expr)
        assert names, (where, expr)
        for name in names:
            used.setdefault(name, set()).add(where)
    missing = {name: sorted(where) for name, where in used.items() if name not in real}
    assert missing == {}
    print(f"\n{len(expressions)} expressions name {len(used)} metrics, all exported: {', '.join(sorted(used))}")


@dataclasses.dataclass
class FreezeRun:
    rows: list[str]
    fired: dict[str, float]  # alert -> seconds from SIGSTOP to firing
    resolved: dict[str, float]  # alert -> seconds from SIGCONT to gone
    quiet_before: dict[str, str]
    accepted: int


@pytest.fixture(scope="module")
def freeze_run(stack: Stack) -> FreezeRun:
    """Events stream in; the worker is frozen until the watched alerts fire, then resumed until they resolve."""
    rows: list[str] = []
    started = time.monotonic()

    def row(text: str) -> None:
        rows.append(f"{time.monotonic() - started:6.1f}s  {text}")

    sender = Sender(stack.api).start()
    try:
        def inserting() -> bool:
            query = f'sum(rate(streamtrack_store_inserted_rows_total{{namespace="{stack.namespace}"}}[10s]))'
            result = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": query}, timeout=5).json()
            return bool(result["data"]["result"]) and float(result["data"]["result"][0]["value"][1]) > 0

        wait_for(inserting, "Prometheus sees inserts")
        wait_for(lambda: not stack.alerts(), "no watched alert pending or firing while the pipeline flows")
        time.sleep(3 * SCRAPE_S)  # a few more evaluations of the flowing pipeline
        quiet_before = stack.alerts()
        row(f"flowing: inserts seen, alerts {quiet_before or 'none'}")

        os.kill(stack.worker.popen.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        row("worker SIGSTOP")
        fired = _watch(stack, row, frozen, lambda states: all(states.get(a) == "firing" for a in WATCHED), "firing")

        os.kill(stack.worker.popen.pid, signal.SIGCONT)
        resumed = time.monotonic()
        row("worker SIGCONT")
        resolved = _watch(stack, row, resumed, lambda states: not states, "resolved")
    finally:
        sender.stop()
    rows.append(f"events accepted during the run: {sender.accepted} (request errors {sender.errors})")
    run = FreezeRun(rows, fired, resolved, quiet_before, sender.accepted)
    text = "--- alert timeline: worker frozen (SIGSTOP) while events stream in, then resumed ---\n" + "\n".join(rows)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "alerts-timeline.txt").write_text(text + "\n")
    print("\n" + text)
    return run


def _watch(stack: Stack, row: Callable[[str], None], since: float, done: Callable[[dict[str, str]], bool],
           what: str) -> dict[str, float]:
    """Record each change of the watched alerts' states until `done(states)`; when each reached `what`."""
    reached: dict[str, float] = {}
    last: dict[str, str] = {}
    deadline = since + WAIT_S
    while True:
        states = stack.alerts()
        if states != last:
            row(", ".join(f"{name} {state}" for name, state in sorted(states.items())) or "no alert pending or firing")
            last = states
        for name in WATCHED:
            if name not in reached and (states.get(name) == "firing" if what == "firing" else name not in states):
                reached[name] = time.monotonic() - since
        if done(states):
            return reached
        if time.monotonic() > deadline:
            raise AssertionError(f"alerts not {what} within {WAIT_S:.0f} s: {states}")
        time.sleep(0.5)


def test_a_frozen_worker_fires_ingestion_stalled_and_resuming_it_resolves_the_alert(freeze_run: FreezeRun) -> None:
    assert freeze_run.quiet_before == {}
    assert "StreamTrackIngestionStalled" in freeze_run.fired
    assert "StreamTrackIngestionStalled" in freeze_run.resolved
    assert freeze_run.accepted > 0


def test_growing_lag_fires_while_the_worker_is_frozen_and_resolves_after_the_drain(freeze_run: FreezeRun) -> None:
    assert "StreamTrackConsumerLagGrowing" in freeze_run.fired
    assert "StreamTrackConsumerLagGrowing" in freeze_run.resolved


def test_the_frozen_worker_is_a_target_down(freeze_run: FreezeRun) -> None:
    assert "StreamTrackTargetDown" in freeze_run.fired
    assert "StreamTrackTargetDown" in freeze_run.resolved
