"""docker-compose.yml (no Docker engine here to run it): official images, StreamTrack's own
images from this repository's Dockerfiles, and only settings StreamTrack reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from streamtrack.config import SETTINGS, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_kafka_and_clickhouse_are_the_official_images_pinned_by_version() -> None:
    services = COMPOSE["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:25.")


def test_streamtrack_services_build_from_the_dockerfiles_and_start_in_order() -> None:
    services = COMPOSE["services"]
    assert services["api"]["build"]["dockerfile"] == "Dockerfile.api"
    assert services["migrate"]["build"]["dockerfile"] == "Dockerfile.worker"
    assert services["worker"]["image"] == services["migrate"]["image"]
    assert (services["migrate"]["command"], services["worker"]["command"]) == (["migrate"], ["worker"])
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]


def test_the_environment_is_valid_streamtrack_configuration() -> None:
    env = COMPOSE["services"]["api"]["environment"]
    assert set(env) <= {s.env for s in SETTINGS.values()}
    settings = load_settings(env={k: str(v) for k, v in env.items()})
    assert (settings.kafka_bootstrap_servers, settings.clickhouse_database) == ("kafka:9092", "streamtrack")
    clickhouse = COMPOSE["services"]["clickhouse"]["environment"]
    assert settings.clickhouse_url == (
        f"http://{clickhouse['CLICKHOUSE_USER']}:{clickhouse['CLICKHOUSE_PASSWORD']}@clickhouse:8123/{clickhouse['CLICKHOUSE_DB']}"
    )
