"""End-to-end tests: the real Apache Kafka (`broker`, tests/fixtures/kafka.py) and a real
Kubernetes API server (`kube_cluster`, tests/fixtures/kube.py)."""

from tests.fixtures.kube import kube_cluster  # noqa: F401  (a session fixture, shared by the e2e files)
