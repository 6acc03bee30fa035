"""The README's curl examples, run as printed against a live pipeline.

Each `$ curl ...` line (with `\\` continuations) is parsed and sent with httpx; the JSON it
answers must equal the JSON printed under it, where "…" stands for any value (times of
receipt, cursors). `<next_cursor from above>` is replaced by the last answer's cursor.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.fixtures.pipeline import Pipeline

README = Path(__file__).resolve().parents[2] / "README.md"
README_BASE = "http://127.0.0.1:8000"


def examples() -> list[tuple[str, str]]:
    """(command, expected output) pairs from the README's console blocks."""
    pairs = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("$ curl"):
                command = lines[i][2:]
                while command.endswith("\\"):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                i += 1
                pairs.append((command, lines[i]))
            i += 1
    return pairs


def run_curl(client: httpx.Client, command: str) -> httpx.Response:
    args = shlex.split(command)[1:]
    method, headers, data, url = "GET", {}, None, None
    it = iter(args)
    for arg in it:
        if arg == "-s":
            continue
        if arg == "-X":
            method = next(it)
        elif arg == "-H":
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(it)
            method = "POST" if method == "GET" else method
        else:
            url = arg
    assert url and url.startswith(README_BASE), command
    return client.request(method, url[len(README_BASE):], headers=headers, content=data)


def matches(actual: Any, expected: Any) -> bool:
    if expected == "…":
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            matches(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            matches(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return actual == expected


def test_readme_examples_answer_as_printed(pipeline: Pipeline) -> None:
    pairs = examples()
    assert len(pairs) >= 4
    cursor = None
    with pipeline.client() as client:
        for command, printed in pairs:
            if cursor is not None:
                command = command.replace("<next_cursor from above>", cursor)
            if "/activities" in command:  # the worker needs a moment to store the events just posted
                expected = msgspec.json.decode(printed)
                pipeline.wait_for(
                    lambda c=command, e=expected: matches(run_curl(client, c).json(), e),
                    timeout=10, what=f"README output of {command}",
                )
            response = run_curl(client, command)
            assert matches(response.json(), msgspec.json.decode(printed)), (command, response.text)
            cursor = response.json().get("next_cursor") if isinstance(response.json(), dict) else None
