"""The chart and k8s/ against a real API server (tests/fixtures/kube.py), with the real helm and
kubectl binaries: what the schema checks of tests/deploy/ cannot see (admission, CRD
establishment, RBAC escalation rules, defaulting, field ownership on upgrade).

No kubelet or controller manager runs, so nothing here waits for pods: `helm install` runs
without --wait and with --no-hooks (the migration Job would never complete); the Job itself is
checked with a server-side dry run. Kafka and ClickHouse are external (values point at the
loopback test bed): the Strimzi and Altinity subcharts stay off because their charts and CRDs
cannot be downloaded here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kube import RELEASE_VALUES, KubeCluster, installable_chart

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installable_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def values(tmp_path: Path) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(RELEASE_VALUES))
    return path


def _status(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    return json.loads(cluster.helm("status", "st", "-n", namespace, "-o", "json").stdout)


def _get(cluster: KubeCluster, namespace: str, *what: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *what, "-n", namespace, "-o", "json").stdout)


def test_install_upgrade_rollback_uninstall(kube_cluster: KubeCluster, chart: Path, values: Path) -> None:
    namespace = f"helm-{uuid.uuid4().hex[:6]}"
    helm = ("-n", namespace, "-f", str(values), "--no-hooks")

    kube_cluster.helm("install", "st", str(chart), "--create-namespace", *helm)

    assert _status(kube_cluster, namespace)["info"]["status"] == "deployed"
    for crd in ("workerautoscalers.streamtrack.io", "kopfpeerings.kopf.dev"):
        kube_cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")
    names = {d["metadata"]["name"] for d in _get(kube_cluster, namespace, "deployments")["items"]}
    assert names == {"st-streamtrack-api", "st-streamtrack-worker", "st-streamtrack-operator"}
    autoscaler = _get(kube_cluster, namespace, "workerautoscaler", "st-streamtrack-worker")
    assert autoscaler["spec"]["kafka"]["bootstrapServers"] == RELEASE_VALUES["kafka"]["external"]["bootstrapServers"]
    assert autoscaler["spec"]["scaleUp"] == {"maxStep": 4, "maxStepPercent": 100, "stabilizationWindowSeconds": 0}
    _get(kube_cluster, namespace, "kopfpeering", "streamtrack")
    # the worker Deployment leaves spec.replicas to the operator: the server defaults it to 1
    worker = _get(kube_cluster, namespace, "deployment", "st-streamtrack-worker")
    assert worker["spec"]["replicas"] == 1

    # the operator scales the workers; an upgrade must not take that back
    kube_cluster.kubectl("scale", "deployment/st-streamtrack-worker", "--replicas=5", "-n", namespace)
    kube_cluster.helm("upgrade", "st", str(chart), *helm, "--set", "operator.autoscaler.maxReplicas=20")

    assert _status(kube_cluster, namespace)["version"] == 2
    assert _get(kube_cluster, namespace, "workerautoscaler", "st-streamtrack-worker")["spec"]["maxReplicas"] == 20
    assert _get(kube_cluster, namespace, "deployment", "st-streamtrack-worker")["spec"]["replicas"] == 5

    kube_cluster.helm("rollback", "st", "1", "-n", namespace, "--no-hooks")

    assert _status(kube_cluster, namespace)["version"] == 3
    assert _get(kube_cluster, namespace, "workerautoscaler", "st-streamtrack-worker")["spec"]["maxReplicas"] == 12
    history = json.loads(kube_cluster.helm("history", "st", "-n", namespace, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]

    kube_cluster.helm("uninstall", "st", "-n", namespace)

    assert _get(kube_cluster, namespace, "deployments,workerautoscalers,roles,serviceaccounts")["items"] == [
        i for i in _get(kube_cluster, namespace, "serviceaccounts")["items"] if i["metadata"]["name"] == "default"
    ]
    kube_cluster.kubectl("get", "crd", "workerautoscalers.streamtrack.io")  # Helm never deletes CRDs


def test_the_migration_hook_job_is_accepted(kube_cluster: KubeCluster, chart: Path, values: Path) -> None:
    """The hook Job is what --no-hooks left out above: the server validates it without running it."""
    namespace = f"hook-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", namespace)
    manifest = kube_cluster.helm("template", "st", str(chart), "-n", namespace, "-f", str(values),
                                 "--show-only", "templates/migrate-job.yaml").stdout
    path = Path(kube_cluster.work) / f"{namespace}-job.yaml"
    path.write_text(manifest)

    applied = kube_cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))

    assert applied.stdout.strip() == "job.batch/st-streamtrack-migrate created (server dry run)"


def test_the_k8s_folder_is_accepted(kube_cluster: KubeCluster) -> None:
    """`kubectl apply -k k8s/` (docs/deploy.md): the CRDs for real (a dry run cannot establish them),
    then everything else as a server-side dry run in the namespace the kustomization names."""
    kustomization = yaml.safe_load((ROOT / "k8s/kustomization.yaml").read_text())
    namespace = kustomization["namespace"]
    kube_cluster.kubectl("create", "namespace", namespace)
    kube_cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "k8s/crds"))
    for crd in ("workerautoscalers.streamtrack.io", "kopfpeerings.kopf.dev"):
        kube_cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")

    applied = kube_cluster.kubectl("apply", "--dry-run=server", "-k", str(ROOT / "k8s"))

    lines = applied.stdout.strip().splitlines()
    assert all(line.endswith("(server dry run)") for line in lines), applied.stdout
    expected = sum(1 for name in kustomization["resources"] if not name.startswith("crds/")
                   for doc in yaml.safe_load_all((ROOT / "k8s" / name).read_text()) if doc)
    assert len(lines) == expected + 2  # + the two CRDs, unchanged
    assert "workerautoscaler.streamtrack.io/streamtrack-worker created (server dry run)" in lines
