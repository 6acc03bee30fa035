"""Reliability report: break each component under load, count every event, print the table.

    .venv/bin/python -P bench/faults.py                      # every scenario once (~2 min)
    .venv/bin/python -P bench/faults.py --kills 10 --outage 20 --rounds 3   # the soak

The scenarios are the fault tests' (tests/fixtures/faults.py), run longer here: the real
local broker (Tansu) and the real embedded ClickHouse, the API over real HTTP, clients
posting /batch all the time. Per scenario: events sent, acknowledged (202), stored, lost
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
from streamtrack.kafka.local_broker import LocalBroker  # noqa: E402
from streamtrack.store import EventStore, open_store  # noqa: E402
from streamtrack.telemetry.logs import configure_logging  # noqa: E402
from tests.fixtures import faults  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the worker in its scenario")
    parser.add_argument("--every", type=int, default=2000, help="events committed between two kills")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds ClickHouse is down")
    parser.add_argument("--broker-down", type=float, default=5.0, help="seconds the broker is down")
    parser.add_argument("--rounds", type=int, default=1, help="times to run each scenario")
    parser.add_argument("--only", choices=["kills", "broker", "hang", "clickhouse", "poison"], help="run one scenario")
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

    scenarios: dict[str, Callable[[LocalBroker], faults.FaultResult]] = {
        "kills": lambda broker: faults.worker_sigkills(broker, fresh_store(), _dir(data_dir), kills=args.kills,
                                                       every=args.every),
        "broker": lambda broker: faults.broker_restart(fresh_store(), _dir(data_dir), down_s=args.broker_down),
        "hang": lambda broker: faults.broker_freeze(fresh_store(), _dir(data_dir), frozen_s=args.broker_down),
        "clickhouse": lambda broker: faults.store_outage(broker, fresh_store(), _dir(data_dir), outage_s=args.outage),
        "poison": lambda broker: faults.poison_records(broker, fresh_store(), _dir(data_dir)),
    }
    rows = []
    with LocalBroker(log_path=data_dir / "broker.log") as broker:
        for _ in range(args.rounds):
            for name, scenario in scenarios.items():
                if args.only and name != args.only:
                    continue
                result = scenario(broker)
                rows.append(result.row())
                print(result.row(), file=sys.stderr, flush=True)
    keeper.close()
    print(faults.TABLE_HEAD)
    print("\n".join(rows))
    return 0


def _dir(parent: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=parent))


if __name__ == "__main__":
    sys.exit(main())
