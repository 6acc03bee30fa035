"""Package discovery; everything else about the distribution is in pyproject.toml.

Why a setup.py at all: api/, worker/ and operator/ install as streamtrack.api, streamtrack.worker
and streamtrack.operator ([tool.setuptools.package-dir]), and pyproject's `packages.find` names a
package after its folder (it would find `api.grpc`, not `streamtrack.api.grpc`). So the packages
are found here, under each mapped folder, and named under its mapping: a new sub-package, or a
data folder such as api/dashboard_assets/, needs no list kept by hand.
"""

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
MAPPED: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
"""Package name -> folder, e.g. streamtrack.operator -> operator."""

IGNORED = ["*__pycache__*", "examples", "examples.*", "*.examples", "*.examples.*"]
"""Byte-code caches, and the operator's example manifests (documentation, not package data)."""


def packages() -> list[str]:
    found = find_namespace_packages(where=str(ROOT), include=["streamtrack", "streamtrack.*"], exclude=IGNORED)
    for name, folder in MAPPED.items():
        found += [name, *(f"{name}.{sub}" for sub in find_namespace_packages(where=str(ROOT / folder), exclude=IGNORED))]
    return sorted(set(found))  # streamtrack.operator is found twice: through streamtrack/operator, a link to it


setup(packages=packages())
