"""The kopf timer handler against the test bed's API server (tests/fixtures/kube.py): it
reconciles only when the resource's poll interval has passed. The cases need no Kafka (the
target is missing, the spec is invalid); time is a clock the test moves.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import kopf

from streamtrack.operator import handlers
from streamtrack.operator.kube import KubernetesApi
from streamtrack.operator.reconciler import Reconciler
from tests.fixtures.kube import KubeNamespace

LOG = logging.getLogger("test-operator")


def _spec(worker: str, **changes: Any) -> dict[str, Any]:
    return {"scaleTargetRef": {"name": worker},
            "kafka": {"bootstrapServers": "127.0.0.1:9", "topic": "events", "consumerGroup": "workers"},
            "pollIntervalSeconds": 30, **changes}


def _timer(ns: KubeNamespace, memo: kopf.Memo, name: str, uid: str, spec: dict[str, Any]) -> None:
    handlers.autoscale(spec=spec, status=ns.status(name), name=name, namespace=ns.name, uid=uid,
                       meta={"generation": 1}, memo=memo, logger=LOG)


def test_the_timer_reconciles_once_per_poll_interval(kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace
    name, spec = f"wa-{uuid.uuid4().hex[:6]}", _spec(f"absent-{uuid.uuid4().hex[:6]}")
    uid = ns.create_autoscaler(name, spec)  # its Deployment does not exist: TargetMissing, no Kafka read
    clock = [1_800_000_000.0]
    memo = kopf.Memo(reconciler=Reconciler(KubernetesApi(ns.cluster.api_client()), lambda: clock[0]))

    _timer(ns, memo, name, uid, spec)
    first = ns.status(name)
    assert first["conditions"][0]["reason"] == "TargetMissing"
    assert first["lastPollTime"] == "2027-01-15T08:00:00Z"

    clock[0] += 10  # < 30 s: the tick is skipped, nothing written
    _timer(ns, memo, name, uid, spec)
    assert ns.status(name) == first

    clock[0] += 20
    _timer(ns, memo, name, uid, spec)
    assert ns.status(name)["lastPollTime"] == "2027-01-15T08:00:30Z"
    assert [e.reason for e in ns.events(name)] == ["TargetMissing"]  # same reason: no second event


def test_an_invalid_spec_is_reported_in_the_status(kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace
    worker, name = f"worker-{uuid.uuid4().hex[:6]}", f"wa-{uuid.uuid4().hex[:6]}"
    ns.create_deployment(worker, 2)
    uid = ns.create_autoscaler(name, _spec(worker))
    memo = kopf.Memo(reconciler=Reconciler(KubernetesApi(ns.cluster.api_client()), lambda: 1_800_000_000.0))

    # what a cluster with an older CRD (no minReplicas <= maxReplicas rule) would let through
    _timer(ns, memo, name, uid, _spec(worker, minReplicas=5, maxReplicas=2))

    ready = ns.status(name)["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "minReplicas (5) must not exceed maxReplicas (2)" in ready["message"]
    assert ns.replicas(worker) == 2
