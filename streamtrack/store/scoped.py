"""One project's view of the store: how every analytics query is scoped to the caller's project.

The analytics SQL reads events only through `analytics.source`, whose table is a subquery
`… WHERE project_id = {scope_project:String} AND is_bot = 0`. The API builds each request's
reader on `project_store(store, project)`, whose backend adds `scope_project` to every
query's parameters. So the project is applied in one place, as a server-side parameter, and
it fails closed: SQL that reads the events without going through this store is refused by
ClickHouse ("Substitution `scope_project` is not set"), never answered for all projects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from streamtrack.store.backend import Backend
from streamtrack.store.store import EventStore

SCOPE_PARAM = "scope_project"
PROJECT_ROWS = "project_id = {scope_project:String} AND is_bot = 0"
"""The rows an analytics query may see: the caller's project, bots left out."""


class ProjectBackend:
    """A shared backend seen through one project: every statement carries the project parameter."""

    def __init__(self, backend: Backend, project_id: str) -> None:
        self._backend = backend
        self.project_id = project_id
        self.name = backend.name

    def _params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**(params or {}), SCOPE_PARAM: self.project_id}

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._backend.command(sql, self._params(params))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._backend.query(sql, self._params(params))

    def insert_events(self, database: str, table: str, data: pa.Table, settings: Mapping[str, str | int]) -> None:
        raise TypeError("a project's view of the store reads; the worker inserts through the shared store")

    def close(self) -> None:
        """The shared backend belongs to the process, not to this view."""


def project_store(store: EventStore, project_id: str) -> EventStore:
    return EventStore(ProjectBackend(store.backend, project_id), store.database, cluster=store.cluster)
