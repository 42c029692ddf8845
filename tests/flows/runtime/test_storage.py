"""Where data lives: the code version a manifest records."""

from pathlib import Path

import pytest

from flows.runtime.storage import code_version

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_code_version_names_the_commit_in_a_checkout():
    import subprocess

    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert f"+g{sha}" in code_version()
