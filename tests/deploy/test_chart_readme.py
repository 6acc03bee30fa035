"""The chart's README: its values table is what scripts/chart_values_table.py makes of
values.schema.json and values.yaml today, and every value in it says what it does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "streamtrack"
SCRIPT = ROOT / "scripts" / "chart_values_table.py"


def table_rows() -> list[list[str]]:
    text = (CHART / "README.md").read_text()
    start = text.index("<!-- values-table")
    body = text[start:text.index("<!-- /values-table -->")].splitlines()[3:]
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in body]


def leaf_keys(values: dict[str, object], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        keys |= leaf_keys(value, path) if isinstance(value, dict) and value else {path}
    return keys


def test_the_values_table_is_current() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")


def test_every_value_is_in_the_table_with_a_description() -> None:
    rows = table_rows()
    keys = {row[0].strip("`") for row in rows}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # Leaves of values.yaml, or the row of the map that holds them (resources.requests, config).
    missing = {key for key in leaf_keys(values) if not any(key == k or key.startswith(k + ".") for k in keys)}
    assert missing == set()
    assert [row[0] for row in rows if not row[3]] == []


def test_the_check_fails_on_a_stale_table() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import chart_values_table
    finally:
        sys.path.remove(str(SCRIPT.parent))
    readme = (CHART / "README.md").read_text()
    stale = chart_values_table.with_table(readme, "| Key | Type | Default | Description |\n|---|---|---|---|")
    assert stale != readme
    assert chart_values_table.with_table(stale, chart_values_table.table()) == readme
