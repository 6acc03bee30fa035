"""The chart trusts forwarded headers only when its Ingress is on, and then only from the proxies it names."""

from __future__ import annotations

from streamtrack.config import load_settings
from tests.deploy.test_chart import one, rendered


def config_of(docs: list[dict]) -> dict[str, str]:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("streamtrack"))["data"]


def test_forwarded_headers_are_trusted_only_behind_the_charts_ingress() -> None:
    assert "STREAMTRACK_FORWARDED_ALLOW_IPS" not in config_of(rendered("default"))  # no proxy: the peer is the client
    docs = rendered("default", api={"ingress": {"enabled": True, "trustedProxies": "10.8.0.0/14"}})
    assert one(docs, "Ingress", "streamtrack-api")
    config = config_of(docs)
    assert config["STREAMTRACK_FORWARDED_ALLOW_IPS"] == "10.8.0.0/14"
    default = config_of(rendered("default", api={"ingress": {"enabled": True}}))["STREAMTRACK_FORWARDED_ALLOW_IPS"]
    assert load_settings(env={"STREAMTRACK_FORWARDED_ALLOW_IPS": default}).forwarded_allow_ips == default  # a valid value
