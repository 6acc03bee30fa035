"""The command line: clear refusals of bad settings, the settings table, secrets kept out of output."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from streamtrack.cli import main


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() configures logging onto the captured stderr; later tests must not write there."""
    yield
    structlog.reset_defaults()


def test_bad_settings_stop_with_a_message_naming_them(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STREAMTRACK_PORT", "nope")
    monkeypatch.setenv("CLICKHOUSE_URL", "clickhouse://x")
    assert main(["api"]) == 2
    err = capsys.readouterr().err
    assert "STREAMTRACK_PORT='nope'" in err and "CLICKHOUSE_URL='clickhouse://x'" in err


def test_markdown_table(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["config", "--markdown"]) == 0
    assert "| `KAFKA_BOOTSTRAP_SERVERS` | `127.0.0.1:9092` |" in capsys.readouterr().out


def test_config_hides_secrets(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLICKHOUSE_URL", "https://app:s3cret@ch.example:8443/db")
    monkeypatch.setenv("STREAMTRACK_KAFKA_OPTIONS", "sasl.username=app,sasl.password=hunter2")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "hunter2" not in out
    assert "https://app:***@ch.example:8443/db" in out and "'sasl.username': 'app'" in out


def test_unknown_command_is_a_usage_error(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["explode"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
