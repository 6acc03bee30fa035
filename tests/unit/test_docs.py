"""The docs site builds strictly: every link, anchor and included README section resolves, and
every page of docs/ is in the navigation (mkdocs.yml's `validation` turns each into a warning,
`--strict` into a failure). `make docs` builds the same site into site/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").read_text().count("readme-1") > 0, \
        "the README's quick start is included"
