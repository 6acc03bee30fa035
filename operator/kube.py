"""The operator's only door to the Kubernetes API: a small seam and its real implementation.

The reconciler needs five calls (read and patch a Deployment's scale, patch the resource's
status, create an Event, read a Secret). They are a Protocol, the reconciler's whole view of
Kubernetes; `KubernetesApi` is the thin real one (the official `kubernetes` client), kept free
of decisions. Tests run it against a real API server (tests/fixtures/kube.py).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Protocol

from streamtrack.errors import ConfigError
from streamtrack.operator.resource import GROUP, KIND, PLURAL, VERSION

COMPONENT = "streamtrack-operator"
# JSON merge patch: a dict body sets its keys, null deletes one, lists are replaced whole.
# (The client would otherwise pick json-patch+json for apps/v1, which takes a list of operations.)
MERGE_PATCH = "application/merge-patch+json"


class Kube(Protocol):
    def read_scale(self, namespace: str, name: str) -> int | None:
        """spec.replicas of the Deployment's scale subresource; None when there is no such Deployment."""

    def patch_scale(self, namespace: str, name: str, replicas: int) -> None: ...

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """JSON merge patch of the status: a None value removes that field."""

    def create_event(
        self, namespace: str, involved: dict[str, str], type_: str, reason: str, message: str
    ) -> None: ...

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's keys and decoded values; None when it does not exist."""


class KubernetesApi:
    """`Kube` through the official client: `client` when given, else the in-cluster config, else
    the kubeconfig ($KUBECONFIG or ~/.kube/config)."""

    def __init__(self, client: Any = None) -> None:
        import kubernetes

        if client is None:
            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                try:
                    kubernetes.config.load_kube_config()
                except kubernetes.config.ConfigException as exc:
                    raise ConfigError(f"no Kubernetes API to talk to (not in a pod, no kubeconfig): {exc}") from exc
        self._apps = kubernetes.client.AppsV1Api(client)
        self._core = kubernetes.client.CoreV1Api(client)
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._missing = kubernetes.client.ApiException

    def read_scale(self, namespace: str, name: str) -> int | None:
        try:
            scale = self._apps.read_namespaced_deployment_scale(name, namespace)
        except self._missing as exc:
            if exc.status == 404:
                return None
            raise
        return int(scale.spec.replicas or 0)

    def patch_scale(self, namespace: str, name: str, replicas: int) -> None:
        self._apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH
        )

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
        )

    def create_event(self, namespace: str, involved: dict[str, str], type_: str, reason: str, message: str) -> None:
        now = dt.datetime.now(dt.UTC)
        self._core.create_namespaced_event(namespace, {
            "metadata": {"generateName": f"{involved['name']}."},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "namespace": namespace, **involved},
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        })

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except self._missing as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
