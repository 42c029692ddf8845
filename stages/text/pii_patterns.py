"""`PiiDetector`: where the personal data and secrets of a text are, as typed spans.

Each entity type is found in two steps: a compiled regular expression proposes candidates,
then a validator confirms them (libphonenumber through `phonenumbers`, the Luhn, IBAN and
SSN rules of `python-stdnum`, the standard library's `ipaddress`), and a look at the few
words before a candidate rejects numbers that their context names as something else (an
order number, an ISBN, a version). The rules per type are on `PiiDetector`.

Most texts hold no PII, so the work is in not looking: `PiiDetector.gates` tells, for a
whole column at once (Arrow's RE2 kernels, no Python per text), which texts may hold
which types (`GATES`), and each type's Python detector also returns at once when the text
lacks what its entities need (no '@', no e-mail address).

The type names are Presidio's (the analyser behind NeMo Curator's `PiiModifier`), upper
case; `SECRET` and `URL_CREDENTIALS` are ours.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ENTITY_TYPES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "URL_CREDENTIALS",
    "SECRET",
)

# Where two found spans overlap, the type listed first wins (a credential's password is not
# also an e-mail's local part; an IBAN's digits are not also a phone number).
PRIORITY: tuple[str, ...] = (
    "SECRET",
    "URL_CREDENTIALS",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "PHONE_NUMBER",
)

PHONE_LENIENCIES = ("possible", "valid", "strict_grouping", "exact_grouping")

# Words that, among the three before a number, name it as something other than PII.
NOT_PII_WORDS = frozenset(
    "isbn isbn10 isbn13 issn doi order orders invoice inv ref reference tracking serial sku "
    "part item ticket case po transaction txn confirmation booking reservation patent "
    "receipt lot batch model version ver build release rev revision seed hash nonce checksum "
    "crc uuid guid sha md5 id".split()
)
PHONE_WORDS = frozenset(
    "phone phones tel telephone call calls calling mobile mob cell cellphone fax contact "
    "whatsapp sms text dial hotline ph".split()
)
SSN_WORDS = frozenset("ssn ssns social security ss".split())
# Words right before a dotted quad that make it a version or a section number, not an IP.
VERSION_WORDS = frozenset(
    "v ver version versions release rel build rev revision firmware section sec chapter ch "
    "figure fig table step rule clause article art paragraph para item part isbn oid".split()
)
# File extensions that follow an '@' in asset names ("icon@2x.png") but are not top-level
# domains, so such names are not e-mail addresses.
FILE_EXTENSIONS = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff avif heic css js mjs json xml txt pdf yaml "
    "yml html htm php".split()
)

_SECRET_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "ghp_", "gho_", "ghu_", "ghs_", "ghr_")
_SECRET_PREFIXES += ("github_pat_", "xox", "k_live_", "AIza")
_SECRET_KEY_WORDS = ("key", "secret", "token", "passw", "authorization")

# What every phone number we accept holds: a '+' before its first digit, a group of three
# or more digits followed by another ("212 555", "7946 0958", "2125551234"), or four groups
# of two ("06 12 34 56 78"), a group starting at a word boundary. Dates, times, prices,
# years and the digits inside hashes do not.
PHONE_SHAPE = r"\+ ?\(?\d|\b\d{3,}[ ().-]{0,2}\d{3}|\b\d\d[ .-]\d\d[ .-]\d\d[ .-]\d\d"

# Per type, a pattern every text holding such an entity matches (a necessary condition,
# in the syntax both Python's `re` and RE2 read): `PiiDetector.gates` runs them over a
# whole column with Arrow's RE2 kernels, so the Python detectors only see texts that may
# hold the type.
GATES: dict[str, str] = {
    "EMAIL_ADDRESS": r"@[A-Za-z0-9-]+\.[A-Za-z0-9]",
    "PHONE_NUMBER": PHONE_SHAPE,
    "IP_ADDRESS": r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|::|(?:[0-9A-Fa-f]{1,4}:){7}",
    "CREDIT_CARD": r"\b\d(?:[ -]?\d){12}",
    "IBAN_CODE": r"\b[A-Z]{2}\d{2} ?[A-Z0-9]{4}",
    "US_SSN": r"\b\d{3}[- ]?\d{2}[- ]?\d{4}\b",
    "URL_CREDENTIALS": r"://[^\s/?#@]*:[^\s/?#@]+@",
    "SECRET": r"AKIA|ASIA|ABIA|ACCA|A3T|gh[pousr]_|github_pat_|xox[abposr]-|[sr]k_live_|AIza"
    r"|-----BEGIN|(?i:api[_-]?key|apikey|secret|token|passw|access[_-]?key|private[_-]?key"
    r"|authorization)[\w-]{0,20}[\"'`]?\s*[:=]",
}

_WORD = re.compile(r"[a-z0-9]+|#")
_VERSION_WORD_BEFORE = re.compile(
    r"(?i)(?<![\w])(?:" + "|".join(sorted(VERSION_WORDS)) + r")\.?\s*(?:\w+\s*)?[:#]?\s*$"
)

# What before a dotted quad makes it a package or product version or a section number:
# "setup-1.2.3.4", "Chrome/1.2.3.4", "pkg==1.2.3.4", "§4.2.3.1".
_VERSION_PREFIX = re.compile(r"(?:[A-Za-z][\w.]*[-/_]|[=<>~^]=?\s?|§\s?)$")
_DATE_SHAPE = re.compile(
    r"\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ]\d{2}(?:\d{2})?"
)
# A calendar date with one kind of separator inside a longer number ("2024-03-15 12").
_DATE_INSIDE = re.compile(
    r"(?<!\d)(?:[12]\d{3}([-./])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])([-./])(?:0?[1-9]|[12]\d|3[01])\2[12]\d{3})(?!\d)"
)
_COMPACT_DATE = re.compile(r"[12]\d{3}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_PHONE_SEPARATORS = re.compile(r"[\s().+-]+")
_PHONE_SHAPE = re.compile(PHONE_SHAPE)
_AREA_CODE_CLOSE = re.compile(r"\d{1,5}\)")
_NOT_BEFORE_PHONE = frozenset("+#$€£¥/.,-_") | frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_SCALE_LABEL = re.compile(r"\d+(?:\.\d+)?x\.")


def context_words(text: str, start: int, n: int = 3) -> list[str]:
    """The last `n` words (lower case, digits kept, '#' a word of its own) before `start`."""
    return _WORD.findall(text[max(0, start - 40) : start].lower())[-n:]


def context_says(text: str, start: int, deny: frozenset[str], allow: frozenset[str]) -> bool | None:
    """False when the nearest keyword of the three words before `start` is in `deny`, True
    when it is in `allow`, None when none of them is a keyword of either."""
    for word in reversed(context_words(text, start)):
        if word in deny:
            return False
        if word in allow:
            return True
    return None


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s character distribution."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# A word of a name: lower, upper, Capitalised or camelCase letters, then maybe digits.
_NAME_PART = re.compile(r"(?:[a-z]+|[A-Z]+|[A-Z][a-z]+|[a-z]+(?:[A-Z][a-z]+)+)\d*|\d+")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")


def _is_repetition(value: str) -> bool:
    """`value` is a shorter string repeated ("abc123abc123")."""
    n = len(value)
    return any(n % k == 0 and value[:k] * (n // k) == value for k in range(1, n // 2 + 1))


def looks_random(value: str) -> bool:
    """Whether an assigned value looks like a generated secret: 16+ characters with a
    letter and a digit, not a repetition ("abc123abc123"), not a dotted or snake-case name
    ("my_secret_value_2", "process.env.KEY_2"), and with at least 0.75 of the entropy a
    character can carry, `log2(min(length, alphabet))`, the alphabet being 16 for hex and
    otherwise the sum of the classes present (26 lower, 26 upper, 10 digits, 4 others)."""
    n = len(value)
    if n < 16 or value.isalpha() or not any(c.isdigit() for c in value):
        return False
    if not any(c.isalpha() for c in value) or _is_repetition(value):
        return False
    parts = [p for p in re.split(r"[._/-]", value) if p]
    if len(parts) >= 2 and all(_NAME_PART.fullmatch(p) for p in parts):
        return False
    if _HEX.fullmatch(value):
        alphabet = 16
    else:
        alphabet = sum(
            size
            for present, size in (
                (any(c.islower() for c in value), 26),
                (any(c.isupper() for c in value), 26),
                (True, 10),
                (any(not c.isalnum() for c in value), 4),
            )
            if present
        )
    return shannon_entropy(value) >= 0.75 * math.log2(min(n, alphabet))


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check digit of a card number is right."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# (prefix range low, high, number of prefix digits, allowed lengths): Visa, Mastercard,
# American Express, Discover, Diners Club, JCB, UnionPay, Maestro, Mir.
_CARD_BRANDS: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (4, 4, 1, frozenset({13, 16, 19})),
    (51, 55, 2, frozenset({16})),
    (2221, 2720, 4, frozenset({16})),
    (34, 34, 2, frozenset({15})),
    (37, 37, 2, frozenset({15})),
    (6011, 6011, 4, frozenset({16, 17, 18, 19})),
    (644, 649, 3, frozenset({16, 17, 18, 19})),
    (65, 65, 2, frozenset({16, 17, 18, 19})),
    (300, 305, 3, frozenset({14, 15, 16, 17, 18, 19})),
    (36, 36, 2, frozenset({14, 15, 16, 17, 18, 19})),
    (38, 39, 2, frozenset({16, 17, 18, 19})),
    (3528, 3589, 4, frozenset({16, 17, 18, 19})),
    (62, 62, 2, frozenset({16, 17, 18, 19})),
    (5018, 5018, 4, frozenset(range(13, 20))),
    (5020, 5020, 4, frozenset(range(13, 20))),
    (5038, 5038, 4, frozenset(range(13, 20))),
    (5893, 5893, 4, frozenset(range(13, 20))),
    (6304, 6304, 4, frozenset(range(13, 20))),
    (6759, 6759, 4, frozenset(range(13, 20))),
    (6761, 6763, 4, frozenset(range(13, 20))),
    (2200, 2204, 4, frozenset({16, 17, 18, 19})),
)


# How printed card numbers are grouped: fours (the last group of 3 or 4), 4-6-4 (Diners
# Club), 4-6-5 (American Express), 4-3-3-3 (13-digit Visa).
_CARD_GROUPINGS = frozenset(
    {(4, 4, 4, 3), (4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 4), (4, 6, 5), (4, 3, 3, 3)}
)


def card_brand_matches(digits: str) -> bool:
    """True when `digits` starts with a card network's issuer prefix and has a length that
    network issues."""
    for low, high, size, lengths in _CARD_BRANDS:
        if len(digits) in lengths and low <= int(digits[:size]) <= high:
            return True
    return False


class PiiDetector:
    """Finds PII spans in a text: `find(text)` returns sorted, non-overlapping
    `(start, end, entity_type)` tuples (character offsets into the Python string).

    The rules per type. Numbers (phone, card, SSN) are also rejected where their context
    names them as something else: among the three words before, the nearest keyword is one
    of `NOT_PII_WORDS` ("order", "invoice", "ISBN", "serial", "seed", "id", ...).

    - EMAIL_ADDRESS: `local@domain.tld` with an alphabetic top-level domain of 2 to 24
      letters. Not: asset names (`icon@2x.png`: a file extension for a TLD, or an
      `<n>x` first label), SSH remotes (`git@host:path`), a user in a URL (`ftp://user@`).
    - PHONE_NUMBER: runs of digits with spaces, dots, dashes, parentheses and a leading
      '+', holding `PHONE_SHAPE`, confirmed by libphonenumber's `PhoneNumberMatcher`
      (`phone_region` for numbers without a country code; `phone_leniency`, default
      "valid": a valid number of its region). Not: dates (`2024-03-15`, `15.03.2024`,
      `20130101 09`), decimals (`83.33333333`), dotted quads, ISBNs (a hyphenated valid
      ISBN-10/13), numbers with two or more one-digit groups, numbers after a currency
      sign, numbers in a run of digits and separators longer than 64 characters (tables
      and dumps of numbers). A bare run of digits (no separator, no '+') counts only when
      the nearest keyword before it is a phone word (`PHONE_WORDS`: "call", "tel",
      "mobile"...), so timestamps and ids stay.
    - IP_ADDRESS: IPv4 dotted quads and IPv6 addresses valid for `ipaddress`. A dotted quad
      is a version, not an IP, when it is glued to a word (`v1.2.3.4`, `pkg-1.2.3.4`,
      `Chrome/1.2.3.4`, `==1.2.3.4`, `§4.2.3.1`), followed by a pre-release tag
      (`1.2.3.4-beta`), or right after a version or numbering word, or one word after one
      (`VERSION_WORDS`: "version 1.2.3.4", "release: 1.2.3.4", "Release ID 1.2.3.4",
      "section 1.2.3.4"). Any other valid quad is an IP: text that calls a bare `1.2.3.4`
      a version without saying so is not told apart. IPv6 needs two or more non-empty
      groups, one of three or more hex digits (Python slices `x[1::2]` and C++'s `a::b`
      are not addresses); clock times and MAC addresses are not valid IPv6. Loopback and
      unspecified addresses (127.0.0.1, 0.0.0.0, ::1) name no host and are not flagged.
    - CREDIT_CARD: 13 to 19 digits grouped as cards are printed (`_CARD_GROUPINGS`: fours,
      4-6-5, 4-6-4, 4-3-3-3) with one kind of separator (spaces or dashes) and not inside
      a longer row of such groups, or 13 to 16 digits bare; with a card network's issuer
      prefix and length, and a valid Luhn check digit.
    - IBAN_CODE: country code, check digits and account, bare or in groups of four, valid
      for python-stdnum's `iban` (country length and the ISO 7064 mod-97 checksum).
    - US_SSN: `AAA-GG-SSSS` valid for python-stdnum's `us.ssn` (no area 000, 666 or 9xx,
      no group 00, no serial 0000, not one of the numbers known to be invalid). Spaced and
      bare forms count only after an SSN word (`SSN_WORDS`: "SSN", "social security").
    - URL_CREDENTIALS: the `user:password` of a URL's `scheme://user:password@host` (the
      span is the user info only; the scheme and host stay).
    - SECRET: AWS access key ids (`AKIA`, `ASIA`, ... and 16 characters), GitHub tokens
      (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack tokens (`xoxb-`,
      `xoxp-`, ...), Stripe live keys (`sk_live_`, `rk_live_`), Google API keys (`AIza` and
      35 characters), PEM private key blocks (`-----BEGIN ... PRIVATE KEY-----` to its END
      line, or to the end of its base64 lines when truncated), and the value of an
      assignment to a secret-named key (`api_key=`, `"client_secret": "..."`,
      `Authorization: Bearer ...`, `AWS_SECRET_ACCESS_KEY=`...) when the value looks
      random (`looks_random`: placeholders and names do not) and is not called or indexed
      (code: `x_token = Embedding2D(...)`). Test keys (`sk_test_`), public keys and
      certificates are not secrets.

    Where spans of two types overlap, the type listed first in `PRIORITY` wins. Patterns
    are compiled once, when the detector is built (a stage builds it in `setup`).
    """

    def __init__(
        self,
        entities: tuple[str, ...] | list[str] = ENTITY_TYPES,
        phone_region: str = "US",
        phone_leniency: str = "valid",
    ):
        import phonenumbers
        from stdnum import iban, isbn
        from stdnum.us import ssn

        unknown = [e for e in entities if e not in ENTITY_TYPES]
        if unknown:
            raise ValueError(f"unknown PII entity types {unknown}; known: {list(ENTITY_TYPES)}")
        if phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"phone_region {phone_region!r} is not a region libphonenumber knows")
        if phone_leniency not in PHONE_LENIENCIES:
            raise ValueError(
                f"phone_leniency {phone_leniency!r}: expected one of {PHONE_LENIENCIES}"
            )
        self.entities = tuple(e for e in PRIORITY if e in entities)
        self.phone_region = phone_region
        self._phonenumbers = phonenumbers
        self._iban_valid, self._isbn_valid, self._ssn_valid = (
            iban.is_valid,
            isbn.is_valid,
            ssn.is_valid,
        )
        self._leniency = getattr(phonenumbers.Leniency, phone_leniency.upper())
        self._finders = {
            "SECRET": self._secrets,
            "URL_CREDENTIALS": self._url_credentials,
            "EMAIL_ADDRESS": self._emails,
            "IBAN_CODE": self._ibans,
            "CREDIT_CARD": self._cards,
            "US_SSN": self._ssns,
            "IP_ADDRESS": self._ips,
            "PHONE_NUMBER": self._phones,
        }
        self._compile()

    def _compile(self) -> None:
        self.email = re.compile(
            r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"
            r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))"
            r"(?![\w-]|\.[A-Za-z0-9])"
        )
        self.url_credentials = re.compile(
            r"(?i)\b[a-z][a-z0-9+.-]{1,15}://([^\s:/?#@\[\]\"'<>]*:[^\s/?#@\"'<>]+)@(?=[\w\[])"
        )
        self.iban = re.compile(
            r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){1,8}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
        )
        self.card = re.compile(r"(?<![\w.,+/-])\d(?:[ -]?\d){12,18}(?![\w]|[.,/-]\d)")
        self.ssn = re.compile(r"(?<![\w.,+/-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|[.,/-]\d)")
        self.ipv4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\w|-[A-Za-z])")
        self.ipv6 = re.compile(
            r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
            r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)"
        )
        self.phone = re.compile(r"\d(?:[\d().-]| (?=[\d(]))*")
        self.secret_prefix = re.compile(
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])"
            r"|(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])"
            r"|(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])"
            r"|(?<![A-Za-z0-9])xox[abposr]-(?=[A-Za-z-]*\d)[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])"
            r"|(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{16,247}(?![A-Za-z0-9_])"
            r"|(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"
        )
        self.secret_assignment = re.compile(
            r"(?i)(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|access[_-]?key|"
            r"private[_-]?key|authorization)[\w-]{0,20}[\"'`]?\s*(?:=>|:=|[:=])\s*"
            r"[\"'`]?(?:bearer\s+|token\s+)?([A-Za-z0-9+/_.~=-]{16,})"
        )
        self.pem_begin = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
        self.pem_end = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----")
        self.pem_body = re.compile(r"(?:\r?\n(?:[A-Za-z0-9+/=]{8,}|[\w-]+: [^\n]*))+")

    # ------------------------------------------------------------------ the whole text

    def gates(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """One row per text, one column per type of `self.entities`: False where the text
        cannot hold an entity of the type (see `GATES`), so `find` need not look."""
        out = np.zeros((len(texts), len(self.entities)), dtype=bool)
        for j, entity in enumerate(self.entities):
            hits = pc.match_substring_regex(texts, GATES[entity])
            out[:, j] = pc.fill_null(hits, False).to_numpy(zero_copy_only=False)
        return out

    def find(
        self, text: str, entities: tuple[str, ...] | None = None
    ) -> list[tuple[int, int, str]]:
        """Sorted, non-overlapping `(start, end, entity_type)` spans of `text`, looking for
        `entities` only when given (default: every type of the detector)."""
        found: list[tuple[int, int, str]] = []  # sorted by start, never overlapping
        for entity in self.entities if entities is None else entities:
            for start, end in self._finders[entity](text):
                i = bisect.bisect_left(found, (start,))
                if i and found[i - 1][1] > start or i < len(found) and found[i][0] < end:
                    continue  # overlaps a span of a type listed earlier in PRIORITY
                found.insert(i, (start, end, entity))
        return found

    # ------------------------------------------------------------------ one type each

    def _emails(self, text: str):
        if "@" not in text:
            return
        for m in self.email.finditer(text):
            domain, tld = m.group(1), m.group(2)
            local = text[m.start() : m.start(1) - 1]
            if ".." in local or local.endswith("."):
                continue
            if tld.lower() in FILE_EXTENSIONS or _SCALE_LABEL.match(domain):
                continue  # an asset name, icon@2x.png
            if m.start() >= 3 and text.startswith("://", m.start() - 3):
                continue  # the user of a URL, ftp://user@host
            if re.match(r":[\w~/]", text[m.end() : m.end() + 2]):
                continue  # an SSH remote, git@host:org/repo
            yield m.start(), m.end()

    def _url_credentials(self, text: str):
        if "://" not in text or "@" not in text:
            return
        for m in self.url_credentials.finditer(text):
            yield m.start(1), m.end(1)

    def _ibans(self, text: str):
        for m in self.iban.finditer(text):
            value = m.group(0)
            while True:
                if self._iban_valid(value):
                    yield m.start(), m.start() + len(value)
                    break
                if " " not in value:
                    break
                value = value.rsplit(" ", 1)[0]  # a following word or number was taken in

    def _cards(self, text: str):
        for m in self.card.finditer(text):
            value = m.group(0)
            separators = set(re.findall(r"[ -]", value))
            if len(separators) > 1:
                continue
            if separators:
                sep = separators.pop()
                if tuple(len(g) for g in value.split(sep)) not in _CARD_GROUPINGS:
                    continue
                before, after = text[max(0, m.start() - 2) : m.start()], text[m.end() :][:2]
                if re.fullmatch(rf"\d{re.escape(sep)}", before) or re.fullmatch(
                    rf"{re.escape(sep)}\d", after
                ):
                    continue  # a row of a table of numbers, not one card number
            digits = value.replace(" ", "").replace("-", "")
            if not separators and len(digits) > 16:
                continue  # long bare numbers are seeds and ids far more often than cards
            if not (card_brand_matches(digits) and luhn_valid(digits)):
                continue
            if context_says(text, m.start(), NOT_PII_WORDS, frozenset()) is False:
                continue
            yield m.start(), m.end()

    def _ssns(self, text: str):
        for m in self.ssn.finditer(text):
            digits = m.group(1) + m.group(3) + m.group(4)
            if not self._ssn_valid(digits):
                continue
            said = context_says(text, m.start(), NOT_PII_WORDS, SSN_WORDS)
            if said is False or (m.group(2) != "-" and said is not True):
                continue
            yield m.start(), m.end()

    def _ips(self, text: str):
        # IPv6 first: the IPv4 tail of ::ffff:10.0.0.1 belongs to the IPv6 address
        if ":" in text:
            for m in self.ipv6.finditer(text):
                value = m.group(0)
                if value.endswith(":") and not value.endswith("::"):
                    value = value[:-1]
                groups = [g for g in re.split(r":+", value) if g]
                if len(groups) < 2 or max(len(g) for g in groups) < 3:
                    continue  # slices (x[1::2]) and C++ scopes (a::b), not addresses
                try:
                    address = ipaddress.IPv6Address(value)
                except ValueError:
                    continue
                if address.is_loopback or address.is_unspecified:
                    continue
                yield m.start(), m.start() + len(value)
        if "." in text:
            for m in self.ipv4.finditer(text):
                try:
                    address = ipaddress.IPv4Address(m.group(0))
                except ValueError:
                    continue
                if address.is_loopback or address.is_unspecified:
                    continue
                before = text[max(0, m.start() - 40) : m.start()]
                if _VERSION_PREFIX.search(before):
                    continue
                if _VERSION_WORD_BEFORE.search(before):
                    continue
                yield m.start(), m.end()

    def _phones(self, text: str):
        pn = self._phonenumbers
        for m in self.phone.finditer(text):
            start, value = m.start(), m.group(0)
            if m.end() < len(text) and (text[m.end()].isalnum() or text[m.end()] == "_"):
                # glued to a word ("52277180-12b8" of a UUID): the last group is not ours
                cut = max(value.rfind(c) for c in " ().-")
                value = value[:cut] if cut > 0 else ""
            value = value.rstrip(" (.-")
            if value.count(")") > value.count("("):
                value = value.rstrip(")")
            # The run starts at a digit (a regex that starts with a digit scans fast):
            # take in the opening parenthesis of an area code and a '+' before the run,
            # then skip leading groups glued to something that is not a phone number
            # ("abc123", "$5", "#12").
            if start and text[start - 1] == "(" and _AREA_CODE_CLOSE.match(value):
                start, value = start - 1, "(" + value
            if start >= 2 and text[start - 2 : start] == "+ ":
                start, value = start - 2, "+ " + value
            elif start and text[start - 1] == "+":
                start, value = start - 1, "+" + value
            while start and text[start - 1] in _NOT_BEFORE_PHONE:
                cut = value.find(" ")
                if cut < 0:
                    break
                start, value = start + cut + 1, value[cut + 1 :]
            if start and text[start - 1] in _NOT_BEFORE_PHONE:
                continue
            if len(value) > 64:
                continue  # a table or a dump of numbers, not a phone number in prose
            if sum(c.isdigit() for c in value) < 7 or not _PHONE_SHAPE.search(value):
                continue
            # Shapes that hold no phone number anywhere in them, rejected before the
            # (comparatively slow) matcher runs: a date, a dotted quad, a bare run of
            # digits without a phone word before it.
            if _DATE_SHAPE.fullmatch(value) or _DOTTED_QUAD.fullmatch(value):
                continue
            if value.isdigit() and not context_says(text, start, NOT_PII_WORDS, PHONE_WORDS):
                continue
            for match in pn.PhoneNumberMatcher(value, self.phone_region, leniency=self._leniency):
                span_start, span_end = start + match.start, start + match.end
                if text[span_start] == "(" and ")" not in text[span_start:span_end]:
                    span_start += 1  # "(212-555-0143)": the parentheses are the prose's
                if self._phone_rejected(text, span_start, text[span_start:span_end]):
                    continue
                yield span_start, span_end

    def _phone_rejected(self, text: str, start: int, raw: str) -> bool:
        digits = "".join(c for c in raw if c.isdigit())
        groups = [g for g in _PHONE_SEPARATORS.split(raw) if g]
        if _DATE_SHAPE.fullmatch(raw.strip("()")) or _DATE_INSIDE.search(raw):
            return True
        if raw.count(".") == 1 or ". " in raw:
            return True  # a decimal number (83.33333333), or numbers across a sentence end
        if "+" not in raw and any(_COMPACT_DATE.fullmatch(g) for g in groups):
            return True  # 20130101 09:00
        if _DOTTED_QUAD.fullmatch(raw) or not _PHONE_SHAPE.search(raw):
            return True
        if sum(len(g) == 1 for g in groups) >= 2:
            return True
        if "+" not in raw and len(groups) >= 4 and len(digits) in (10, 13):
            if self._isbn_valid(raw):
                return True
        if text[max(0, start - 2) : start].strip()[-1:] in ("$", "€", "£", "¥", "#"):
            return True
        if re.match(r"\d[.,]$", text[max(0, start - 2) : start]) or re.match(
            r"[.,]\d", text[start + len(raw) : start + len(raw) + 2]
        ):
            return True  # the digits of a decimal, 7.95506077 16.53946426
        said = context_says(text, start, NOT_PII_WORDS, PHONE_WORDS)
        if said is False:
            return True
        bare = len(groups) == 1 and not raw.startswith("+")
        return bare and said is not True

    def _secrets(self, text: str):
        if any(prefix in text for prefix in _SECRET_PREFIXES):
            for m in self.secret_prefix.finditer(text):
                yield m.start(), m.end()
        if "-----BEGIN" in text:
            for m in self.pem_begin.finditer(text):
                end = self.pem_end.search(text, m.end())
                if end is not None:
                    yield m.start(), end.end()
                    continue
                body = self.pem_body.match(text, m.end())
                yield m.start(), body.end() if body else m.end()
        if "=" not in text and ":" not in text:
            return
        lower = text.lower()
        if not any(word in lower for word in _SECRET_KEY_WORDS):
            return
        for m in self.secret_assignment.finditer(text):
            value = m.group(1).rstrip(".,")
            if text[m.start(1) + len(value) : m.start(1) + len(value) + 1] in ("(", "["):
                continue  # code: a call or an index, tokenizer = Gpt2Tokenizer(...)
            if looks_random(value):
                yield m.start(1), m.start(1) + len(value)
