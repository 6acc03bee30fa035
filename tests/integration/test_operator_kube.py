"""The operator's real Kubernetes seam (`KubernetesApi`) against a real API server.

No API server can run on the development machine, so this runs only when asked:
STREAMTRACK_TEST_KUBERNETES=1 with a kubeconfig for a throwaway cluster (e.g. `kind create
cluster`; see operator/examples/kind/README.md). It installs the WorkerAutoscaler CRD,
works in a namespace of its own and deletes it afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streamtrack.operator.kube import KubernetesApi
from streamtrack.operator.resource import GROUP, PLURAL, VERSION

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.skipif(
        not os.environ.get("STREAMTRACK_TEST_KUBERNETES"),
        reason="set STREAMTRACK_TEST_KUBERNETES=1 and a kubeconfig of a throwaway cluster (e.g. kind) to run",
    ),
]
CRD = Path(__file__).resolve().parents[2] / "helm/streamtrack/crds/workerautoscalers.streamtrack.io.yaml"


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    import kubernetes

    kube = KubernetesApi()  # loads the configuration
    del kube
    extensions = kubernetes.client.ApiextensionsV1Api()
    try:
        extensions.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:  # already installed
            raise
    for _ in range(60):  # established within seconds on kind
        conditions = extensions.read_custom_resource_definition(f"{PLURAL}.{GROUP}").status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        time.sleep(0.5)
    name = f"st-operator-{uuid.uuid4().hex[:6]}"
    core = kubernetes.client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def test_the_seam_reads_and_writes_what_the_reconciler_needs(namespace: str) -> None:
    import kubernetes

    apps, custom, core = (kubernetes.client.AppsV1Api(), kubernetes.client.CustomObjectsApi(),
                          kubernetes.client.CoreV1Api())
    labels = {"app": "worker"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "worker"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]},
        }},
    })
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkerAutoscaler", "metadata": {"name": "wa"},
        "spec": {"scaleTargetRef": {"name": "worker"},
                 "kafka": {"bootstrapServers": "kafka:9092", "topic": "events", "consumerGroup": "workers"}},
    })
    core.create_namespaced_secret(namespace, {"metadata": {"name": "kafka-auth"},
                                              "stringData": {"sasl.username": "u", "sasl.password": "p"}})
    kube = KubernetesApi()

    assert kube.read_scale(namespace, "worker") == 1
    assert kube.read_scale(namespace, "missing") is None
    kube.patch_scale(namespace, "worker", 3)
    assert kube.read_scale(namespace, "worker") == 3

    kube.patch_status(namespace, "wa", {"lag": 42, "estimatedDrainSeconds": 7.5,
                                        "conditions": [{"type": "Ready", "status": "True", "reason": "Scaled"}]})
    kube.patch_status(namespace, "wa", {"estimatedDrainSeconds": None})
    status = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "wa")["status"]
    assert status["lag"] == 42 and "estimatedDrainSeconds" not in status
    assert custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "wa")["spec"]["minReplicas"] == 1

    kube.create_event(namespace, {"name": "wa"}, "Normal", "ScaledUp", "1 -> 3 replicas")
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=wa").items
    assert [(e.reason, e.message) for e in events] == [("ScaledUp", "1 -> 3 replicas")]

    assert kube.read_secret(namespace, "kafka-auth") == {"sasl.username": "u", "sasl.password": "p"}
    assert kube.read_secret(namespace, "nope") is None
