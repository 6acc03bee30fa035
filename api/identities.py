"""`GET /users/{user_id}` and `GET /groups/{group_id}`: the latest traits from identify and group calls.

Both read the caller's project only (its key's, see `streamtrack.api.auth`). Traits are merged call by call, oldest first (a later call's value of a trait wins, traits it
does not send are kept), across every id linked to the user by alias or identify calls: ask
with an anonymous id, or an old user id, and get the user it became.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter

from streamtrack.api.auth import project_of
from streamtrack.api.errors import ErrorBody
from streamtrack.api.services import Services
from streamtrack.store.identities import Profile, group_profile, user_profile
from streamtrack.store.scoped import project_store


class UserProfile(msgspec.Struct):
    user_id: str
    ids: list[str]
    """Every id linked to this user (anonymous ids, aliased ids), the user id first."""
    traits: dict[str, Any]
    identify_calls: int
    first_seen_at: str
    """Time of the first identify call (RFC 3339 UTC); empty when only alias calls name the user."""
    updated_at: str


class GroupProfile(msgspec.Struct):
    group_id: str
    traits: dict[str, Any]
    members: list[str]
    """Users (or anonymous ids) who made a group call for this group."""
    group_calls: int
    first_seen_at: str
    updated_at: str


_NOT_FOUND = {
    404: ResponseSpec(ErrorBody, description="No call ever named this id.", generate_examples=False)
}


@get(
    "/users/{user_id:str}",
    sync_to_thread=True,
    tags=["query"],
    summary="A user's traits",
    responses=_NOT_FOUND,
)
def user(
    user_id: Annotated[str, PathParameter(description="A user id, anonymous id or aliased id.")],
    request: Request[Any, Any, Any],
    services: NamedDependency[Services],
) -> UserProfile:
    """Latest traits of a user, following alias links (404 if no identify or alias call names it)."""
    profile: Profile = user_profile(project_store(services.reads, project_of(request)), user_id)
    return UserProfile(
        profile.id, profile.ids, profile.traits, profile.calls, profile.first_seen_at, profile.updated_at
    )


@get(
    "/groups/{group_id:str}",
    sync_to_thread=True,
    tags=["query"],
    summary="A group's traits",
    responses=_NOT_FOUND,
)
def group(
    group_id: Annotated[str, PathParameter(description="The groupId of group calls.")],
    request: Request[Any, Any, Any],
    services: NamedDependency[Services],
) -> GroupProfile:
    """Latest traits of a group and who joined it (404 if no group call names it)."""
    profile = group_profile(project_store(services.reads, project_of(request)), group_id)
    return GroupProfile(
        profile.id,
        profile.traits,
        profile.members or [],
        profile.calls,
        profile.first_seen_at,
        profile.updated_at,
    )


IDENTITY_HANDLERS = [user, group]
