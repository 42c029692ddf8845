"""The one rule of the layout: nothing under stages/ imports Prefect or Ray."""

import ast
from pathlib import Path

STAGES = Path(__file__).resolve().parent.parent / "stages"


def test_stages_never_import_prefect_or_ray():
    offenders = []
    for path in sorted(STAGES.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"prefect", "ray", "prefect_ray"}:
                    offenders.append(f"{path.relative_to(STAGES.parent)}:{node.lineno}: {name}")
    assert offenders == [], "stages/ must stay engine-free:\n" + "\n".join(offenders)


def test_stages_package_is_found():
    assert (STAGES / "base.py").exists()
