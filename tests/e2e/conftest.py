"""End-to-end tests: the real Apache Kafka (`broker`, tests/fixtures/kafka.py) and a real
Kubernetes API server (`kube_cluster`, tests/fixtures/kube.py), both session fixtures
registered in tests/conftest.py."""
