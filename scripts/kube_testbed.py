"""Build the Kubernetes test bed's binaries from the Go module proxy: etcd, kube-apiserver,
kubectl and Helm, pinned, into a cache keyed by version (so a second run is a no-op).

Usage: python scripts/kube_testbed.py build [etcd|kubernetes|helm ...]   (default: all)
       python scripts/kube_testbed.py path NAME                           (print a binary's path)

The cache is $STREAMTRACK_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/streamtrack. Go's module and
build caches live there too (go/mod, go/build), so CI can keep one folder between runs.
tests/fixtures/kube.py imports this module for the binaries' paths.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ETCD_VERSION = "v3.6.14"
KUBERNETES_VERSION = "v1.37.2"
HELM_VERSION = "v4.3.2"

# Each tool: the folder its binaries land in, and the binaries.
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "etcd": (f"etcd-{ETCD_VERSION}", ("etcd",)),
    "kubernetes": (f"kubernetes-{KUBERNETES_VERSION}", ("kube-apiserver", "kubectl")),
    "helm": (f"helm-{HELM_VERSION}", ("helm",)),
}


def cache_dir() -> Path:
    """Where the binaries and Go's caches live (env STREAMTRACK_CACHE_DIR overrides)."""
    explicit = os.environ.get("STREAMTRACK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "streamtrack"


def binary(name: str) -> Path:
    """The cached path of one binary (etcd, kube-apiserver, kubectl, helm); it may not exist yet."""
    for folder, names in TOOLS.values():
        if name in names:
            return cache_dir() / folder / name
    raise KeyError(name)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    go = cache_dir() / "go"
    env.update(
        GOMODCACHE=str(go / "mod"),
        GOCACHE=str(go / "build"),
        GOFLAGS="-trimpath -buildvcs=false -mod=mod",
        CGO_ENABLED="0",
        GOWORK="off",
    )
    return env


def _go(args: list[str], cwd: Path) -> str:
    go_command = shutil.which("go") or "go"  # by its full path (bandit B607); main() checks it is there
    done = subprocess.run([go_command, *args], cwd=cwd, env=_go_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _wrapper(work: Path, name: str) -> None:
    """A throwaway module to build other modules' commands in (go.mod only)."""
    (work / "go.mod").write_text(f"module streamtrack.local/testbed/{name}\n\ngo 1.26\n")


def _build_etcd(work: Path, out: Path) -> None:
    # go.etcd.io/etcd/server/v3's go.mod replaces its sibling modules by ../ paths, but replaces
    # only apply inside etcd's own repository: as a dependency its requires (all v3.6.x) resolve.
    _wrapper(work, "etcd")
    _go(["get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work)
    _go(["build", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"], work)


def _staging_modules(kubernetes_gomod: str) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes replaces by its own ./staging folders."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)))


def _build_kubernetes(work: Path, out: Path) -> None:
    # k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules by local
    # paths. The wrapper replaces each by its published v0.Y.Z instead.
    _wrapper(work, "kubernetes")
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], work))
    staging = _staging_modules(Path(info["GoMod"]).read_text())
    minor = KUBERNETES_VERSION.lstrip("v").split(".")[1]
    published = "v0." + KUBERNETES_VERSION.lstrip("v").split(".", 1)[1]
    edits = [f"-replace={m}={m}@{published}" for m in staging]
    _go(["mod", "edit", f"-require=k8s.io/kubernetes@{KUBERNETES_VERSION}", *edits], work)
    (work / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\nimport (\n"
        '\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n'
    )
    _go(["mod", "tidy"], work)
    # Without the version stamp /version says v0.0.0 and Helm's kubeVersion checks fail.
    stamp = " ".join(
        f"-X k8s.io/component-base/version.{key}={value}"
        for key, value in (("gitVersion", KUBERNETES_VERSION), ("gitMajor", "1"), ("gitMinor", minor),
                           ("gitTreeState", "clean"))
    )
    for command in ("kube-apiserver", "kubectl"):
        _go(["build", "-ldflags", f"-s -w {stamp}", "-o", str(out / command), f"k8s.io/kubernetes/cmd/{command}"], work)


def _build_helm(work: Path, out: Path) -> None:
    _wrapper(work, "helm")
    _go(["get", f"helm.sh/helm/v4@{HELM_VERSION}"], work)
    stamp = f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
    _go(["build", "-ldflags", f"-s -w {stamp}", "-o", str(out / "helm"), "helm.sh/helm/v4/cmd/helm"], work)


BUILDERS = {"etcd": _build_etcd, "kubernetes": _build_kubernetes, "helm": _build_helm}


def build(name: str) -> Path:
    """Build one tool into its versioned folder unless it is there already; return the folder."""
    folder, names = TOOLS[name]
    final = cache_dir() / folder
    if all((final / n).is_file() for n in names):
        return final
    if shutil.which("go") is None:
        raise SystemExit("kube_testbed: needs the go command (Go 1.26) to build the Kubernetes test bed")
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".{folder}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits, then finds the binaries built
        if all((final / n).is_file() for n in names):
            return final
        _build_into(name, folder, final)
    return final


def _build_into(name: str, folder: str, final: Path) -> None:
    started = time.monotonic()
    print(f"kube_testbed: building {folder} (cold: minutes; cached afterwards in {final})", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=final.parent) as tmp:
        work, staged = Path(tmp) / "src", Path(tmp) / "out"
        work.mkdir()
        staged.mkdir()
        BUILDERS[name](work, staged)
        shutil.rmtree(final, ignore_errors=True)
        staged.rename(final)  # atomic: a half-built folder is never taken for a cached one
    print(f"kube_testbed: built {folder} in {time.monotonic() - started:.0f} s", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "path":
        print(binary(argv[1]))
        return 0
    if argv and argv[0] == "build":
        for name in argv[1:] or list(TOOLS):
            if name not in TOOLS:
                raise SystemExit(f"unknown tool {name!r}; one of {', '.join(TOOLS)}")
            build(name)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
