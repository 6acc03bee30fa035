"""Build the test bed's Go tools from the Go module proxy, pinned, into a cache keyed by version
(so a second run is a no-op): etcd, kube-apiserver + kubectl and Helm (the Kubernetes test bed),
promtool and Prometheus (the alerts' checks and e2e), grpcurl (the gRPC API as an operator calls
it) and SeaweedFS's `weed` (the archive's S3-compatible object store).

Usage: .venv/bin/python scripts/gotools.py build [TOOL ...]   (default: all; prints each folder)
       .venv/bin/python scripts/gotools.py path BINARY        (print a binary's path)

The cache is StreamTrack's, where the Kafka jars are too (`streamtrack.kafka.apache.fetch.cache_root`:
$STREAMTRACK_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/streamtrack). Go's module and build caches
live there as well (go/mod, go/build), so the tools share downloaded modules and compiled packages,
and CI can keep one folder between runs.
Each tool is one entry of TOOLS: its folder, its binaries and the go commands that build them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streamtrack.kafka.apache.fetch import cache_root as cache_dir

ETCD_VERSION = "v3.6.14"
KUBERNETES_VERSION = "v1.37.2"
HELM_VERSION = "v4.3.2"
# Prometheus v3 is published as Go module versions v0.3MM.P (v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_MODULE_VERSION = "v0.316.0"
PROMETHEUS_VERSION = "3.16.0"
GRPCURL_VERSION = "v1.9.3"
# SeaweedFS (Apache-2.0) is published only as a pseudo-version.
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"


def go(args: list[str], cwd: Path, *, in_module: bool = True, gobin: Path | None = None) -> str:
    """Run one go command with the shared caches; its stdout. `in_module` False: `go install
    pkg@version` outside any module (which refuses -mod=mod)."""
    command = shutil.which("go")
    if command is None:
        raise SystemExit("gotools: needs the go command (Go 1.26) to build the test bed's tools")
    caches = cache_dir() / "go"
    env = {
        **os.environ,
        "GOMODCACHE": str(caches / "mod"),
        "GOCACHE": str(caches / "build"),
        "GOFLAGS": "-trimpath -buildvcs=false" + (" -mod=mod" if in_module else ""),
        "CGO_ENABLED": "0",
        "GOWORK": "off",
    }
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    done = subprocess.run([command, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _wrapper(work: Path, name: str) -> None:
    """A throwaway module to build other modules' commands in (go.mod only)."""
    (work / "go.mod").write_text(f"module streamtrack.local/testbed/{name}\n\ngo 1.26\n")


def _tools_file(work: Path, *packages: str) -> None:
    """Import the commands' packages so `go mod tidy` resolves their whole graph."""
    imports = "".join(f'\t_ "{package}"\n' for package in packages)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n")


def _build_etcd(work: Path, out: Path) -> None:
    # go.etcd.io/etcd/server/v3's go.mod replaces its sibling modules by ../ paths, but replaces
    # only apply inside etcd's own repository: as a dependency its requires (all v3.6.x) resolve.
    _wrapper(work, "etcd")
    go(["get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work)
    go(["build", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"], work)


def _staging_modules(kubernetes_gomod: str) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes replaces by its own ./staging folders."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)))


def _build_kubernetes(work: Path, out: Path) -> None:
    # k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules by local
    # paths. The wrapper replaces each by its published v0.Y.Z instead.
    _wrapper(work, "kubernetes")
    info = json.loads(go(["mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], work))
    staging = _staging_modules(Path(info["GoMod"]).read_text())
    minor = KUBERNETES_VERSION.lstrip("v").split(".")[1]
    published = "v0." + KUBERNETES_VERSION.lstrip("v").split(".", 1)[1]
    edits = [f"-replace={m}={m}@{published}" for m in staging]
    go(["mod", "edit", f"-require=k8s.io/kubernetes@{KUBERNETES_VERSION}", *edits], work)
    _tools_file(work, "k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl")
    go(["mod", "tidy"], work)
    # Without the version stamp /version says v0.0.0 and Helm's kubeVersion checks fail.
    stamp = " ".join(
        f"-X k8s.io/component-base/version.{key}={value}"
        for key, value in (("gitVersion", KUBERNETES_VERSION), ("gitMajor", "1"), ("gitMinor", minor),
                           ("gitTreeState", "clean"))
    )
    for command in ("kube-apiserver", "kubectl"):
        go(["build", "-ldflags", f"-s -w {stamp}", "-o", str(out / command), f"k8s.io/kubernetes/cmd/{command}"], work)


def _build_helm(work: Path, out: Path) -> None:
    _wrapper(work, "helm")
    go(["get", f"helm.sh/helm/v4@{HELM_VERSION}"], work)
    stamp = f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
    go(["build", "-ldflags", f"-s -w {stamp}", "-o", str(out / "helm"), "helm.sh/helm/v4/cmd/helm"], work)


def _prometheus_command(name: str) -> Callable[[Path, Path], None]:
    def build(work: Path, out: Path) -> None:
        # Prometheus's go.mod has no replace directives, so it builds as a dependency like any
        # module. The `remove_all_sd` tag keeps only static, file and http discovery (all the test
        # bed uses) and skips compiling the cloud providers' SDKs, most of a full build.
        _wrapper(work, name)
        go(["get", f"github.com/prometheus/prometheus@{PROMETHEUS_MODULE_VERSION}"], work)
        stamp = f"-X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION}"
        go(["build", "-tags", "remove_all_sd", "-ldflags", f"-s -w {stamp}", "-o", str(out / name),
            f"github.com/prometheus/prometheus/cmd/{name}"], work)

    return build


def _build_grpcurl(work: Path, out: Path) -> None:
    # `go install module@version` outside any module builds with grpcurl's own go.mod, as its
    # README does (inside a wrapper module MVS mixed in an old cloud.google.com/go: ambiguous import).
    stamp = f"-X main.version={GRPCURL_VERSION}"
    go(["install", "-ldflags", f"-s -w {stamp}", f"github.com/fullstorydev/grpcurl/cmd/grpcurl@{GRPCURL_VERSION}"],
       work, in_module=False, gobin=out)


def _build_seaweedfs(work: Path, out: Path) -> None:
    # Its go.mod replaces go-bip39 by cosmos/go-bip39: replaces apply only inside the module
    # itself, so the wrapper module repeats it.
    module = "github.com/seaweedfs/seaweedfs"
    _wrapper(work, "seaweedfs")
    go(["mod", "edit", f"-require={module}@{SEAWEEDFS_VERSION}",
        "-replace=github.com/tyler-smith/go-bip39=github.com/cosmos/go-bip39@v1.0.0"], work)
    _tools_file(work, f"{module}/weed")
    go(["mod", "tidy"], work)
    go(["build", "-ldflags", "-s -w", "-o", str(out / "weed"), f"{module}/weed"], work)


@dataclasses.dataclass(frozen=True)
class Tool:
    folder: str
    """Its folder in the cache, named by version: a new pin is a new folder."""
    binaries: tuple[str, ...]
    build: Callable[[Path, Path], None]
    """(work, out): build in the scratch module folder `work`, leave the binaries in `out`."""


TOOLS: dict[str, Tool] = {
    "etcd": Tool(f"etcd-{ETCD_VERSION}", ("etcd",), _build_etcd),
    "kubernetes": Tool(f"kubernetes-{KUBERNETES_VERSION}", ("kube-apiserver", "kubectl"), _build_kubernetes),
    "helm": Tool(f"helm-{HELM_VERSION}", ("helm",), _build_helm),
    "promtool": Tool(f"promtool-{PROMETHEUS_VERSION}", ("promtool",), _prometheus_command("promtool")),
    "prometheus": Tool(f"prometheus-{PROMETHEUS_VERSION}", ("prometheus",), _prometheus_command("prometheus")),
    "grpcurl": Tool(f"grpcurl-{GRPCURL_VERSION}", ("grpcurl",), _build_grpcurl),
    "seaweedfs": Tool(f"seaweedfs-{SEAWEEDFS_VERSION}", ("weed",), _build_seaweedfs),
}


def binary(name: str) -> Path:
    """The cached path of one binary (etcd, kube-apiserver, kubectl, helm, promtool, prometheus,
    grpcurl, weed); it may not exist yet."""
    for tool in TOOLS.values():
        if name in tool.binaries:
            return cache_dir() / tool.folder / name
    raise KeyError(name)


def build(name: str) -> Path:
    """Build one tool into its versioned folder unless it is there already; return the folder."""
    tool = TOOLS[name]
    final = cache_dir() / tool.folder

    def built() -> bool:
        return all((final / binary_name).is_file() for binary_name in tool.binaries)

    if built():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".{tool.folder}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits, then finds the binaries built
        if built():
            return final
        started = time.monotonic()
        print(f"gotools: building {tool.folder} (cold: minutes; cached afterwards in {final})", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=final.parent) as tmp:
            work, staged = Path(tmp) / "src", Path(tmp) / "out"
            work.mkdir()
            staged.mkdir()
            tool.build(work, staged)
            shutil.rmtree(final, ignore_errors=True)
            staged.rename(final)  # atomic: a half-built folder is never taken for a cached one
        print(f"gotools: built {tool.folder} in {time.monotonic() - started:.0f} s", flush=True)
    return final


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "path":
        print(binary(argv[1]))
        return 0
    if argv and argv[0] == "build":
        for name in argv[1:] or list(TOOLS):
            if name not in TOOLS:
                raise SystemExit(f"unknown tool {name!r}; one of {', '.join(TOOLS)}")
            print(build(name))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
