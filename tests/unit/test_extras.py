"""Optional dependencies: the API, worker and migrate code paths load none of them, and a command
that needs a missing one stops with a line naming the extra to install.

Each check runs in a child interpreter whose imports of the extras' libraries fail as they do
when the library is not installed (ModuleNotFoundError with its name), so this venv, which has
everything, can stand in for an API-only image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from streamtrack.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[2]

BLOCK = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
"""


def run_without(blocked: set[str], code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMTRACK_", "CLICKHOUSE_", "KAFKA_"))}
    env["STREAMTRACK_DATA_DIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-c", BLOCK + code, ",".join(sorted(blocked))], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def cli(*argv: str) -> str:
    return f"from streamtrack.cli import main; sys.exit(main({list(argv)!r}))"


def test_every_library_of_an_extra_is_declared_by_that_extra() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distributions = {"chdb": "chdb", "grpc": "grpcio", "grpc_health": "grpcio-health-checking",
                     "grpc_reflection": "grpcio-reflection", "kopf": "kopf", "kubernetes": "kubernetes",
                     "minio": "minio", "rich": "rich", "aiohttp": "aiohttp", "hdrh": "hdrhistogram"}
    assert set(distributions) == set(EXTRAS)
    for module, (extra, _) in EXTRAS.items():
        assert any(req.startswith(distributions[module] + ">") for req in declared[extra]), (module, extra)


def test_api_worker_and_migrate_load_no_optional_library(tmp_path: Path) -> None:
    """What `streamtrack api|worker|migrate` import with a ClickHouse server URL (an API-only image)."""
    code = (
        "import streamtrack.cli, streamtrack.api, streamtrack.api.server, streamtrack.store.server, "
        "streamtrack.worker, streamtrack.kafka, streamtrack.lifecycle, streamtrack.deadletters, "
        "streamtrack.store.keys, streamtrack.store.privacy, streamtrack.telemetry.metrics, json\n"
        "streamtrack.cli._parser()\n"
        "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    result = run_without(set(EXTRAS), code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) & set(EXTRAS) == set()


@pytest.mark.parametrize(("blocked", "argv", "extra"), [
    ({"chdb"}, ["migrate"], "embedded"),
    ({"kopf"}, ["operator"], "operator"),
    ({"grpc"}, ["grpc"], "grpc"),
    ({"minio"}, ["archive"], "archive"),
    ({"aiohttp"}, ["loadgen", "--url", "http://127.0.0.1:9", "--duration", "1"], "loadgen"),
])
def test_a_command_without_its_extra_names_it(blocked: set[str], argv: list[str], extra: str, tmp_path: Path) -> None:
    result = run_without(blocked, cli(*argv), tmp_path)
    module = next(iter(blocked))
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        2, f"streamtrack: {EXTRAS[module][1]} needs the '{extra}' extra ({module} is not installed): "
           f"pip install 'streamtrack[{extra}]'")

