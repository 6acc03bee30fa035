"""kopf wiring: start-up settings (peering), the per-resource timer, clean-up on delete.

No finalizer: kopf puts one on every resource with a timer (to stop the timer before the
resource goes), which blocks deletion whenever the operator cannot act. `helm uninstall` and
`kubectl delete namespace` remove the operator's ServiceAccount, so its token, together with
the WorkerAutoscalers, which then never go (tests/e2e/test_operator.py shows both). So the
timer is registered as needing none, and since kopf then keeps a deleted resource's timer
ticking, the DELETED watch event marks its uid as gone and the timer does nothing more for it.

The handlers are thin: the timer asks the `Reconciler` (kept in kopf's memo) whether the
resource's poll interval has passed and, if so, reconciles it. kopf's timers have one fixed
interval, so the timer ticks every TICK_SECONDS and each resource's own
`pollIntervalSeconds` is honoured through `lastPollTime` in its status.
Leader election is kopf's peering: every replica joins the `streamtrack` KopfPeering
with a random priority; only the highest acts, the others pause, and when the leader stops
its entry expires and the next one takes over. Peering is mandatory: with no peering
resource the operator waits rather than risk two replicas scaling at once (kopf freezes
all replicas of equal priority, hence the random priority).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any

import kopf

from streamtrack.operator import metrics
from streamtrack.operator.reconciler import Reconciler, Target
from streamtrack.operator.resource import GROUP, PLURAL, VERSION

TICK_SECONDS = 5.0
PEERING_NAME = "streamtrack"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Peering settings; a reconciler when kopf was started without one (`kopf run -m ...`)."""
    if "reconciler" not in memo:
        from streamtrack.operator.kube import KubernetesApi

        memo["reconciler"] = Reconciler(KubernetesApi())
    settings.peering.name = PEERING_NAME
    settings.peering.mandatory = True
    settings.peering.priority = random.randint(1, 1_000_000)
    settings.posting.level = logging.WARNING  # kopf's own events: only problems; decisions are ours


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS)
def autoscale(
    spec: Any, status: Any, name: str, namespace: str, uid: str, meta: Any, memo: kopf.Memo,
    logger: logging.Logger | kopf.Logger, **_: Any,
) -> None:
    if uid in memo.get("deleted", ()):
        return  # kopf keeps the timer of a deleted resource (see the module's note)
    reconciler: Reconciler = memo["reconciler"]
    status = dict(status or {})
    if not reconciler.due(spec, status):
        return
    target = Target(namespace, name, uid, (meta or {}).get("generation"))
    outcome = reconciler.reconcile(target, dict(spec or {}), status)
    logger.info(outcome.status.get("lastDecision", ""))


def _without_finalizer(handler_id: str) -> None:
    """Re-register a timer as needing no finalizer (kopf's decorator has no such option)."""
    spawning = kopf.get_default_registry()._spawning
    for i, handler in enumerate(spawning._handlers):
        if handler.id == handler_id:
            spawning._handlers[i] = dataclasses.replace(handler, requires_finalizer=False)


_without_finalizer("autoscale")


@kopf.on.event(GROUP, VERSION, PLURAL)
def forget(event: dict[str, Any], name: str, namespace: str, uid: str, memo: kopf.Memo, **_: Any) -> None:
    """A deleted resource: its timer stops acting, its metrics go. (A watch event: it needs no
    finalizer, unlike kopf.on.delete, which sees no deletion of a resource without one.)"""
    if event.get("type") == "DELETED":
        memo.setdefault("deleted", set()).add(uid)
        metrics.forget(namespace, name)


def run(namespace: str, host: str, metrics_port: int, liveness_port: int) -> int:
    """Run the operator in `namespace` until stopped (SIGTERM/SIGINT, handled by kopf).
    Metrics and liveness listen on `host` (STREAMTRACK_HOST: the chart sets 0.0.0.0)."""
    from streamtrack.operator.kube import KubernetesApi

    metrics.serve(metrics_port, host)
    kopf.run(
        namespaces=[namespace],
        clusterwide=False,
        standalone=False,
        peering_name=PEERING_NAME,
        liveness_endpoint=f"http://{host}:{liveness_port}/healthz",
        memo=kopf.Memo(reconciler=Reconciler(KubernetesApi())),
    )
    return 0
