"""Semantic deduplication (SemDeDup, Abbas et al. 2023, as run by NeMo Curator).

Documents whose embeddings are nearly parallel are near-duplicates in meaning even when
their words differ. Comparing every pair is quadratic, so the corpus is first split by
k-means and pairs are compared only inside each cluster:

1. `TextEmbedder` (stages/dedup/embed.py) adds a unit-norm `embedding` to every row.
2. `kmeans_fit` learns `n_clusters` centroids from a seeded sample of the embeddings
   (one global step: the sample fits in memory).
3. `assign_clusters` gives every row its nearest centroid and its cosine distance to it
   (per shard, in parallel).
4. `semantic_duplicates`, per cluster: order the items by a keep policy, then an item is
   a duplicate when its cosine similarity to some EARLIER item in that order is at least
   `1 - eps`. As in SemDeDup, the comparison is with every earlier item, removed or not.
   `eps_table` counts what each `eps` would remove, from the same per-item maxima.

Keep policies (NeMo Curator's `which_to_keep`): "hard" puts the items farthest from the
centroid first, so they survive (atypical examples are kept); "easy" the nearest first;
"random" a seeded order that depends on the ids only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pyarrow as pa

KeepPolicy = Literal["hard", "easy", "random"]

CLUSTER_COLUMN = "cluster"
DISTANCE_COLUMN = "distance_to_centroid"
DEFAULT_EPS_VALUES = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)

DUPLICATES_SCHEMA = pa.schema(
    [("id", pa.string()), ("duplicate_of", pa.string()), ("similarity", pa.float32())]
)
ALL_ITEMS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("duplicate_of", pa.string()),
        ("similarity", pa.float32()),
        ("rank", pa.int64()),
    ]
)


def _as_matrix(embeddings: np.ndarray, name: str = "embeddings") -> np.ndarray:
    matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array (rows x dim), got shape {matrix.shape}")
    return matrix


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0).astype(matrix.dtype)


# --- k-means --------------------------------------------------------------------------


def kmeans_fit(
    embeddings: np.ndarray,
    n_clusters: int,
    seed: int = 42,
    sample: int | None = 100_000,
    niter: int = 20,
) -> np.ndarray:
    """Centroids (`n_clusters` x dim, float32) of `embeddings` by k-means (faiss, L2).

    When there are more than `sample` rows, k-means runs on `sample` rows drawn with
    `seed` (kept in input order); `sample=None` uses every row. Runs on the GPU when faiss
    sees one. On CPU the result depends only on the input rows, their order and `seed`.
    """
    import faiss

    matrix = _as_matrix(embeddings)
    rows, dim = matrix.shape
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be at least 1, got {n_clusters}")
    if rows < n_clusters:
        raise ValueError(f"k-means: {rows} embeddings cannot make {n_clusters} clusters")
    if sample is not None and rows > sample:
        if sample < n_clusters:
            raise ValueError(f"k-means: sample={sample} is smaller than n_clusters={n_clusters}")
        chosen = np.random.default_rng(seed).choice(rows, size=sample, replace=False)
        matrix = np.ascontiguousarray(matrix[np.sort(chosen)])
    kmeans = faiss.Kmeans(
        dim,
        n_clusters,
        niter=niter,
        seed=seed,
        verbose=False,
        gpu=faiss.get_num_gpus() > 0,
        # The sample above is the only subsampling: faiss must not draw its own.
        max_points_per_centroid=matrix.shape[0] // n_clusters + 1,
        min_points_per_centroid=1,
    )
    kmeans.train(matrix)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def assign_clusters(embeddings: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid (int32, by L2 as k-means fitted them) and its cosine
    distance to that centroid (float32, `1 - cos`), which orders items in
    `semantic_duplicates`. Rows are independent: assign shard by shard."""
    import faiss

    matrix = _as_matrix(embeddings)
    centers = _as_matrix(centroids, "centroids")
    if matrix.shape[1] != centers.shape[1]:
        raise ValueError(
            f"embeddings have {matrix.shape[1]} dimensions, centroids {centers.shape[1]}"
        )
    if matrix.shape[0] == 0:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
    index = faiss.IndexFlatL2(centers.shape[1])
    index.add(centers)
    _, nearest = index.search(matrix, 1)
    cluster = nearest[:, 0].astype(np.int32)
    cosine = np.einsum("ij,ij->i", _unit_rows(matrix), _unit_rows(centers)[cluster])
    return cluster, (1.0 - cosine).astype(np.float32)


# --- per-cluster duplicates -----------------------------------------------------------


def _random_keys(ids: Sequence[str], seed: int) -> list[bytes]:
    prefix = f"{seed}:".encode()
    return [hashlib.blake2b(prefix + i.encode("utf-8"), digest_size=8).digest() for i in ids]


def keep_order(
    ids: Sequence[str], distances_to_centroid: np.ndarray, keep: KeepPolicy, seed: int = 42
) -> np.ndarray:
    """Positions of the items in the order they are considered (earlier = kept first).

    Ties (and every decision) are broken by id, so the order does not depend on the order
    in which the items arrive."""
    n = len(ids)
    by_id = sorted(range(n), key=ids.__getitem__)
    if keep == "random":
        keys = _random_keys(ids, seed)
        return np.array(sorted(by_id, key=keys.__getitem__), dtype=np.int64)
    distances = np.asarray(distances_to_centroid, dtype=np.float64)
    if distances.shape != (n,):
        raise ValueError(f"{n} ids but distances_to_centroid has shape {distances.shape}")
    if keep == "hard":
        primary = -distances
    elif keep == "easy":
        primary = distances
    else:
        raise ValueError(f"keep must be 'hard', 'easy' or 'random', got {keep!r}")
    rank_by_id = np.empty(n, dtype=np.int64)
    rank_by_id[by_id] = np.arange(n)
    return np.lexsort((rank_by_id, primary))


def max_similarity_to_earlier(
    embeddings: np.ndarray, block_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """For each row j: the largest cosine similarity (float32) to a row i < j, and that i
    (the earliest on ties). Row 0 has similarity -inf and i = -1.

    Computed in blocks of `block_size` x `block_size`, so memory stays bounded for any
    cluster size. Products are taken in float64 and rounded to float32, so the result does
    not change with the block layout (float32 matrix products round differently for
    different shapes, which could flip an item sitting at the threshold)."""
    unit = _unit_rows(_as_matrix(embeddings).astype(np.float64))
    n = unit.shape[0]
    best = np.full(n, -np.inf, dtype=np.float32)
    best_at = np.full(n, -1, dtype=np.int64)
    for r0 in range(0, n, block_size):
        r1 = min(n, r0 + block_size)
        rows = unit[r0:r1]
        for c0 in range(0, r1, block_size):
            c1 = min(r1, c0 + block_size)
            sims = (rows @ unit[c0:c1].T).astype(np.float32)
            # only columns before each row count (the diagonal and beyond are masked)
            later = np.arange(c0, c1)[None, :] >= np.arange(r0, r1)[:, None]
            sims[later] = -np.inf
            at = np.argmax(sims, axis=1)
            value = sims[np.arange(r1 - r0), at]
            better = value > best[r0:r1]  # strict: the earlier block wins ties
            best[r0:r1][better] = value[better]
            best_at[r0:r1][better] = at[better] + c0
    return best, best_at


def semantic_duplicates(
    ids: np.ndarray | Sequence,
    embeddings: np.ndarray,
    distances_to_centroid: np.ndarray,
    eps: float | None,
    keep: KeepPolicy = "hard",
    seed: int = 42,
    all_items: bool = False,
    block_size: int = 1024,
) -> pa.Table:
    """The semantic duplicates within ONE k-means cluster.

    Items are ordered by `keep` (see `keep_order`); an item is a duplicate when its cosine
    similarity to an earlier item is >= `1 - eps`. Returns `id`, `duplicate_of` (the
    earlier item it is most similar to) and `similarity` (float32) for each duplicate, in
    keep order.

    With `all_items=True` every item is returned, duplicate or not, with its maximum
    similarity to an earlier item (null for the first) and its `rank` in keep order; `eps`
    is then ignored (pass None), and `eps_table` over the `similarity` of all clusters
    counts what each eps would remove. Ids are compared as strings.
    """
    id_list = [str(i) for i in (ids.tolist() if isinstance(ids, np.ndarray) else ids)]
    matrix = _as_matrix(embeddings)
    if matrix.shape[0] != len(id_list):
        raise ValueError(f"{len(id_list)} ids but {matrix.shape[0]} embeddings")
    if len(set(id_list)) != len(id_list):
        raise ValueError("ids within a cluster must be unique")
    if not all_items and eps is None:
        raise ValueError("eps is required unless all_items=True")
    order = keep_order(id_list, distances_to_centroid, keep, seed)
    best, best_at = max_similarity_to_earlier(matrix[order], block_size=block_size)
    ordered_ids = np.array(id_list, dtype=object)[order]
    has_earlier = best_at >= 0
    duplicate_of = np.where(has_earlier, ordered_ids[np.maximum(best_at, 0)], None)
    if all_items:
        return pa.table(
            {
                "id": pa.array(ordered_ids.tolist(), pa.string()),
                "duplicate_of": pa.array(duplicate_of.tolist(), pa.string()),
                "similarity": pa.array(best, pa.float32(), mask=~has_earlier),
                "rank": pa.array(np.arange(len(id_list)), pa.int64()),
            },
            schema=ALL_ITEMS_SCHEMA,
        )
    removed = has_earlier & (best >= np.float32(1.0 - eps))
    return pa.table(
        {
            "id": pa.array(ordered_ids[removed].tolist(), pa.string()),
            "duplicate_of": pa.array(duplicate_of[removed].tolist(), pa.string()),
            "similarity": pa.array(best[removed], pa.float32()),
        },
        schema=DUPLICATES_SCHEMA,
    )


def eps_table(
    max_similarities: np.ndarray | pa.Array | pa.ChunkedArray,
    eps_values: Sequence[float] = DEFAULT_EPS_VALUES,
) -> list[dict]:
    """How many items each `eps` would remove, from every item's maximum similarity to an
    earlier item of its cluster (the `similarity` column of `semantic_duplicates(...,
    all_items=True)` over all clusters; null/NaN = first of its cluster, never removed).

    One record per eps, in the order given: `eps`, `threshold` (1 - eps), `removed`,
    `kept`, `removed_fraction`."""
    if isinstance(max_similarities, pa.ChunkedArray | pa.Array):
        max_similarities = max_similarities.to_numpy(zero_copy_only=False)
    values = np.asarray(max_similarities, dtype=np.float64)
    values = values[~np.isnan(values)] if values.size else values
    total = int(np.asarray(max_similarities).shape[0])
    records = []
    for eps in eps_values:
        threshold = np.float32(1.0 - eps)
        removed = int(np.count_nonzero(values >= threshold))
        records.append(
            {
                "eps": float(eps),
                "threshold": float(1.0 - eps),
                "removed": removed,
                "kept": total - removed,
                "removed_fraction": removed / total if total else 0.0,
            }
        )
    return records
