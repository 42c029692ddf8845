"""`PiiModifier` and its detectors: recall and precision per type on a generated corpus
with planted identifiers and look-alikes, the three actions, the per-type policy, counts,
and the edge cases (null, empty, unchanged text, bad arguments)."""

from __future__ import annotations

import random
import string
import uuid

import phonenumbers
import pyarrow as pa
import pytest
from stdnum import iban as stdnum_iban
from stdnum import isbn as stdnum_isbn
from stdnum.us import ssn as stdnum_ssn

from flows.runtime.engine import StageMetrics, run_stage
from stages.base import FilterChain
from stages.text.pii import PiiModifier
from stages.text.pii_patterns import ENTITY_TYPES, GATES, PiiDetector, luhn_valid

# ------------------------------------------------------------------ a planted corpus

WORDS = (
    "the of and to in a is that for it as was with be by on not this are or from at which "
    "but have an they you were there been one all we their has would when if so no will "
    "more can about up out what some time meeting report team project week said plan data"
).split()
ALNUM = string.ascii_letters + string.digits


def _filler(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    extra = rng.choice(
        ["", f" in {rng.randint(1990, 2030)}", f" about {rng.randint(2, 999)} people",
         f" up {rng.randint(1, 99)}.{rng.randint(0, 9)} percent", f" page {rng.randint(1, 400)}"]
    )  # fmt: skip
    return " ".join(words).capitalize() + extra + "."


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("no Luhn digit")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _us_number(rng: random.Random) -> str:
    while True:
        area = rng.choice(["212", "415", "312", "617", "206", "303", "512", "404", "713", "814"])
        number = area + str(rng.randint(2, 9)) + _digits(rng, 6)
        if phonenumbers.is_valid_number(phonenumbers.parse("+1" + number)):
            return number


def _phone(rng: random.Random) -> tuple[str, bool]:
    """A valid phone number in one of many formats, and whether it is a bare digit run."""
    kind = rng.randrange(3)
    if kind < 2:
        n = _us_number(rng)
        a, e, s = n[:3], n[3:6], n[6:]
        formats = [f"({a}) {e}-{s}", f"{a}-{e}-{s}", f"{a}.{e}.{s}", f"{a} {e} {s}",
                   f"+1 {a} {e} {s}", f"+1-{a}-{e}-{s}", f"+1 ({a}) {e}-{s}", f"1-{a}-{e}-{s}",
                   f"+1{n}", n]  # fmt: skip
        value = rng.choice(formats)
        return value, value == n
    while True:
        region = rng.choice(["GB", "DE", "FR", "IN", "JP", "AU", "BR", "ES", "IT", "NL", "MX"])
        kind = rng.choice(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
        example = phonenumbers.example_number_for_type(region, kind)
        national = str(example.national_number)
        national = national[:-4] + _digits(rng, 4)
        number = phonenumbers.parse(f"+{example.country_code}{national}")
        if phonenumbers.is_valid_number(number):
            style = rng.choice(
                [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164]
            )
            return phonenumbers.format_number(number, style), False


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, rng.randint(1, 223)])
    if first == 127:
        first = 128
    return ".".join(str(x) for x in [first] + [rng.randint(0, 255) for _ in range(3)])


def _ipv6(rng: random.Random) -> str:
    import ipaddress

    groups = [rng.randint(0, 0xFFFF) for _ in range(8)]
    if rng.random() < 0.6:  # a run of zeros, as most real addresses have, so "::" appears
        start = rng.randint(2, 5)
        for i in range(start, start + rng.randint(1, 3)):
            groups[i] = 0
    groups[0] = rng.choice([0x2001, 0x2600, 0xFE80, 0x2A00, groups[0] | 0x2000])
    address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
    return address.exploded if rng.random() < 0.2 else address.compressed


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("4", 13), (str(rng.randint(51, 55)), 16), (str(rng.randint(2221, 2720)), 16),
         ("34", 15), ("37", 15), ("6011", 16), ("65", 16), (str(rng.randint(3528, 3589)), 16),
         ("36", 14), ("62", 16)]
    )  # fmt: skip
    digits = _luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))
    if length in (14, 15):  # Diners Club 4-6-4, American Express 4-6-5
        groups = [digits[:4], digits[4:10], digits[10:]]
    elif length == 13:
        groups = [digits[:4], digits[4:7], digits[7:10], digits[10:]]
    else:
        groups = [digits[i : i + 4] for i in range(0, length, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


IBAN_LAYOUTS = {  # country: BBAN as (kind, count) runs; n digits, a upper letters, c either
    "DE": [("n", 18)], "GB": [("a", 4), ("n", 14)], "FR": [("n", 10), ("c", 11), ("n", 2)],
    "ES": [("n", 20)], "NL": [("a", 4), ("n", 10)], "IT": [("a", 1), ("n", 10), ("c", 12)],
    "CH": [("n", 5), ("c", 12)], "BE": [("n", 12)], "AT": [("n", 16)], "PL": [("n", 24)],
}  # fmt: skip


def _iban(rng: random.Random) -> str:
    while True:
        country = rng.choice(sorted(IBAN_LAYOUTS))
        alphabet = {"n": string.digits, "a": string.ascii_uppercase}
        bban = "".join(
            rng.choice(alphabet.get(kind, string.digits + string.ascii_uppercase))
            for kind, count in IBAN_LAYOUTS[country]
            for _ in range(count)
        )
        check = stdnum_iban.calc_check_digits(country + "00" + bban)
        value = f"{country}{check}{bban}"
        if stdnum_iban.is_valid(value):
            return stdnum_iban.format(value) if rng.random() < 0.5 else value


def _ssn(rng: random.Random) -> tuple[str, str]:
    """A valid SSN and its separator ('-', ' ' or '')."""
    while True:
        area, group, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        digits = f"{area:03d}{group:02d}{serial:04d}"
        if stdnum_ssn.is_valid(digits):
            sep = rng.choice(["-", "-", " ", ""])
            return sep.join([digits[:3], digits[3:5], digits[5:]]), sep


def _secret(rng: random.Random) -> tuple[str, str, str]:
    """(text before, the secret, text after): the span is the middle part."""

    def rand(n, alphabet=ALNUM):  # random characters of `alphabet`, a letter and a digit
        value = "".join(rng.choice(alphabet) for _ in range(n - 2))
        letters = [c for c in alphabet if c.isalpha()]
        return value + rng.choice(letters) + rng.choice(string.digits)

    kind = rng.randrange(11)
    if kind == 0:
        key = "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
        return rng.choice(["aws_access_key_id = ", "key id ", "AWS key: "]), key, ""
    if kind == 1:
        return "export GITHUB_TOKEN=", "ghp_" + rand(36), ""
    if kind == 2:
        return "token ", "github_pat_" + rand(22) + "_" + rand(59), " expires soon"
    if kind == 3:
        value = f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-{rand(24)}"
        return "slack bot token is ", value, "."
    if kind == 4:
        return "Stripe live key ", "sk_live_" + rand(24), " (rotate!)"
    if kind == 5:
        return "maps key=", "AIza" + rand(35, ALNUM + "_-"), ""
    if kind == 6:
        label = rng.choice(["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""])
        lines = [rand(64, ALNUM + "+/") for _ in range(rng.randint(3, 8))] + [rand(20) + "=="]
        block = (
            f"-----BEGIN {label}PRIVATE KEY-----\n" + "\n".join(lines)
            + f"\n-----END {label}PRIVATE KEY-----"
        )  # fmt: skip
        return "key file:\n", block, "\n"
    if kind == 7:
        return 'api_key = "', rand(rng.randint(24, 40)), '"'
    if kind == 8:
        return '{"client_secret": "', rand(40, "0123456789abcdef"), '"}'
    if kind == 9:
        return "Authorization: Bearer ", rand(36) + "." + rand(48) + "." + rand(43), ""
    return "SECRET_KEY=", rand(rng.randint(32, 50), ALNUM + "+/"), ""


def _url_credentials(rng: random.Random) -> list[tuple[str, str | None]]:
    scheme = rng.choice(["https", "postgres", "mysql", "redis", "ftp", "mongodb+srv", "amqp"])
    user = rng.choice(["admin", "deploy", "j.smith", "svc_backup", "", "root"])
    password = "".join(rng.choice(ALNUM + "!*_.~-") for _ in range(rng.randint(6, 20)))
    host = rng.choice(["db.example.com", "10.0.3.7", "cache.internal", "files.example.org"])
    tail = rng.choice(["", ":5432/app", "/pub/file.tgz", ":6379/0", "/vhost"])
    before = rng.choice(["DATABASE_URL=", "connect with ", "git clone ", "broker "])
    host_type = "IP_ADDRESS" if host[0].isdigit() else None  # an IP host is an IP address
    return [
        (f"{before}{scheme}://", None), (f"{user}:{password}", "URL_CREDENTIALS"), ("@", None),
        (host, host_type), (tail, None),
    ]  # fmt: skip


EMAIL_DOMAINS = ["example.com", "mail.co.uk", "uni-berlin.de", "corp.io", "dept.example.org",
                 "gmail.com", "xn--bcher-kva.ch"]  # fmt: skip


def _email(rng: random.Random) -> str:
    first, last = rng.choice(["anna", "li", "omar", "jo"]), rng.choice(["smith", "ng", "perez"])
    local = rng.choice(
        [f"{first}.{last}", f"{first}_{last}{rng.randint(1, 99)}", f"{first[0]}{last}+news",
         f"{first}-{last}", f"{last}{rng.randint(1970, 2005)}", first.upper()]
    )  # fmt: skip
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


PHONE_CONTEXTS = ["Call me at {}.", "Phone: {}", "Tel. {}", "Mobile: {}", "fax {} (office)"]
PHONE_FORMATTED_CONTEXTS = PHONE_CONTEXTS + ["Reach the front desk on {} today.", "({})"]


def _plant(rng: random.Random, entity: str) -> list[tuple[str, str | None]]:
    """The pieces of a planted entity in its context: (text, its type or None)."""
    if entity == "URL_CREDENTIALS":
        return _url_credentials(rng)
    before, value, after = _plant_one(rng, entity)
    return [(before, None), (value, entity), (after, None)]


def _plant_one(rng: random.Random, entity: str) -> tuple[str, str, str]:
    """(text before, the PII value, text after)."""
    if entity == "EMAIL_ADDRESS":
        before, after = rng.choice(
            [("Contact ", " for details."), ("Email: ", ""), ("<", ">"), ("mailto:", ""),
             ("(", ")"), ("write to ", ".")]
        )  # fmt: skip
        return before, _email(rng), after
    if entity == "PHONE_NUMBER":
        value, bare = _phone(rng)
        template = rng.choice(PHONE_CONTEXTS if bare else PHONE_FORMATTED_CONTEXTS)
        before, after = template.split("{}")
        return before, value, after
    if entity == "IP_ADDRESS":
        value = _ipv4(rng) if rng.random() < 0.6 else _ipv6(rng)
        before, after = rng.choice(
            [("The server at ", " is down."), ("Connection from ", " refused"), ("ping ", ""),
             ("ssh deploy@", ""), ("inet ", " netmask"), ("host ", " (primary)")]
        )  # fmt: skip
        if ":" not in value and rng.random() < 0.2:
            before, after = "http://", ":8080/status"
        return before, value, after
    if entity == "CREDIT_CARD":
        before, after = rng.choice(
            [("Card number: ", ""), ("charged to ", " yesterday"), ("my card ", " was declined"),
             ("Visa ", " exp 04/27")]
        )  # fmt: skip
        return before, _card(rng), after
    if entity == "IBAN_CODE":
        before, after = rng.choice(
            [("IBAN: ", ""), ("Please transfer to ", "."), ("account ", " (BIC DEUTDEFF)")]
        )
        return before, _iban(rng), after
    if entity == "US_SSN":
        value, sep = _ssn(rng)
        if sep == "-":
            before, after = rng.choice([("SSN ", ""), ("employee record ", " on file"), ("", "")])
        else:
            before, after = rng.choice([("SSN ", ""), ("social security number: ", ".")])
        return before, value, after
    return _secret(rng)


PUBLIC_KEY = (
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----"
)


def _lookalike(rng: random.Random) -> str:
    """Text that holds no PII but looks like some: versions, ISBNs, timestamps, dates,
    UUIDs, hashes, prices, order numbers, asset names, test keys, placeholders."""
    a, b, c, d = (rng.randint(0, 255) for _ in range(4))
    isbn13 = stdnum_isbn.to_isbn13(_isbn10(rng))
    options = [
        f"v{a}.{b}.{c}", f"version {a}.{b}.{c}.{d}", f"release {a}.{b}.{c}.{d} is out",
        f"numpy=={a}.{b}.{c}", f"build {a}.{b}.{c}.{d}", f"pkg-{a}.{b}.{c}.{d}.tar.gz",
        f"{a}.{b}.{c}.{d}-beta", f"Chrome/{a}.{b}.{c}.{d}", f"v{a}.{b}.{c}.{d}",
        f"ISBN {_hyphen_isbn10(_isbn10(rng))}", f"ISBN {_hyphen_isbn13(isbn13)}",
        f"see {_hyphen_isbn10(_isbn10(rng))}", f"({_hyphen_isbn13(isbn13)})",
        f"posted {rng.randint(1_500_000_000, 1_800_000_000)}",
        f"ts={rng.randint(1_500_000_000_000, 1_800_000_000_000)}",
        f"at 2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T1{rng.randint(0, 9)}:30:45Z",
        f"on {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1990, 2030)}",
        f"on {rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(1990, 2030)}",
        f"id {uuid.UUID(int=rng.getrandbits(128), version=4)}",
        f"commit {rng.getrandbits(160):040x}", f"fixed in {rng.getrandbits(28):07x}",
        f"costs ${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
        f"USD {rng.randint(10, 99)},{rng.randint(100, 999)},{rng.randint(100, 999)}.00",
        f"Order #{_digits(rng, 10)}", f"order no. {_us_format(_us_number(rng), rng)}",
        f"Invoice {_digits(rng, 10)}", f"tracking number {_digits(rng, 16)}",
        f"Ref: {_us_format(_us_number(rng), rng)}", f"order {_card(rng)} shipped",
        rng.choice(
            ["icon@2x.png", "git@github.com:org/repo.git", "npm i lodash@4.17.21",
             "https://example.com:8080/path", "sk_test_" + "".join(rng.sample(ALNUM, 24)),
             "api_key = os.environ['API_KEY']", "secret=changeme", "token: <your-token-here>",
             PUBLIC_KEY,
             "MAC 00:1A:2B:3C:4D:5E", "at 12:30:45", "std::vector and a::b", "color #1a2b3c",
             "40.7128, -74.0060", "zip 90210-1234", "population 8,336,817",
             "ftp://anonymous@ftp.example.org/pub", "password=password123password123",
             "SECRET_KEY=your_secret_key_here_123", "token=process.env.API_TOKEN_V2",
             f"see section {a % 9 + 1}.{b % 9 + 1}.{c % 9 + 1}.{d % 9 + 1}"]
        ),
    ]  # fmt: skip
    return rng.choice(options)


def _us_format(number: str, rng: random.Random) -> str:
    a, e, s = number[:3], number[3:6], number[6:]
    return rng.choice([f"{a}-{e}-{s}", f"{a}.{e}.{s}", f"({a}) {e}-{s}"])


def _isbn10(rng: random.Random) -> str:
    while True:
        body = _digits(rng, 9)
        check = -sum((10 - i) * int(d) for i, d in enumerate(body)) % 11
        if check < 10:  # an 'X' check digit is not a digit run
            assert stdnum_isbn.is_valid(body + str(check))
            return body + str(check)


def _hyphen_isbn10(value: str) -> str:
    return f"{value[0]}-{value[1:4]}-{value[4:9]}-{value[9]}"


def _hyphen_isbn13(value: str) -> str:
    return f"{value[:3]}-{value[3]}-{value[4:7]}-{value[7:12]}-{value[12]}"


def planted_corpus(n_docs: int = 300, seed: int = 13) -> list[tuple[str, set]]:
    """`n_docs` documents and, for each, the set of `(start, end, type)` spans planted in
    it: two to five identifiers (the types taking turns, so each is planted about as
    often) and two to four look-alikes, in varied formats and contexts, between filler
    sentences."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        pieces: list[tuple[str, str | None]] = []  # (text, entity type of the text or None)
        entities = [ENTITY_TYPES[(i + k) % len(ENTITY_TYPES)] for k in range(rng.randint(2, 5))]
        items = [("pii", e) for e in entities] + [("like", None)] * rng.randint(2, 4)
        rng.shuffle(items)
        for kind, entity in items:
            pieces.append((_filler(rng) + " ", None))
            if kind == "pii":
                pieces += _plant(rng, entity) + [(" ", None)]
            else:
                pieces.append((_lookalike(rng) + ". ", None))
        pieces.append((_filler(rng), None))
        text, spans, offset = "", set(), 0
        for piece, entity in pieces:
            if entity is not None:
                spans.add((offset, offset + len(piece), entity))
            text += piece
            offset += len(piece)
        docs.append((text, spans))
    return docs


def _scores(docs, found) -> dict[str, tuple[int, int, int]]:
    """Per type: (true positives, false positives, false negatives)."""
    out = {e: [0, 0, 0] for e in ENTITY_TYPES}
    for (_, planted), detected in zip(docs, found, strict=True):
        detected = set(detected)
        for _, _, entity in detected & planted:
            out[entity][0] += 1
        for _, _, entity in detected - planted:
            out[entity][1] += 1
        for _, _, entity in planted - detected:
            out[entity][2] += 1
    return {e: tuple(v) for e, v in out.items()}


@pytest.fixture(scope="module")
def corpus():
    return planted_corpus()


def test_recall_and_precision_per_type_on_the_planted_corpus(corpus):
    detector = PiiDetector()
    found = [detector.find(text) for text, _ in corpus]
    scores = _scores(corpus, found)
    print(f"\n{'type':<16} {'planted':>7} {'found':>6} {'recall':>7} {'precision':>9}")
    misses = {}
    for entity, (tp, fp, fn) in scores.items():
        recall, precision = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
        print(f"{entity:<16} {tp + fn:>7} {tp + fp:>6} {recall:>7.3f} {precision:>9.3f}")
        if recall < 0.99 or precision < 0.98 or tp + fn < 100:
            misses[entity] = (tp, fp, fn)
    for (text, planted), detected in zip(corpus, found, strict=True):
        for s, e, t in sorted(set(detected) ^ planted):  # name each error, to read a failure
            kind = "missed" if (s, e, t) in planted else "false"
            print(kind, t, repr(text[max(0, s - 30) : e + 10]), repr(text[s:e]))
    assert not misses, misses


def test_gates_never_hide_an_entity(corpus):
    """The stage looks only where the column-wide RE2 gates say a type may be: on the
    corpus that finds exactly what the detector finds looking everywhere."""
    detector = PiiDetector()
    texts = [text for text, _ in corpus]
    gates = detector.gates(pa.array(texts))
    for i, text in enumerate(texts):
        for _, _, entity in detector.find(text):
            assert gates[i, detector.entities.index(entity)], (entity, text)
    stage = PiiModifier()
    out = stage.process(pa.table({"text": texts}))
    expected = [_replace(text, detector.find(text)) for text in texts]
    assert out.column("text").to_pylist() == expected


def _replace(text: str, spans) -> str:
    for start, end, entity in reversed(spans):
        text = text[:start] + f"<{entity}>" + text[end:]
    return text


def test_every_gate_is_a_pattern_arrow_accepts():
    detector = PiiDetector()
    assert set(GATES) == set(ENTITY_TYPES)
    assert detector.gates(pa.array(["", None, "x"])).shape == (3, len(ENTITY_TYPES))


# ------------------------------------------------------------------ rules, one by one


@pytest.mark.parametrize(
    "text",
    ["v1.2.3.4", "version 1.2.3.4", "Version: 10.0.0.1", "release 2.0.0.1", "pkg-1.2.3.4.tar.gz",
     "numpy==1.2.3.4", "Chrome/120.0.0.1", "1.2.3.4-beta", "see section 1.2.3.4",
     "ISBN 2-266-11156-6", "2-266-11156-6", "ISBN 978-3-16-148410-0", "posted 1712345678",
     "2024-03-15 12:30:45", "15.03.2024", "Order #2125551234", "order no. 212-555-0199",
     "icon@2x.png", "git@github.com:org/repo.git", "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
     "3f786850e387550fdab836ed7e6dc881de23001b", "123e4567-e89b-12d3-a456-426614174000",
     "$1,299.99", "std::vector a::b ::1", "12:30:45 00:1A:2B:3C:4D:5E", "secret=changeme",
     "page 41. 48.35.51.40-beta", "x[1::2] and y[3::4]", 'pd.Timestamp("20130101 09:00:04")',
     "[83.33333333, 100.]", "row 1234 4111 1111 1111 1111 5678", "4111 111 1111 1111",
     "seed = 3562050283508273023", "self.embed_tokens = Inkling2NormedEmbedding(config)",
     "127.0.0.1 and 0.0.0.0", "per RFC 5891 §4.2.3.1", "Release ID 13.0.0.0",
     "id 52277180-12b8-4596-ae4f-0c1d2e3f4a5b", "SECRET_KEY=your_secret_key_here_123",
     PUBLIC_KEY, "078-05-1120", "666-12-3456", "SSN 000-12-3456", "DE89 3704 0044 0532 0130 01"]
)  # fmt: skip
def test_look_alikes_are_not_pii(text):
    assert PiiDetector().find(text) == []


@pytest.mark.parametrize(
    "text, value, entity",
    [("Mail john.doe+news@example.co.uk now.", "john.doe+news@example.co.uk", "EMAIL_ADDRESS"),
     ("ping 10.41.21.72.", "10.41.21.72", "IP_ADDRESS"),
     ("mapped ::ffff:10.0.0.1 here", "::ffff:10.0.0.1", "IP_ADDRESS"),
     ("call 2312322334", "2312322334", "PHONE_NUMBER"),
     ("You can call me at (814) 360 8593", "(814) 360 8593", "PHONE_NUMBER"),
     ("Paris +33 1 42 68 53 00", "+33 1 42 68 53 00", "PHONE_NUMBER"),
     ("card 4929-3813-3266-4295", "4929-3813-3266-4295", "CREDIT_CARD"),
     ("IBAN GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
     ("My SSN is 284 89 3485.", "284 89 3485", "US_SSN"),
     ("postgres://app:pw-1234@db:5432/x", "app:pw-1234", "URL_CREDENTIALS"),
     ("key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "SECRET"),
     ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n",
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7",
      "SECRET")]
)  # fmt: skip
def test_each_type_is_found_with_its_exact_span(text, value, entity):
    start = text.index(value)
    assert PiiDetector().find(text) == [(start, start + len(value), entity)]


def test_a_password_in_a_url_is_a_credential_not_an_email():
    text = "https://admin:s3cr3t@mail.example.com/inbox"
    assert PiiDetector().find(text) == [(8, 20, "URL_CREDENTIALS")]


def test_an_ssn_needs_dashes_or_a_ssn_word_before_it():
    detector = PiiDetector()
    assert detector.find("ref code 284 89 3485") == []
    assert detector.find("employee 284893485") == []
    assert [t for _, _, t in detector.find("SSN: 284893485")] == ["US_SSN"]


def test_a_bare_digit_run_is_a_phone_number_only_after_a_phone_word():
    detector = PiiDetector()
    assert detector.find("uploaded 2125551234 bytes") == []
    assert [t for _, _, t in detector.find("tel 2125551234")] == ["PHONE_NUMBER"]


def test_the_phone_region_decides_numbers_without_a_country_code():
    text = "Ring 020 7946 0958 today"
    assert PiiDetector(phone_region="US").find(text) == []
    assert PiiDetector(phone_region="GB").find(text) == [(5, 18, "PHONE_NUMBER")]


# ------------------------------------------------------------------ the stage


def _table(*texts) -> pa.Table:
    return pa.table({"id": [str(i) for i in range(len(texts))], "text": list(texts)})


DOC = "Mail a.b@example.com or call (814) 360-8593; key AKIAIOSFODNN7EXAMPLE."


def test_replace_puts_type_tags():
    out = PiiModifier().process(_table(DOC))
    assert out.column("text").to_pylist() == [
        "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>; key <SECRET>."
    ]


def test_redact_removes_the_characters_of_each_entity():
    out = PiiModifier(anonymize_action="redact").process(_table(DOC))
    assert out.column("text").to_pylist() == ["Mail  or call ; key ."]


def test_drop_removes_documents_with_pii_and_the_engine_counts_them():
    stage = PiiModifier(anonymize_action="drop")
    kept, [record] = run_stage(stage, _table(DOC, "No personal data here.", None))
    assert kept.column("id").to_pylist() == ["1", "2"]
    assert record["rows_in"] == 3 and record["rows_out"] == 2
    assert record["counts"] == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "SECRET": 1}
    [sample] = record["removed_sample"]
    assert "a.b@example.com" not in sample["text"] and "<EMAIL_ADDRESS>" in sample["text"]
    assert sample["reason"] == "PII: EMAIL_ADDRESS, PHONE_NUMBER, SECRET"


def test_policy_overrides_the_action_per_type():
    stage = PiiModifier(policy={"EMAIL_ADDRESS": "redact", "PHONE_NUMBER": "replace"})
    docs = _table(DOC.replace(" key AKIAIOSFODNN7EXAMPLE", ""), "a@b.co and 10.0.0.1")
    kept, removed, scores = stage.apply(docs)
    assert kept.column("text").to_pylist() == [
        "Mail  or call <PHONE_NUMBER>;.",
        " and <IP_ADDRESS>",
    ]
    assert removed.num_rows == 0 and scores.tolist() == [2.0, 2.0]
    secret_drops = PiiModifier(policy={"SECRET": "drop"})
    kept, removed, _ = secret_drops.apply(_table(DOC, "a@b.co"))
    assert kept.column("text").to_pylist() == ["<EMAIL_ADDRESS>"]
    assert removed.column("text").to_pylist() == [DOC]  # removed rows as they came in


def test_supported_entities_limits_what_is_looked_for():
    out = PiiModifier(supported_entities=["SECRET"]).process(_table(DOC))
    assert out.column("text").to_pylist() == [DOC.replace("AKIAIOSFODNN7EXAMPLE", "<SECRET>")]


def test_take_counts_returns_counts_since_the_last_call_then_resets():
    stage = PiiModifier()
    stage.process(_table(DOC, "x@y.org, z@y.org"))
    assert stage.take_counts() == {"EMAIL_ADDRESS": 3, "PHONE_NUMBER": 1, "SECRET": 1}
    assert stage.take_counts() == {}
    stage.process(_table("ping 10.0.0.1"))
    assert stage.take_counts() == {"IP_ADDRESS": 1}


def test_counts_are_summed_over_shards_in_the_report():
    stage, metrics = PiiModifier(), StageMetrics("PiiModifier")
    for shard in (_table(DOC), _table("a@b.co", "none"), _table("ping 10.0.0.1")):
        metrics.add(run_stage(stage, shard)[1][0])
    assert metrics.details["counts"] == {
        "EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1, "SECRET": 1, "IP_ADDRESS": 1
    }  # fmt: skip


def test_null_and_empty_texts_are_kept_as_they_are():
    table = pa.table({"text": pa.array([None, "", "a@b.co"], pa.large_string())})
    out = PiiModifier(anonymize_action="drop", keep_score=True).process(table)
    assert out.column("text").to_pylist() == [None, ""]
    assert out.column("text").type == pa.large_string()
    assert out.column("score_PiiModifier").to_pylist() == [0.0, 0.0]


def test_a_document_without_pii_comes_out_byte_identical(corpus):
    clean = [
        "Plain prose, version 1.2.3.4, on 2024-03-15 at 12:30:45 for $1,299.99.",
        "Order #2125551234 shipped; ISBN 978-3-16-148410-0; commit 3f786850e387550f.",
        "Ünïcödé text — with “quotes” and emoji 🙂, nothing personal.",
    ]
    table = _table(*clean, corpus[0][0])
    out = PiiModifier().process(table)
    for i, text in enumerate(clean):
        assert out.column("text")[i].as_py().encode() == text.encode()
    assert out.column("text")[3].as_py() != corpus[0][0]
    untouched = PiiModifier().process(_table(*clean))
    assert untouched.column("text").chunks == _table(*clean).column("text").chunks


def test_score_only_keeps_every_row_unchanged_with_its_entity_count():
    out = PiiModifier(anonymize_action="drop", score_only=True).process(_table(DOC, "none"))
    assert out.column("text").to_pylist() == [DOC, "none"]
    assert out.column("score_PiiModifier").to_pylist() == [3.0, 0.0]


def test_inside_a_filter_chain_only_drop_policies_run():
    chain = FilterChain([PiiModifier(anonymize_action="drop")])
    assert chain.process(_table(DOC, "none")).column("text").to_pylist() == ["none"]
    with pytest.raises(TypeError, match="run it as a stage of its own"):
        FilterChain([PiiModifier()]).process(_table(DOC))


def test_the_stage_pickles_without_its_compiled_detector():
    import pickle

    stage = PiiModifier()
    stage.process(_table(DOC))
    copy = pickle.loads(pickle.dumps(stage))
    assert copy._detector is None and copy.take_counts() == {}
    assert copy.process(_table(DOC)).column("text").to_pylist()[0].startswith("Mail <EMAIL")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"supported_entities": ["PERSON"]}, "unknown types \\['PERSON'\\]"),
     ({"anonymize_action": "hash"}, "anonymize_action 'hash'"),
     ({"policy": {"EMAIL": "drop"}}, "policy names 'EMAIL'"),
     ({"policy": {"SECRET": "mask"}}, "policy\\['SECRET'\\] is 'mask'"),
     ({"supported_entities": ["SECRET"], "policy": {"US_SSN": "drop"}}, "policy names 'US_SSN'"),
     ({"phone_region": "XX"}, "phone_region 'XX'"),
     ({"phone_leniency": "loose"}, "phone_leniency 'loose'")]
)  # fmt: skip
def test_bad_arguments_are_named_in_the_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PiiModifier(**kwargs)


def test_a_missing_or_non_string_text_column_is_named():
    with pytest.raises(KeyError, match="no column 'body'"):
        PiiModifier(text_field="body").process(_table("a"))
    with pytest.raises(TypeError, match="'text' is int64"):
        PiiModifier().process(pa.table({"text": [1, 2]}))


def test_a_document_the_detectors_fail_on_is_dropped_not_passed_on(monkeypatch):
    stage = PiiModifier()
    stage.setup()
    find = stage._detector.find

    def fragile(text, entities=None):
        if "boom" in text:
            raise RecursionError("too deep")
        return find(text, entities)

    monkeypatch.setattr(stage._detector, "find", fragile)
    kept, [record] = run_stage(stage, _table("boom a@b.co", "c@d.org"))
    assert kept.column("text").to_pylist() == ["<EMAIL_ADDRESS>"]
    assert record["counts"] == {"SCAN_ERROR": 1, "EMAIL_ADDRESS": 1}
    [sample] = record["removed_sample"]
    assert sample["reason"] == "PII scan failed: RecursionError: too deep"
    assert "a@b.co" not in str(sample)


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_rewritten_rows_keep_the_column_type_and_the_other_rows_across_chunks(kind):
    chunks = [["plain", "x a@b.co y", None], ["10.0.0.7 up", "plain too"]]
    table = pa.concat_tables(
        [pa.table({"text": pa.array(chunk, kind), "n": range(len(chunk))}) for chunk in chunks]
    )
    out = PiiModifier().process(table)
    assert out.column("text").type == kind
    assert out.column("text").to_pylist() == [
        "plain", "x <EMAIL_ADDRESS> y", None, "<IP_ADDRESS> up", "plain too"
    ]  # fmt: skip
    assert out.column("n").to_pylist() == [0, 1, 2, 0, 1]
