"""Build grpcurl from the Go module proxy, pinned, into a cache keyed by version (a second run is a
no-op): tests/integration/test_grpc_grpcurl.py calls the gRPC API with it, as an operator would.

Usage: python scripts/grpcurl_testbed.py build    (build unless cached; prints the path)
       python scripts/grpcurl_testbed.py path     (print the binary's path)

Same cache as scripts/kube_testbed.py ($STREAMTRACK_CACHE_DIR, else ~/.cache/streamtrack), Go's
module and build caches included, so the test bed's builds share downloaded modules.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRPCURL_VERSION = "v1.9.3"
MODULE = "github.com/fullstorydev/grpcurl"


def cache_dir() -> Path:
    """Where the binary and Go's caches live (env STREAMTRACK_CACHE_DIR overrides)."""
    explicit = os.environ.get("STREAMTRACK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "streamtrack"


def binary() -> Path:
    """The cached grpcurl; it may not exist yet."""
    return cache_dir() / f"grpcurl-{GRPCURL_VERSION}" / "grpcurl"


def _go(args: list[str], cwd: Path, gobin: Path) -> None:
    command = shutil.which("go")
    if command is None:
        raise SystemExit("grpcurl_testbed: needs the go command (Go 1.26) to build grpcurl")
    go = cache_dir() / "go"
    env = dict(os.environ)
    env.update(
        GOBIN=str(gobin),
        GOMODCACHE=str(go / "mod"),
        GOCACHE=str(go / "build"),
        GOFLAGS="-trimpath -buildvcs=false",
        CGO_ENABLED="0",
        GOWORK="off",
    )
    done = subprocess.run([command, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")


def build() -> Path:
    """Build grpcurl into its versioned folder unless it is there already; return its path."""
    final = binary()
    if final.is_file():
        return final
    final.parent.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent.parent / f".{final.parent.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits, then finds the binary built
        if final.is_file():
            return final
        started = time.monotonic()
        print(f"grpcurl_testbed: building grpcurl {GRPCURL_VERSION} (cached afterwards in {final.parent})", flush=True)
        with tempfile.TemporaryDirectory(prefix="grpcurl-", dir=final.parent.parent) as tmp:
            staged = Path(tmp) / "out"
            staged.mkdir()
            # `go install module@version` outside any module builds with grpcurl's own go.mod, as its
            # README does (inside a wrapper module MVS mixed in an old cloud.google.com/go: ambiguous import).
            stamp = f"-X main.version={GRPCURL_VERSION}"
            _go(["install", "-ldflags", f"-s -w {stamp}", f"{MODULE}/cmd/grpcurl@{GRPCURL_VERSION}"], Path(tmp), staged)
            shutil.rmtree(final.parent, ignore_errors=True)
            staged.rename(final.parent)  # atomic: a half-built folder is never taken for a cached one
        print(f"grpcurl_testbed: built grpcurl {GRPCURL_VERSION} in {time.monotonic() - started:.0f} s", flush=True)
    return final


def main(argv: list[str]) -> int:
    if argv == ["path"]:
        print(binary())
        return 0
    if argv == ["build"]:
        print(build())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
