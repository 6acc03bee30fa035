"""Settings: defaults give the embedded mode; each bad value is named; the docs' table is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamtrack.config import load_settings, settings_table
from streamtrack.errors import ConfigError

CONFIGURATION_PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_defaults_are_the_embedded_mode():
    settings = load_settings(env={})
    assert settings.embedded
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.topic == "events" and settings.dlq_topic == "events.dlq"
    assert str(settings.clickhouse_path) == ".streamtrack/clickhouse"


def test_values_are_parsed():
    settings = load_settings(
        env={
            "STREAMTRACK_PORT": " 9000 ",
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9093",
            "STREAMTRACK_KAFKA_OPTIONS": "security.protocol=SASL_SSL, sasl.mechanism=PLAIN",
            "CLICKHOUSE_URL": "https://user:pw@ch.example:8443/analytics",
            "STREAMTRACK_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.port == 9000
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9093"
    assert settings.kafka_options == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert not settings.embedded
    assert settings.log_level == "debug"


def test_every_bad_value_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        load_settings(
            env={
                "STREAMTRACK_PORT": "eighty",
                "KAFKA_BOOTSTRAP_SERVERS": "localhost",
                "CLICKHOUSE_URL": "ftp://x",
                "STREAMTRACK_TOPIC_PARTITIONS": "0",
                "STREAMTRACK_KAFKA_OPTIONS": "novalue",
                "STREAMTRACK_CLICKHOUSE_DATABASE": "drop table;",
                "STREAMTRACK_LOG_LEVEL": "loud",
            }
        )
    message = str(info.value)
    for expected in (
        "STREAMTRACK_PORT='eighty': expected an integer between 1 and 65535",
        "KAFKA_BOOTSTRAP_SERVERS='localhost': expected host:port",
        "CLICKHOUSE_URL='ftp://x': expected an http(s) URL",
        "STREAMTRACK_TOPIC_PARTITIONS='0': expected an integer between 1 and 10000, got 0",
        "STREAMTRACK_KAFKA_OPTIONS='novalue': expected key=value",
        "STREAMTRACK_CLICKHOUSE_DATABASE='drop table;': expected an identifier",
        "STREAMTRACK_LOG_LEVEL='loud': expected one of debug, info, warning, error",
    ):
        assert expected in message


def test_event_limit_cannot_exceed_batch_limit():
    with pytest.raises(ConfigError, match="must not exceed"):
        load_settings(env={"STREAMTRACK_MAX_EVENT_BYTES": "200000", "STREAMTRACK_MAX_BATCH_BYTES": "100000"})


def test_the_docs_configuration_table_is_current():
    text = CONFIGURATION_PAGE.read_text()
    table = re.search(r"<!-- settings-table.*?-->\n(.*?)<!-- /settings-table -->", text, re.S)
    assert table, "docs/configuration.md lost its settings-table markers"
    assert table.group(1).strip() == settings_table(), "run `streamtrack config --markdown` and paste it in docs/configuration.md"
