"""Build SeaweedFS's `weed` (the S3-compatible object store of the archive's tests) from the Go
module proxy, pinned, into a cache keyed by version (so a second run is a no-op).

Usage: python scripts/seaweedfs.py build    (build unless cached)
       python scripts/seaweedfs.py path     (print the binary's path)

github.com/seaweedfs/seaweedfs is Apache-2.0 (its LICENSE); the module is published only as a
pseudo-version. Its go.mod replaces go-bip39 by cosmos/go-bip39: replaces apply only inside the
module itself, so the wrapper module repeats it. The cache and Go's caches are those of
scripts/kube_testbed.py ($STREAMTRACK_CACHE_DIR, else ~/.cache/streamtrack).
"""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
MODULE = "github.com/seaweedfs/seaweedfs"
FOLDER = f"seaweedfs-{SEAWEEDFS_VERSION}"
# Replaces of the module's own go.mod that a dependent build must repeat.
REPLACES = ("github.com/tyler-smith/go-bip39=github.com/cosmos/go-bip39@v1.0.0",)


def _kube_testbed() -> Any:
    """scripts/kube_testbed.py, for its cache folder and Go environment (one place for both)."""
    spec = importlib.util.spec_from_file_location("kube_testbed", Path(__file__).with_name("kube_testbed.py"))
    assert spec is not None and spec.loader is not None
    module = sys.modules.get("kube_testbed") or importlib.util.module_from_spec(spec)
    if "kube_testbed" not in sys.modules:
        sys.modules["kube_testbed"] = module
        spec.loader.exec_module(module)
    return module


def binary() -> Path:
    """The cached path of `weed`; it may not exist yet."""
    return Path(_kube_testbed().cache_dir()) / FOLDER / "weed"


def _go(args: list[str], cwd: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("seaweedfs: needs the go command (Go 1.26) to build weed")
    done = subprocess.run([go, *args], cwd=cwd, env=_kube_testbed()._go_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")


def build() -> Path:
    """Build `weed` into its versioned folder unless it is there already; return the binary."""
    final = binary().parent
    if binary().is_file():
        return binary()
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".{FOLDER}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits, then finds the binary built
        if binary().is_file():
            return binary()
        started = time.monotonic()
        print(f"seaweedfs: building weed {SEAWEEDFS_VERSION} (cold: minutes; cached in {final})", flush=True)
        with tempfile.TemporaryDirectory(prefix="seaweedfs-", dir=final.parent) as tmp:
            work, staged = Path(tmp) / "src", Path(tmp) / "out"
            work.mkdir()
            staged.mkdir()
            (work / "go.mod").write_text("module streamtrack.local/testbed/seaweedfs\n\ngo 1.26\n")
            _go(["mod", "edit", f"-require={MODULE}@{SEAWEEDFS_VERSION}", *(f"-replace={r}" for r in REPLACES)], work)
            (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{MODULE}/weed"\n')
            _go(["mod", "tidy"], work)
            _go(["build", "-ldflags", "-s -w", "-o", str(staged / "weed"), f"{MODULE}/weed"], work)
            shutil.rmtree(final, ignore_errors=True)
            staged.rename(final)  # atomic: a half-built folder is never taken for a cached one
        print(f"seaweedfs: built weed in {time.monotonic() - started:.0f} s", flush=True)
    return binary()


def main(argv: list[str]) -> int:
    if argv == ["path"]:
        print(binary())
        return 0
    if argv == ["build"]:
        build()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
