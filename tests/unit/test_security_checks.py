"""`make test`'s static security analysis: bandit finds nothing in the shipped code.

The checks skipped, each with its reason, are in pyproject.toml's [tool.bandit]. The dependency
audit (scripts/dependency_audit.py, `make audit`) needs the network and runs from the Makefile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_finds_no_issue() -> None:
    bandit = Path(sys.executable).parent / "bandit"
    done = subprocess.run(
        [str(bandit), "-c", "pyproject.toml", "-r", "streamtrack", "api", "worker", "operator", "scripts", "-q",
         "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    report = json.loads(done.stdout)
    assert report["results"] == [], done.stdout
    assert done.returncode == 0, done.stderr
    assert report["metrics"]["_totals"]["loc"] > 5_000  # it read the code base, not an empty folder
