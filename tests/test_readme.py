"""Every Python snippet in the README runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from documents import english_documents

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch, request):
    code = SNIPPETS[index]
    if "curate_text" in code:
        request.getfixturevalue("prefect_harness")
        request.getfixturevalue("ray_cluster")
        (tmp_path / "data").mkdir()
        rows = [{"id": str(i), "text": t} for i, t in enumerate(english_documents(20))]
        (tmp_path / "data" / "docs.jsonl").write_text("\n".join(map(json.dumps, rows)))
    monkeypatch.chdir(tmp_path)
    from flows.runtime.builder import registered, unregister

    before = set(registered())
    try:
        exec(compile(code, f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})
        if "build_flow" in code:  # a declared flow is a subcommand
            from flows.cli import build_parser

            (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
            assert set(registered()) - before <= set(commands.choices)
    finally:
        for key in set(registered()) - before:
            unregister(key)
