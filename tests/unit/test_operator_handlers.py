"""The kopf wiring, by calling the handlers directly (no API server can run here).

What kopf registers (a timer on workerautoscalers, a delete handler that adds no
finalizer, the start-up settings with mandatory peering), and that the timer reconciles
only when the resource's poll interval has passed. The cases here need no Kafka (the
target is missing, the spec is invalid); decisions against the real broker are in
tests/integration/test_operator_reconciler.py.
"""

from __future__ import annotations

import logging

import kopf

from streamtrack.cli import _parser
from streamtrack.config import load_settings
from streamtrack.operator import handlers, metrics
from streamtrack.operator.reconciler import Reconciler
from tests.fixtures.fake_kube import FakeKube

SPEC = {
    "scaleTargetRef": {"name": "worker"},
    "kafka": {"bootstrapServers": "127.0.0.1:9", "topic": "events", "consumerGroup": "workers"},
    "pollIntervalSeconds": 30,
}
LOG = logging.getLogger("test-operator")


def _timer(memo: kopf.Memo, status: dict[str, object], spec: dict[str, object] = SPEC) -> None:
    handlers.autoscale(spec=spec, status=status, name="wa", namespace="shop", uid="u-9", meta={"generation": 2},
                       memo=memo, logger=LOG)


def test_kopf_registers_a_timer_a_delete_handler_and_the_startup() -> None:
    registry = kopf.get_default_registry()
    timers = [h for h in registry._spawning.get_all_handlers() if h.id == "autoscale"]
    assert len(timers) == 1 and timers[0].interval == handlers.TICK_SECONDS
    selector = timers[0].selector
    assert (selector.group, selector.version, selector.any_name) == ("streamtrack.io", "v1alpha1", "workerautoscalers")
    deletes = [h for h in registry._changing.get_all_handlers() if h.id == "forget"]
    assert len(deletes) == 1 and deletes[0].requires_finalizer is False  # deletion is never blocked
    assert "configure" in [h.id for h in registry._activities.get_all_handlers()]


def test_startup_settings_make_peering_mandatory_with_a_random_priority() -> None:
    first, second = kopf.OperatorSettings(), kopf.OperatorSettings()
    reconciler = Reconciler(FakeKube())
    memo = kopf.Memo(reconciler=reconciler)
    handlers.configure(settings=first, memo=memo)
    handlers.configure(settings=second, memo=memo)
    assert memo["reconciler"] is reconciler  # the one `streamtrack operator` passed is kept
    assert (first.peering.name, first.peering.mandatory, first.peering.standalone) == ("streamtrack", True, False)
    assert 1 <= first.peering.priority <= 1_000_000
    assert first.posting.level == logging.WARNING


def test_the_timer_reconciles_once_per_poll_interval() -> None:
    kube = FakeKube()  # no Deployment "worker": the reconciler reports TargetMissing without Kafka
    clock = [1_800_000_000.0]
    memo = kopf.Memo(reconciler=Reconciler(kube, lambda: clock[0]))

    _timer(memo, {})
    status = kube.statuses[("shop", "wa")]
    assert status["conditions"][0]["reason"] == "TargetMissing"
    assert len(kube.events) == 1

    clock[0] += 10  # < 30 s: the tick is skipped, nothing written
    kube.statuses.clear()
    _timer(memo, status)
    assert kube.statuses == {}

    clock[0] += 20
    _timer(memo, status)
    assert kube.statuses[("shop", "wa")]["lastPollTime"] == "2027-01-15T08:00:30Z"
    assert len(kube.events) == 1  # same reason: no second event


def test_an_invalid_spec_is_reported_in_the_status() -> None:
    kube = FakeKube(deployments={("shop", "worker"): 2})
    memo = kopf.Memo(reconciler=Reconciler(kube, lambda: 1_800_000_000.0))
    _timer(memo, {}, {**SPEC, "minReplicas": 5, "maxReplicas": 2})
    ready = kube.statuses[("shop", "wa")]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "minReplicas (5) must not exceed maxReplicas (2)" in ready["message"]
    assert kube.scale_patches == [] and kube.deployments[("shop", "worker")] == 2


def test_delete_forgets_the_metrics() -> None:
    metrics.failed("shop", "gone", "TopicMissing")
    labels = {"namespace": "shop", "autoscaler": "gone", "reason": "TopicMissing"}
    assert metrics.REGISTRY.get_sample_value("streamtrack_operator_lag_read_failures_total", labels) == 1
    handlers.forget(name="gone", namespace="shop")
    assert metrics.REGISTRY.get_sample_value("streamtrack_operator_lag_read_failures_total", labels) is None


def test_the_operator_command_takes_its_namespace() -> None:
    args = _parser().parse_args(["operator", "--namespace", "shop"])
    assert args.command == "operator" and args.operator_namespace == "shop"
    settings = load_settings(env={}, operator_namespace=args.operator_namespace)
    assert (settings.operator_namespace, settings.operator_metrics_port, settings.operator_liveness_port) == (
        "shop", 9102, 8080
    )
    assert load_settings(env={"STREAMTRACK_OPERATOR_NAMESPACE": "prod"}).operator_namespace == "prod"
