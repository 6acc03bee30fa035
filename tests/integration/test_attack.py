"""The attack that found the security fixes, kept: schemathesis against /schema/openapi.json with the keys of two
projects, and a cross-project probe of every route and parameter. It must get no 5xx, and no
answer to one project's key may hold the other project's data.

Projects ALPHA and BRAVO each store events, traits and a group whose every field carries the
project's marker. An answer to ALPHA's key that holds "bravo" (leaving out the value the
request itself sent, which error messages may quote) read across projects, and the other way
round. Bounded: STREAMTRACK_ATTACK_EXAMPLES examples per operation, mode and key (default 6),
derandomized so CI runs the same requests each time: about 700 schemathesis requests and 400
probes, 30 s to 2 min here depending on the machine's load. The /dev/loadgen routes are served
too (dev mode's), and refuse both projects' keys.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from streamtrack.api import Services, create_app
from streamtrack.api.auth import Access, access_of
from streamtrack.api.loadgen_control import loadgen_router
from streamtrack.api.server import BackgroundServer
from streamtrack.auth.keys import KeyKind, new_key
from streamtrack.config import load_settings
from streamtrack.kafka import EventProducer
from streamtrack.kafka.apache import KafkaCluster
from streamtrack.loadgen.control import LoadgenControl
from streamtrack.normalize import Limits
from streamtrack.store import EventStore
from streamtrack.store.keys import add_key, create_project, migrate_keys
from tests.fixtures.pipeline import pipeline_env, start_pipeline

EXAMPLES = int(os.environ.get("STREAMTRACK_ATTACK_EXAMPLES", "6"))
pytestmark = pytest.mark.filterwarnings(  # schemathesis' own strategies, not ours
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)


@dataclasses.dataclass
class Project:
    marker: str
    project_id: str
    write: str
    read: str

    def values(self) -> dict[str, str]:
        """What this project's data holds, by the parameter names that may select it."""
        m = self.marker
        return {
            "user_id": f"{m}-user", "anonymous_id": f"{m}-anon", "session_id": f"{m}-session",
            "event_type": f"{m}_event", "url": f"https://{m}.test/page", "channel": f"{m}-channel",
            "campaign": f"{m}-campaign", "property": f"plan:{m}-plan", "group_id": f"{m}-group",
            "project_id": self.project_id, "project": self.project_id,
        }


@dataclasses.dataclass
class Target:
    url: str
    projects: tuple[Project, Project]
    document: dict[str, Any]


def make_project(store: EventStore, marker: str) -> Project:
    project_id = f"{marker}-{uuid.uuid4().hex[:6]}"
    create_project(store, project_id, marker)
    write, read = new_key(KeyKind.WRITE), new_key(KeyKind.READ)
    add_key(store, project_id, write)
    add_key(store, project_id, read)
    return Project(marker, project_id, write.secret, read.secret)


def seed(url: str, project: Project) -> int:
    """Events, traits and a group carrying the project's marker in every field; returns how many events."""
    v, m, now = project.values(), project.marker, int(time.time() * 1000)
    events = [
        {"event_type": kind, "user_id": v["user_id"], "anonymous_id": v["anonymous_id"], "session_id": v["session_id"],
         "url": v["url"], "referrer": f"https://{m}.ref/", "channel": v["channel"], "campaign_id": v["campaign"],
         "tags": [m], "properties": {"plan": f"{m}-plan", "secret": f"{m}-secret"}, "timestamp": now - 3_600_000 + step * 60_000}
        for step, kind in enumerate(["page_view", v["event_type"], "purchase"])
    ]
    segment = [
        {"type": "identify", "userId": v["user_id"], "anonymousId": v["anonymous_id"], "traits": {"email": f"{m}@x.test"}},
        {"type": "group", "userId": v["user_id"], "groupId": v["group_id"], "traits": {"name": f"{m} inc"}},
        {"type": "alias", "userId": v["user_id"], "previousId": f"{m}-old-id"},
    ]
    headers = {"Authorization": f"Bearer {project.write}"}
    assert httpx.post(f"{url}/batch", json=events, headers=headers).status_code == 202
    assert httpx.post(f"{url}/v1/batch", json={"batch": segment}, headers=headers).status_code == 200
    return len(events) + len(segment)


@pytest.fixture(scope="module")
def target(broker: KafkaCluster, store: EventStore, engine_path: Path) -> Iterator[Target]:
    env = pipeline_env(
        broker, store.database, engine_path.parent, STREAMTRACK_AUTH="on",
        STREAMTRACK_RATE_LIMIT_KEY_PER_S="0", STREAMTRACK_RATE_LIMIT_ADDRESS_PER_S="0",
    )
    running, stop = start_pipeline(load_settings(env=env), store)
    migrate_keys(store)
    projects = (make_project(store, "alpha"), make_project(store, "bravo"))
    stored = sum(seed(running.url, project) for project in projects)
    running.wait_for(lambda: store.stats().rows >= stored, what="both projects' data stored")
    # The app as `streamtrack dev` serves it: /dev/loadgen too.
    control = LoadgenControl()
    services = Services(running.settings, EventProducer(running.settings), store, Limits())
    server = BackgroundServer(create_app(services, extra_handlers=[loadgen_router(control)])).start()
    document = httpx.get(f"{server.url}/schema/openapi.json").json()
    yield Target(server.url, projects, document)
    control.stop()
    server.stop()
    services.close()
    stop()


def key_for(path: str, project: Project) -> dict[str, str]:
    access = access_of(path)
    if access is Access.PUBLIC:
        return {}
    return {"Authorization": f"Bearer {project.write if access is Access.WRITE else project.read}"}


def other(target: Target, project: Project) -> Project:
    return target.projects[1] if project is target.projects[0] else target.projects[0]


def leaked(text: str, foreign: str, sent: list[str]) -> bool:
    """Whether an answer holds the other project's marker beyond the values the request sent."""
    for value in sorted(sent, key=len, reverse=True):
        text = text.replace(value, "")
    return foreign in text


def test_schemathesis_finds_no_server_error_and_no_read_across_projects(target: Target) -> None:
    schema = schemathesis.openapi.from_dict(target.document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # ingestion, Segment, reads, analytics, profiles, erasure, health, dev
    problems: list[str] = []
    calls = 0
    session = requests.Session()
    for operation in operations:
        for project in target.projects:
            foreign = other(target, project).marker
            headers = key_for(operation.path, project)
            for mode in GenerationMode:

                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def attack(case: schemathesis.Case) -> None:
                    # B023: run at once, below, so the loop's headers/project/foreign are this round's.
                    nonlocal calls
                    response = case.call(base_url=target.url, session=session, headers=headers, timeout=30)  # noqa: B023
                    calls += 1
                    if response.status_code >= 500:
                        problems.append(f"{response.status_code} {case.method} {case.formatted_path}: {response.text[:200]}")
                    elif case.method == "GET" and leaked(response.text, foreign, []):  # noqa: B023
                        problems.append(f"{project.marker} read {foreign}'s data: {case.method} {case.formatted_path}")  # noqa: B023

                attack()
    assert problems == [], problems[:20]
    assert calls >= len(operations) * 2  # every operation was called with both projects' keys


def probe_values(name: str, foreign: Project) -> list[str]:
    """The other project's values a parameter could select its data with."""
    values = foreign.values()
    chosen = [values[name]] if name in values else []
    return [*chosen, values["user_id"], values["project_id"], values["group_id"]]


REQUIRED = {"steps": ["page_view", "purchase"], "dimension": "url"}
"""Required parameters, filled so the probe's value is what decides the answer."""


def test_every_route_and_parameter_probed_with_the_other_projects_values(target: Target) -> None:
    span = {"from": str(int(time.time()) - 2 * 86_400), "to": str(int(time.time()) + 3_600)}
    probes = 0
    found_own = 0
    with httpx.Client(base_url=target.url, timeout=30) as client:
        for path, item in target.document["paths"].items():
            for method, operation in item.items():
                if method not in ("get", "delete") or access_of(path) is not Access.READ:
                    continue  # ingestion stamps the key's project; the read routes are what could leak
                parameters = [p for p in operation.get("parameters", []) if p["in"] in ("query", "path")]
                base = {p["name"]: REQUIRED[p["name"]] for p in parameters if p["in"] == "query" and p["name"] in REQUIRED}
                if any(p["name"] in ("from", "to") for p in parameters):
                    base.update(span)
                for project in target.projects:
                    foreign = other(target, project)
                    headers = key_for(path, project)
                    for parameter in parameters + [{"name": "project_id", "in": "query"}]:
                        for value in probe_values(parameter["name"], foreign):
                            query, url = dict(base), path
                            if parameter["in"] == "path":
                                url = path.replace("{" + parameter["name"] + "}", value)
                            else:
                                query[parameter["name"]] = value
                            response = client.request(method.upper(), url, params=query, headers=headers)
                            probes += 1
                            assert response.status_code < 500, (method, url, query, response.text)
                            assert not leaked(response.text, foreign.marker, [value]), (
                                project.marker, method, url, query, response.text[:300])
                    # The probe is no probe if a project cannot find its own data this way.
                    own = client.get(path.replace("{user_id}", project.values()["user_id"])
                                     .replace("{group_id}", project.values()["group_id"]),
                                     params=base, headers=headers) if method == "get" else None
                    if own is not None and own.status_code == 200 and project.marker in own.text:
                        found_own += 1
    assert probes > 300
    assert found_own >= 10  # activities, analytics, profiles: each project sees its own data
