"""Access to scripts/chart_tool.py for the tests: the same code `make lint-deploy` and Jenkins run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "chart_tool.py"
_spec = importlib.util.spec_from_file_location("chart_tool", _PATH)
assert _spec is not None and _spec.loader is not None
chart_tool = importlib.util.module_from_spec(_spec)
sys.modules["chart_tool"] = chart_tool
_spec.loader.exec_module(chart_tool)
