"""English word tokens and sentence counts the way datatrove's quality filters see them.

datatrove (`datatrove.utils.text.split_into_words`) splits English with spaCy's rule-based
tokenizer (`spacy.blank("en")`, no model) and drops whitespace tokens; sentences come from
spaCy's rule-based `sentencizer`. spaCy is not a dependency here, so this module writes the
same kind of rules itself:

1. Split at whitespace (`str.split()`).
2. Each chunk that is not a special case (contractions such as `don't` -> `do n't`,
   `it's` -> `it 's`, `cannot` -> `can not`; abbreviations such as `Mr.`, `e.g.`;
   single letters with a period; emoticons) loses its leading punctuation, quotes, currency signs
   and symbols one at a time, and its trailing punctuation, quotes, `'s`, units after a
   number and a final period (after a lower-case letter, a digit, punctuation or two
   capitals) one at a time, each a token of its own.
3. What is left stays whole when it is a URL (`https://a.b/c`, `example.com`), else it is
   cut at infixes: runs of dots, `…`, symbols, hyphens between letters (`well-known` ->
   `well - known`), `,` between letters, `.` between a lower-case and an upper-case
   letter, `: < > = /` between letters or digits, and arithmetic signs between digits.

The rules follow spaCy's English tokenizer (spacy/lang/punctuation.py and
lang/en/tokenizer_exceptions.py); letter classes use Python's `str.isalpha`/`islower`/
`isupper` instead of spaCy's explicit ranges, and the special-case list is the common
part of spaCy's. Checked against spaCy 3.8 on about 200,000 words of prose and
documentation and on generated chunks mixing contractions, URLs, units, quotes and
symbols: the tokens are the same except for some runs of emoticons; letters of scripts
spaCy does not list (and CJK punctuation, which spaCy counts as letters) can also differ.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from stages.text.filters.punctuation_marks import SENTENCE_END_MARKS

# The languages these rules are for (datatrove's `language` values for English).
ENGLISH = ("eng", "en", "eng_Latn")


def check_english(language: str, filter_name: str) -> None:
    """The tokens here are English; another language needs its own tokenizer."""
    if language not in ENGLISH:
        raise NotImplementedError(
            f"{filter_name}: language={language!r} is not supported; the word tokenizer is "
            f"English (language one of {list(ENGLISH)})"
        )


# --- character classes ---------------------------------------------------------------

_PUNCT = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧"
_CURRENCY = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿"
_MULTI_CURRENCY = ("US$", "C$", "A$")
_PREFIX_CHARS = frozenset("§%=—–" + _PUNCT + _QUOTES + _CURRENCY)
_SUFFIX_CHARS = frozenset(_PUNCT + _QUOTES + "—–")
_HYPHENS = ("-", "–", "—", "--", "---", "——", "~")
_UNITS = tuple(
    sorted(
        (
            "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg "
            "µg t lb oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K %"
        ).split(),
        key=len,
        reverse=True,
    )
)
_POSSESSIVES = ("'s", "'S", "’s", "’S")


def _is_symbol(ch: str) -> bool:
    """An "other symbol" (Unicode category So: dingbats, emoji, ©, °)."""
    return unicodedata.category(ch) == "So"


def _is_lower(ch: str) -> bool:
    """A lower-case letter, or a letter of a script without case (CJK, Arabic, ...)."""
    return ch.isalpha() and not ch.isupper()


def _is_upper(ch: str) -> bool:
    """An upper-case letter, or a letter of a script without case."""
    return ch.isalpha() and not ch.islower()


def _is_period_left(ch: str) -> bool:
    """Characters after which a final period is split off (`word.` -> `word .`)."""
    return ch.isdigit() or _is_lower(ch) or ch in "%²-+|" or ch in _PUNCT or ch in _QUOTES


# --- special cases -------------------------------------------------------------------


# Emoticons that stay one token (the common ones of spaCy's list).
EMOTICONS = (
    ":) :-) :)) :-)) :))) :-))) (: (-: :( :-( :(( :-(( :((( :-((( ): )-: :D :-D ;D ;-D "
    ":P :-P :p :-p :O :-O :o :-o :0 :-0 :X :-X :x :-x :* :-* :/ :-/ :| :-| :] :-] :} :-} "
    ":> :-> :3 :-3 :1 :o) :() :') :'( :'-) :'-( ;) ;-) ;_; (; (-; =) =( =/ =3 =D =[ =] =| "
    "(= [: [-: [= ]= <3 </3 <33 <333 8) 8-) 8D 8-D (-8 xD XD xDD XDD ^_^ ^__^ ^___^ -_- "
    "-__- >.< >.> <.< >:( >:o @_@ o.O O.o o.o O.O o_O O_o o_o O_O 0.0 0.o o.0 0_0 0_o o_0 "
    "v.v V.V v_v V_V ._. (._.) (-_-) (^_^) (*_*) (>_<) (o: (¬_¬) ಠ_ಠ (ಠ_ಠ) ಠ︵ಠ "
    "><(((*> ¯\\(ツ)/¯ (╯°□°）╯︵┻━┻"
)


def _cased(*words: str) -> list[str]:
    return [form for word in words for form in (word, word.title())]


def _build_special_cases() -> dict[str, tuple[str, ...]]:
    cases: dict[str, tuple[str, ...]] = {}

    def add(pieces: tuple[str, ...]) -> None:
        cases["".join(pieces)] = pieces

    def contract(bases: list[str], endings: list[tuple[str, ...]]) -> None:
        for base in bases:
            for ending in endings:
                add((base, *ending))

    # Pronouns and w-words with 'll 'd 've 're 's (with and without the apostrophe).
    will = [("'ll",), ("ll",), ("'ll", "'ve"), ("ll", "ve")]
    would = [("'d",), ("d",), ("'d", "'ve"), ("d", "ve")]
    have = [("'ve",), ("ve",)]
    are = [("'re",), ("re",)]
    is_ = [("'s",), ("s",)]
    contract(["i", "I"], [("'m",), ("m",), ("'m", "a"), ("m", "a")])
    contract(_cased("i", "you", "he", "she", "it", "we", "they"), will + would)
    contract(_cased("i", "you", "we", "they"), have)
    contract(_cased("you", "we", "they"), are)
    contract(_cased("he", "she", "it"), is_)
    w_words = ["who", "what", "when", "where", "why", "how", "there", "that", "this"]
    contract(_cased(*w_words, "these", "those"), will + would)
    contract(_cased(*w_words), is_)
    contract(_cased("who", "what", "when", "where", "why", "how", "there"), are + have)
    contract(_cased("these", "those"), are + have)
    # Verbs with n't (can't -> ca n't, won't -> wo n't); the first group also with 've.
    modal = [
        "ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought",
        "sha", "should", "wo", "would",
    ]  # fmt: skip
    contract(_cased(*modal), [("n't",), ("nt",), ("n't", "'ve"), ("nt", "ve")])
    contract(_cased("ai", "are", "is", "was", "were", "have", "has", "dare"), [("n't",), ("nt",)])
    contract(_cased("could", "might", "must", "should", "would"), have)
    for pieces in (
        ("can", "not"), ("Can", "not"), ("gon", "na"), ("Gon", "na"), ("got", "ta"),
        ("Got", "ta"), ("let", "'s"), ("Let", "'s"), ("y'", "all"), ("y", "all"),
        ("c'm", "on"), ("C'm", "on"), ("not", "'ve"), ("not", "ve"), ("Not", "'ve"),
        ("Not", "ve"), ("how", "'d", "'y"), ("How", "'d", "'y"),
    ):  # fmt: skip
        add(pieces)
    for unit in "CFKcfk":
        add(("°", unit, "."))
    for hour in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            add((str(hour), period))
    # Words that stay whole although a rule would cut them: abbreviations, dropped letters,
    # emoticons.
    whole = [
        "'", "''", "'d", "'s", "'S", "'ll", "'re", "'em", "'nuff", "'bout", "C++", "and/or",
        "w/o", "e.g.", "E.g.", "E.G.", "i.e.", "I.e.", "I.E.", "a.m.", "p.m.", "Ph.D.", "vs.",
        "v.s.", "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Jr.", "St.", "Mt.", "Co.", "co.",
        "Corp.", "Inc.", "Ltd.", "Bros.", "Messrs.", "Adm.", "Gen.", "Gov.", "Rep.", "Rev.",
        "Sen.", "D.C.", "Md.", "Mo.", "Mont.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun.",
        "Jul.", "Aug.", "Sep.", "Sept.", "Oct.", "Nov.", "Dec.", "Ak.", "Ala.", "Ariz.",
        "Ark.", "Calif.", "Colo.", "Conn.", "Del.", "Fla.", "Ga.", "Ia.", "Id.", "Ill.",
        "Ind.", "Kan.", "Kans.", "Ky.", "La.", "Mass.", "Mich.", "Minn.", "Miss.", "N.C.",
        "N.D.", "N.H.", "N.J.", "N.M.", "N.Y.", "Neb.", "Nebr.", "Nev.", "Okla.", "Ore.",
        "Pa.", "S.C.", "Tenn.", "Va.", "Wash.", "Wis.", "ma'am", "Ma'am", "o'clock",
        "O'clock", "ä.", "ö.", "ü.", "\\n", "\\t",
        "\\\")", "—",
    ]  # fmt: skip
    for word in ("cause", "cos", "coz", "cuz"):
        whole += ["'" + word, "'" + word.title()]
    for word in ("doin", "goin", "havin", "lovin", "nothin", "nuthin", "somethin", "ol"):
        whole += [form + end for form in _cased(word) for end in ("", "'")]
    whole += [f"{letter}." for letter in "abcdefghijklmnopqrstuvwxyz"]
    whole += EMOTICONS.split()
    for word in whole:
        cases[word] = (word,)
    # spaCy never splits these: they are common words, not contractions.
    for word in ("Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed", "shed"):
        cases.pop(word, None)
    for word in ("were", "Were", "Well", "well", "Whore", "whore"):
        cases.pop(word, None)
    # Every form with ' also exists with ’.
    for key, pieces in list(cases.items()):
        if "'" in key:
            cases[key.replace("'", "’")] = tuple(p.replace("'", "’") for p in pieces)
    return cases


SPECIAL_CASES: dict[str, tuple[str, ...]] = _build_special_cases()
_LONGEST_CASE = max(map(len, SPECIAL_CASES))

# --- URLs ----------------------------------------------------------------------------


def _character_class(test) -> str:
    """A regular-expression character class of the BMP characters `test` accepts."""
    ranges: list[str] = []
    start = None
    for code in range(0x10001):
        inside = code <= 0xFFFF and test(chr(code))
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            end = code - 1
            ranges.append(f"\\u{start:04x}" + (f"-\\u{end:04x}" if end > start else ""))
            start = None
    return "[" + "".join(ranges) + "]"


_URL = re.compile(
    r"(?:[\w+\-.]{2,}://)?"  # scheme
    r"(?:\S+(?::\S*)?@)?"  # user:password@
    r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    + _character_class(_is_lower)  # top-level domain: lower-case or uncased letters
    + r"{2,63}"
    r"(?::\d{2,5})?"  # port
    r"(?:[/?#]\S*)?"  # path
)
_PRIVATE_IP = re.compile(
    r"(?:10|127)(?:\.\d{1,3}){3}|(?:169\.254|192\.168)|172\.(?:1[6-9]|2\d|3[01])"
)
_IP = re.compile(
    r"(?:[\w+\-.]{2,}://)?(?:\S+(?::\S*)?@)?"
    r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
    r"\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])(?::\d{2,5})?(?:[/?#]\S*)?"
)


def _is_url(chunk: str) -> bool:
    if _URL.fullmatch(chunk):
        return True
    return bool(_IP.fullmatch(chunk)) and not _PRIVATE_IP.match(chunk.split("://")[-1])


# --- affixes -------------------------------------------------------------------------


def _prefix_length(chunk: str, start: int, end: int) -> int:
    """Length of the prefix rule that matches at `chunk[start:end]`'s start (0: none)."""
    first = chunk[start]
    if first == "+":
        return 0 if end - start > 1 and chunk[start + 1].isdigit() else 1
    if first in _PREFIX_CHARS:
        return 1
    if chunk.startswith("..", start, end):
        stop = start
        while stop < end and chunk[stop] == ".":
            stop += 1
        return stop - start
    for sign in _MULTI_CURRENCY:
        if chunk.startswith(sign, start, end):
            return len(sign)
    return 1 if _is_symbol(first) else 0


_UNIT_ENDS = frozenset(unit[-1] for unit in _UNITS)
_CURRENCY_ENDS = frozenset(sign[-1] for sign in (*_MULTI_CURRENCY, *_CURRENCY))


def _suffix_length(chunk: str, start: int, end: int) -> int:
    """Length of the longest suffix rule that matches at the end of `chunk[start:end]`
    (the suffix that starts leftmost wins, as a regular-expression search anchored at the
    end would find it)."""
    best = 0
    last = chunk[end - 1]
    n = end - start
    if last in _SUFFIX_CHARS or _is_symbol(last):
        best = 1
    if chunk.endswith("……", start, end):
        best = max(best, 2)
    if chunk.endswith("..", start, end):
        stop = end
        while stop > start and chunk[stop - 1] == ".":
            stop -= 1
        best = max(best, end - stop)
    if chunk.endswith(_POSSESSIVES, start, end):
        best = max(best, 2)
    if n >= 2:
        before = chunk[end - 2]
        if last == "+" and before.isdigit():
            best = max(best, 1)
        if last == "." and (
            _is_period_left(before) or (n >= 3 and _is_upper(chunk[end - 3]) and _is_upper(before))
        ):
            best = max(best, 1)
        if last == "." and n >= 3 and chunk[end - 3] == "°" and before in "FfCcKk":
            best = max(best, 1)
    if last in _CURRENCY_ENDS:
        for sign in (*_MULTI_CURRENCY, *_CURRENCY):
            size = len(sign)
            if chunk.endswith(sign, start, end) and n > size and chunk[end - size - 1].isdigit():
                best = max(best, size)
    if last in _UNIT_ENDS:
        for unit in _UNITS:  # longest first
            size = len(unit)
            if size > best and n > size and chunk.endswith(unit, start, end):
                if chunk[end - size - 1].isdigit():
                    best = size
                    break
    return best


def _split_affixes(chunk: str) -> tuple[list[str], str, list[str]]:
    """Peel prefixes and suffixes off `chunk` until none is left or a special case shows."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    start, end = 0, len(chunk)

    def special(a: int, b: int) -> bool:
        return 0 < b - a <= _LONGEST_CASE and chunk[a:b] in SPECIAL_CASES

    last_size = -1
    while start < end and end - start != last_size:
        if special(start, end):
            break
        last_size = end - start
        pre = _prefix_length(chunk, start, end)
        if pre and special(start + pre, end):
            prefixes.append(chunk[start : start + pre])
            start += pre
            break
        suf = _suffix_length(chunk, start + pre, end) if start + pre < end else 0
        if suf and special(start, end - suf):
            suffixes.append(chunk[end - suf : end])
            end -= suf
            break
        if pre and suf and pre + suf <= end - start:
            prefixes.append(chunk[start : start + pre])
            suffixes.append(chunk[end - suf : end])
            start, end = start + pre, end - suf
        elif pre:
            prefixes.append(chunk[start : start + pre])
            start += pre
        elif suf:
            suffixes.append(chunk[end - suf : end])
            end -= suf
    return prefixes, chunk[start:end], suffixes


# --- infixes -------------------------------------------------------------------------


def _infix_at(word: str, i: int) -> int:
    """Length of the infix starting at `word[i]` (0 when none)."""
    ch = word[i]
    n = len(word)
    if ch == "." and i + 1 < n and word[i + 1] == ".":
        j = i
        while j < n and word[j] == ".":
            j += 1
        return j - i
    if ch == "…" or _is_symbol(ch):
        return 1
    if i == 0:
        return 0
    before = word[i - 1]
    after = word[i + 1] if i + 1 < n else ""
    if ch in "+-*^" and before.isdigit() and (after.isdigit() or after == "-"):
        return 1
    if (
        ch == "."
        and (_is_lower(before) or before in _QUOTES)
        and (after != "" and (_is_upper(after) or after in _QUOTES))
    ):
        return 1
    if ch == "," and before.isalpha() and after.isalpha():
        return 1
    if before.isalpha() or before.isdigit():
        for hyphen in _HYPHENS:
            end = i + len(hyphen)
            if word.startswith(hyphen, i) and end < n and word[end].isalpha():
                return len(hyphen)
        if ch in ":<>=/" and after.isalpha():
            return 1
    return 0


def _split_infixes(word: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    i = 0
    while i < len(word):
        length = _infix_at(word, i)
        if length == 0 or i == 0:
            i += 1 if length == 0 else length
            continue
        if i != start:
            pieces.append(word[start:i])
        pieces.append(word[i : i + length])
        start = i = i + length
    if start < len(word):
        pieces.append(word[start:])
    return pieces


# Special cases made of punctuation (`):`, `8)`, `e.g.`) can be cut by the affix rules
# before they are recognised; adjacent pieces that spell one are joined back.
_PUNCTUATED_CASES = frozenset(key for key in SPECIAL_CASES if not key.isalnum())


def _join_special_runs(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        # The longest run of tokens from i that could still spell a special case.
        j, size = i, 0
        while j < len(tokens) and size + len(tokens[j]) <= _LONGEST_CASE:
            size += len(tokens[j])
            j += 1
        for stop in range(j, i + 1, -1):
            joined = "".join(tokens[i:stop])
            if joined in _PUNCTUATED_CASES:
                out.extend(SPECIAL_CASES[joined])
                i = stop
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def _chunk_tokens(chunk: str) -> tuple[str, ...]:
    """The tokens of one whitespace-free chunk (short chunks, most words, are cached)."""
    if len(chunk) <= _CACHED_CHUNK:
        return _cached_chunk_tokens(chunk)
    return _tokenize_chunk(chunk)


_CACHED_CHUNK = 64


@lru_cache(maxsize=65536)
def _cached_chunk_tokens(chunk: str) -> tuple[str, ...]:
    return _tokenize_chunk(chunk)


def _tokenize_chunk(chunk: str) -> tuple[str, ...]:
    special = SPECIAL_CASES.get(chunk)
    if special is not None:
        return special
    prefixes, core, suffixes = _split_affixes(chunk)
    middle: list[str] | tuple[str, ...]
    if not core:
        middle = []
    elif core in SPECIAL_CASES:
        middle = SPECIAL_CASES[core]
    elif _is_url(core):
        middle = [core]
    else:
        middle = _split_infixes(core)
    tokens = [*prefixes, *middle, *reversed(suffixes)]
    if len(tokens) > 1:
        tokens = _join_special_runs(tokens)
    return tuple(tokens)


def word_tokens(text: str) -> list[str]:
    """The English word tokens of `text` (whitespace dropped), datatrove-style."""
    out: list[str] = []
    for chunk in text.split():
        out.extend(_chunk_tokens(chunk))
    return out


# --- sentences -----------------------------------------------------------------------

_SPACE_RUN = re.compile(r"\s+")


def _token_spans(text: str) -> list[tuple[str, int, int]]:
    """Every token of `text` with its character span, whitespace tokens included: spaCy
    keeps a run of whitespace as a token, except the single space that separates two
    words (a leading run is kept whole; a later run loses its first character when that
    is a space)."""
    spans: list[tuple[str, int, int]] = []
    pos = 0
    for gap in _SPACE_RUN.finditer(text):
        _word_spans(text[pos : gap.start()], pos, spans)
        start = gap.start()
        if start > 0 and text[start] == " ":
            start += 1
        if start < gap.end():
            spans.append((text[start : gap.end()], start, gap.end()))
        pos = gap.end()
    _word_spans(text[pos:], pos, spans)
    return spans


def _word_spans(chunk: str, pos: int, spans: list[tuple[str, int, int]]) -> None:
    if chunk:
        for token in _chunk_tokens(chunk):
            spans.append((token, pos, pos + len(token)))
            pos += len(token)


def _is_punct_token(token: str) -> bool:
    return all(unicodedata.category(ch).startswith("P") for ch in token)


def sentence_ends(text: str) -> list[int]:
    """The character offset where each sentence of `text` ends, as spaCy's rule-based
    sentencizer splits it: a sentence ends at a token of `SENTENCE_END_MARKS` (and the
    punctuation right after it); the next token that is not punctuation, a whitespace
    token included, starts a new one."""
    spans = _token_spans(text)
    ends: list[int] = []
    seen_end = False
    last_end = 0
    for i, (token, _, end) in enumerate(spans):
        is_mark = token in SENTENCE_END_MARKS
        if i and seen_end and not is_mark and not _is_punct_token(token):
            ends.append(last_end)
            seen_end = False
        elif is_mark:
            seen_end = True
        last_end = end
    if spans:
        ends.append(last_end)
    return ends


def split_sentences(text: str) -> list[str]:
    """`text` cut into sentences as datatrove's `split_into_sentences` cuts English: each
    part runs from the end of the previous sentence to the end of its own, the last to the
    end of the text (so the parts join back into `text`). A text without tokens is one
    part."""
    ends = sentence_ends(text)
    starts = [0, *ends[:-1]]
    stops = [*ends[:-1], len(text)]
    return [text[a:b] for a, b in zip(starts, stops, strict=True)]


def count_sentences(text: str) -> int:
    """The number of parts `split_sentences` cuts `text` into."""
    return max(len(sentence_ends(text)), 1)
