"""The optional dependencies (pyproject's extras) and the error a command gives without one.

An image installs only what its commands need: the API image carries neither chdb (a whole
ClickHouse engine) nor kopf. Each library below is imported where it is used, never at the top
of a module the API or the worker always loads, so a missing extra shows up only in the
command that needs it, as one line naming the extra to install (`streamtrack.cli` turns the
ModuleNotFoundError into it).
"""

from __future__ import annotations

EXTRAS: dict[str, tuple[str, str]] = {
    # top-level module: (extra, what needs it)
    "chdb": ("embedded", "the embedded ClickHouse engine (used when CLICKHOUSE_URL is empty)"),
    "grpc": ("grpc", "the gRPC ingestion API"),
    "grpc_health": ("grpc", "the gRPC ingestion API"),
    "grpc_reflection": ("grpc", "the gRPC ingestion API"),
    "kopf": ("operator", "the operator"),
    "kubernetes": ("operator", "the operator"),
    "minio": ("archive", "the raw archive"),
    "rich": ("archive", "streamtrack replay"),
    "aiohttp": ("loadgen", "the load generator"),
    "hdrh": ("loadgen", "the load generator"),
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The message for a library of an extra that is not installed; None when `exc` is about another module."""
    module = (exc.name or "").partition(".")[0]
    if module not in EXTRAS:
        return None
    extra, needed_by = EXTRAS[module]
    return (f"{needed_by} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'streamtrack[{extra}]'")
