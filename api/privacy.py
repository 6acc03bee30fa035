"""Erasure (GDPR): `DELETE /users/{user_id}/events` removes one user's events from the caller's project.

It needs the project's secret read key, like every read; it matches the user id or the
anonymous id, and answers how many rows it removed (0 when there were none: erasing is
idempotent). The CLI twin is `streamtrack erase --project P --user U`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, delete
from litestar.di import NamedDependency
from litestar.params import PathParameter

from streamtrack.api.auth import project_of
from streamtrack.api.errors import QUERY_ERRORS
from streamtrack.api.services import Services
from streamtrack.errors import InvalidParameter
from streamtrack.store.privacy import erase_user

MAX_USER_CHARS = 200


class Erased(msgspec.Struct):
    project_id: str
    user_id: str
    deleted_rows: int


@delete(
    "/users/{user_id:str}/events", status_code=200, tags=["privacy"], summary="Erase a user's events (GDPR)",
    responses=QUERY_ERRORS, sync_to_thread=True,
)
def erase_user_events(
    request: Request,
    services: NamedDependency[Services],
    user_id: Annotated[str, PathParameter(description="The user_id or anonymous_id whose events to delete.")],
) -> Erased:
    """Deletes the user's events in the caller's project only; other projects are never touched."""
    if not user_id or len(user_id) > MAX_USER_CHARS:
        raise InvalidParameter(f"give a user id of 1 to {MAX_USER_CHARS} characters", field="user_id")
    project = project_of(request)
    return Erased(project_id=project, user_id=user_id, deleted_rows=erase_user(services.store, project, user_id))
