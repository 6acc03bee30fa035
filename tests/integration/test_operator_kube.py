"""The operator's Kubernetes seam (`KubernetesApi`) against the test bed's API server
(tests/fixtures/kube.py): each of the five calls the reconciler makes, as a cluster answers them."""

from __future__ import annotations

from typing import Any

import kubernetes

from streamtrack.operator.kube import KubernetesApi
from streamtrack.operator.resource import GROUP, PLURAL, VERSION
from tests.fixtures.kube import KubeNamespace


def _custom(ns: KubeNamespace, name: str) -> dict[str, Any]:
    client = kubernetes.client.CustomObjectsApi(ns.cluster.api_client())
    return dict(client.get_namespaced_custom_object(GROUP, VERSION, ns.name, PLURAL, name))


def test_the_seam_reads_and_writes_what_the_reconciler_needs(kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace
    ns.create_deployment("worker", 1)
    ns.create_autoscaler("wa", {"scaleTargetRef": {"name": "worker"},
                                "kafka": {"bootstrapServers": "kafka:9092", "topic": "events", "consumerGroup": "workers"}})
    kubernetes.client.CoreV1Api(ns.cluster.api_client()).create_namespaced_secret(ns.name, {
        "metadata": {"name": "kafka-auth"}, "stringData": {"sasl.username": "u", "sasl.password": "p"}})
    kube = KubernetesApi(ns.cluster.api_client())

    assert kube.read_scale(ns.name, "worker") == 1
    assert kube.read_scale(ns.name, "missing") is None
    kube.patch_scale(ns.name, "worker", 3)
    assert kube.read_scale(ns.name, "worker") == 3
    kube.patch_scale(ns.name, "worker", 0)
    assert kube.read_scale(ns.name, "worker") == 0  # the API leaves a zero out of its answer

    kube.patch_status(ns.name, "wa", {"lag": 42, "estimatedDrainSeconds": 7.5,
                                      "conditions": [{"type": "Ready", "status": "True", "reason": "Scaled"}]})
    kube.patch_status(ns.name, "wa", {"estimatedDrainSeconds": None, "notInTheSchema": 1})
    status = _custom(ns, "wa")["status"]
    assert status == {"lag": 42, "conditions": [{"type": "Ready", "status": "True", "reason": "Scaled"}]}
    assert _custom(ns, "wa")["spec"]["minReplicas"] == 1  # the CRD's defaults, filled by the server

    kube.create_event(ns.name, {"name": "wa"}, "Normal", "ScaledUp", "1 -> 3 replicas")
    assert [(e.reason, e.message, e.involved_object.kind) for e in ns.events("wa")] == [
        ("ScaledUp", "1 -> 3 replicas", "WorkerAutoscaler")]

    assert kube.read_secret(ns.name, "kafka-auth") == {"sasl.username": "u", "sasl.password": "p"}
    assert kube.read_secret(ns.name, "nope") is None
