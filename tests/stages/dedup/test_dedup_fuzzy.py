from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import stages.dedup.minhash as minhash_module
from stages.dedup.fuzzy import (
    MinHashConfig,
    MinhashDedupSignature,
    band_buckets,
    bucket_edges,
    candidate_probability,
    connected_components,
    duplicates_to_remove,
    estimated_jaccard,
    exact_jaccard,
    find_fuzzy_duplicates,
    lsh_threshold,
    merge_components,
    minhash_signatures,
)
from stages.dedup.minhash import normalize_texts

ROOT = str(Path(__file__).resolve().parents[3])
FOX = "The quick brown fox jumps over the lazy dog"
CAT = "The quick black cat jumps over the lazy dog"
OTHER = "Pack my box with five dozen liquor jugs"


def docs(texts: list[str | None]) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)]


def edited(rng: random.Random, text: str, edits: int) -> str:
    tokens = text.split()
    for position in rng.sample(range(len(tokens)), edits):
        tokens[position] = words(rng, 1)[0]
    return " ".join(tokens)


def removed_pairs(table: pa.Table) -> list[tuple[int, int]]:
    return list(
        zip(table.column("_order").to_pylist(), table.column("cluster").to_pylist(), strict=True)
    )


# --- signatures -----------------------------------------------------------------------


def test_nemo_example_fox_and_cat_fall_in_one_group_and_a_different_sentence_does_not():
    config = MinHashConfig(char_ngrams=5, num_bands=20, hashes_per_band=1)
    removed = find_fuzzy_duplicates(docs([FOX, CAT, OTHER]), config)
    assert removed_pairs(removed) == [(1, 0)]


def test_signature_columns_have_the_documented_types():
    config = MinHashConfig()
    out = MinhashDedupSignature(config)(docs([FOX, CAT]))
    assert out.schema.field("_minhash").type == pa.list_(pa.uint32(), 260)
    assert out.schema.field("_bands").type == pa.list_(pa.uint64(), 20)
    assert out.column("id").to_pylist() == ["d0", "d1"]


def test_same_seed_gives_the_same_signature_and_another_seed_a_different_one():
    texts = pa.array([FOX, CAT, "héllo wörld, ünïcode"])
    a = minhash_signatures(texts, MinHashConfig(seed=42))
    assert np.array_equal(a, minhash_signatures(texts, MinHashConfig(seed=42)))
    b = minhash_signatures(texts, MinHashConfig(seed=7))
    assert (a != b).mean() > 0.9


def test_signatures_are_the_same_in_another_process_with_another_hash_seed():
    texts = [FOX, CAT, "héllo wörld, ünïcode", "", None]
    script = (
        "import hashlib, pyarrow as pa\n"
        "from stages.dedup.fuzzy import MinhashDedupSignature, MinHashConfig\n"
        f"t = pa.table({{'text': {texts!r}}})\n"
        "for c in (MinHashConfig(), MinHashConfig.datatrove()):\n"
        "    out = MinhashDedupSignature(c)(t)\n"
        "    for col in ('_minhash', '_bands'):\n"
        "        flat = out.column(col).combine_chunks().flatten().to_numpy()\n"
        "        print(hashlib.sha256(flat.tobytes()).hexdigest())\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=ROOT)
    other = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    here = []
    table = pa.table({"text": texts})
    for config in (MinHashConfig(), MinHashConfig.datatrove()):
        out = MinhashDedupSignature(config)(table)
        for column in ("_minhash", "_bands"):
            flat = out.column(column).combine_chunks().flatten().to_numpy()
            here.append(hashlib.sha256(flat.tobytes()).hexdigest())
    assert other == here


@pytest.mark.parametrize("config", [MinHashConfig(), MinHashConfig.datatrove()])
def test_signatures_do_not_depend_on_batch_boundaries(config, monkeypatch):
    rng = random.Random(3)
    texts = [" ".join(words(rng, rng.randint(0, 300))) for _ in range(40)]
    texts[5], texts[9], texts[12] = None, "", "ünïcödé 漢字 " * 20
    whole = minhash_signatures(pa.array(texts), config)
    # Small chunks, so rows are also hashed in several pieces inside one batch.
    monkeypatch.setattr(minhash_module, "_CHUNK", 300)
    for size in (1, 7, 40):
        parts = [pa.array(texts[i : i + size]) for i in range(0, 40, size)]
        signatures = [minhash_signatures(part, config) for part in parts]
        assert np.array_equal(np.concatenate(signatures), whole)
    chunked = pa.chunked_array([texts[:17], texts[17:]])
    assert np.array_equal(minhash_signatures(chunked, config), whole)
    large = pa.array(texts, pa.large_string())
    assert np.array_equal(minhash_signatures(large, config), whole)


def test_a_text_shorter_than_the_shingle_is_one_shingle_of_the_whole_text():
    config = MinHashConfig(char_ngrams=24)
    sig = minhash_signatures(pa.array(["short text", "short text", "short texts"]), config)
    assert np.array_equal(sig[0], sig[1])
    assert not np.array_equal(sig[0], sig[2])
    assert len(set(sig[0].tolist())) == 1  # one shingle fills every bin


def test_null_and_empty_texts_do_not_crash_and_are_duplicates_of_each_other():
    table = docs([None, "", FOX, None])
    out = MinhashDedupSignature()(table)
    sig = np.stack(out.column("_minhash").to_numpy(zero_copy_only=False))
    assert (sig[0] == 0xFFFFFFFF).all() and np.array_equal(sig[0], sig[1])
    assert removed_pairs(find_fuzzy_duplicates(table)) == [(1, 0), (3, 0)]
    assert MinhashDedupSignature()(docs([])).num_rows == 0
    nulls = pa.table({"text": pa.array([None, None], pa.null())})
    assert MinhashDedupSignature()(nulls).column("_minhash").null_count == 0


def test_lowercase_makes_case_only_differences_identical():
    texts = pa.array([FOX, FOX.upper()])
    raw = minhash_signatures(texts, MinHashConfig())
    lower = minhash_signatures(texts, MinHashConfig(lowercase=True))
    assert not np.array_equal(raw[0], raw[1])
    assert np.array_equal(lower[0], lower[1])


def test_config_needs_exactly_one_shingle_kind():
    with pytest.raises(ValueError, match="exactly one"):
        MinHashConfig(char_ngrams=5, word_ngrams=5)
    with pytest.raises(ValueError, match="exactly one"):
        MinHashConfig(char_ngrams=None)
    with pytest.raises(ValueError, match="num_bands"):
        MinHashConfig(num_bands=0)
    assert MinHashConfig().num_hashes == 260
    assert MinHashConfig.datatrove().num_hashes == 112


# --- Jaccard --------------------------------------------------------------------------


def test_exact_jaccard_of_word_sets():
    config = MinHashConfig(char_ngrams=None, word_ngrams=1)
    result = exact_jaccard(["a b c d", "a b", "", ""], ["a b c e", "c d", "x", ""], config)
    assert result.tolist() == pytest.approx([3 / 5, 0.0, 0.0, 1.0])


def test_minhash_estimate_is_within_0_15_of_the_true_jaccard():
    rng = random.Random(11)
    base = words(rng, 400)
    pairs_a, pairs_b = [], []
    for shared in (0.3, 0.5, 0.7, 0.85, 0.95):
        k = int(len(base) * shared)
        pairs_a.append(" ".join(base))
        pairs_b.append(" ".join(base[:k] + words(rng, len(base) - k)))
    for config in (MinHashConfig(), MinHashConfig(char_ngrams=None, word_ngrams=3)):
        truth = exact_jaccard(pairs_a, pairs_b, config)
        assert truth.min() < 0.3 and truth.max() > 0.85  # the pairs span the range
        sig_a = minhash_signatures(pa.array(pairs_a), config)
        sig_b = minhash_signatures(pa.array(pairs_b), config)
        assert np.abs(estimated_jaccard(sig_a, sig_b) - truth).max() < 0.15


def test_lsh_threshold_and_candidate_probability_follow_the_s_curve():
    assert lsh_threshold(20, 13) == pytest.approx((1 / 20) ** (1 / 13))
    assert 0.78 < lsh_threshold(20, 13) < 0.80
    assert candidate_probability(0.0, 20, 13) == 0.0
    assert candidate_probability(1.0, 20, 13) == 1.0
    curve = candidate_probability(np.array([0.5, 0.8, 0.95]), 20, 13)
    assert curve[0] < 0.01 and 0.5 < curve[1] < 0.9 and curve[2] > 0.999


# --- finding duplicates ---------------------------------------------------------------


def test_unrelated_documents_give_no_edges_and_no_removals():
    rng = random.Random(5)
    table = docs([" ".join(words(rng, 200)) for _ in range(60)])
    for config in (MinHashConfig(), MinHashConfig.datatrove()):
        signed = MinhashDedupSignature(config)(table)
        signed = signed.append_column("_order", pa.array(np.arange(60), pa.int64()))
        assert bucket_edges(band_buckets(signed)).num_rows == 0
        assert find_fuzzy_duplicates(table, config).num_rows == 0


@pytest.mark.parametrize("config", [MinHashConfig(), MinHashConfig.datatrove()])
def test_planted_near_duplicates_are_found(config):
    rng = random.Random(8)
    originals = [" ".join(words(rng, 200)) for _ in range(30)]
    texts = list(originals)
    planted = []
    for i in range(0, 30, 3):  # every third original gets a copy with 2 words changed
        planted.append((len(texts), i))
        texts.append(edited(rng, originals[i], 2))
    removed = removed_pairs(find_fuzzy_duplicates(docs(texts), config))
    assert sorted(removed) == sorted(planted)


def test_band_buckets_give_one_row_per_document_and_band():
    signed = MinhashDedupSignature(MinHashConfig(num_bands=4, hashes_per_band=2))(docs([FOX, CAT]))
    signed = signed.append_column("_order", pa.array([10, 20], pa.int64()))
    buckets = band_buckets(signed)
    assert buckets.column("band").to_pylist() == [0, 1, 2, 3] * 2
    assert buckets.column("_order").to_pylist() == [10] * 4 + [20] * 4
    assert buckets.schema.field("bucket").type == pa.uint64()
    as_lists = signed.set_column(
        signed.schema.get_field_index("_bands"),
        "_bands",
        signed.column("_bands").cast(pa.list_(pa.uint64())),
    )
    assert band_buckets(as_lists).equals(buckets)


def test_bucket_edges_link_each_member_to_the_smallest_order_once():
    buckets = pa.table(
        {
            "band": pa.array([0, 0, 0, 1, 1, 1, 0, 2], pa.int32()),
            "bucket": pa.array([7, 7, 7, 7, 7, 7, 9, 5], pa.uint64()),
            "_order": pa.array([5, 3, 8, 8, 3, 3, 4, 1], pa.int64()),
        }
    )
    edges = bucket_edges(buckets)
    assert list(zip(edges["src"].to_pylist(), edges["dst"].to_pylist(), strict=True)) == [
        (3, 5),
        (3, 8),
    ]
    shuffled = buckets.take(pa.array([7, 2, 5, 0, 3, 6, 1, 4]))
    assert bucket_edges(shuffled).equals(edges)


# --- connected components -------------------------------------------------------------


def components_of(src, dst) -> dict[int, int]:
    nodes, component = connected_components(np.array(src), np.array(dst))
    return dict(zip(nodes.tolist(), component.tolist(), strict=True))


def test_components_of_a_chain_a_star_and_disjoint_pieces():
    assert components_of([5, 4, 3, 2], [6, 5, 4, 3]) == {n: 2 for n in range(2, 7)}
    assert components_of([9, 9, 9], [1, 2, 3]) == {1: 1, 2: 1, 3: 1, 9: 1}
    assert components_of([1, 10, 3], [2, 11, 2]) == {1: 1, 2: 1, 3: 1, 10: 10, 11: 10}


def test_components_accept_duplicate_edges_reversed_edges_and_self_loops():
    assert components_of([1, 2, 1, 7, 3], [2, 1, 2, 7, 3]) == {1: 1, 2: 1, 3: 3, 7: 7}
    nodes, component = connected_components(np.array([], np.int64), np.array([], np.int64))
    assert nodes.size == 0 and component.size == 0


def test_components_do_not_depend_on_edge_order_and_match_a_reference():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 3000, 2500)
    dst = rng.integers(0, 3000, 2500)
    nodes, component = connected_components(src, dst)
    # Reference: plain union-find.
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(src.tolist(), dst.tolist(), strict=True):
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    assert component.tolist() == [find(n) for n in nodes.tolist()]
    perm = rng.permutation(src.size)
    nodes2, component2 = connected_components(dst[perm], src[perm])
    assert np.array_equal(nodes, nodes2) and np.array_equal(component, component2)


def test_merging_per_partition_components_joins_what_any_partition_joined():
    part_a = connected_components(np.array([1, 5]), np.array([2, 6]))
    part_b = connected_components(np.array([2, 9]), np.array([5, 10]))
    nodes, component = merge_components([part_a, part_b])
    assert dict(zip(nodes.tolist(), component.tolist(), strict=True)) == {
        1: 1,
        2: 1,
        5: 1,
        6: 1,
        9: 9,
        10: 9,
    }


def test_duplicates_to_remove_keep_the_smallest_order_of_each_component():
    removed = duplicates_to_remove(np.array([9, 4, 1, 2, 7]), np.array([7, 1, 1, 1, 7]))
    assert removed_pairs(removed) == [(2, 1), (4, 1), (9, 7)]
    assert removed.schema.field("cluster").type == pa.int64()


def test_densification_fills_each_empty_bin_from_the_first_filled_bin_in_its_order():
    config = MinHashConfig()
    k = config.num_hashes
    rng = np.random.default_rng(1)
    signature = rng.integers(0, 2**32, (60, k), dtype=np.uint64).astype(np.uint32)
    fill_rate = rng.choice([0.0, 0.004, 0.02, 0.3, 0.9, 1.0], 60)
    filled = rng.random((60, k)) < fill_rate[:, None]
    filled[0] = False
    filled[0, 17] = True  # exactly one filled bin
    order, _ = minhash_module._densify_order(k, config.seed)
    expected = signature.copy()
    for row in range(60):
        for j in range(k):
            if filled[row].any() and not filled[row, j]:
                source = next(b for b in order[j] if filled[row, b])
                expected[row, j] = signature[row, source]
    minhash_module._densify(signature, filled, config)
    assert np.array_equal(signature, expected)


# --- normalised shingles -------------------------------------------------------------------


def test_normalize_makes_punctuation_case_and_spacing_differences_identical():
    a = "Hello, World! The *quick* brown fox -- jumps over the lazy dog."
    b = "hello world the quick brown fox jumps\n\tover the lazy dog"
    for config in (
        MinHashConfig(char_ngrams=None, word_ngrams=5, normalize=True),
        MinHashConfig(char_ngrams=10, normalize=True),
    ):
        sig = minhash_signatures(pa.array([a, b]), config)
        assert (sig[0] == sig[1]).all()
        assert exact_jaccard([a], [b], config)[0] == 1.0
    plain = MinHashConfig(char_ngrams=None, word_ngrams=5)
    assert exact_jaccard([a], [b], plain)[0] < 0.5


def test_normalized_words_are_the_regex_word_runs_of_the_lower_cased_text():
    import re

    text = "Ça va? Dépêche-toi: x_1=3.5, naïve café—OK"
    config = MinHashConfig(char_ngrams=None, word_ngrams=1, normalize=True)
    words = re.findall(r"\w+", text.lower())
    one_per_word = pa.array([" ".join(words)])
    assert exact_jaccard(pa.array([text]), one_per_word, config)[0] == 1.0
    assert normalize_texts(pa.array([text])).to_pylist() == [" ".join(words)]


def test_normalized_char_shingles_collapse_non_word_runs_to_one_space_and_strip_the_ends():
    config = MinHashConfig(char_ngrams=5, normalize=True)
    assert exact_jaccard(["  (Hello)...   world!! "], ["hello world"], config)[0] == 1.0
    assert exact_jaccard(["hello world"], ["helloworld"], config)[0] < 1.0


def test_normalize_handles_null_and_empty_texts():
    config = MinHashConfig(char_ngrams=None, word_ngrams=5, normalize=True)
    sig = minhash_signatures(pa.array([None, "", "!!! ...", "a b c d e f"]), config)
    assert (sig[0] == 0xFFFFFFFF).all() and (sig[1] == 0xFFFFFFFF).all()
    assert (sig[2] == 0xFFFFFFFF).all()  # punctuation only: no word, no shingle
    assert not (sig[3] == 0xFFFFFFFF).all()


def test_exact_jaccard_with_normalize_matches_a_word_5gram_reference():
    import re

    rng = random.Random(3)
    vocabulary = ["alpha", "Beta", "gamma,", "(delta)", "epsilon.", "zeta!", "eta", "Theta"]
    pairs = []
    for _ in range(30):
        a = [rng.choice(vocabulary) for _ in range(40)]
        b = [w if rng.random() > 0.1 else rng.choice(vocabulary) for w in a]
        pairs.append((" ".join(a), " ".join(b)))

    def grams(text: str) -> set:
        w = re.findall(r"\w+", text.lower())
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    expected = [len(grams(a) & grams(b)) / len(grams(a) | grams(b)) for a, b in pairs]
    got = exact_jaccard([a for a, _ in pairs], [b for _, b in pairs], MinHashConfig.high_recall())
    np.testing.assert_allclose(got, expected)


def test_high_recall_preset_is_normalised_word_5grams_20x7_and_finds_j_0_8_pairs():
    config = MinHashConfig.high_recall()
    assert (config.word_ngrams, config.num_bands, config.hashes_per_band) == (5, 20, 7)
    assert config.normalize and config.char_ngrams is None
    assert candidate_probability(0.8, 20, 7) > 0.99


def test_normalize_texts_matches_python_word_regex_on_mixed_unicode():
    import re

    rng = random.Random(5)
    alphabet = list("aZ_9 .,!\n\t-—’éÉ日本ß\u00a0\u0301x")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(25))) for _ in range(500)]
    texts += [None, "", "   ", "ok.", " a "]
    expected = [" ".join(re.findall(r"\w+", (t or "").lower())) for t in texts]
    assert normalize_texts(pa.array(texts)).to_pylist() == expected
    chunked = pa.chunked_array([texts[:250], texts[250:]])
    assert normalize_texts(chunked).to_pylist() == expected
