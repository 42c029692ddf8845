"""HtmlExtractor: pages decoded by their charset, main text kept by each algorithm with the
stop words of the detected language, `text` and `language` added, `html` dropped, and
every page that yields no text removed with its reason."""

from __future__ import annotations

import justext
import numpy as np
import pyarrow as pa
import pytest

from stages.base import FilterChain
from stages.text.extract import (
    STOP_LISTS,
    HtmlExtractor,
    JusTextExtractor,
    ResiliparseExtractor,
    TrafilaturaExtractor,
    decode_html,
    stop_words,
)

ENGLISH = [
    "The history of the old town begins in the twelfth century, when a group of farmers "
    "settled on the banks of the river and built the first wooden houses there. They traded "
    "with the villages upstream and soon had a small market of their own.",
    "Over the following years the town grew quickly, because it was on the main road between "
    "the two largest markets of the region, and many of the traders who passed through it "
    "decided to stay and to build their houses near the bridge.",
]
GERMAN = [
    "Die Geschichte der Altstadt beginnt im zwölften Jahrhundert, als sich eine Gruppe von "
    "Bauern am Ufer des Flusses niederließ und dort die ersten Häuser aus Holz baute. Sie "
    "handelten mit den Dörfern flussaufwärts und hatten bald einen eigenen kleinen Markt.",
    "In den folgenden Jahren wuchs der Ort sehr schnell, weil er an der wichtigen Straße "
    "zwischen den beiden größten Märkten der Region lag, und viele der Händler, die durch ihn "
    "zogen, blieben und bauten ihre Häuser in der Nähe der Brücke.",
]
LATIN = [
    "Gallia est omnis divisa in partes tres, quarum unam incolunt Belgae, aliam Aquitani, "
    "tertiam qui ipsorum lingua Celtae, nostra Galli appellantur. Hi omnes lingua, institutis, "
    "legibus inter se differunt.",
    "Gallos ab Aquitanis Garumna flumen, a Belgis Matrona et Sequana dividit. Horum omnium "
    "fortissimi sunt Belgae, propterea quod a cultu atque humanitate provinciae longissime "
    "absunt, minimeque ad eos mercatores saepe commeant.",
]
CHINESE = [
    "这座古城的历史始于十二世纪，当时一群农民在河岸边定居，并在那里建造了第一批木屋。"
    "他们与上游的村庄进行贸易，很快就有了自己的小集市。",
    "在接下来的几年里，这座城镇发展得很快，因为它位于该地区两个最大市场之间的主要道路上，"
    "许多经过这里的商人决定留下来，在桥附近建造他们的房屋。",
]
NAVIGATION = ["Home", "About us", "Contact", "Privacy policy", "Imprint"]
LINKS_ONLY = ["Login", "Cart", "Checkout", "Newsletter", "Sitemap", "FAQ", "Blog", "Shop"]


def page(title: str, paragraphs: list[str], lang: str = "en", charset: str = "utf-8") -> str:
    links = "".join(f'<li><a href="/{i}">{name}</a></li>' for i, name in enumerate(NAVIGATION))
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="{charset}"><title>{title}'
        f"</title></head><body><nav><ul>{links}</ul></nav><article><h1>{title}</h1>{body}"
        f'</article><footer><a href="/imprint">Imprint</a></footer></body></html>'
    )


def batch(pages: list, charsets: list | None = None, ids: list[str] | None = None) -> pa.Table:
    n = len(pages)
    return pa.table(
        {
            "id": ids or [f"doc-{i}" for i in range(n)],
            "url": [f"http://example.org/{i}" for i in range(n)],
            "charset": pa.array(charsets or [None] * n, pa.string()),
            "html": pa.array([p.encode() if isinstance(p, str) else p for p in pages], pa.binary()),
        }
    )


EXTRACTORS = ["trafilatura", "justext", "resiliparse"]


@pytest.fixture(scope="module")
def stages():
    """One stage per algorithm (the language model loads once per stage)."""
    return {name: HtmlExtractor(extractor=name) for name in EXTRACTORS}


@pytest.mark.parametrize("name", EXTRACTORS)
def test_each_extractor_keeps_the_article_and_drops_the_navigation(stages, name):
    pages = [page("Old town", ENGLISH), page("Altstadt", GERMAN, "de")]
    out = stages[name].process(batch(pages))
    assert out.column_names == ["id", "url", "charset", "text", "language", "language_score"]
    assert out.column("language").to_pylist() == ["en", "de"]
    assert all(s > 0.5 for s in out.column("language_score").to_pylist())
    english, german = out.column("text").to_pylist()
    assert ENGLISH[0] in english and ENGLISH[1] in english and GERMAN[1] in german
    assert english.index(ENGLISH[0]) < english.index(ENGLISH[1])
    assert "\n\n" in english  # paragraphs joined by a blank line, as NeMo Curator joins them
    for text in (english, german):
        assert not any(name in text for name in NAVIGATION)


@pytest.mark.parametrize("name", EXTRACTORS)
def test_pages_without_text_are_removed_with_their_reason(stages, name):
    pages = [
        page("Old town", ENGLISH),
        None,
        "<html><body></body></html>",
        "<html><body>" + "".join(f"<a href='/{n}'>{n}</a> " for n in LINKS_ONLY) + "</body></html>",
        page("Gallia", LATIN, "la"),
        "<html><body><p>" + "1234 5678 90 " * 40 + "</p></body></html>",
    ]
    stage = stages[name]
    kept, removed, scores = stage.apply(batch(pages))
    assert kept.column("id").to_pylist() == ["doc-0"]
    assert scores[0] == len(kept.column("text")[0].as_py()) and list(scores[1:]) == [0] * 5
    ids, why = removed.column("id").to_pylist(), removed.column("reason").to_pylist()
    reasons = dict(zip(ids, why, strict=True))
    assert reasons["doc-1"] == "no HTML"
    assert reasons["doc-2"] == "no text found in the page"
    assert reasons["doc-3"] == (
        "jusText classified every paragraph as boilerplate"
        if name == "justext"
        else "no paragraph has a stop-word density >= 0.32"
    )
    assert reasons["doc-4"] == "no stop-word list for language 'la'"  # left out, as NeMo does
    assert reasons["doc-5"] == "language unknown"  # digits only
    shown = stage.describe_removed(removed, 2)
    assert shown == [
        {"id": "doc-1", "reason": "no HTML", "url": "http://example.org/1"},
        {"id": "doc-2", "reason": "no text found in the page", "url": "http://example.org/2"},
    ]


@pytest.mark.parametrize("name", EXTRACTORS)
def test_a_language_written_without_spaces_skips_the_stop_word_test(stages, name):
    out = stages[name].process(batch([page("古城", CHINESE, "zh")]))
    assert out.column("language").to_pylist() == ["zh"]
    assert CHINESE[1] in out.column("text")[0].as_py()


def test_the_http_charset_decodes_the_page_and_detection_covers_its_absence(stages):
    german = page("Altstadt", GERMAN, "de", "iso-8859-1").encode("cp1252")
    no_meta = page("Altstadt", GERMAN, "de").replace('<meta charset="utf-8">', "")
    pages = [german, german, no_meta.encode("cp1252"), german]
    charsets = ["iso-8859-1", None, None, "no-such-charset"]
    out = stages["resiliparse"].process(batch(pages, charsets))
    assert out.num_rows == 4
    for text in out.column("text").to_pylist():
        assert GERMAN[0] in text  # "zwölften", "niederließ" decoded right every time


def test_decode_html_order_bom_header_utf8_detection():
    text = "Grüße aus Köln – ça va?"
    assert decode_html(text.encode("utf-8"), "iso-8859-1") == text.encode("utf-8").decode(
        "cp1252"
    )  # the header wins when it decodes every byte (WHATWG: iso-8859-1 is windows-1252)
    assert decode_html(text.encode("utf-8")) == text
    assert decode_html(b"\xef\xbb\xbf" + text.encode("utf-8"), "cp1251") == text
    assert decode_html(text.encode("utf-16")) == text
    assert decode_html(text.encode("utf-8"), "no-such-charset") == text
    russian = "<html><head><meta charset='windows-1251'></head><body>Привет, мир</body></html>"
    assert decode_html(russian.encode("cp1251")) == russian
    assert decode_html(b"\xff\xfe\xfa broken \x81") is not None  # never raises


def test_trafilatura_deduplication_stays_inside_a_page(stages):
    """Trafilatura's `deduplicate` (on, as in NeMo Curator) remembers documents in a
    process-wide cache and returns nothing for a page seen more than twice, so what it kept
    would depend on what a worker saw before; each page gets a cache of its own here, and
    copies of a page are the dedup step's to remove."""
    import trafilatura

    pages = [page("Old town", ENGLISH)] * 4
    shared = [trafilatura.extract(p, deduplicate=True) for p in pages * 2]
    assert shared[-1] is None  # what the process-wide cache does
    stage = stages["trafilatura"]
    together = stage.process(batch(pages)).column("text").to_pylist()
    assert len(together) == 4 and len(set(together)) == 1
    assert stage.process(batch(pages[:1])).column("text").to_pylist() == together[:1]


def test_algorithm_arguments_and_instances(stages):
    strict = HtmlExtractor("resiliparse", {"required_stopword_density": 1.01})
    _, removed, _ = strict.apply(batch([page("Old town", ENGLISH)]))
    assert removed.column("reason").to_pylist() == ["no paragraph has a stop-word density >= 1.01"]
    loose = HtmlExtractor(ResiliparseExtractor(required_stopword_density=0.0, main_content=False))
    text = loose.process(batch([page("Old town", ENGLISH)])).column("text")[0].as_py()
    assert "Privacy policy" in text  # the navigation too, without main-content heuristics
    assert isinstance(HtmlExtractor().algorithm, TrafilaturaExtractor)
    assert isinstance(HtmlExtractor("justext").algorithm, JusTextExtractor)
    assert HtmlExtractor("justext", {"length_low": 10}).algorithm.length_low == 10
    with pytest.raises(ValueError, match="unknown extractor 'lynx'"):
        HtmlExtractor("lynx")
    with pytest.raises(ValueError, match="configure the ResiliparseExtractor instance"):
        HtmlExtractor(ResiliparseExtractor(), {"main_content": False})


def test_stop_lists_can_be_replaced_per_language():
    latin = page("Gallia", LATIN, "la")
    _, removed, _ = HtmlExtractor("resiliparse").apply(batch([latin]))
    assert removed.column("reason").to_pylist() == ["no stop-word list for language 'la'"]
    words = {w.strip(".,").lower() for p in LATIN for w in p.split()}
    custom = HtmlExtractor("resiliparse", stop_lists={"LA": words})
    out = custom.process(batch([latin]))
    assert out.column("language").to_pylist() == ["la"]
    assert LATIN[1] in out.column("text")[0].as_py()
    assert custom.stop_list("la") == frozenset(words)
    assert custom.stop_list("en") == stop_words("en")


def test_every_mapped_stop_list_ships_with_justext():
    assert set(STOP_LISTS.values()) <= set(justext.get_stoplists())
    assert "Latin" not in STOP_LISTS.values()
    assert "the" in stop_words("en") and "und" in stop_words("de")
    assert stop_words("xx") is None


def test_keep_html_keep_score_and_existing_text_columns(stages):
    table = batch([page("Old town", ENGLISH)]).append_column("text", pa.array(["old"]))
    out = HtmlExtractor("resiliparse", keep_html=True, keep_score=True).process(table)
    assert out.column_names == [
        "id", "url", "charset", "html", "text", "language", "language_score",
        "score_HtmlExtractor",
    ]  # fmt: skip
    text = out.column("text")[0].as_py()
    assert text != "old" and out.column("score_HtmlExtractor")[0].as_py() == len(text)


def test_bad_input_is_a_clear_error(stages):
    stage = stages["resiliparse"]
    with pytest.raises(KeyError, match="no column 'html'.*format 'warc'"):
        stage.process(pa.table({"id": ["a"], "text": ["x"]}))
    with pytest.raises(TypeError, match="column 'html' is int64"):
        stage.process(pa.table({"id": ["a"], "html": [1]}))
    with pytest.raises(TypeError, match="run it as a stage of its own"):
        FilterChain([stage]).process(batch([page("Old town", ENGLISH)]))


def test_text_pages_and_empty_batches(stages):
    stage = stages["resiliparse"]
    table = pa.table({"id": ["a"], "html": [page("Old town", ENGLISH)]})  # already str
    assert ENGLISH[0] in stage.process(table).column("text")[0].as_py()
    empty = stage.apply(batch([]))
    assert empty[0].num_rows == 0 and empty[1].num_rows == 0
    assert isinstance(empty[2], np.ndarray)
