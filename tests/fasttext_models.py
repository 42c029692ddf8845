"""Tiny fastText models trained for tests, each in a fresh Python process.

In a long test session fasttext-numpy2 0.10.4 can fail every training run with
"Encountered NaN" (the same call succeeds in a fresh process: some state a library loaded
earlier leaves in the process), and now and then it fails in a fresh process too; so each
model is trained in a subprocess, again with another seed when that happens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_TRAIN = """
import json, sys
import fasttext
kwargs = json.loads(sys.argv[3])
fasttext.train_supervised(sys.argv[1], verbose=0, **kwargs).save_model(sys.argv[2])
"""


def train_supervised(train_file: str | Path, model_file: str | Path, attempts: int = 5, **kwargs):
    """`fasttext.train_supervised(train_file, **kwargs)` saved to `model_file`; `seed` is
    the attempt number unless given. Returns `model_file` as a string."""
    error = ""
    for attempt in range(attempts):
        args = {**kwargs, "seed": kwargs.get("seed", 0) + attempt}
        done = subprocess.run(
            [sys.executable, "-c", _TRAIN, str(train_file), str(model_file), json.dumps(args)],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return str(model_file)
        error = done.stderr.strip().splitlines()[-1:]
    raise RuntimeError(f"fastText training failed {attempts} times: {error}")
