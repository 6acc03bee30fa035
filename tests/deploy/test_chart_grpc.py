"""The chart's gRPC API: its own Deployment and Service when `grpc.enabled`, probed by Kubernetes' gRPC
probes on the standard health service, on in k8s/ (plain manifests), off by default."""

from __future__ import annotations

from pathlib import Path

import yaml

from streamtrack.api.grpc import SERVICE_NAME
from streamtrack.config import SETTINGS
from tests.deploy.test_chart import container, env, kinds, one, rendered

ROOT = Path(__file__).resolve().parents[2]


def test_off_by_default() -> None:
    assert not [kind for kind in kinds(rendered("default")) if "grpc" in kind]


def test_deployment_service_and_probes() -> None:
    docs = rendered("default", grpc={"enabled": True, "port": 50052, "service": {"headless": True}})
    grpc = container(docs, "Deployment", "streamtrack-grpc")
    assert grpc["args"] == ["grpc"]
    assert grpc["ports"] == [{"name": "grpc", "containerPort": 50052, "protocol": "TCP"}]
    assert env(grpc)["STREAMTRACK_GRPC_PORT"] == "50052"
    assert "STREAMTRACK_GRPC_PORT" in {setting.env for setting in SETTINGS.values()}
    assert grpc["livenessProbe"]["grpc"] == {"port": 50052}  # service "": the process serves
    assert grpc["readinessProbe"]["grpc"] == {"port": 50052, "service": SERVICE_NAME}  # Kafka and ClickHouse answer
    assert grpc["startupProbe"]["grpc"] == {"port": 50052}
    service = one(docs, "Service", "streamtrack-grpc")["spec"]
    assert service["clusterIP"] == "None"
    assert service["ports"] == [{"name": "grpc", "port": 50051, "targetPort": "grpc", "appProtocol": "kubernetes.io/h2c",
                                 "protocol": "TCP"}]
    assert service["selector"]["app.kubernetes.io/component"] == "grpc"


def test_k8s_folder_serves_grpc() -> None:
    deployment = yaml.safe_load((ROOT / "k8s" / "grpc-deployment.yaml").read_text())
    probes = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probes["grpc"]["service"] == SERVICE_NAME
    assert "grpc-service.yaml" in (ROOT / "k8s" / "kustomization.yaml").read_text()
