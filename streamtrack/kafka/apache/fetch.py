"""Fetch Apache Kafka's broker jars from Maven Central into a cache keyed by version.

Nothing is built and no tarball is downloaded: Maven copies the runtime dependencies of the
pinned `pom.xml` beside this module into `CACHE/kafka-VERSION/lib`. The cache folder is
`$STREAMTRACK_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/streamtrack`. A marker holding the
pom's hash is written only after Maven succeeded, so an interrupted fetch is redone and a
changed pom fetches again. A file lock keeps two processes (make, pytest, dev) from fetching
into the same folder at once.

`python -m streamtrack.kafka.apache` fetches and prints the folder (`make kafka`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "4.4.0"
MARKER = ".fetched"


class KafkaFetchError(RuntimeError):
    pass


def cache_root() -> Path:
    """Where StreamTrack caches what it fetches (STREAMTRACK_CACHE_DIR overrides)."""
    if explicit := os.environ.get("STREAMTRACK_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "streamtrack"


def package_file(name: str) -> Path:
    """A file shipped beside this module (the pom, the broker's log4j2 configuration)."""
    return Path(str(resources.files(__package__).joinpath(name)))


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    return cache_root() / f"kafka-{version}"


def ensure_kafka() -> Path:
    """The folder whose `lib/` holds the broker's jars, fetching them first if needed."""
    home = kafka_home()
    pom = package_file("pom.xml")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    marker = home / MARKER
    if _fetched(marker, digest):
        return home
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching: wait for it
        if not _fetched(marker, digest):
            _fetch(pom, home)
            marker.write_text(digest + "\n")
    return home


def _fetched(marker: Path, digest: str) -> bool:
    try:
        return marker.read_text().strip() == digest
    except FileNotFoundError:
        return False


def _fetch(pom: Path, home: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaFetchError("fetching Apache Kafka needs Maven (`mvn`) and Java 17+: apt-get install maven")
    partial, lib = home / "lib.partial", home / "lib"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {lib} ...", file=sys.stderr, flush=True)
    done = subprocess.run(
        [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={partial}"],
        capture_output=True, text=True, timeout=1800,
    )
    if done.returncode != 0:
        raise KafkaFetchError(f"mvn could not fetch Apache Kafka {KAFKA_VERSION}:\n{(done.stdout + done.stderr)[-3000:]}")
    _check_logging_jars(partial)
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)


def _check_logging_jars(lib: Path) -> None:
    """Exactly one slf4j-api and one binding, or the broker logs nothing (or warns of several)."""
    names = [jar.name for jar in lib.glob("*.jar")]
    apis = [n for n in names if n.startswith("slf4j-api-")]
    bindings = [n for n in names if n.startswith(("log4j-slf4j", "slf4j-reload4j", "slf4j-simple", "logback-classic"))]
    if len(apis) != 1 or len(bindings) != 1:
        raise KafkaFetchError(f"expected one slf4j-api and one binding in {lib}, found {apis} and {bindings}")

