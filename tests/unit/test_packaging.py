"""The distribution as built and as run from a checkout.

- operator/ is a namespace portion, so Python started at the repository root imports the
  standard library's `operator` (a package there used to break `import collections` and `-m venv`);
- the wheel holds every module and asset of streamtrack/, api/, worker/ and operator/ under
  `streamtrack`, and nothing else at the top level, and the build warns about nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"streamtrack": "streamtrack", "api": "streamtrack/api", "worker": "streamtrack/worker",
           "operator": "streamtrack/operator"}
"""Folder in the checkout -> where its files land in the wheel."""


def test_the_standard_library_operator_wins_at_the_repository_root(tmp_path: Path) -> None:
    # -S: no site packages, so nothing imports `operator` before the working directory is on sys.path.
    done = subprocess.run([sys.executable, "-S", "-c", "import collections, operator; print(operator.__file__)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent != ROOT / "operator"
    venv = subprocess.run([sys.executable, "-S", "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (venv.returncode, venv.stderr) == (0, "")


def test_the_wheel_holds_every_module_and_asset_under_streamtrack(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, source / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Warning" not in built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("streamtrack-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, target in SOURCES.items():
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT / folder)
            if path.is_file() and "__pycache__" not in relative.parts and "examples" not in relative.parts \
                    and path.suffix != ".md" and not (folder == "streamtrack" and relative.parts[0] == "operator"):
                expected.add(f"{target}/{relative.as_posix()}")
    assert expected - names == set()
    assert {name.split("/")[0] for name in names} == {"streamtrack", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "streamtrack/api/dashboard_assets/index.html" in names
    assert "streamtrack/operator/handlers.py" in names and "streamtrack/operator/__init__.py" not in names
