"""Build Prometheus and promtool from the Go module proxy, pinned, into a cache keyed by version
(a second run is a no-op): the alert rules' checks (promtool check/test rules) and the alerting e2e
(a real Prometheus scraping a running pipeline) use them.

Usage: python scripts/prometheus_testbed.py build [promtool|prometheus ...]   (default: both)
       python scripts/prometheus_testbed.py path NAME                         (print a binary's path)

Same cache as scripts/kube_testbed.py ($STREAMTRACK_CACHE_DIR, else ~/.cache/streamtrack), Go's
module and build caches included, so the two builds share downloaded modules and compiled packages.
Prometheus is built with the `remove_all_sd` tag: only static, file and http discovery, which is all
the test bed uses, and it skips compiling the cloud providers' SDKs (most of a full build).
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

# Prometheus v3 is published as Go module versions v0.3MM.P (v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_MODULE_VERSION = "v0.316.0"
PROMETHEUS_VERSION = "3.16.0"

COMMANDS = ("promtool", "prometheus")


def cache_dir() -> Path:
    """Where the binaries and Go's caches live (env STREAMTRACK_CACHE_DIR overrides)."""
    explicit = os.environ.get("STREAMTRACK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "streamtrack"


def binary(name: str) -> Path:
    """The cached path of promtool or prometheus; it may not exist yet."""
    if name not in COMMANDS:
        raise KeyError(name)
    return cache_dir() / f"{name}-{PROMETHEUS_VERSION}" / name


def _go(args: list[str], cwd: Path) -> None:
    go = cache_dir() / "go"
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(go / "mod"),
        GOCACHE=str(go / "build"),
        GOFLAGS="-trimpath -buildvcs=false -mod=mod",
        CGO_ENABLED="0",
        GOWORK="off",
    )
    go_command = shutil.which("go") or "go"  # by its full path (bandit B607); main() checks it is there
    done = subprocess.run([go_command, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")


def _build_into(name: str, work: Path, out: Path) -> None:
    # A throwaway module requiring Prometheus: its go.mod has no replace directives, so it builds
    # as a dependency like any module.
    (work / "go.mod").write_text(f"module streamtrack.local/testbed/{name}\n\ngo 1.26\n")
    _go(["get", f"github.com/prometheus/prometheus@{PROMETHEUS_MODULE_VERSION}"], work)
    stamp = f"-X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION}"
    _go(
        ["build", "-tags", "remove_all_sd", "-ldflags", f"-s -w {stamp}", "-o", str(out / name),
         f"github.com/prometheus/prometheus/cmd/{name}"],
        work,
    )


def build(name: str) -> Path:
    """Build one command into its versioned folder unless it is there already; return its path."""
    final = binary(name)
    if final.is_file():
        return final
    if shutil.which("go") is None:
        raise SystemExit("prometheus_testbed: needs the go command (Go 1.26) to build Prometheus")
    folder = final.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f".{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits, then finds the binary built
        if final.is_file():
            return final
        started = time.monotonic()
        print(f"prometheus_testbed: building {name} {PROMETHEUS_VERSION} (cold: minutes)", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=folder.parent) as tmp:
            work, staged = Path(tmp) / "src", Path(tmp) / "out"
            work.mkdir()
            staged.mkdir()
            _build_into(name, work, staged)
            shutil.rmtree(folder, ignore_errors=True)
            staged.rename(folder)  # atomic: a half-built folder is never taken for a cached one
        print(f"prometheus_testbed: built {name} in {time.monotonic() - started:.0f} s", flush=True)
    return final


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "path":
        print(binary(argv[1]))
        return 0
    if argv and argv[0] == "build":
        for name in argv[1:] or list(COMMANDS):
            if name not in COMMANDS:
                raise SystemExit(f"unknown command {name!r}; one of {', '.join(COMMANDS)}")
            build(name)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
