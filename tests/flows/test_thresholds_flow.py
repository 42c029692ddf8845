"""Score once, re-threshold many times: `curate text --score-only`, then `curate
apply-thresholds --set ...` gives the rows a run with those thresholds keeps."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from flows.text import TextParams, run_text
from flows.thresholds import ThresholdParams, run_thresholds
from stages.io.commit import dataset_files
from tests.documents import english_documents


def _ids(output: str) -> list[str]:
    ids = []
    for path in dataset_files(output):
        ids += pq.read_table(path, columns=["id"]).column("id").to_pylist()
    return sorted(ids)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("thresholds")
    texts = english_documents(40, seed=5)
    texts += [
        " ".join(t.split()[:k]) + "." for t, k in zip(texts[:4], (20, 35, 45, 60), strict=True)
    ]
    docs = folder / "docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"id": f"d{i:02d}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    common = {"input": str(docs), "dedup": "none", "languages": []}
    run_text(TextParams(output=str(folder / "scored"), score_only=True, **common))
    return folder, common


def test_score_only_keeps_every_row(scored):
    folder, _ = scored
    assert len(_ids(str(folder / "scored"))) == 44


def test_apply_thresholds_equals_a_run_with_those_thresholds(scored, tmp_path, monkeypatch):
    from stages.text import recipes

    folder, common = scored
    summary = run_thresholds(
        ThresholdParams(
            input=str(folder / "scored"),
            output=str(tmp_path / "rethresholded"),
            set=["WordCountFilter.min_words=30"],
        )
    )
    changed = tuple(
        (cls, {**kw, "min_words": 30} if cls == "WordCountFilter" else kw)
        for cls, kw in recipes.ENGLISH_HEURISTICS
    )
    monkeypatch.setitem(recipes.RECIPES, "min-words-30", changed)
    run_text(TextParams(output=str(tmp_path / "direct"), filters="min-words-30", **common))
    assert _ids(str(tmp_path / "rethresholded")) == _ids(str(tmp_path / "direct"))
    default = tmp_path / "default"
    run_text(TextParams(output=str(default), **common))
    moved = {s["stage"]: s for s in summary["report"]["stages"]}["ApplyThresholds"]
    newly_kept = moved["details"]["counts"]["WordCountFilter.min_words=30: newly kept"]
    assert newly_kept == 2  # the 35- and 45-word documents
    assert len(_ids(str(tmp_path / "rethresholded"))) == len(_ids(str(default))) + newly_kept
