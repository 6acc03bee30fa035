"""Apache Kafka (KRaft) on loopback: one combined node, or three, each broker and controller.

The test bed's broker and `streamtrack dev --broker kafka`'s. Every node is a JVM child process
(`kafka.Kafka`) with its own ports and data folder under `folder/node-N/`; its log goes to
`folder/node-N/server.log`. The quorum is static (`controller.quorum.voters`), so a node
restarts on its data folder as it is, never re-formatted; the cluster id and ports are kept in
`folder/cluster.json`, so a second `start()` on the same folder brings the same cluster back.

The three-node shape is the fault tests': replication factor 3 and `min.insync.replicas` 2 for
the internal topics and as the default of created topics, so an acknowledged (acks=all) record
survives the loss of any one node. Brokers are fenced 3 s after their last heartbeat (not 9 s),
so a killed leader's partitions move quickly.

Each JVM gets PR_SET_PDEATHSIG=SIGKILL: when the thread that started it dies (a crashed test run
or dev process), the kernel kills the JVM, so nothing is left listening. Start nodes from a
thread that lives as long as the cluster (the main thread).
"""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamtrack.kafka.admin import LIBRDKAFKA_LOG
from streamtrack.kafka.apache.fetch import ensure_kafka, package_file
from streamtrack.kafka.ports import free_ports, port_open

log = structlog.get_logger(__name__)

READY_LINE = b"Kafka Server started"
# C1 only (TieredStopAtLevel=1): C2 compiling in three JVMs at once starves 2 cores, and three
# nodes start about twice as fast without it (docs/benchmarks.md, "Measurements behind design
# choices"); the throughput is ample.
JVM_OPTIONS = [
    "-Xms64m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true", "-XX:TieredStopAtLevel=1",
]


class KafkaClusterError(RuntimeError):
    pass


@dataclasses.dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """`nodes` Kafka nodes on 127.0.0.1 with data under `folder`; a context manager.

    `port` fixes the first node's client port (dev mode's 9092); other ports are free ones,
    chosen once and kept in `cluster.json`. `heap` is each JVM's -Xmx.
    """

    def __init__(self, folder: Path, nodes: int = 1, *, port: int | None = None, heap: str = "512m",
                 host: str = "127.0.0.1") -> None:
        if nodes not in (1, 3):
            raise ValueError("a cluster has 1 node or 3")
        self.folder, self.host, self.heap = Path(folder), host, heap
        self.cluster_id, layout = self._layout(nodes, port)
        self.nodes = {
            n: _Node(n, p, c, self.folder / f"node-{n}") for n, (p, c) in layout.items()
        }
        self._admin: AdminClient | None = None

    # --- shape -------------------------------------------------------------------------

    def _layout(self, nodes: int, port: int | None) -> tuple[str, dict[int, tuple[int, int]]]:
        """The cluster id and each node's (port, controller port): kept ones, or new ones saved."""
        saved = self.folder / "cluster.json"
        if saved.exists():
            state = json.loads(saved.read_text())
            layout = {int(n): (p, c) for n, (p, c) in state["nodes"].items()}
            if len(layout) != nodes:
                raise KafkaClusterError(f"{self.folder} holds a {len(layout)}-node cluster, not {nodes}")
            if port is not None:
                layout[1] = (port, layout[1][1])  # a client port may change; the voters' may not
        else:
            ports = free_ports(2 * nodes, self.host)
            layout = {n: (ports[2 * n - 2], ports[2 * n - 1]) for n in range(1, nodes + 1)}
            if port is not None:
                layout[1] = (port, layout[1][1])
            state = {"cluster_id": _random_cluster_id(), "nodes": {}}
        state["nodes"] = {str(n): list(ports) for n, ports in layout.items()}
        self.folder.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(state, indent=1) + "\n")
        return state["cluster_id"], layout

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{node.port}" for node in self.nodes.values())

    def pid(self, node: int) -> int | None:
        """The node's JVM process id while it runs."""
        process = self.nodes[node].process
        return process.pid if process is not None and process.poll() is None else None

    def log_path(self, node: int) -> Path:
        return self.nodes[node].log_path

    def _properties(self, node: _Node) -> str:
        size = len(self.nodes)
        replicas, min_isr = (3, 2) if size == 3 else (1, 1)
        voters = ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self.nodes.values())
        lines = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{node.port},CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{node.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": node.data,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": 10,  # 50 by default: slow to create with RF 3 on 2 cores
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": 0,
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 3000,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    # --- processes ---------------------------------------------------------------------

    def start(self, node: int | None = None, timeout: float = 90.0) -> KafkaCluster:
        """Start every node (formatting new data folders first), or restart one on its data."""
        targets = [self.nodes[node]] if node is not None else list(self.nodes.values())
        home = ensure_kafka()
        for target in targets:
            if target.running():
                raise KafkaClusterError(f"node {target.node_id} runs already")
            for port in (target.port, target.controller_port):
                if port_open(self.host, port):
                    raise KafkaClusterError(f"{self.host}:{port} is in use: stop what listens there, or remove "
                                            f"{self.folder / 'cluster.json'} to pick new ports")
        unformatted = [t for t in targets if not (t.data / "meta.properties").exists()]
        with ThreadPoolExecutor(len(unformatted) or 1) as pool:
            list(pool.map(lambda t: self._format(home, t), unformatted))
        started = time.monotonic()
        offsets = {t.node_id: self._launch(home, t) for t in targets}
        try:
            for target in targets:
                self._wait_ready(target, offsets[target.node_id], started + timeout)
            self._wait_registered({t.node_id for t in targets}, started + timeout)
        except BaseException:
            if node is None:
                self.stop()
            raise
        log.info("kafka started", nodes=[t.node_id for t in targets], seconds=round(time.monotonic() - started, 1),
                 bootstrap_servers=self.bootstrap_servers)
        return self

    def _format(self, home: Path, node: _Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        config = node.folder / "server.properties"
        config.write_text(self._properties(node))
        shutil.rmtree(node.data, ignore_errors=True)  # a half-formatted folder from an interrupted start
        done = subprocess.run(
            [*self._java(home, "256m"), "kafka.tools.StorageTool",
             "format", "-t", self.cluster_id, "-c", str(config)],
            capture_output=True, timeout=120,
        )
        if done.returncode != 0:
            raise KafkaClusterError(f"formatting node {node.node_id} failed: {(done.stdout + done.stderr).decode()[-2000:]}")

    def _java(self, home: Path, heap: str) -> list[str]:
        java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
        return [str(java), f"-Xmx{heap}", *JVM_OPTIONS, "-cp", str(home / "lib" / "*"),
                f"-Dlog4j2.configurationFile={package_file('log4j2.properties')}"]

    def _launch(self, home: Path, node: _Node) -> int:
        """Start the node's JVM; returns where in its log this run's lines begin."""
        config = node.folder / "server.properties"
        config.write_text(self._properties(node))  # ports may have changed (dev mode's --port)
        offset = node.log_path.stat().st_size if node.log_path.exists() else 0
        with open(node.log_path, "ab") as out:
            node.process = subprocess.Popen(
                [*self._java(home, self.heap), "kafka.Kafka", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is for the parent, which stops us in order
                preexec_fn=_die_with_parent,
            )
        return offset

    def _wait_ready(self, node: _Node, offset: int, deadline: float) -> None:
        assert node.process is not None
        with open(node.log_path, "rb") as out:
            out.seek(offset)
            seen = b""
            while READY_LINE not in seen:
                if node.process.poll() is not None:
                    raise KafkaClusterError(f"Kafka node {node.node_id} exited at start-up:\n{_tail(node.log_path)}")
                if time.monotonic() > deadline:
                    raise KafkaClusterError(f"Kafka node {node.node_id} not ready in time:\n{_tail(node.log_path)}")
                seen = seen[-100:] + out.read()
                time.sleep(0.05)

    def _wait_registered(self, node_ids: set[int], deadline: float) -> None:
        """Metadata answers and lists the nodes as brokers (unfenced) before we call them ready."""
        while True:
            try:
                brokers = set(self.admin().list_topics(timeout=2).brokers)
                if node_ids <= brokers:
                    return
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise KafkaClusterError(f"brokers {sorted(node_ids)} not in the metadata in time")
            time.sleep(0.1)

    def kill(self, node: int) -> None:
        """SIGKILL the node (no controlled shutdown), as a crash or an OOM kill does."""
        process = self.nodes[node].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused JVM dies all the same; no zombie stays stopped
            process.kill()
            process.wait()

    def pause(self, node: int) -> None:
        """Freeze the node's JVM (SIGSTOP): a hang, a long GC pause, a partitioned host."""
        self._signal(node, signal.SIGSTOP)

    def resume(self, node: int) -> None:
        self._signal(node, signal.SIGCONT)

    def _signal(self, node: int, signum: int) -> None:
        pid = self.pid(node)
        if pid is None:
            raise KafkaClusterError(f"node {node} is not running")
        os.kill(pid, signum)

    def stop(self, graceful: bool = True, timeout: float = 20.0) -> None:
        """Stop every node: SIGTERM (a controlled shutdown) then SIGKILL after `timeout`."""
        running = [n for n in self.nodes.values() if n.running()]
        for node in running:
            assert node.process is not None
            node.process.send_signal(signal.SIGCONT)
            node.process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("kafka node did not stop in time; killing it", node=node.node_id)
                node.process.kill()
                node.process.wait()
        self._admin = None
        if running:
            log.info("kafka stopped", nodes=[n.node_id for n in running])

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- what the fault tests ask ------------------------------------------------------

    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "logger": LIBRDKAFKA_LOG})
        return self._admin

    def leader_of(self, topic: str, partition: int, timeout: float = 5.0) -> int:
        """The node that leads `topic`'s `partition` now (-1 while none does, or while no node
        answers the metadata request in time: right after a kill, the client may still be
        asking the dead node)."""
        try:
            meta = self.admin().list_topics(topic, timeout=timeout).topics[topic]
        except KafkaException:
            return -1
        if meta.error is not None:
            raise KafkaClusterError(f"topic {topic!r}: {meta.error}")
        return meta.partitions[partition].leader

    def active_controller(self) -> int:
        """The KRaft quorum's leader, as the running voters last recorded it (-1 if unknown).

        Clients cannot ask: a KRaft broker answers DescribeCluster with a random broker as the
        "controller". Each voter writes its view of the election to `quorum-state`; the view
        with the highest epoch among the running nodes is the current one.
        """
        best_epoch, leader = -1, -1
        for node in self.nodes.values():
            if not node.running():
                continue
            try:
                state = json.loads((node.data / "__cluster_metadata-0" / "quorum-state").read_text())
            except (FileNotFoundError, ValueError):
                continue
            if state.get("leaderEpoch", -1) > best_epoch and state.get("leaderId", -1) >= 0:
                best_epoch, leader = state["leaderEpoch"], state["leaderId"]
        return leader


def _random_cluster_id() -> str:
    """A Kafka Uuid as StorageTool's `random-uuid` prints it (no JVM start for it)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _die_with_parent() -> None:
    """Linux: SIGKILL the JVM when the thread that started it dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
