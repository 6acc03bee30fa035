"""Reliability report: break each component under load, count every event, print the table.

    .venv/bin/python bench/faults.py                      # every scenario once (~6 min)
    .venv/bin/python bench/faults.py --kills 10 --outage 20 --rounds 3   # the soak
    .venv/bin/python bench/faults.py --only leader-kills --leader-kills 10

The scenarios are the fault tests' (tests/fixtures/faults.py on one Apache Kafka node,
tests/fixtures/cluster_faults.py on a 3-node cluster with RF 3 and min.insync.replicas 2),
run longer here: the real embedded ClickHouse, the API over real HTTP, clients posting
/batch all the time. Per scenario: events sent, acknowledged (202), stored, lost
(acknowledged, not stored), duplicated (rows beyond one per event) and recovery time.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.fixtures; appended, so the repository's operator/ never shadows the stdlib

from streamtrack.config import load_settings  # noqa: E402
from streamtrack.kafka.apache import KafkaCluster  # noqa: E402
from streamtrack.store import EventStore, open_store  # noqa: E402
from streamtrack.telemetry.logs import configure_logging  # noqa: E402
from tests.fixtures import cluster_faults, faults  # noqa: E402

CLUSTER = ("leader-kills", "controller", "leader-hang", "worker-failover")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the worker in its scenario")
    parser.add_argument("--every", type=int, default=2000, help="events committed between two kills")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds ClickHouse is down")
    parser.add_argument("--broker-down", type=float, default=5.0, help="seconds the broker is down")
    parser.add_argument("--hang", type=float, default=10.0, help="seconds a broker is frozen (SIGSTOP)")
    parser.add_argument("--leader-kills", type=int, default=5, help="SIGKILLs of the busiest partition's leader")
    parser.add_argument("--rounds", type=int, default=1, help="times to run each scenario")
    parser.add_argument("--only", choices=["kills", "broker", "hang", "clickhouse", "poison", *CLUSTER, "dev"],
                        help="run one scenario")
    args = parser.parse_args()
    configure_logging("error", json=True)
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)  # connection refusals while the broker is down

    data_dir = Path(tempfile.mkdtemp(prefix="streamtrack-faults-"))
    engine = load_settings(env={}, data_dir=str(data_dir))
    keeper = open_store(engine)  # the one embedded engine of this process

    def fresh_store() -> EventStore:
        store = open_store(engine.replace(clickhouse_database=f"faults_{secrets.token_hex(4)}"))
        store.migrate()
        return store

    scenarios: dict[str, Callable[[KafkaCluster], faults.FaultResult]] = {
        "kills": lambda broker: faults.worker_sigkills(broker, fresh_store(), _dir(data_dir), kills=args.kills,
                                                       every=args.every),
        "broker": lambda broker: faults.broker_restart(broker, fresh_store(), _dir(data_dir), down_s=args.broker_down),
        "hang": lambda broker: faults.broker_freeze(broker, fresh_store(), _dir(data_dir), frozen_s=args.hang),
        "clickhouse": lambda broker: faults.store_outage(broker, fresh_store(), _dir(data_dir), outage_s=args.outage),
        "poison": lambda broker: faults.poison_records(broker, fresh_store(), _dir(data_dir)),
        "leader-kills": lambda cluster: cluster_faults.leader_kills(cluster, fresh_store(), _dir(data_dir),
                                                                    kills=args.leader_kills),
        "controller": lambda cluster: cluster_faults.controller_kill(cluster, fresh_store(), _dir(data_dir)),
        "leader-hang": lambda cluster: cluster_faults.leader_freeze(cluster, fresh_store(), _dir(data_dir),
                                                                    frozen_s=args.hang),
        "worker-failover": lambda cluster: cluster_faults.worker_kill_in_failover(cluster, fresh_store(), _dir(data_dir)),
        "dev": lambda _: cluster_faults.dev_kill(_dir(data_dir)),
    }
    chosen = [name for name in scenarios if not args.only or name == args.only]
    rows = []
    single = KafkaCluster(data_dir / "kafka", nodes=1)
    cluster = KafkaCluster(data_dir / "kafka-cluster", nodes=3)
    try:
        if any(name not in CLUSTER for name in chosen):
            single.start()
        if any(name in CLUSTER for name in chosen):
            cluster.start()
        for _ in range(args.rounds):
            for name in chosen:
                result = scenarios[name](cluster if name in CLUSTER else single)
                rows.append(result.row())
                print(result.row(), file=sys.stderr, flush=True)
    finally:
        single.stop()
        cluster.stop(graceful=False)
        keeper.close()
    print(faults.TABLE_HEAD)
    print("\n".join(rows))
    return 0


def _dir(parent: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=parent))


if __name__ == "__main__":
    sys.exit(main())
