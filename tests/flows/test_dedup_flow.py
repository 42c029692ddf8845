"""The dedup flow end to end: Prefect (test harness) + local Ray + an S3 endpoint."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from documents import english_documents

from flows.dedup import DedupParams, curate_dedup
from flows.steps.dedup import read_partition, write_by_partition
from stages.dedup.fuzzy import find_fuzzy_duplicates
from stages.dedup.minhash import MinHashConfig
from stages.io.commit import VersionWriter, dataset_files, read_manifest


def _rows() -> list[dict]:
    docs = english_documents(120, seed=11)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rng = random.Random(1)
    for i in range(15):  # near copies: one word changed in long documents
        words = docs[60 + i].split()
        words[rng.randrange(len(words))] = "zebra"
        rows.append({"id": f"near{i}", "text": " ".join(words)})
    rows += [{"id": f"copy{i}", "text": docs[i]} for i in range(10)]
    return rows


def _upload(fs, bucket: str, rows: list[dict]) -> str:
    half = len(rows) // 2
    for name, part in (("a.jsonl", rows[:half]), ("b.jsonl", rows[half:])):
        fs.pipe(f"{bucket}/raw/{name}", "\n".join(json.dumps(r) for r in part).encode())
    return f"s3://{bucket}/raw/*.jsonl"


def _read(fs, uri: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(fs.open(f)) for f in dataset_files(uri)])


def test_exact_dedup_removes_copies_and_keeps_the_first(s3_bucket, prefect_harness, ray_cluster):
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    source = _upload(fs, s3_bucket, _rows())
    out = f"s3://{s3_bucket}/exact"
    curate_dedup(DedupParams(input=source, output=out, method="exact", partitions=4))
    manifest = read_manifest(out)
    ids = set(_read(fs, out).column("id").to_pylist())
    assert len(ids) == manifest["rows"] == 135
    assert not any(i.startswith("copy") for i in ids) and "d0" in ids
    audit = pq.read_table(fs.open(f"{manifest['uri']}/duplicates.parquet")).to_pylist()
    assert {(r["id"], r["duplicate_of"]) for r in audit} == {
        (f"copy{i}", f"d{i}") for i in range(10)
    }


@pytest.mark.parametrize("verify", ["none", "exact"])
def test_fuzzy_dedup_on_s3_matches_the_in_memory_pipeline(
    s3_bucket, prefect_harness, ray_cluster, verify
):
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    rows = _rows()
    source = _upload(fs, s3_bucket, rows)
    out = f"s3://{s3_bucket}/fuzzy"
    params = DedupParams(
        input=source, output=out, method="fuzzy", preset="nemo", partitions=4, verify=verify
    )
    summary = curate_dedup(params)

    table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
    expected = find_fuzzy_duplicates(table, MinHashConfig())
    expected_ids = {rows[o]["id"] for o in expected.column("_order").to_pylist()}
    manifest = read_manifest(out)
    audit = pq.read_table(fs.open(f"{manifest['uri']}/duplicates.parquet")).to_pylist()
    removed = {r["id"] for r in audit}
    if verify == "none":
        assert removed == expected_ids
    else:
        assert removed <= expected_ids
    assert {f"copy{i}" for i in range(10)} <= removed
    assert len({f"near{i}" for i in range(15)} & removed) >= 12
    assert not any(r["id"].startswith("d") for r in audit)
    kept = set(_read(fs, out).column("id").to_pylist())
    assert kept.isdisjoint(removed) and len(kept) + len(removed) == len(rows)
    stages = {s["stage"]: s for s in manifest["extra"]["stages"]}
    assert stages["FuzzyDedup"]["removed"] == len(removed)
    # The partitioned path: 4 tasks, each reading only its share of the LSH keys.
    per_partition = manifest["extra"]["bucket_rows_per_partition"]
    assert len(per_partition) == 4 and sum(per_partition) == 20 * len(rows)
    assert max(per_partition) < sum(per_partition)
    assert summary["report"]["rows_written"] == len(kept)


def test_dedup_reads_the_output_of_another_flow(tmp_path, prefect_harness, ray_cluster):
    upstream = tmp_path / "curated"
    writer = VersionWriter(str(upstream), "v1")
    rows = _rows()
    table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
    files = [writer.write_part("00000-0000", table)]
    writer.commit_shard("00000-0000", files, {})
    writer.commit(inputs=[], parameters={}, code_version="test", flow_run_id=None)
    # A file the manifest does not list is never read.
    (upstream / "v1" / "part-stray-0.parquet").write_bytes(b"not parquet")

    out = tmp_path / "dedup"
    curate_dedup(DedupParams(input=str(upstream), output=str(out), method="exact"))
    assert read_manifest(str(out))["rows"] == 135


def test_partition_sidecars_are_read_one_partition_at_a_time(tmp_path):
    table = pa.table({"_order": np.arange(100), "_partition": (np.arange(100) * 7) % 5})
    uri = str(tmp_path / "keys.parquet")
    write_by_partition(table, uri, {})
    assert pq.ParquetFile(uri).metadata.num_row_groups == 5
    for p in range(5):
        part = read_partition([uri], p, ["_order"], {})
        assert sorted(part.column("_order").to_pylist()) == [
            o for o in range(100) if (o * 7) % 5 == p
        ]


@pytest.mark.parametrize("method", ["exact", "fuzzy"])
def test_keep_policy_longest_or_highest_score(tmp_path, prefect_harness, ray_cluster, method):
    base = english_documents(3, seed=5)
    rows = [
        {"id": "short", "text": base[0], "quality": 0.1},
        {"id": "long", "text": base[0] + " And one more sentence.", "quality": 0.5},
        {"id": "best", "text": base[0], "quality": 0.9},
        {"id": "other", "text": base[1], "quality": 0.2},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))

    def run(keep: str, score_column: str | None = None) -> dict[str, str]:
        out = tmp_path / f"{method}-{keep}"
        curate_dedup(
            DedupParams(
                input=str(source),
                output=str(out),
                method=method,
                keep=keep,
                score_column=score_column,
                preset="nemo",  # 24-character shingles: one added sentence stays a duplicate
                verify="none",
            )
        )
        audit = pq.read_table(f"{read_manifest(str(out))['uri']}/duplicates.parquet")
        return dict(zip(audit["id"].to_pylist(), audit["duplicate_of"].to_pylist(), strict=True))

    assert run("first") == (
        {"best": "short"} if method == "exact" else {"long": "short", "best": "short"}
    )
    assert run("score", "quality") == (
        {"short": "best"} if method == "exact" else {"short": "best", "long": "best"}
    )
    if method == "fuzzy":
        assert run("longest") == {"short": "long", "best": "long"}


def test_semantic_dedup_removes_copies_and_reports_an_eps_table(
    tmp_path, prefect_harness, ray_cluster
):
    docs = english_documents(40, seed=21)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"copy{i}", "text": docs[i]} for i in range(4)]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "semantic"
    curate_dedup(
        DedupParams(input=str(source), output=str(out), method="semantic", eps=0.001, partitions=2)
    )
    manifest = read_manifest(str(out))
    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet").to_pylist()
    pairs = {frozenset((r["id"], r["duplicate_of"])) for r in audit}
    assert {frozenset((f"d{i}", f"copy{i}")) for i in range(4)} <= pairs
    assert all(r["similarity"] >= 0.999 for r in audit)
    table = manifest["extra"]["eps_table"]
    removed = [r["removed"] for r in table]
    assert removed == sorted(removed) and removed[0] >= 4
    assert manifest["rows"] == len(rows) - len(audit)


def test_high_recall_preset_with_centers_removes_only_direct_near_duplicates(
    tmp_path, prefect_harness, ray_cluster
):
    rows = _rows()
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "centers"
    curate_dedup(
        DedupParams(
            input=str(source),
            output=str(out),
            method="fuzzy",
            preset="high_recall",
            clustering="centers",
            verify="exact",
            partitions=4,
        )
    )
    manifest = read_manifest(str(out))
    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet").to_pylist()
    removed = {r["id"] for r in audit}
    assert {f"copy{i}" for i in range(10)} | {f"near{i}" for i in range(15)} == removed
    by_id = {r["id"]: r["text"] for r in rows}
    from stages.dedup.minhash import exact_jaccard

    similarity = exact_jaccard(
        [by_id[r["id"]] for r in audit],
        [by_id[r["duplicate_of"]] for r in audit],
        MinHashConfig.high_recall(),
    )
    assert (similarity >= 0.8).all()


def _embedded(tmp_path, with_copies: bool = True):
    """Parquet rows with an `emb` column an earlier stage made (orthogonal unit vectors;
    the copies repeat the vectors of d0..d2) and a user's own `embedding` column."""
    n, dim = 30, 32
    vectors = np.eye(dim, dtype=np.float32)[:n]
    ids = [f"d{i}" for i in range(n)]
    if with_copies:
        vectors = np.concatenate([vectors, vectors[:3]])
        ids += [f"copy{i}" for i in range(3)]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)
    mine = pa.array([[float(i)] * 2 for i in range(len(ids))], pa.list_(pa.float64()))
    table = pa.table({"id": ids, "text": [f"doc {i}" for i in ids], "emb": emb, "embedding": mine})
    pq.write_table(table, str(tmp_path / "in.parquet"))
    return table


def test_semantic_dedup_of_an_embedding_column_keeps_the_users_columns(tmp_path, ray_cluster):
    from flows.dedup import run_dedup

    table = _embedded(tmp_path)
    params = DedupParams(
        input=str(tmp_path / "in.parquet"),
        output=str(tmp_path / "out"),
        method="semantic",
        embedding_column="emb",
        n_clusters=2,
        partitions=2,
    )
    first = run_dedup(params)
    manifest = read_manifest(str(tmp_path / "out"))
    audit = pq.read_table(f"{manifest['uri']}/duplicates.parquet").to_pylist()
    assert {(r["id"], r["duplicate_of"]) for r in audit} == {
        (f"copy{i}", f"d{i}") for i in range(3)
    }
    out = pa.concat_tables([pq.read_table(f) for f in dataset_files(str(tmp_path / "out"))])
    assert out.num_rows == table.num_rows - 3
    # The user's own `embedding` column is data like any other: kept, unchanged.
    expected = dict(zip(table["id"].to_pylist(), table["embedding"].to_pylist(), strict=True))
    kept = zip(out["id"].to_pylist(), out["embedding"].to_pylist(), strict=True)
    assert all(expected[i] == e for i, e in kept)
    # A re-run finds the version committed and still reports the eps table.
    again = run_dedup(params)
    assert again["already_committed"]
    (step,) = [s for s in again["report"]["stages"] if s["stage"] == "SemanticDedup"]
    assert step["details"]["eps_table"] == manifest["extra"]["eps_table"]
    assert again["report"]["rows_read"] == first["report"]["rows_read"] == table.num_rows


def test_keep_score_without_a_score_column_is_refused_when_the_parameters_are_made():
    with pytest.raises(ValueError, match="keep='score' needs score_column"):
        DedupParams(input="x", output="y", keep="score")


def test_fuzzy_defaults_are_the_measured_best_and_nemo_is_a_preset():
    from flows.dedup import dedup_step

    best = dedup_step(DedupParams(input="x", output="y"))
    assert best.minhash == MinHashConfig.high_recall()
    assert (best.verify, best.clustering) == ("exact", "centers")
    nemo = dedup_step(DedupParams(input="x", output="y", preset="nemo"))
    assert nemo.minhash == MinHashConfig()  # 24-character shingles, 20 bands x 13
    assert (nemo.verify, nemo.clustering) == ("none", "components")
    custom = DedupParams(input="x", output="y", num_bands=9)  # a band option: custom
    assert custom.preset == "custom" and dedup_step(custom).minhash.num_bands == 9
    with pytest.raises(ValueError, match="only with preset='custom'"):
        DedupParams(input="x", output="y", preset="nemo", num_bands=9)
