"""The kopf wiring, without an API server: what kopf registers (a timer on workerautoscalers,
a delete handler, the start-up settings with mandatory peering) and the metrics' clean-up.
The timer against a real API server: tests/integration/test_operator_timer.py; decisions
against the real broker: tests/integration/test_operator_reconciler.py; the whole operator:
tests/e2e/test_operator.py.
"""

from __future__ import annotations

import logging

import kopf
import kubernetes

from streamtrack.cli import _parser
from streamtrack.config import load_settings
from streamtrack.operator import handlers, metrics
from streamtrack.operator.kube import KubernetesApi
from streamtrack.operator.reconciler import Reconciler


def test_kopf_registers_a_timer_a_delete_handler_and_the_startup() -> None:
    registry = kopf.get_default_registry()
    timers = [h for h in registry._spawning.get_all_handlers() if h.id == "autoscale"]
    assert len(timers) == 1 and timers[0].interval == handlers.TICK_SECONDS
    selector = timers[0].selector
    assert (selector.group, selector.version, selector.any_name) == ("streamtrack.io", "v1alpha1", "workerautoscalers")
    # no finalizer: it would keep a WorkerAutoscaler forever once the operator's token is gone
    assert timers[0].requires_finalizer is False
    assert [h.id for h in registry._watching.get_all_handlers()] == ["forget"]
    assert not registry._changing.get_all_handlers()
    assert "configure" in [h.id for h in registry._activities.get_all_handlers()]


def test_startup_settings_make_peering_mandatory_with_a_random_priority() -> None:
    first, second = kopf.OperatorSettings(), kopf.OperatorSettings()
    reconciler = Reconciler(KubernetesApi(kubernetes.client.ApiClient()))  # never called here
    memo = kopf.Memo(reconciler=reconciler)
    handlers.configure(settings=first, memo=memo)
    handlers.configure(settings=second, memo=memo)
    assert memo["reconciler"] is reconciler  # the one `streamtrack operator` passed is kept
    assert (first.peering.name, first.peering.mandatory, first.peering.standalone) == ("streamtrack", True, False)
    assert 1 <= first.peering.priority <= 1_000_000
    assert first.posting.level == logging.WARNING


def test_a_deleted_resource_is_forgotten() -> None:
    metrics.failed("shop", "gone", "TopicMissing")
    labels = {"namespace": "shop", "autoscaler": "gone", "reason": "TopicMissing"}
    assert metrics.REGISTRY.get_sample_value("streamtrack_operator_lag_read_failures_total", labels) == 1
    memo = kopf.Memo()
    handlers.forget(event={"type": "MODIFIED"}, name="gone", namespace="shop", uid="u-1", memo=memo)
    assert metrics.REGISTRY.get_sample_value("streamtrack_operator_lag_read_failures_total", labels) == 1
    handlers.forget(event={"type": "DELETED"}, name="gone", namespace="shop", uid="u-1", memo=memo)
    assert metrics.REGISTRY.get_sample_value("streamtrack_operator_lag_read_failures_total", labels) is None
    assert memo["deleted"] == {"u-1"}  # its timer, which kopf keeps, does nothing more


def test_the_operator_command_takes_its_namespace() -> None:
    args = _parser().parse_args(["operator", "--namespace", "shop"])
    assert args.command == "operator" and args.operator_namespace == "shop"
    settings = load_settings(env={}, operator_namespace=args.operator_namespace)
    assert (settings.operator_namespace, settings.operator_metrics_port, settings.operator_liveness_port) == (
        "shop", 9102, 8080
    )
    assert load_settings(env={"STREAMTRACK_OPERATOR_NAMESPACE": "prod"}).operator_namespace == "prod"
