"""The deploy scripts (scripts/*.py) as modules, for the tests: the same code `make lint-deploy`,
`make k8s` and Jenkins run. scripts/ is not a package, so each file is loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


chart_tool = _load("chart_tool")
terraform_check = _load("terraform_check")
