"""Deduplication as one step that any flow plugs in: exact, fuzzy or semantic, on any column
or on an embedding column that an earlier stage produced.

    process pass: the identify stage (hash, MinHash or embedding) runs last on each shard;
                  `write_sidecars` stores what the global step needs, by partition
    find:         one Ray task per partition (hash groups, LSH bucket edges or k-means
                  clusters), connected components or centers, optional verification
    write pass:   the flow drops the removed `_order`s from each shard

Sidecars of a shard, under the run's work folder: `docs-<shard>.parquet` (`_order`, `id`,
`_priority`, the signature when estimates are verified) and `keys-<shard>.parquet` (the
grouping keys with their `_partition`, one row group per partition, so a partition task
reads only its own rows).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows.runtime import signals
from flows.runtime.engine import StageMetrics
from flows.runtime.storage import join, storage_options
from stages.base import Stage
from stages.dedup.minhash import MinHashConfig
from stages.io.fs import filesystem, read_parquet, write_bytes_atomic

DedupMethod = Literal["exact", "fuzzy", "semantic", "phash"]
EMBEDDING = "_embedding"
# Rows up to which the global step runs in the driver on a local machine even when the
# process pass used Ray: its tasks would each start a Ray worker process (about 3 s of
# fixed cost on 2 cores) for work the driver does in a fraction of that. A cluster
# (`RAY_ADDRESS`) and `CURATE_EXECUTOR=ray` always use Ray.
INLINE_ROWS = {"exact": 2_000_000, "fuzzy": 250_000, "semantic": 100_000, "phash": 250_000}
_ON_RAY: ContextVar[bool] = ContextVar("dedup_step_on_ray", default=True)
# Columns the identify stage adds for the sidecars; never part of the staged rows.
SIDECAR_COLUMNS = (
    "_hash",
    "_partition",
    "_minhash",
    "_bands",
    "_phash",
    EMBEDDING,
    "_priority",
)
METRIC_NAMES = {
    "exact": "ExactDedup",
    "fuzzy": "FuzzyDedup",
    "semantic": "SemanticDedup",
    "phash": "PerceptualDedup",
}
PHASH_THRESHOLD = 8  # bits of 64: the largest with no false pair in benchmarks/phash_threshold.py

TextsOf = Callable[[pa.Array], dict[int, str]]
"""texts_of(orders) -> {_order: text of the compared column}, for exact verification."""


@dataclass(frozen=True)
class Dedup:
    """What one dedup step does. Flows build it from their parameters.

    - `column`: the compared column (text, or bytes for exact); `embedding_column`: a
      column of embeddings an earlier stage made (semantic dedup then embeds nothing).
    - `keep`: which row of a group survives: first in input order, longest, or the highest
      `score_column` (ties: the first).
    - fuzzy: `minhash` (shingles and bands), `threshold` (Jaccard of a duplicate pair),
      `verify` (exact Jaccard, MinHash estimate, or none), `clustering`.
    - semantic: `eps` (duplicates have cosine similarity >= 1 - eps), `n_clusters`,
      `semantic_keep`, `model` (a local sentence-transformers folder), `kmeans_sample`.
    - phash: `column` holds 64-bit perceptual hashes (uint64); a pair within
      `hamming_threshold` bits that agrees on one of `phash_bands` bands is a duplicate;
      `clustering` as for fuzzy (centers: each removed image is within the threshold of
      the image kept for it).
    """

    method: DedupMethod
    column: str = "text"
    partitions: int = 16
    keep: Literal["first", "longest", "score"] = "first"
    score_column: str | None = None
    minhash: MinHashConfig = MinHashConfig.high_recall()
    threshold: float = 0.8
    verify: Literal["exact", "estimate", "none"] = "exact"
    clustering: Literal["components", "centers"] = "centers"
    eps: float = 0.01
    n_clusters: int | None = None
    semantic_keep: Literal["hard", "easy", "random"] = "hard"
    model: str | None = None
    kmeans_sample: int = 100_000
    seed: int = 42
    embedding_column: str | None = None
    hamming_threshold: int = PHASH_THRESHOLD
    phash_bands: int = 4

    def __post_init__(self) -> None:
        if self.keep == "score" and not self.score_column:
            raise ValueError("keep='score' needs score_column: the column whose highest value wins")

    @property
    def name(self) -> str:
        return METRIC_NAMES[self.method]

    @property
    def read_columns(self) -> list[str]:
        """Input columns the step needs besides the compared one."""
        return [self.score_column] if self.keep == "score" and self.score_column else []

    def identify_stage(self) -> Stage | None:
        """The stage that adds this step's keys to every row, last of the process pass."""
        if self.method == "exact":
            from stages.dedup.exact import ExactDedupHash

            return ExactDedupHash(text_field=self.column, num_partitions=self.partitions)
        if self.method == "phash":
            from stages.dedup.phash import PHashBands

            return PHashBands(column=self.column, bands=self.phash_bands)
        if self.method == "semantic":
            if self.embedding_column:
                return None
            from stages.dedup.embed import TextEmbedder

            return TextEmbedder(model=self.model, text_field=self.column, output_field=EMBEDDING)
        from stages.dedup.minhash import MinhashDedupSignature

        return MinhashDedupSignature(self.minhash, text_field=self.column)

    # ------------------------------------------------------------------- process pass

    def priority(self, table: pa.Table) -> pa.Array:
        """Per row, how strongly it should be the one kept of its duplicate group."""
        if self.keep == "longest":  # characters of a text, bytes of a binary column
            column = table.column(self.column)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                return pc.cast(pc.utf8_length(pc.fill_null(column, "")), pa.float64())
            return pc.cast(pc.fill_null(pc.binary_length(column), 0), pa.float64())
        if self.keep == "score":
            if self.score_column not in table.column_names:
                raise KeyError(f"no column {self.score_column!r} to rank duplicates by")
            values = table.column(self.score_column)
            return pc.fill_null(pc.cast(values, pa.float64()), float("-inf"))
        return pa.array(np.zeros(table.num_rows), pa.float64())

    def write_sidecars(
        self, folder: str, shard_key: str, table: pa.Table, options, tag: str = ""
    ) -> list[dict]:
        """Write a shard's sidecars into `folder` (`<kind>-<shard><tag>.parquet`); returns
        their manifest entries."""
        from stages.dedup.lsh import band_buckets

        if "_priority" in table.column_names:
            table = table.drop_columns(["_priority"])
        table = table.append_column("_priority", self.priority(table))
        docs = ["_order", "id", "_priority"]
        if self.method == "exact":
            keys = table.select(["_order", "id", "_hash", "_partition", "_priority"])
        elif self.method == "semantic":
            column = self.embedding_column or EMBEDDING
            if column not in table.column_names:
                raise KeyError(f"semantic dedup: no embedding column {column!r}")
            keys = table.select(["_order", column]).rename_columns(["_order", EMBEDDING])
        elif self.method == "phash":
            from stages.dedup.phash import phash_buckets

            hashed = table.select(["_order", "_bands", "_phash"])
            keys = phash_buckets(hashed.rename_columns(["_order", "_bands", "phash"]))
            bucket = keys.column("bucket").to_numpy()
            partition = (bucket % np.uint64(self.partitions)).astype(np.int32)
            keys = keys.append_column("_partition", pa.array(partition))
        else:
            keys = band_buckets(table.select(["_order", "_bands"]))
            bucket = keys.column("bucket").to_numpy()
            partition = (bucket % np.uint64(self.partitions)).astype(np.int32)
            keys = keys.append_column("_partition", pa.array(partition))
            if self.verify == "estimate":
                docs.append("_minhash")
        files = []
        for kind, part in (("docs", table.select(docs)), ("keys", keys)):
            rel = f"{kind}-{shard_key}{tag}.parquet"
            nbytes = write_by_partition(part, join(folder, rel), options)
            files.append({"path": rel, "rows": part.num_rows, "bytes": nbytes})
        return files

    # ------------------------------------------------------------------- find

    def find(
        self, sidecars: dict[str, dict[str, str]], rows_in: int, texts_of: TextsOf
    ) -> tuple[pa.Table, StageMetrics]:
        """The global step. `sidecars`: {"docs"|"keys": {shard key: URI}}; `rows_in`: rows
        that reached the step. Returns the removed rows (`_order`, `id`, `cluster`,
        `duplicate_of`[, `similarity`]) sorted by `_order`, and the step's metrics."""
        from flows.runtime.engine import init_ray, uses_ray

        options = storage_options()
        keys = list(sidecars["keys"].values())
        docs = sidecars["docs"]
        start = time.perf_counter()
        on_ray = uses_ray(len(keys)) and (
            rows_in > INLINE_ROWS.get(self.method, 0)
            or os.environ.get("CURATE_EXECUTOR") == "ray"
            or bool(os.environ.get("RAY_ADDRESS"))
        )
        if on_ray:  # else its tasks run here
            init_ray()
        token = _ON_RAY.set(on_ray)
        try:
            removed, details = self._find(keys, docs, texts_of, options)
        finally:
            _ON_RAY.reset(token)
        removed = removed.sort_by("_order")
        metrics = StageMetrics(
            self.name,
            rows_in=rows_in,
            rows_out=rows_in - removed.num_rows,
            seconds=time.perf_counter() - start,
            shards=len(keys),
            details=details,
        )
        metrics.removed_sample = removed.slice(0, 10).select(["id", "duplicate_of"]).to_pylist()
        return removed, metrics

    def _find(self, keys, docs, texts_of, options) -> tuple[pa.Table, dict]:
        details: dict = {}
        if self.method == "exact":
            removed = _exact(self, keys, options)
        elif self.method == "semantic":
            removed, details["eps_table"] = _semantic(self, keys, docs, options)
        elif self.method == "phash":
            removed = _phash(self, keys, docs, options, details)
        else:
            removed = _fuzzy(self, keys, docs, texts_of, options, details)
        return removed, details


@dataclass(frozen=True)
class DedupSteps:
    """Several dedup steps in one run, each on the rows the earlier ones kept: perceptual
    hashes, then SemDeDup on embeddings, say. It stands in for a `Dedup` (the flow kit runs
    it as one step): every step's identify stage runs in the process pass, each writes its
    own sidecars (tagged `.step<i>`), and `find` runs the steps in order, leaving the rows
    removed so far out of each later step's keys, so no step removes the row another kept
    for a group. `duplicates.parquet` says which step removed each row (`method`)."""

    steps: tuple[Dedup, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("DedupSteps needs at least one step")

    @property
    def name(self) -> str:
        return "+".join(step.name for step in self.steps)

    @property
    def method(self) -> str:
        return "+".join(step.method for step in self.steps)

    @property
    def column(self) -> str:
        return self.steps[0].column

    @property
    def read_columns(self) -> list[str]:
        return list(dict.fromkeys(c for step in self.steps for c in step.read_columns))

    def identify_stage(self) -> Stage | None:
        from stages.base import StageSequence

        stages = [s for s in (step.identify_stage() for step in self.steps) if s is not None]
        if len(stages) <= 1:
            return stages[0] if stages else None
        return StageSequence(stages)

    def write_sidecars(self, folder: str, shard_key: str, table: pa.Table, options) -> list[dict]:
        files = []
        for i, step in enumerate(self.steps):
            files += step.write_sidecars(folder, shard_key, table, options, tag=f".step{i}")
        return files

    def find(
        self, sidecars: dict[str, dict[str, str]], rows_in: int, texts_of: TextsOf
    ) -> tuple[pa.Table, StageMetrics]:
        options = storage_options()
        start = time.perf_counter()
        removed_parts: list[pa.Table] = []
        details: dict = {"removed_by_step": {}}
        gone = pa.array([], pa.int64())
        for i, step in enumerate(self.steps):
            tag = f".step{i}.parquet"
            own = {
                kind: {path: uri for path, uri in files.items() if path.endswith(tag)}
                for kind, files in sidecars.items()
            }
            if len(gone):
                own["keys"] = {p: _without(uri, gone, options) for p, uri in own["keys"].items()}
            removed, metrics = step.find(own, rows_in - len(gone), texts_of)
            removed = removed.append_column("method", pa.array([step.method] * removed.num_rows))
            removed_parts.append(removed)
            details["removed_by_step"][step.name] = removed.num_rows
            details.update(metrics.details)
            gone = pa.concat_arrays([gone, removed.column("_order").combine_chunks()])
        removed = pa.concat_tables(removed_parts, promote_options="default").sort_by("_order")
        metrics = StageMetrics(
            self.name,
            rows_in=rows_in,
            rows_out=rows_in - removed.num_rows,
            seconds=time.perf_counter() - start,
            shards=len(sidecars.get("keys", {})),
            details=details,
        )
        metrics.removed_sample = removed.slice(0, 10).select(["id", "duplicate_of"]).to_pylist()
        return removed, metrics


def _without(uri: str, orders: pa.Array, options) -> str:
    """A copy of the sidecar at `uri` without the rows of `orders` (by `_order`), written
    beside it with the same partition row groups; returns its URI."""
    table = read_parquet(uri, options)
    table = table.filter(pc.invert(pc.is_in(table.column("_order"), value_set=orders)))
    out = uri[: -len(".parquet")] + ".rest.parquet"
    write_by_partition(table, out, options)
    return out


def remote(fn: Callable) -> Any:
    """A task of the step: a Ray remote function (1 CPU) when the step runs on Ray, else a
    stand-in whose `.remote()` runs it here at once (`gather` takes either result)."""
    from flows.runtime.engine import ray_running

    if ray_running() and _ON_RAY.get():
        import ray

        return ray.remote(num_cpus=1)(fn)
    return _Here(fn)


class _Here:
    def __init__(self, fn: Callable):
        self.fn = fn

    def remote(self, *args) -> _Done:
        return _Done(self.fn(*args))


class _Done(NamedTuple):
    """The result of a task run here."""

    value: Any


def put(value):
    """`ray.put` when the step runs on Ray; the value itself otherwise."""
    from flows.runtime.engine import ray_running

    if ray_running() and _ON_RAY.get():
        import ray

        return ray.put(value)
    return value


def gather(refs):
    """`ray.get` (results of tasks run here are taken as they are), where a Ctrl-C or
    SIGTERM of the CLI stops the step at once: the step writes nothing until it is done,
    so a re-run finds the duplicates again."""
    if isinstance(refs, _Done):
        return refs.value
    if isinstance(refs, list) and all(isinstance(r, _Done) for r in refs):
        return [r.value for r in refs]
    import ray

    with signals.waiting_for_shards():
        return ray.get(refs)


def empty_removed() -> pa.Table:
    return pa.table(
        {
            "_order": pa.array([], pa.int64()),
            "id": pa.array([], pa.string()),
            "cluster": pa.array([], pa.int64()),
            "duplicate_of": pa.array([], pa.string()),
        }
    )


def audit_table(removed: pa.Table, shards: list | None = None) -> pa.Table:
    """`duplicates.parquet`: every removed id, where the row was (`source` and `line`, from
    its `_order` and the plan's `shards`, when given: an id alone may be ambiguous), its
    cluster and the id it duplicates."""
    from stages.io.rows import locate

    table = removed.select(
        [
            c
            for c in ("id", "cluster", "duplicate_of", "similarity", "distance", "method")
            if c in removed.column_names
        ]
    )
    if shards is not None and "_order" in removed.column_names:
        sources, lines = locate(shards, removed.column("_order").combine_chunks())
        table = table.add_column(1, "source", sources).add_column(2, "line", lines)
    return table


# --------------------------------------------------------------------------- partitions


def write_by_partition(table: pa.Table, uri: str, options: dict) -> int:
    """Write `table` (every column, internal ones too) as Parquet, one row group per
    `_partition` value when it has that column; returns the bytes written."""
    groups = [table]
    if "_partition" in table.column_names and table.num_rows:
        table = table.sort_by("_partition")
        bounds = np.flatnonzero(np.diff(table.column("_partition").to_numpy())) + 1
        starts, ends = [0, *bounds.tolist()], [*bounds.tolist(), table.num_rows]
        groups = [table.slice(s, e - s) for s, e in zip(starts, ends, strict=True)]
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        for group in groups:
            writer.write_table(group)
    return write_bytes_atomic(uri, sink.getvalue().to_pybytes(), options)


def read_partition(uris: list[str], partition: int, columns: list[str], options) -> pa.Table:
    """The rows of one partition from sidecars written by `write_by_partition`."""
    tables = []
    for uri in uris:
        fs, path = filesystem(uri, options)
        with fs.open(path, "rb") as f:
            t = pq.read_table(
                f, columns=columns + ["_partition"], filters=[("_partition", "=", partition)]
            )
        tables.append(t.drop_columns(["_partition"]))
    return pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})


def _rows(uri: str, options) -> int:
    fs, path = filesystem(uri, options)
    with fs.open(path, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


# --------------------------------------------------------------------------- exact


def _exact(step: Dedup, keys: list[str], options) -> pa.Table:

    @remote
    def exact_partition(p: int) -> pa.Table | None:
        from stages.dedup.keep import choose_survivors

        table = read_partition(keys, p, ["id", "_hash", "_order", "_priority"], options)
        if not table.num_rows:
            return None
        groups = pc.dictionary_encode(table.column("_hash")).combine_chunks().indices
        nodes = table.column("_order").to_numpy()
        removed = choose_survivors(nodes, groups.to_numpy(), table.column("_priority").to_numpy())
        ids = table.column("id")
        known = table.column("_order").combine_chunks()
        where = pc.index_in(removed.column("_order"), value_set=known)
        kept = pc.index_in(removed.column("cluster"), value_set=known)
        return removed.append_column("id", ids.take(where)).append_column(
            "duplicate_of", ids.take(kept)
        )

    parts = gather([exact_partition.remote(p) for p in range(step.partitions)])
    parts = [t for t in parts if t is not None and t.num_rows]
    return pa.concat_tables(parts) if parts else empty_removed()


# --------------------------------------------------------------------------- fuzzy


def _fuzzy(step: Dedup, keys, docs, texts_of: TextsOf, options, details: dict) -> pa.Table:

    verify, clustering = step.verify, step.clustering

    @remote
    def partition_edges(p: int):
        """Candidate edges of one partition of LSH buckets, reduced to their connected
        components (node -> smallest node), which is all the global merge needs."""
        from stages.dedup.components import connected_components
        from stages.dedup.lsh import bucket_edges

        table = read_partition(keys, p, ["band", "bucket", "_order"], options)
        edges = bucket_edges(table)
        if verify != "none" or clustering == "centers":
            return table.num_rows, edges  # verification and centers need the pairs
        src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()
        return table.num_rows, connected_components(src, dst)

    results = gather([partition_edges.remote(p) for p in range(step.partitions)])
    parts = [part for _, part in results]
    # Each partition task read only its own share of the LSH keys: the figures say how
    # the work was spread (and that no task held all of it).
    details["bucket_rows_per_partition"] = [rows for rows, _ in results]

    priority_of = _priorities(step, docs, options)

    @remote
    def merge(parts) -> pa.Table:
        """Verified edges -> clusters -> the rows to remove: one task, so that the driver
        never holds the edges."""
        from stages.dedup.components import (
            center_clusters,
            connected_components,
            merge_components,
        )
        from stages.dedup.keep import choose_survivors

        if verify == "none" and clustering == "components":
            nodes, component = merge_components(list(parts))
            return choose_survivors(nodes, component, priority_of(nodes))
        edges = pa.concat_tables(parts)
        src = edges.column("src").to_numpy()
        dst = edges.column("dst").to_numpy()
        if len(src) and verify != "none":
            src, dst = np.unique(np.stack([src, dst], axis=1), axis=0).T
            similar = _similarity(step, docs, src, dst, texts_of, options)
            chosen = similar >= step.threshold
            src, dst = src[chosen], dst[chosen]
        if clustering == "centers":
            nodes = np.unique(np.concatenate([src, dst]))
            return center_clusters(src, dst, nodes, priority_of(nodes))
        nodes, component = connected_components(src, dst)
        return choose_survivors(nodes, component, priority_of(nodes))

    removed = gather(merge.remote(parts))
    if removed.num_rows == 0:
        return empty_removed()
    orders, clusters = removed.column("_order"), removed.column("cluster")
    ids, kept_ids = ids_of(docs, orders, clusters, options=options)
    return pa.table({"_order": orders, "id": ids, "cluster": clusters, "duplicate_of": kept_ids})


def _similarity(step: Dedup, docs, src, dst, texts_of: TextsOf, options) -> np.ndarray:
    """Jaccard similarity of each candidate pair: of their shingle sets (exact), or the
    fraction of equal MinHash values (estimate)."""
    from stages.dedup.minhash import estimated_jaccard, exact_jaccard

    needed = pa.array(np.unique(np.concatenate([src, dst])), pa.int64())
    if step.verify == "estimate":
        table = docs_rows(docs, needed, ["_order", "_minhash"], options)
        index = {o: i for i, o in enumerate(table.column("_order").to_pylist())}
        sig = np.stack(table.column("_minhash").to_numpy(zero_copy_only=False))
        a = sig[[index[o] for o in src.tolist()]]
        b = sig[[index[o] for o in dst.tolist()]]
        return estimated_jaccard(a, b)
    texts = texts_of(needed)
    return exact_jaccard(
        [texts[o] for o in src.tolist()], [texts[o] for o in dst.tolist()], step.minhash
    )


def _priorities(step: Dedup, docs, options):
    """priority_of(nodes): each node's `_priority` from the docs sidecars, in order; None
    when the step keeps the first of a group (input order decides)."""

    def priority_of(nodes: np.ndarray) -> np.ndarray | None:
        if step.keep == "first" or not len(nodes):
            return None
        rows = docs_rows(docs, pa.array(nodes, pa.int64()), ["_order", "_priority"], options)
        index = pc.index_in(
            pa.array(nodes, pa.int64()), value_set=rows.column("_order").combine_chunks()
        )
        return rows.column("_priority").take(index).to_numpy()

    return priority_of


def docs_rows(docs: dict[str, str], orders: pa.Array | None, columns, options) -> pa.Table:
    tables = []
    for uri in docs.values():
        t = read_parquet(uri, options, columns)
        if orders is not None:
            t = t.filter(pc.is_in(t.column("_order"), value_set=orders))
        tables.append(t)
    return pa.concat_tables(tables)


def ids_of(docs: dict[str, str], *orders, options) -> list[pa.ChunkedArray]:
    """For each array of `_order`s, the ids of those documents in the same order; the
    docs sidecars are read once for all of them."""
    arrays = [pa.array(np.asarray(o), pa.int64()) for o in orders]
    wanted = pa.array(np.unique(np.concatenate([a.to_numpy() for a in arrays])), pa.int64())
    table = docs_rows(docs, wanted, ["_order", "id"], options)
    known = table.column("_order").combine_chunks()
    return [table.column("id").take(pc.index_in(a, value_set=known)) for a in arrays]


# --------------------------------------------------------------------------- phash


def _phash(step: Dedup, keys, docs, options, details: dict) -> pa.Table:
    """Per partition, the pairs within the threshold among images sharing a band; one task
    clusters them (centers or components) and picks the survivors."""

    threshold, clustering = step.hamming_threshold, step.clustering

    @remote
    def partition_edges(p: int):
        from stages.dedup.phash import phash_edges

        table = read_partition(keys, p, ["band", "bucket", "_order", "phash"], options)
        return table.num_rows, phash_edges(table, threshold)

    results = gather([partition_edges.remote(p) for p in range(step.partitions)])
    details["bucket_rows_per_partition"] = [rows for rows, _ in results]
    details["hamming_threshold"] = threshold

    priority_of = _priorities(step, docs, options)

    @remote
    def merge(parts) -> pa.Table:
        from stages.dedup.components import center_clusters, connected_components
        from stages.dedup.keep import choose_survivors

        edges = pa.concat_tables(parts)
        src = edges.column("src").to_numpy()
        dst = edges.column("dst").to_numpy()
        distance = edges.column("distance").to_numpy()
        nodes = np.unique(np.concatenate([src, dst]))
        if clustering == "centers":
            removed = center_clusters(src, dst, nodes, priority_of(nodes))
        else:
            nodes, component = connected_components(src, dst)
            removed = choose_survivors(nodes, component, priority_of(nodes))
        # The distance of each removed image to the one kept for it, when they are linked.
        pairs = {}
        for a, b, d in zip(src.tolist(), dst.tolist(), distance.tolist(), strict=True):
            pairs[(a, b)] = pairs[(b, a)] = d
        orders = removed.column("_order").to_pylist()
        kept = removed.column("cluster").to_pylist()
        near = [pairs.get((o, k)) for o, k in zip(orders, kept, strict=True)]
        return removed.append_column("distance", pa.array(near, pa.int8()))

    parts = [part for _, part in results]
    if not any(part.num_rows for part in parts):
        return empty_removed()
    removed = gather(merge.remote(parts))
    if removed.num_rows == 0:
        return empty_removed()
    orders, clusters = removed.column("_order"), removed.column("cluster")
    ids, kept_ids = ids_of(docs, orders, clusters, options=options)
    return pa.table(
        {
            "_order": orders,
            "id": ids,
            "cluster": clusters,
            "duplicate_of": kept_ids,
            "distance": removed.column("distance"),
        }
    )


# --------------------------------------------------------------------------- semantic


def _semantic(step: Dedup, keys: list[str], docs, options) -> tuple[pa.Table, list]:
    """SemDeDup on Ray: fit k-means on a seeded sample of the embeddings, assign every
    shard's embeddings to clusters (one task per shard, written by partition of cluster),
    then per partition compare the items of each cluster. Returns the removed rows and
    the table of how many each eps would remove."""

    total = sum(_rows(uri, options) for uri in keys)
    n_clusters = step.n_clusters or max(1, min(1000, total // 1000))
    fraction = min(1.0, step.kmeans_sample / max(total, 1))
    clusters_dir = join(keys[0].rsplit("/", 1)[0], "clusters") if keys else ""

    @remote
    def fit() -> np.ndarray:
        from stages.dedup.embed import embedding_matrix
        from stages.dedup.semantic import kmeans_fit

        parts = []
        for uri in keys:
            table = read_parquet(uri, options)
            chosen = sample_mask(table.column("_order").to_numpy(), fraction, step.seed)
            parts.append(embedding_matrix(table.column(EMBEDDING).filter(pa.array(chosen))))
        sample = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        return kmeans_fit(
            sample, min(n_clusters, len(sample)), seed=step.seed, sample=step.kmeans_sample
        )

    if not keys:
        return empty_removed(), []
    centroids = put(gather(fit.remote()))

    @remote
    def assign(uri: str, centroids: np.ndarray) -> str:
        from stages.dedup.embed import embedding_matrix
        from stages.dedup.semantic import assign_clusters

        table = read_parquet(uri, options)
        cluster, distance = assign_clusters(embedding_matrix(table.column(EMBEDDING)), centroids)
        table = table.append_column("cluster", pa.array(cluster, pa.int32()))
        table = table.append_column("distance", pa.array(distance, pa.float32()))
        table = table.append_column("_partition", pa.array(cluster % step.partitions, pa.int32()))
        out = join(clusters_dir, uri.rsplit("/", 1)[-1])
        write_by_partition(table, out, options)
        return out

    assigned = gather([assign.remote(uri, centroids) for uri in keys])

    @remote
    def partition_items(p: int) -> pa.Table | None:
        from stages.dedup.embed import embedding_matrix
        from stages.dedup.semantic import semantic_duplicates

        table = read_partition(assigned, p, ["_order", EMBEDDING, "cluster", "distance"], options)
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
                embedding_matrix(part.column(EMBEDDING)),
                part.column("distance").to_numpy(),
                eps=None,
                keep=step.semantic_keep,
                seed=step.seed,
                all_items=True,
            )
            items = items.append_column(
                "cluster", pa.array(np.full(items.num_rows, cluster[start]), pa.int64())
            )
            out.append(items)
        return pa.concat_tables(out)

    parts = [
        t
        for t in gather([partition_items.remote(p) for p in range(step.partitions)])
        if t is not None
    ]
    if not parts:
        return empty_removed(), []
    from stages.dedup.semantic import eps_table

    items = pa.concat_tables(parts)
    records = eps_table(items.column("similarity"))
    threshold = np.float32(1.0 - step.eps)
    similarity = items.column("similarity").to_numpy(zero_copy_only=False)
    chosen = np.nan_to_num(similarity.astype(np.float64), nan=-2.0) >= threshold
    removed = items.filter(pa.array(chosen))
    orders = pc.cast(removed.column("id"), pa.int64())
    of = pc.cast(removed.column("duplicate_of"), pa.int64())
    ids, of_ids = ids_of(docs, orders, of, options=options)
    table = pa.table(
        {
            "_order": orders,
            "id": ids,
            "cluster": removed.column("cluster"),
            "duplicate_of": of_ids,
            "similarity": removed.column("similarity"),
        }
    )
    return table, records


def sample_mask(orders: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, order-independent sample: each row in with probability `fraction`."""
    if fraction >= 1.0:
        return np.ones(len(orders), dtype=bool)
    x = orders.astype(np.uint64) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64))
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    x = (x ^ (x >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x < np.uint64(fraction * float(1 << 64))
