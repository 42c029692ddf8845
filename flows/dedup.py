"""`curate_dedup`: remove exact or near-duplicate documents from any dataset.

    plan shards -> identify pass on Ray (hash or MinHash per shard; sidecars by partition)
                -> find duplicates: one Ray task per partition (hash groups, or LSH bucket
                   edges), connected components of the edges, optional verification
                -> remove pass on Ray (re-read each shard, drop the duplicates, write)
                -> commit (manifest last) -> publish

Identify and remove are separate steps: `duplicates.parquet` in the output version lists
every removed id with its cluster and the id it duplicates, for audit. Every pass is
resumable through the commit protocol, like the text flow's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from flows.runtime import storage
from flows.runtime.engine import RunReport, StageMetrics
from flows.runtime.passes import (
    DUPLICATES,
    FinalSink,
    commit_and_publish,
    describe_inputs,
    report_from_manifest,
    run_phase,
    shard_result,
    summary,
    task_options,
    write_all_columns,
    write_reports,
)
from stages.base import Stage
from stages.io.commit import VersionWriter, read_manifest
from stages.io.fs import filesystem
from stages.io.read import ShardReader
from stages.io.shards import Shard, plan_shards

log = logging.getLogger("curate.dedup")

IDENTIFY = "identify"


class DedupParams(BaseModel):
    """Parameters of the deduplication flow (rendered as a form in the Prefect UI)."""

    input: str = Field(
        description="Any dataset curate reads: JSONL (.gz/.zst), Parquet, local or s3://, "
        "or the output folder of another curate flow.",
        examples=["s3://curated/cc", "data/docs.jsonl"],
    )
    output: str = Field(description="Output dataset folder, local or s3://.")
    method: Literal["exact", "fuzzy", "semantic"] = Field(
        "fuzzy",
        description="exact: identical content; fuzzy: MinHash + LSH near-duplicates; "
        "semantic: embeddings, k-means and cosine similarity within clusters (SemDeDup).",
    )
    column: str = Field("text", description="The column compared.")
    id_field: str = Field("id", description="Input field holding a document id, if any.")
    threshold: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="fuzzy: Jaccard similarity from which a verified "
        "candidate pair counts as a duplicate.",
    )
    char_ngrams: int | None = Field(24, description="fuzzy: character shingle size.")
    word_ngrams: int | None = Field(None, description="fuzzy: word shingle size instead.")
    normalize: bool = Field(
        False,
        description="fuzzy: shingle lower-cased runs of letters, digits and _ "
        "(punctuation, case and spacing do not count).",
    )
    preset: Literal["nemo", "high_recall"] | None = Field(
        None,
        description="fuzzy: a tuned configuration instead of the shingle and band "
        "fields: nemo (24-char shingles, 20x13, as NeMo Curator) or high_recall (normalised "
        "word 5-grams, 20x7: with verification and centers clustering it keeps every removal "
        "a true near-duplicate and finds 99% of them).",
    )
    clustering: Literal["components", "centers"] = Field(
        "components",
        description="fuzzy: connected components of verified edges, or centers: a document is "
        "removed only for a kept document it is itself a near-duplicate of (no chains).",
    )
    num_bands: int = Field(20, ge=1, description="fuzzy: LSH bands.")
    hashes_per_band: int = Field(13, ge=1, description="fuzzy: MinHash values per band.")
    seed: int = Field(42, description="fuzzy: MinHash seed.")
    verify: Literal["exact", "estimate", "none"] = Field(
        "exact",
        description="fuzzy: check candidate pairs with the true Jaccard of their shingle sets "
        "(exact), the MinHash estimate (estimate), or not at all (none, as NeMo Curator).",
    )
    keep: Literal["first", "longest", "score"] = Field(
        "first",
        description="Which document of a duplicate group is kept: the first in input order, "
        "the longest, or the one with the highest `score_column` (ties: the first).",
    )
    score_column: str | None = Field(None, description="keep='score': the column to maximise.")
    eps: float = Field(
        0.01, gt=0.0, lt=1.0, description="semantic: duplicates have cosine similarity >= 1 - eps."
    )
    n_clusters: int | None = Field(
        None,
        ge=1,
        description="semantic: k-means clusters (default: one per 1,000 documents, "
        "between 1 and 1,000).",
    )
    semantic_keep: Literal["hard", "easy", "random"] = Field(
        "hard",
        description="semantic: which item of a near-identical pair is kept, as NeMo Curator: "
        "hard keeps the ones farthest from their centroid, easy the nearest, random a seeded draw.",
    )
    model: str | None = Field(
        None,
        description="semantic: a local sentence-transformers model folder (default: the "
        "bundled all-MiniLM-L6-v2).",
    )
    kmeans_sample: int = Field(100_000, ge=1, description="semantic: rows k-means is fit on.")
    partitions: int = Field(16, ge=1, description="Hash partitions of the global passes.")
    shard_size_mb: float = Field(32.0, gt=0, description="Target input bytes per shard.")
    strict: bool = Field(False, description="Fail on the first bad input row.")
    version: str | None = Field(None, description="Output version name (default: derived).")

    def minhash_config(self):
        from stages.dedup.minhash import MinHashConfig

        if self.preset == "high_recall":
            return MinHashConfig.high_recall()
        if self.preset == "nemo":
            return MinHashConfig()
        return MinHashConfig(
            char_ngrams=None if self.word_ngrams else self.char_ngrams,
            word_ngrams=self.word_ngrams,
            num_bands=self.num_bands,
            hashes_per_band=self.hashes_per_band,
            seed=self.seed,
            lowercase=self.normalize,
            normalize=self.normalize,
        )


@dataclass
class DedupPlan:
    shards: list[Shard]
    inputs: list[dict]
    version: str
    output: str
    parameters: dict

    @property
    def work(self) -> str:
        return storage.join(self.output, self.version, "_work")


def plan_dedup(params: DedupParams) -> DedupPlan:
    options = storage.storage_options()
    source = (
        params.input if storage.is_remote(params.input) else storage.normalize_uri(params.input)
    )
    shards = plan_shards(source, shard_size_mb=params.shard_size_mb, storage_options=options)
    inputs = describe_inputs(shards, options)
    parameters = params.model_dump(exclude={"version"})
    version = params.version or storage.version_id(inputs, parameters)
    return DedupPlan(
        shards, inputs, version, storage.normalize_uri(params.output), params.model_dump()
    )


def _reader(params: DedupParams, columns: list[str] | None = None) -> ShardReader:
    """Fuzzy and semantic dedup read the compared column as `text`. Exact dedup of another
    column (image or audio bytes, any string field) reads rows as they are, that column
    under its own name and never decoded; rows where it is null or missing are quarantined.
    """
    raw = params.method == "exact" and params.column != "text"
    return ShardReader(
        text_field=None if raw else params.column,
        required_field=params.column if raw else None,
        id_field=params.id_field,
        columns=columns,
        storage_options=storage.storage_options(),
        strict=params.strict,
    )


def _priority(params: DedupParams, table: pa.Table) -> pa.Array:
    """Per row, how strongly it should be the one kept of its duplicate group."""
    if params.keep == "longest":  # characters of a text, bytes of a binary column
        column = table.column("text")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return pc.cast(pc.utf8_length(pc.fill_null(column, "")), pa.float64())
        return pc.cast(pc.fill_null(pc.binary_length(column), 0), pa.float64())
    if params.keep == "score":
        values = table.column(params.score_column)
        return pc.fill_null(pc.cast(values, pa.float64()), float("-inf"))
    return pa.array(np.zeros(table.num_rows), pa.float64())


# --------------------------------------------------------------------------- identify


def identify_stage(params: DedupParams) -> Stage:
    if params.method == "exact":
        from stages.dedup.exact import ExactDedupHash

        return ExactDedupHash(num_partitions=params.partitions)
    if params.method == "semantic":
        from stages.dedup.embed import TextEmbedder

        return TextEmbedder(model=params.model)
    from stages.dedup.minhash import MinhashDedupSignature

    return MinhashDedupSignature(params.minhash_config())


class SidecarSink:
    """Writes what the global pass needs of a shard, not the shard itself (the remove pass
    re-reads the input): `docs-<shard>.parquet` (`_order`, `id`, signature when needed) and
    `keys-<shard>.parquet`, the grouping keys with their partition, one row group per
    partition so a partition task reads only its own rows."""

    def __init__(self, work: str, params: DedupParams, options: dict):
        self.work, self.params, self.options = work, params, options

    def __call__(self, shard: Shard, table: pa.Table, quarantine: pa.Table, metrics: list) -> dict:
        from stages.dedup.lsh import band_buckets

        writer = VersionWriter(self.work, IDENTIFY, storage_options=self.options)
        partitions = self.params.partitions
        table = table.append_column("_priority", _priority(self.params, table))
        docs = ["_order", "id", "_priority"]
        if self.params.method == "exact":
            keys = table.select(["_order", "id", "_hash", "_partition", "_priority"])
        elif self.params.method == "semantic":
            keys = table.select(["_order", "embedding"])
        else:
            keys = band_buckets(table.select(["_order", "_bands"]))
            bucket = keys.column("bucket").to_numpy()
            partition = (bucket % np.uint64(partitions)).astype(np.int32)
            keys = keys.append_column("_partition", pa.array(partition))
            if self.params.verify == "estimate":
                docs.append("_minhash")
        files = []
        for name, part in (("docs", table.select(docs)), ("keys", keys)):
            rel = f"{name}-{shard.key}.parquet"
            nbytes = _write_by_partition(part, storage.join(writer.uri, rel), self.options)
            files.append({"path": rel, "rows": part.num_rows, "bytes": nbytes})
        bad = [writer.write_quarantine(shard.key, quarantine)] if quarantine.num_rows else []
        result = shard_result(shard, table, quarantine, metrics, [])
        writer.commit_shard(shard.key, files, result, quarantine=bad)
        return result


def _write_by_partition(table: pa.Table, uri: str, options: dict) -> int:
    if "_partition" not in table.column_names:
        return write_all_columns(table, uri, options)
    table = table.sort_by("_partition")
    fs, path = filesystem(uri, options)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    bounds = np.flatnonzero(np.diff(table.column("_partition").to_numpy())) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), table.num_rows]
    with fs.open(path, "wb") as f, pq.ParquetWriter(f, table.schema, compression="zstd") as w:
        for start, end in zip(starts, ends, strict=True):
            w.write_table(table.slice(start, end - start))
    return int(fs.size(path))


def identify_pass(params: DedupParams, plan: DedupPlan) -> RunReport:
    """Pass 1: hash or MinHash every shard not yet done; write its sidecars."""
    options = storage.storage_options()
    writer = VersionWriter(plan.work, IDENTIFY, storage_options=options)
    report = RunReport(shards_total=len(plan.shards))
    done = writer.done_shards()
    for marker in done.values():
        report.add_shard(marker["stats"])
    pending = [s for s in plan.shards if s.key not in done]
    report.shards_skipped = len(plan.shards) - len(pending)
    if params.keep == "score" and not params.score_column:
        raise ValueError("keep='score' needs score_column: the column whose highest value wins")
    extra = [params.score_column] if params.keep == "score" else []
    reader = _reader(params, columns=extra)

    def read(shard: Shard) -> tuple[pa.Table, pa.Table]:
        result = reader.read(shard)
        if params.method != "exact" and not result.num_rows and shard.format == "parquet":
            # The reader quarantines a file whose column is not text; bytes are a user error.
            fs, path = filesystem(shard.uri, storage.storage_options())
            try:
                with fs.open(path, "rb") as f:
                    schema = pq.read_schema(f)
            except (pa.ArrowException, OSError):
                schema = None
            if schema is not None and params.column in schema.names:
                kind = schema.field(params.column).type
                if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
                    raise ValueError(
                        f"{params.method} dedup needs a text column; {params.column!r} is "
                        f"binary in {shard.uri} (method='exact' removes byte-identical copies)"
                    )
        missing = [c for c in extra if c not in result.table.column_names]
        if missing:
            raise KeyError(f"{shard.uri}: no column {missing[0]!r} to rank duplicates by")
        if reader.text_field is not None:
            table = result.table.select(["id", "text", "_order", *extra])
        else:  # exact dedup of another column: the identify stage hashes `text`
            table = result.table.select(["id", params.column, "_order", *extra])
            table = table.rename_columns(["id", "text", "_order", *extra])
        return table, result.quarantine

    start = time.perf_counter()
    run_phase(
        "identify",
        pending,
        read,
        [identify_stage(params)],
        SidecarSink(plan.work, params, options),
        report,
    )
    report.seconds = time.perf_counter() - start
    return report


# --------------------------------------------------------------------------- find


def _sidecars(plan: DedupPlan, kind: str) -> dict[str, str]:
    """Shard key -> URI of its `kind` sidecar ("docs" or "keys")."""
    writer = VersionWriter(plan.work, IDENTIFY, storage_options=storage.storage_options())
    return {
        key: storage.join(writer.uri, f["path"])
        for key, marker in writer.done_shards().items()
        for f in marker["files"]
        if f["path"].startswith(kind + "-")
    }


def _read_partition(uris: list[str], partition: int, columns: list[str], options) -> pa.Table:
    tables = []
    for uri in uris:
        fs, path = filesystem(uri, options)
        with fs.open(path, "rb") as f:
            t = pq.read_table(
                f, columns=columns + ["_partition"], filters=[("_partition", "=", partition)]
            )
        tables.append(t.drop_columns(["_partition"]))
    return pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})


def find_duplicates(params: DedupParams, plan: DedupPlan) -> tuple[pa.Table, StageMetrics]:
    """The global pass: removed rows as `_order`, `id`, `cluster` (the `_order` kept for
    them), `duplicate_of` (its id); and the step's metrics."""
    import ray

    from flows.runtime.engine import init_ray

    options = storage.storage_options()
    keys = list(_sidecars(plan, "keys").values())
    docs = _sidecars(plan, "docs")
    start = time.perf_counter()
    init_ray()
    fuzzy_details: dict = {}

    if params.method == "exact":

        @ray.remote(num_cpus=1)
        def exact_partition(p: int) -> pa.Table | None:
            from stages.dedup.keep import choose_survivors

            table = _read_partition(keys, p, ["id", "_hash", "_order", "_priority"], options)
            if not table.num_rows:
                return None
            groups = pc.dictionary_encode(table.column("_hash")).combine_chunks().indices
            nodes = table.column("_order").to_numpy()
            removed = choose_survivors(
                nodes, groups.to_numpy(), table.column("_priority").to_numpy()
            )
            ids = table.column("id")
            where = pc.index_in(
                removed.column("_order"), value_set=table.column("_order").combine_chunks()
            )
            kept = pc.index_in(
                removed.column("cluster"), value_set=table.column("_order").combine_chunks()
            )
            return removed.append_column("id", ids.take(where)).append_column(
                "duplicate_of", ids.take(kept)
            )

        parts = ray.get([exact_partition.remote(p) for p in range(params.partitions)])
        parts = [t for t in parts if t is not None and t.num_rows]
        removed = pa.concat_tables(parts) if parts else _empty_removed()
    elif params.method == "semantic":
        removed, eps_records = _semantic(params, plan, keys, docs, options)
    else:
        removed = _fuzzy(params, plan, keys, docs, options, fuzzy_details)
    removed = removed.sort_by("_order")
    rows_in = sum(
        m["stats"]["rows_written"]
        for m in VersionWriter(plan.work, IDENTIFY, storage_options=options).done_shards().values()
    )
    metrics = StageMetrics(
        {"exact": "ExactDedup", "fuzzy": "FuzzyDedup", "semantic": "SemanticDedup"}[params.method],
        rows_in=rows_in,
        rows_out=rows_in - removed.num_rows,
        seconds=time.perf_counter() - start,
        shards=len(keys),
    )
    metrics.removed_sample = removed.slice(0, 10).select(["id", "duplicate_of"]).to_pylist()
    if params.method == "semantic":
        metrics.details = {"eps_table": eps_records}
    if params.method == "fuzzy":
        metrics.details = fuzzy_details
    return removed, metrics


def _fuzzy(params: DedupParams, plan: DedupPlan, keys, docs, options, details: dict) -> pa.Table:
    import ray

    @ray.remote(num_cpus=1)
    def partition_edges(p: int):
        """Candidate edges of one partition of LSH buckets, reduced to their connected
        components (node -> smallest node), which is all the global merge needs."""
        from stages.dedup.components import connected_components
        from stages.dedup.lsh import bucket_edges

        table = _read_partition(keys, p, ["band", "bucket", "_order"], options)
        edges = bucket_edges(table)
        if params.verify != "none" or params.clustering == "centers":
            return table.num_rows, edges  # verification and centers need the pairs
        src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()
        return table.num_rows, connected_components(src, dst)

    results = ray.get([partition_edges.remote(p) for p in range(params.partitions)])
    parts = [part for _, part in results]
    # Each partition task read only its own share of the LSH keys: the figures say how
    # the work was spread (and that no task held all of it).
    details["bucket_rows_per_partition"] = [rows for rows, _ in results]

    @ray.remote(num_cpus=1)
    def merge(parts, verify: str) -> pa.Table:
        from stages.dedup.components import (
            center_clusters,
            connected_components,
            merge_components,
        )
        from stages.dedup.keep import choose_survivors

        if verify == "none" and params.clustering == "components":
            nodes, component = merge_components(list(parts))
        else:
            edges = pa.concat_tables(parts)
            src = edges.column("src").to_numpy()
            dst = edges.column("dst").to_numpy()
            if len(src) and verify != "none":
                src, dst = np.unique(np.stack([src, dst], axis=1), axis=0).T
                similar = _similarity(params, plan, docs, src, dst, verify, options)
                keep = similar >= params.threshold
                src, dst = src[keep], dst[keep]
            if params.clustering == "centers":
                nodes = np.unique(np.concatenate([src, dst]))
                return center_clusters(src, dst, nodes, priority_of(nodes))
            nodes, component = connected_components(src, dst)
        return choose_survivors(nodes, component, priority_of(nodes))

    def priority_of(nodes: np.ndarray) -> np.ndarray | None:
        if params.keep == "first" or not len(nodes):
            return None
        rows = _docs_rows(docs, pa.array(nodes, pa.int64()), ["_order", "_priority"], options)
        index = pc.index_in(
            pa.array(nodes, pa.int64()), value_set=rows.column("_order").combine_chunks()
        )
        return rows.column("_priority").take(index).to_numpy()

    removed = ray.get(merge.remote(parts, params.verify))
    if removed.num_rows == 0:
        return _empty_removed()
    orders = removed.column("_order")
    clusters = removed.column("cluster")
    ids, kept_ids = _ids_of(docs, orders, clusters, options=options)
    return pa.table(
        {
            "_order": orders,
            "id": ids,
            "cluster": clusters,
            "duplicate_of": kept_ids,
        }
    )


def _semantic(params: DedupParams, plan: DedupPlan, keys, docs, options):
    """SemDeDup on Ray: fit k-means on a seeded sample of the embeddings, assign every
    shard's embeddings to clusters (one task per shard, written by partition of cluster),
    then per partition compare the items of each cluster. Returns the removed rows and
    the table of how many each eps would remove."""
    import ray

    writer = VersionWriter(plan.work, IDENTIFY, storage_options=options)
    total = sum(
        f["rows"]
        for marker in writer.done_shards().values()
        for f in marker["files"]
        if f["path"].startswith("keys-")
    )
    n_clusters = params.n_clusters or max(1, min(1000, total // 1000))
    fraction = min(1.0, params.kmeans_sample / max(total, 1))
    clusters_dir = storage.join(plan.work, "clusters")

    @ray.remote(num_cpus=1)
    def fit() -> np.ndarray:
        from stages.dedup.embed import embedding_matrix
        from stages.dedup.semantic import kmeans_fit

        parts = []
        for uri in keys:
            fs, path = filesystem(uri, options)
            with fs.open(path, "rb") as f:
                table = pq.read_table(f)
            chosen = _sample_mask(table.column("_order").to_numpy(), fraction, params.seed)
            parts.append(embedding_matrix(table.column("embedding").filter(pa.array(chosen))))
        sample = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        return kmeans_fit(
            sample, min(n_clusters, len(sample)), seed=params.seed, sample=params.kmeans_sample
        )

    centroids = ray.put(ray.get(fit.remote()))

    @ray.remote(num_cpus=1)
    def assign(uri: str, centroids: np.ndarray) -> str:
        from stages.dedup.embed import embedding_matrix
        from stages.dedup.semantic import assign_clusters

        fs, path = filesystem(uri, options)
        with fs.open(path, "rb") as f:
            table = pq.read_table(f)
        cluster, distance = assign_clusters(embedding_matrix(table.column("embedding")), centroids)
        table = table.append_column("cluster", pa.array(cluster, pa.int32()))
        table = table.append_column("distance", pa.array(distance, pa.float32()))
        table = table.append_column("_partition", pa.array(cluster % params.partitions, pa.int32()))
        out = storage.join(clusters_dir, uri.rsplit("/", 1)[-1])
        _write_by_partition(table, out, options)
        return out

    assigned = ray.get([assign.remote(uri, centroids) for uri in keys])

    @ray.remote(num_cpus=1)
    def partition_items(p: int) -> pa.Table | None:
        from stages.dedup.embed import embedding_matrix
        from stages.dedup.semantic import semantic_duplicates

        table = _read_partition(
            assigned, p, ["_order", "embedding", "cluster", "distance"], options
        )
        if not table.num_rows:
            return None
        table = table.sort_by([("cluster", "ascending"), ("_order", "ascending")])
        cluster = table.column("cluster").to_numpy()
        bounds = np.flatnonzero(np.diff(cluster)) + 1
        out = []
        for start, end in zip([0, *bounds], [*bounds, len(cluster)], strict=True):
            part = table.slice(start, end - start)
            items = semantic_duplicates(
                # Zero-padded, so that ties (identical embeddings) go to input order.
                [f"{o:020d}" for o in part.column("_order").to_pylist()],
                embedding_matrix(part.column("embedding")),
                part.column("distance").to_numpy(),
                eps=None,
                keep=params.semantic_keep,
                seed=params.seed,
                all_items=True,
            )
            items = items.append_column(
                "cluster", pa.array(np.full(items.num_rows, cluster[start]), pa.int64())
            )
            out.append(items)
        return pa.concat_tables(out)

    parts = [
        t
        for t in ray.get([partition_items.remote(p) for p in range(params.partitions)])
        if t is not None
    ]
    if not parts:
        return _empty_removed(), []
    from stages.dedup.semantic import eps_table

    items = pa.concat_tables(parts)
    records = eps_table(items.column("similarity"))
    threshold = np.float32(1.0 - params.eps)
    similarity = items.column("similarity").to_numpy(zero_copy_only=False)
    chosen = np.nan_to_num(similarity.astype(np.float64), nan=-2.0) >= threshold
    removed = items.filter(pa.array(chosen))
    orders = pc.cast(removed.column("id"), pa.int64())
    of = pc.cast(removed.column("duplicate_of"), pa.int64())
    ids, of_ids = _ids_of(docs, orders, of, options=options)
    return (
        pa.table(
            {
                "_order": orders,
                "id": ids,
                "cluster": removed.column("cluster"),
                "duplicate_of": of_ids,
                "similarity": removed.column("similarity"),
            }
        ),
        records,
    )


def _sample_mask(orders: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, order-independent sample: each row in with probability `fraction`."""
    if fraction >= 1.0:
        return np.ones(len(orders), dtype=bool)
    x = orders.astype(np.uint64) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64))
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x < np.uint64(fraction * float(1 << 64))


def _similarity(params, plan, docs, src, dst, verify, options) -> np.ndarray:
    """Jaccard similarity of each candidate pair: of their shingle sets (exact), or the
    fraction of equal MinHash values (estimate)."""
    from stages.dedup.minhash import estimated_jaccard, exact_jaccard

    needed = pa.array(np.unique(np.concatenate([src, dst])), pa.int64())
    if verify == "estimate":
        table = _docs_rows(docs, needed, ["_order", "_minhash"], options)
        index = {o: i for i, o in enumerate(table.column("_order").to_pylist())}
        sig = np.stack(table.column("_minhash").to_numpy(zero_copy_only=False))
        a = sig[[index[o] for o in src.tolist()]]
        b = sig[[index[o] for o in dst.tolist()]]
        return estimated_jaccard(a, b)
    texts = _texts_of(params, plan, needed)
    return exact_jaccard(
        [texts[o] for o in src.tolist()], [texts[o] for o in dst.tolist()], params.minhash_config()
    )


def _texts_of(params: DedupParams, plan: DedupPlan, orders: pa.Array) -> dict[int, str]:
    """The texts of the documents with these `_order`s, read again from their shards."""
    file_index = pc.shift_right(orders, 32).to_numpy()
    wanted = set(file_index.tolist())
    reader = _reader(params)
    texts: dict[int, str] = {}
    for shard in plan.shards:
        if shard.file_index not in wanted:
            continue
        table = reader.read(shard).table
        table = table.filter(pc.is_in(table.column("_order"), value_set=orders))
        texts.update(
            zip(table.column("_order").to_pylist(), table.column("text").to_pylist(), strict=True)
        )
    return texts


def _docs_rows(docs: dict[str, str], orders: pa.Array | None, columns, options) -> pa.Table:
    tables = []
    for uri in docs.values():
        fs, path = filesystem(uri, options)
        with fs.open(path, "rb") as f:
            t = pq.read_table(f, columns=columns)
        if orders is not None:
            t = t.filter(pc.is_in(t.column("_order"), value_set=orders))
        tables.append(t)
    return pa.concat_tables(tables)


def _ids_of(docs: dict[str, str], *orders, options) -> list[pa.ChunkedArray]:
    """For each array of `_order`s, the ids of those documents in the same order; the
    docs sidecars are read once for all of them."""
    arrays = [pa.array(np.asarray(o), pa.int64()) for o in orders]
    wanted = pa.array(np.unique(np.concatenate([a.to_numpy() for a in arrays])), pa.int64())
    table = _docs_rows(docs, wanted, ["_order", "id"], options)
    known = table.column("_order").combine_chunks()
    return [table.column("id").take(pc.index_in(a, value_set=known)) for a in arrays]


def _empty_removed() -> pa.Table:
    return pa.table(
        {
            "_order": pa.array([], pa.int64()),
            "id": pa.array([], pa.string()),
            "cluster": pa.array([], pa.int64()),
            "duplicate_of": pa.array([], pa.string()),
        }
    )


# --------------------------------------------------------------------------- remove


def remove_pass(params: DedupParams, plan: DedupPlan, removed: pa.Table) -> RunReport:
    """Pass 3: re-read each shard, drop its duplicates, write and commit it."""
    options = storage.storage_options()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    done = final.done_shards()
    report = RunReport(shards_total=len(plan.shards))
    for marker in done.values():
        report.add_shard(marker["stats"])
    pending = [s for s in plan.shards if s.key not in done]
    report.shards_skipped = len(plan.shards) - len(pending)
    drop = pa.array(removed.column("_order").to_numpy(), pa.int64())
    reader = _reader(params)

    def read(shard: Shard) -> tuple[pa.Table, pa.Table]:
        result = reader.read(shard)
        table = result.table
        table = table.filter(pc.invert(pc.is_in(table.column("_order"), value_set=drop)))
        return table, result.quarantine

    run_phase("remove", pending, read, [], FinalSink(plan.output, plan.version, options), report)
    return report


def commit_dedup(params, plan, report: RunReport, removed: pa.Table, run_id) -> dict:
    """Write the side files (duplicates audit, reports), then the manifest, last."""
    options = storage.storage_options()
    final = VersionWriter(plan.output, plan.version, storage_options=options)
    audit = removed.select(
        [c for c in ("id", "cluster", "duplicate_of", "similarity") if c in removed.column_names]
    )
    nbytes = write_all_columns(audit, storage.join(final.uri, DUPLICATES), options)
    side = [{"path": DUPLICATES, "rows": audit.num_rows, "bytes": nbytes}]
    side += write_reports("curate-dedup", report, plan.version, final.uri, run_id, options)
    manifest = final.commit(
        inputs=plan.inputs,
        parameters=plan.parameters,
        code_version=storage.code_version(),
        flow_run_id=run_id,
        extra={
            "flow": "curate-dedup",
            "stages": [m.to_dict() for m in report.stages.values()],
            "method": params.method,
            "duplicates_removed": audit.num_rows,
            **{k: v for m in report.stages.values() for k, v in m.details.items()},
        },
        extra_files=side,
    )
    fs, path = filesystem(plan.work, options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    return manifest


def run_dedup(params: DedupParams, flow_run_id: str | None = None) -> dict:
    """The whole job without Prefect (the flow below wraps the same steps as tasks)."""
    plan = plan_dedup(params)
    final = VersionWriter(plan.output, plan.version, storage_options=storage.storage_options())
    if final.is_committed():
        manifest = read_manifest(final.uri, storage.storage_options())
        return summary(manifest, report_from_manifest(manifest), final.uri, True)
    report = identify_pass(params, plan)
    removed, metrics = find_duplicates(params, plan)
    written = remove_pass(params, plan, removed)
    report.stages[metrics.name] = metrics
    report.rows_written, report.bytes_written = written.rows_written, written.bytes_written
    manifest = commit_dedup(params, plan, report, removed, flow_run_id)
    return summary(manifest, report, final.uri, False)


# --------------------------------------------------------------------------- Prefect


def _build_flow():
    from prefect import flow, task
    from prefect.runtime import flow_run

    retrying = task_options()

    @task(name="plan-shards", **retrying)
    def plan_task(params: DedupParams) -> DedupPlan:
        return plan_dedup(params)

    @task(name="identify", **retrying)
    def identify_task(params: DedupParams, plan: DedupPlan) -> RunReport:
        return identify_pass(params, plan)

    @task(name="find-duplicates", **retrying)
    def find_task(params: DedupParams, plan: DedupPlan):
        return find_duplicates(params, plan)

    @task(name="remove-duplicates", **retrying)
    def remove_task(params: DedupParams, plan: DedupPlan, removed: pa.Table) -> RunReport:
        return remove_pass(params, plan, removed)

    @flow(name="curate-dedup", description="Remove exact or near-duplicate documents.")
    def curate_dedup(params: DedupParams) -> dict:
        """Identify duplicates (exact or MinHash + LSH), remove them, write Parquet with a
        manifest and a duplicates.parquet audit table."""
        plan = plan_task(params)
        options = storage.storage_options()
        final = VersionWriter(plan.output, plan.version, storage_options=options)
        if final.is_committed():
            manifest = read_manifest(final.uri, options)
            return summary(manifest, report_from_manifest(manifest), final.uri, True)
        report = identify_task(params, plan)
        removed, metrics = find_task(params, plan)
        written = remove_task(params, plan, removed)
        report.stages[metrics.name] = metrics
        report.rows_written, report.bytes_written = written.rows_written, written.bytes_written
        run_id = str(flow_run.id) if flow_run.id else None
        return commit_and_publish(
            "curate-dedup",
            f"Deduplicated ({params.method}) by curate-dedup",
            params,
            plan.output,
            final.uri,
            report,
            lambda: commit_dedup(params, plan, report, removed, run_id),
            {
                "version": plan.version,
                "rows": report.rows_written,
                "duplicates_removed": removed.num_rows,
                "method": params.method,
            },
        )

    return curate_dedup


curate_dedup = _build_flow()
