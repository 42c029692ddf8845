"""`TextCleaner` runs ftfy and its regexes only where they can change something; these tests
show that its output stays that of `ftfy.fix_text` on every row and of the first
implementation (`TextCleaner._process_reference`) on texts with everything ftfy repairs."""

from __future__ import annotations

import inspect
import random
import re

import ftfy
import ftfy.badness
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import stages.text.clean as clean_module
from stages.text.clean import TextCleaner

_ENGLISH = [
    "The configuration file is read once at start-up.",
    "Call setup() before the first batch; it loads the model.",
    "Returns a list of (key, value) pairs, sorted by key.",
    "See the section on error handling for details.",
    "x = 1 & y = 2 && z == 3; a < b > c",
    "Fish & chips, R&D, AT&T and &c.",
    "    indented code line\twith a tab",
    "",
]
_FOREIGN = [
    "Le café de la gare ouvre à 6 h ; déjà plein à midi.",
    "Grüße aus München: Straße, Äpfel, Öl, Übermut.",
    "São Paulo não é a capital; ação, coração, NÃO, ÀS.",
    "Âge d'or, Ça va, Œuvre complète, cœur, bœuf.",
    "El niño comió piña en Año Nuevo, ¿verdad? ¡Sí!",
    "Ελληνικά: καλημέρα κόσμε, ΑΒΓΔ.",
    "Русский текст: Привет, мир! ВГРС Ђ.",
    "中文文本，日本語のテキスト、한국어 텍스트.",
    "Emoji 😀👍🏽🇫🇷 and a family 👩\u200d👩\u200d👧 and ❤️.",
    "Math: ½ ± ¼ × ² ³ µ ° ∞ ≤ ≥ ≠ √ ∑ → ℃.",
    "Legal: © 2024, ® ™ § ¶ † ‡ • … – —.",
    "Tables: ┌──┬──┐ │a │b │ ╞══╪══╡ ███ ░▒▓",
    "Prices: 5 € 3 £ 100 ¥ 2 ¢ ₧.",
    "Arabic: مرحبا بالعالم، Hebrew: שלום עולם.",
    "Hindi: नमस्ते दुनिया, Tamil: வணக்கம்.",
]
_FIXABLE = [
    "“Double” and ‘single’ curly quotes, ʼapostrophe‛ and ‟reversed‟.",
    "Ligatures: ﬁne ﬂoor ﬀ ﬃ ﬄ ﬅ ﬆ Ĳssel ǅ ǈ ǋ ŉ.",
    "Full width: ＬＯＵＤ　ＮＯＩＳＥＳ and half width: ｶﾀｶﾅ ﾝ.",
    "Entities: &amp; &lt;tag&gt; &eacute; &#233; &#x2019; &NTILDE; &hellip; &nosuch;",
    "Controls:\x00\x01\x07\x08\x0b\x0e\x1f\x7f end.",
    "C1 controls: \x80 \x85 \x91quote\x92 \x93\x94 \x9f end.",
    "Format characters: \u206a\u206f\ufeff\ufff9\ufffa\ufffb\ufffc end.",
    "Terminal: \x1b[36;44mblue\x1b[0m and \x1b[1mbold\x1b[m.",
    "Breaks:\u2028line separator\u2029paragraph separator\x85next line.",
    "Spaces: a\xa0b a\u2000b a\u2003b a\u2009b a\u202fb a\u205fb a\u3000b.",
    "Zero width: a\u200bb a\u200cb a\u200db a\u2060b a\u00adb.",
    "Combining: e\u0301 a\u0308 n\u0303 c\u0327 a\u0323\u0301 a\u0301\u0323 \u1100\u1161.",
    "Box mojibake: ══╪ █ ▒ ┼ and ┼ò.",
    "Replacement: \ufffd and â€\ufffd lossy.",
    "Â \nÃ \nÂ after a line",
    "Œ alone, œ. œ1",
    "Composed into mojibake: A\u0303\xa0la, A\u0303 la and A\u0302\u20ac.",
    "Width into mojibake: ￠￤ ￢￣ Ã￠ and voiced ｶﾞ ﾊﾟ.",
    "Removed control joins mojibake: é\x07© Ã\x07© â\x07€\x07™.",
]


def _mojibake(text: str, rng: random.Random) -> str:
    """`text` as UTF-8 read in a single-byte encoding, sometimes twice, sometimes with
    NBSPs turned to spaces (what `restore_byte_a0` repairs)."""
    encoding = rng.choice(
        [
            "latin-1",
            "windows-1252",
            "sloppy-windows-1252",
            "mac_roman",
            "cp437",
            "windows-1251",
            "sloppy-windows-1251",
            "windows-1250",
            "iso-8859-2",
            "windows-1253",
            "windows-1257",
        ]
    )
    broken = text.encode("utf-8").decode(encoding, errors="replace")
    if rng.random() < 0.2:
        broken = broken.encode("utf-8").decode("windows-1252", errors="replace")
    if rng.random() < 0.2:
        broken = broken.replace("\xa0", " ")
    return broken


def _line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        return rng.choice(_ENGLISH)
    if kind < 0.65:
        return rng.choice(_FOREIGN)
    if kind < 0.8:
        return rng.choice(_FIXABLE)
    if kind < 0.9:
        return _mojibake(rng.choice(_FOREIGN + _FIXABLE[:3]), rng)
    if kind < 0.94:
        return rng.choice(
            [
                "https://example.com/page?id=1",
                "  www.example.org  ",
                "All rights reserved.",
                "ALL\xa0RIGHTS RESERVED",
                "Click ſhere",  # LONG S: case-insensitively an "s"
                "Terms of uſe",
                "Share on \u212aaceboo\u212a",
                "Back   to\ttop",
                "Copyright 2020 Foo Inc. All rights reserved.",
            ]
        )
    # a mix within one line: mojibake of a fragment next to clean text
    return rng.choice(_ENGLISH) + " " + _mojibake(rng.choice(_FOREIGN), rng)


def generated_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """`n` texts: a third plain ASCII documentation lines, the rest mixing accented Latin,
    other scripts, emoji, mojibake in many encodings, curly quotes, entities, controls,
    terminal escapes, Unicode line breaks and spaces, zero-width and combining characters,
    URL and boilerplate lines and whitespace runs, joined by assorted line breaks."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        count = rng.randint(1, 25)
        if i % 3 == 0:
            lines = [rng.choice(_ENGLISH) for _ in range(count)]
        else:
            lines = [_line(rng) for _ in range(count)]
        breaks = ["\n", "\n", "\n", "\r\n", "\r", "\n\n\n", " \n ", "\n\t"]
        text = lines[0]
        for line in lines[1:]:
            text += rng.choice(breaks) + line
        if rng.random() < 0.1:
            text = rng.choice(["  ", "\n", "\ufeff", "\t"]) + text + rng.choice([" ", "\n\n", ""])
        texts.append(text)
    return texts


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return generated_corpus()


@pytest.fixture(scope="module")
def fixed(corpus) -> list[str]:
    """`ftfy.fix_text` on every text of the corpus: what the stage must give."""
    return [ftfy.fix_text(t) for t in corpus]


def _batch(texts: list[str | None], text_type: pa.DataType | None = None) -> pa.Table:
    ids = [str(i) for i in range(len(texts))]
    return pa.table({"id": ids, "text": pa.array(texts, type=text_type or pa.string())})


def test_fast_path_was_derived_for_the_installed_ftfy():
    # The trigger characters below are read from ftfy 6.3.1's fixes; another version
    # may fix other characters: re-read ftfy's `fix_and_explain` before changing this.
    assert ftfy.__version__ == "6.3.1"


def _branch_items(branch) -> list[set[int] | None]:
    """Each item of a parsed regex branch as the set of characters it matches, or None
    when it is not a plain class (\\s, \\w, negated classes, '.', anchors, repeats)."""
    items: list[set[int] | None] = []
    for op, arg in branch:
        if op is re._constants.LITERAL:
            items.append({arg})
        elif op is re._constants.IN and all(
            kind in (re._constants.LITERAL, re._constants.RANGE) for kind, _ in arg
        ):
            chars: set[int] = set()
            for kind, value in arg:
                low, high = (value, value) if kind is re._constants.LITERAL else value
                chars.update(range(low, high + 1))
            items.append(chars)
        else:
            items.append(None)
    return items


def test_every_mojibake_signature_contains_a_trigger():
    parsed = re._parser.parse(ftfy.badness.BADNESS_RE.pattern, ftfy.badness.BADNESS_RE.flags)
    [(op, (_, branches))] = parsed.data
    assert op is re._constants.BRANCH and len(branches) == 37
    alone = clean_module._MOJIBAKE_ALONE
    mojibake = clean_module._MOJIBAKE
    for branch in branches:
        items = _branch_items(branch)
        single = any(item is not None and item <= alone for item in items)
        pair = any(
            a is not None and b is not None and a <= mojibake and b <= mojibake
            for a, b in zip(items, items[1:], strict=False)
        )
        assert single or pair, f"branch {branch} has no trigger"


def test_mojibake_characters_include_every_non_ascii_character_of_the_badness_regex():
    parsed = re._parser.parse(ftfy.badness.BADNESS_RE.pattern, ftfy.badness.BADNESS_RE.flags)
    [(_, (_, branches))] = parsed.data
    seen = set()
    for branch in branches:
        for item in _branch_items(branch):
            seen |= {c for c in item or () if c > 0x7F}
    assert seen <= clean_module._MOJIBAKE


def test_windowed_is_bad_equals_ftfys(corpus):
    rng = random.Random(1)
    alphabet = sorted(clean_module._MOJIBAKE) + [ord(c) for c in "abcXYZ .,?!\n\t"]
    fuzz = [
        "".join(chr(rng.choice(alphabet)) for _ in range(rng.randint(0, 30))) for _ in range(20_000)
    ]
    lines = [line for text in corpus for line in text.split("\n")]
    for text in corpus + lines + fuzz:
        assert clean_module._is_bad(text) == ftfy.badness.is_bad(text), repr(text)


def test_badness_regex_is_as_narrow_as_the_windows_assume():
    parsed = re._parser.parse(ftfy.badness.BADNESS_RE.pattern, ftfy.badness.BADNESS_RE.flags)
    assert parsed.getwidth()[1] <= clean_module._BADNESS_WIDTH
    assert "(?<" not in ftfy.badness.BADNESS_RE.pattern
    assert "(?=" not in ftfy.badness.BADNESS_RE.pattern
    assert "(?!" not in ftfy.badness.BADNESS_RE.pattern
    assert "$" not in ftfy.badness.BADNESS_RE.pattern
    assert "\\b" not in ftfy.badness.BADNESS_RE.pattern


def test_character_fixes_run_in_the_order_of_fix_and_explain():
    source = inspect.getsource(ftfy.fix_and_explain)
    positions = [source.index(f'"{fix.__name__}"') for fix, _ in clean_module._CHARACTER_FIXES]
    assert positions == sorted(positions)
    assert source.index("fix_encoding") < positions[0]
    assert positions[-1] < source.index("config.normalization")


def test_texts_the_predicate_passes_over_are_left_unchanged_by_ftfy(corpus, fixed):
    surrogates = ["pair \ud83d\ude00 here", "lone \udca9 low", "reversed \udca9\ud83d"]
    texts = corpus + surrogates
    changed = 0
    for text, repaired in zip(texts, fixed + [ftfy.fix_text(t) for t in surrogates], strict=True):
        if repaired != text:
            changed += 1
            assert clean_module._may_change(text), repr(text)
    assert changed > len(corpus) // 3  # the corpus does exercise the repairs


def test_repair_of_only_the_changing_lines_equals_fix_text(corpus, fixed):
    assert [clean_module._repair(t) for t in corpus] == fixed
    surrogates = [
        "pair \ud83d\ude00 here\nnext line &amp;",
        "lone \udca9 low\nand naÃ¯ve",
        "ok line\nreversed \udca9\ud83d\n“quote”",
    ]
    for text in surrogates:
        assert clean_module._repair(text) == ftfy.fix_text(text), repr(text)


def test_html_entities_are_kept_from_the_first_line_with_a_less_than_sign_on():
    text = "a &amp; b\nc &amp; d <p>\ne &amp; f\nnaÃ¯ve &eacute;"
    assert clean_module._repair(text) == ftfy.fix_text(text)
    assert clean_module._repair(text) == "a & b\nc &amp; d <p>\ne &amp; f\nnaïve &eacute;"


def test_text_longer_than_ftfy_segments_is_repaired_like_fix_text():
    line = ("plain words " * 90_000) + "caf\u00c3\u00a9 " + ("more " * 10) + "\u201cq\u201d"
    assert len(line) > ftfy.TextFixerConfig().max_decode_length
    text = line + "\nsecond line naÃ¯ve"
    assert clean_module._repair(text) == ftfy.fix_text(text)


def test_vectorised_triggers_agree_with_the_python_ones(corpus):
    found = pc.match_substring_regex(pa.array(corpus), clean_module._TRIGGERS_RE2).to_pylist()
    assert found == [bool(clean_module._TRIGGERS.search(t)) for t in corpus]


_CUSTOM_PHRASES = ["buy now", "click (?:here|there)", "^share", "à la carte"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"fix_unicode": False},
        {"fix_unicode": False, "boilerplate_phrases": _CUSTOM_PHRASES},
        {"fix_unicode": False, "normalize_whitespace": False},
    ],
    ids=["defaults", "no-fix-unicode", "custom-phrases", "lines-only"],
)
def test_output_equals_the_reference_implementation(corpus, options):
    cleaner = TextCleaner(**options)
    batch = _batch(corpus)
    assert cleaner.process(batch).equals(cleaner._process_reference(batch))


def test_fix_unicode_alone_equals_fix_text_on_every_row(corpus, fixed):
    cleaner = TextCleaner(
        normalize_whitespace=False, remove_url_lines=False, remove_boilerplate_lines=False
    )
    assert cleaner.process(_batch(corpus)).column("text").to_pylist() == fixed


def test_chunks_nulls_and_large_strings_give_the_reference_output(corpus):
    texts = corpus[:300] + [None, "", None] + corpus[300:600]
    cleaner = TextCleaner()
    for text_type in (pa.string(), pa.large_string()):
        column = pa.chunked_array(
            [pa.array(texts[:100], text_type), pa.array(texts[100:], text_type)]
        )
        batch = pa.table({"id": [str(i) for i in range(len(texts))], "text": column})
        out = cleaner.process(batch)
        assert out.equals(cleaner._process_reference(batch))
        assert out.schema.field("text").type == text_type


def test_a_batch_of_plain_ascii_never_calls_ftfy(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("ftfy was called")

    monkeypatch.setattr(ftfy, "fix_text", fail)
    monkeypatch.setattr(ftfy, "fix_text_segment", fail)
    texts = ["Plain text.\nSecond   line", "x < y && y > z", None]
    assert TextCleaner()(_batch(texts)).column("text").to_pylist() == [
        "Plain text.\nSecond line",
        "x < y && y > z",
        None,
    ]


def test_ftfy_runs_only_on_the_lines_it_can_change(monkeypatch):
    calls = []
    real = ftfy.fix_text_segment

    def counting(text, *args, **kwargs):
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(ftfy, "fix_text_segment", counting)
    lines = [f"Line {i} of a long document, déjà vu." for i in range(200)]
    lines[120] = "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows."
    out = TextCleaner()(_batch(["\n".join(lines)])).column("text").to_pylist()
    assert calls == [lines[120] + "\n"]
    assert out[0].split("\n")[120] == "The Mona Lisa doesn't have eyebrows."


def test_the_input_batch_is_left_as_it_was(corpus):
    batch = _batch(corpus[:500])
    before = batch.column("text").to_pylist()
    TextCleaner().process(batch)
    assert batch.column("text").to_pylist() == before


def test_lines_needing_only_character_fixes_are_repaired_without_ftfy(monkeypatch):
    text = "It’s “quoted”\r\nﬁne ＬＯＵＤ\x07 text\u2028e\u0301 \x1b[1mbold\x1b[0m"
    expected = ftfy.fix_text(text)
    monkeypatch.setattr(ftfy, "fix_text", None)
    monkeypatch.setattr(ftfy, "fix_text_segment", None)
    assert clean_module._repair(text) == expected == 'It\'s "quoted"\nfine LOUD text\né bold'
