"""What `streamtrack dev` says about keys: a loud warning with auth off, a dev project's keys with it on."""

from __future__ import annotations

import os

from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import Settings
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, project_exists

DEV_PROJECT = "dev"

AUTH_OFF_WARNING = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  AUTH IS OFF: anyone who reaches {base} can send and read every event (project '{project}').
!!  Fine on a laptop; never like this on a network. `streamtrack dev --auth on` requires keys.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


def dev_keys_banner(settings: Settings, store: EventStore) -> str:
    """With auth on: project `dev` (created once) gets a fresh key pair each start, printed here only.

    The write key is also handed to the dashboard's load generator (STREAMTRACK_LOADGEN_KEY in
    this process's environment, which its child inherits).
    """
    base = f"http://{settings.host}:{settings.port}"
    if not settings.auth:
        return AUTH_OFF_WARNING.format(base=base, project=settings.default_project)
    if not project_exists(store, DEV_PROJECT):
        create_project(store, DEV_PROJECT, "streamtrack dev")
    write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
    add_key(store, DEV_PROJECT, write, name="streamtrack dev")
    add_key(store, DEV_PROJECT, read, name="streamtrack dev")
    os.environ["STREAMTRACK_LOADGEN_KEY"] = write.secret
    return (
        f"Auth is on. Keys of project '{DEV_PROJECT}' (new each start, shown once):\n"
        f"  write key (public, ingestion)  {write.secret}\n"
        f"  read key  (secret, queries)    {read.secret}\n"
        f"  curl -s -X POST {base}/track -H 'Authorization: Bearer {write.secret}' -H 'Content-Type: application/json' \\\n"
        f"       -d '{{\"event_type\":\"page_view\",\"user_id\":\"u-1\"}}'\n"
        f"  curl -s '{base}/activities' -H 'Authorization: Bearer {read.secret}'"
    )
