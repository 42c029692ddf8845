"""NeMo Curator's remaining heuristic filters: URL, substring, token-count, histogram and
code filters. Cases ported from NeMo Curator's tests (inputs and expected keep/drop),
plus the boundaries: exactly at a threshold, empty and null texts."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from stages.base import Filter, FilterChain
from stages.text import filters as F
from stages.text.filters.source_comments import (
    CommentSyntaxError,
    extract_comments,
    python_natural_text_length,
)
from stages.text.thresholds import ApplyThresholds

NEMO_PYTHON = Path(__file__).resolve().parents[3] / ".bench-venvs" / "nemo" / "bin" / "python"
needs_nemo = pytest.mark.skipif(
    not NEMO_PYTHON.exists(), reason="NeMo Curator reference venv (.bench-venvs/nemo) not installed"
)


def table(*texts: str | None) -> pa.Table:
    return pa.table(
        {"id": [str(i) for i in range(len(texts))], "text": pa.array(list(texts), pa.string())}
    )


def scores(f: Filter, *texts: str | None) -> list:
    return f.mask(table(*texts))[0].tolist()


def kept(f: Filter, *texts: str | None) -> list[str | None]:
    return f.process(table(*texts)).column("text").to_pylist()


# --- PornographicUrlsFilter --------------------------------------------------------------


def test_pornographic_urls_drops_documents_linking_to_porn():
    docs = ["no url", "fine url https://www.nvidia.com/en-us/", "bad url https://www.pornhub.com/"]
    f = F.PornographicUrlsFilter()
    assert scores(f, *docs) == [0, 0, 1]
    assert kept(f, *docs) == docs[:2]


def test_pornographic_urls_only_looks_inside_urls_and_is_case_sensitive():
    f = F.PornographicUrlsFilter()
    docs = ["porn in prose is not a link", "https://PORN.example.com/", "", None]
    assert scores(f, *docs) == [0, 0, 0, 0]


def test_pornographic_urls_accepts_a_custom_pattern_with_groups():
    f = F.PornographicUrlsFilter(url_regex=r"ftp://(\S+)")
    assert scores(f, "get ftp://porn.example/x", "see https://porn.example/") == [1, 0]


# --- TokenCountFilter ----------------------------------------------------------------


class WhitespaceTokenizer:
    """NeMo Curator's test tokenizer: one token per whitespace-separated word."""

    def encode(self, text: str) -> list[str]:
        return text.split()


COUNT_DOCS = ["hello", "hello world", "this is a test", "another test case"]


def test_token_count_keeps_the_inclusive_range():
    f = F.TokenCountFilter(WhitespaceTokenizer(), min_tokens=2, max_tokens=3)
    assert scores(f, *COUNT_DOCS) == [1, 2, 4, 3]
    assert kept(f, *COUNT_DOCS) == ["hello world", "another test case"]


def test_token_count_defaults_keep_everything():
    f = F.TokenCountFilter(WhitespaceTokenizer())
    assert kept(f, *COUNT_DOCS, "", None) == [*COUNT_DOCS, "", None]


def _save_tiny_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer with a BOS token added to every encoding, saved as a
    Hugging Face tokenizer folder (tokenizer.json + config)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<s>": 1, "hello": 2, "world": 3, "def": 4, "return": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", bos_token="<s>")
    fast.save_pretrained(folder)
    return folder


def test_token_count_loads_a_local_tokenizer_folder_and_counts_special_tokens(tmp_path):
    folder = _save_tiny_tokenizer(tmp_path / "tok")
    f = F.TokenCountFilter(hf_model_name=folder, min_tokens=3, max_tokens=3)
    # <s> + words, as tokenizer.encode(text) counts them in NeMo Curator.
    assert scores(f, "hello", "hello world", "hello big world", "", None) == [2, 3, 4, 1, 1]
    assert kept(f, "hello", "hello world", "hello big world") == ["hello world"]


def test_token_count_rejects_bad_arguments_naming_them(tmp_path):
    with pytest.raises(ValueError, match="either tokenizer or hf_model_name"):
        F.TokenCountFilter()
    with pytest.raises(ValueError, match="not both"):
        F.TokenCountFilter(WhitespaceTokenizer(), hf_model_name="x")
    with pytest.raises(ValueError, match="local_files_only"):
        F.TokenCountFilter(hf_model_name="x", transformers_init_kwargs={"local_files_only": False})
    f = F.TokenCountFilter(hf_model_name=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="missing"):
        f.setup()


# --- SubstringFilter -----------------------------------------------------------------


def test_substring_rejects_an_unknown_position():
    with pytest.raises(ValueError, match="middle"):
        F.SubstringFilter("foo", "middle")


@pytest.mark.parametrize(
    ("substring", "position", "docs", "expected"),
    [
        (
            "Hello",
            "prefix",
            ["Hello world", "world Hello", "Hello everyone", "Not matching"],
            ["Hello world", "Hello everyone"],
        ),
        (
            "end",
            "suffix",
            ["This is the end", "end of story", "ending is good", "Not matching end", "The end"],
            ["This is the end", "Not matching end", "The end"],
        ),
        (
            "test",
            "any",
            ["test case", "This is a testcase", "no match here", "another test"],
            ["test case", "This is a testcase", "another test"],
        ),
    ],
)
def test_substring_keeps_documents_with_the_substring_in_place(substring, position, docs, expected):
    assert kept(F.SubstringFilter(substring, position), *docs) == expected


def test_substring_treats_null_as_empty_and_finds_the_empty_string_everywhere():
    assert scores(F.SubstringFilter("a", "any"), None, "") == [0, 0]
    assert scores(F.SubstringFilter("", "prefix"), None, "", "x") == [1, 1, 1]


# --- HistogramFilter -----------------------------------------------------------------

ENGLISH_DOCS = [
    "This is a perfectly fine English document.",
    "But if you insist that this is written in Chinese,",
    "it's likely that something is fishy.",
]
CHINESE_DOCS = [
    "另一方面，这是一个好的中文文档，",  # noqa: RUF001
    "但你一定要说这是英文文档，",  # noqa: RUF001
    "那很可能有些地方出了差错。",
]


def _write_histograms(cache_dir: Path) -> Path:
    """Tiny fairseq-style histograms (one character a line, cut at "]") in NeMo
    Curator's cache layout."""
    folder = cache_dir / "histograms" / "checkpoint" / "edunov" / "cc60_multilingual"
    folder = folder / "clean_hists"
    folder.mkdir(parents=True)
    english = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,'"))
    chinese = sorted(set("".join(CHINESE_DOCS)))
    # The characters after the "]" line are not part of the histogram.
    (folder / "en").write_text("".join(f"{c}\t9\n" for c in english) + "]\t0\n另\t1\n")
    (folder / "zh").write_text("".join(f"{c}\t9\n" for c in chinese) + "]\t0\na\t1\n")
    return cache_dir


def test_histogram_keeps_text_in_the_language_of_the_histogram(tmp_path):
    cache = _write_histograms(tmp_path)
    docs = ENGLISH_DOCS + CHINESE_DOCS
    assert kept(F.HistogramFilter(lang="en", cache_dir=cache), *docs) == ENGLISH_DOCS
    assert kept(F.HistogramFilter(lang="zh", cache_dir=cache), *docs) == CHINESE_DOCS


def test_histogram_keeps_only_above_the_threshold(tmp_path):
    (tmp_path / "xx").write_text("a\n]\nb\n")  # a folder holding the files directly
    f = F.HistogramFilter(lang="xx", threshold=0.5, cache_dir=tmp_path)
    # Characters of text.strip() in the histogram over len(text): "b" is past the "]".
    assert scores(f, "ab", "aab", " a ", "b", "", None) == [0.5, 2 / 3, 1 / 3, 0.0, 0.0, 0.0]
    assert kept(f, "ab", "aab", "") == ["aab"]


def test_histogram_without_its_files_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="clean_hists"):
        F.HistogramFilter(lang="en", cache_dir=tmp_path)


# --- PythonCommentToCodeFilter -------------------------------------------------------

PY_GOOD = "# Good code\nprint('hello world')"
PY_NONE = "print('bad code')"
PY_TOO_MANY = "# Too many\n# comments!"
PY_DOCSTRING = "'''Good comment'''\nprint('hello world')"


def test_python_comment_to_code_keeps_files_with_some_but_not_too_much_text():
    f = F.PythonCommentToCodeFilter()
    docs = [PY_GOOD, PY_NONE, PY_TOO_MANY, PY_DOCSTRING]
    assert scores(f, *docs) == pytest.approx([11 / 32, 0.0, 21 / 22, 12 / 39])
    assert kept(f, *docs) == [PY_GOOD, PY_DOCSTRING]


def test_python_natural_text_joins_docstrings_and_skips_async_functions():
    source = '"""Module."""\ndef f():\n    """Doc."""\nasync def g():\n    """Not counted."""\n'
    assert python_natural_text_length(source) == len("Module.") + 1 + len("Doc.")
    assert python_natural_text_length("def f(:\n") is None  # does not parse


def test_python_comment_to_code_bounds_are_inclusive_and_bad_source_scores_zero():
    ratio = 11 / 32
    f = F.PythonCommentToCodeFilter(
        min_comment_to_code_ratio=ratio, max_comment_to_code_ratio=ratio
    )
    assert kept(f, PY_GOOD) == [PY_GOOD]
    assert scores(f, "def broken(:\n  # comment", "", None) == [0.0, 0.0, 0.0]


# --- GeneralCommentToCodeFilter ------------------------------------------------------

C_GOOD = '// Good code\nprintf("hello world\\n")'
C_NONE = 'printf("bad code\\n")'
C_TOO_MANY = "// Way far too many\n// comments!"
C_BLOCK = '/*\nGood comment\n*/\nprintf("hello world\\n")'


def test_general_comment_to_code_keeps_files_with_some_but_not_too_much_comment():
    f = F.GeneralCommentToCodeFilter("text/x-c++")
    assert kept(f, C_GOOD, C_NONE, C_TOO_MANY, C_BLOCK) == [C_GOOD, C_BLOCK]
    # " Good code": 10 characters of comment.
    assert scores(f, C_GOOD)[0] == pytest.approx(10 / len(C_GOOD))


def test_general_comment_to_code_scores_unreadable_files_9999_and_rejects_unknown_types():
    f = F.GeneralCommentToCodeFilter("text/x-c")
    assert scores(f, "int x; /* never closed", "", None) == [9999.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="text/x-c"):
        F.GeneralCommentToCodeFilter("text/x-cobol")


@pytest.mark.parametrize(
    ("mime", "source", "comments"),
    [
        ("text/x-c", 'a = "// not" // yes\n/* two\nlines */', [" yes", " two\nlines "]),
        ("text/x-java", "/**/ x", [""]),
        ("application/javascript", "s = '// no'; // yes\nx = 1 / 2; /* b **/", [" yes", " b *"]),
        ("text/x-go", "s := `// no` // yes", [" yes"]),
        ("text/x-python", "x = '# no'  # yes\n", [" yes"]),
        ("text/x-ruby", 'x = "# no" # yes\n# two', [" yes", " two"]),
        ("text/x-shellscript", "echo \\# '#no' # yes\n#two", [" yes", "two"]),
        ("text/html", '<p title="<!-- no -->">x</p><!-- yes -->', [" yes "]),
    ],
)
def test_comments_are_read_per_language(mime, source, comments):
    assert extract_comments(source, mime) == comments


def test_unterminated_comments_and_bad_python_cannot_be_read():
    for mime, source in (("text/x-c", "/* x"), ("text/xml", "<!-- x"), ("text/x-go", "/* x*")):
        with pytest.raises(CommentSyntaxError):
            extract_comments(source, mime)
    with pytest.raises(CommentSyntaxError):
        extract_comments('x = """never closed', "text/x-python")


# --- NumberOfLinesOfCodeFilter -------------------------------------------------------


def test_number_of_lines_keeps_the_inclusive_range():
    one = 'print("too short")'
    two = 'print("just")\n        print("right")'
    four = 'print("way")\n print("too")\n print("long")\n print("!")'
    f = F.NumberOfLinesOfCodeFilter(min_lines=2, max_lines=3)
    assert scores(f, one, two, four, "a\nb\nc", "", None) == [1, 2, 4, 3, 1, 1]
    assert kept(f, one, two, four, "a\nb\nc") == [two, "a\nb\nc"]


# --- TokenizerFertilityFilter --------------------------------------------------------


def test_tokenizer_fertility_counts_characters_per_piece(tmp_path):
    folder = _save_tiny_tokenizer(tmp_path / "tok")
    f = F.TokenizerFertilityFilter(path_to_tokenizer=folder / "tokenizer.json")
    # No special tokens: "hello world" is 2 pieces for 11 characters; unknown words are
    # one [UNK] piece each.
    assert scores(f, "hello world", "a b c d", "", None) == [5.5, 1.75, -1.0, -1.0]
    assert kept(f, "hello world", "a b c d", "") == ["hello world"]


def test_tokenizer_fertility_threshold_is_inclusive_and_a_folder_works(tmp_path):
    folder = _save_tiny_tokenizer(tmp_path / "tok")
    f = F.TokenizerFertilityFilter(path_to_tokenizer=folder, min_char_to_token_ratio=5.5)
    assert kept(f, "hello world", "hello world x") == ["hello world"]
    copy = pickle.loads(pickle.dumps(f))  # what a worker receives
    assert kept(copy, "hello world") == ["hello world"]


def test_tokenizer_fertility_needs_a_tokenizer_path(tmp_path):
    with pytest.raises(ValueError, match="path_to_tokenizer is required"):
        F.TokenizerFertilityFilter()
    with pytest.raises(FileNotFoundError, match="nope"):
        F.TokenizerFertilityFilter(path_to_tokenizer=tmp_path / "nope.model")


def test_tokenizer_fertility_sentencepiece_model_needs_the_package(tmp_path):
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("sentencepiece is installed")
    model = tmp_path / "spm.model"
    model.write_bytes(b"not really")
    f = F.TokenizerFertilityFilter(path_to_tokenizer=model)
    with pytest.raises(ImportError, match="sentencepiece"):
        f.setup()


# --- XMLHeaderFilter -----------------------------------------------------------------


def test_xml_header_drops_files_with_an_xml_header_near_the_start():
    docs = ["no header", "<?xml version=1.0>", "slightly offset <?xml version="]
    f = F.XMLHeaderFilter()
    assert scores(f, *docs) == [0, 1, 1]
    assert kept(f, *docs) == ["no header"]


def test_xml_header_must_fit_inside_the_prefix_counted_in_characters():
    header = "<?xml version="
    f = F.XMLHeaderFilter(char_prefix_search_length=20)
    inside = "é" * (20 - len(header)) + header  # ends exactly at character 20
    outside = "é" * (21 - len(header)) + header
    assert scores(f, inside, outside, "", None) == [1, 0, 0, 0]


# --- AlphaFilter ---------------------------------------------------------------------


def test_alpha_drops_files_that_are_mostly_symbols():
    f = F.AlphaFilter()
    assert kept(f, "full of alphabet", "<>?$#@!", "mixed <>") == ["full of alphabet", "mixed <>"]


def test_alpha_threshold_is_inclusive_and_counts_every_script():
    f = F.AlphaFilter(min_alpha_ratio=0.25)
    assert scores(f, "a<<<", "日本<<", "", None) == [0.25, 0.5, 0.0, 0.0]
    assert kept(f, "a<<<", "<<<<", "") == ["a<<<"]


# --- HTMLBoilerplateFilter -----------------------------------------------------------

GOOD_PAGE = """
        <!DOCTYPE html>
        <html>
        <head>
            <title>Sample Webpage</title>
        </head>
        <body>
            <h1>Welcome to my sample webpage</h1>
            <p>This is a very fun paragraph on my sample webpage.</p>
        </body>
        </html>
        """
BOILERPLATE_PAGE = """
        <!DOCTYPE html>
        <html>
        <head>
            <title>Boilerplate Webpage</title>
        </head>
        <body>
            <h1><span>Welcome</span> <span>to</span> <span>my</span> <span>boilerplate</span> <span>webpage</span></h1>
            <div>
                <div>
                    <div><p>hi</p></div>
                </div>
                <div>
                    <div><p>hi</p></div>
                </div>
            </div>
        </body>
        </html>
        """  # noqa: E501
SMALL_PAGE = """
            <!DOCTYPE html>
            <html><body>hello world</body></html>
        """


def test_html_boilerplate_keeps_pages_with_enough_visible_text():
    f = F.HTMLBoilerplateFilter()
    assert kept(f, GOOD_PAGE, BOILERPLATE_PAGE, SMALL_PAGE) == [GOOD_PAGE]


def test_html_visible_text_leaves_out_scripts_styles_and_comments():
    f = F.HTMLBoilerplateFilter(min_lang_content_num_chars=0, min_lang_content_ratio=0.0)
    page = "<p>a&amp;b</p><script>var x;</script><style>p{}</style><!-- note -->"
    fields = f.mask(table(page, "", None))[0]
    assert [row["content_chars"] for row in fields] == [3, 0, 0]
    assert fields[0]["content_ratio"] == pytest.approx(3 / len(page))


def test_html_markup_the_parser_rejects_counts_as_no_text_instead_of_failing_the_batch():
    f = F.HTMLBoilerplateFilter(min_lang_content_num_chars=0, min_lang_content_ratio=0.0)
    rows = f.mask(table("<p>text</p><![Cza[x]]>", "<p>fine</p>"))[0]
    assert [row["content_chars"] for row in rows] == [0, 4]


def test_code_filters_survive_pathological_sources():
    deep = "x = " + "(" * 5000 + ")" * 5000
    nul = "x = 1\x00 # c"
    assert scores(F.PythonCommentToCodeFilter(), deep, nul) == [0.0, 0.0]
    assert scores(F.GeneralCommentToCodeFilter("text/x-python"), 'x = """open') == [9999.0]


def test_html_boilerplate_thresholds_are_inclusive_and_short_pages_count_as_ratio_zero():
    page = "<p>" + "x" * 10 + "</p>"  # 10 of 17 characters
    at_both = F.HTMLBoilerplateFilter(min_lang_content_ratio=10 / 17, min_lang_content_num_chars=10)
    assert kept(at_both, page) == [page]
    too_short = F.HTMLBoilerplateFilter(min_lang_content_ratio=0.1, min_lang_content_num_chars=11)
    assert kept(too_short, page) == []
    # As in NeMo Curator, a page below the character minimum scores 0, which a
    # ratio minimum of 0 still keeps.
    zero = F.HTMLBoilerplateFilter(min_lang_content_ratio=0.0, min_lang_content_num_chars=11)
    assert kept(zero, page, "") == [page, ""]


# --- PerExtensionFilter --------------------------------------------------------------

GOOD_CPP = """
        #include <iostream>
        using namespace std;
        int main() {
            cout << "Hello World!" << endl;
            return 0;
        };
        """


def test_per_extension_keeps_a_good_cpp_file():
    assert kept(F.PerExtensionFilter("c++", "cpp"), GOOD_CPP) == [GOOD_CPP]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", (0, 0.0)),
        ("\n", (0, 0.0)),
        ("abc\n", (3, 1.5)),
        ("Lorem ipsum \ndolor sit amet,", (15, 13.5)),
    ],
)
def test_per_extension_line_statistics(content, expected):
    row = F.PerExtensionFilter("c++", "cpp").mask(table(content))[0][0]
    assert (row["max_line_length"], row["mean_line_length"]) == expected


def test_per_extension_long_line_limit_is_inclusive():
    f = F.PerExtensionFilter("c++", "cpp")  # long lines: 1000, mean at most 100
    at_limit = "x" * 1000 + "\n" + "\n".join(["y = 1;"] * 20)
    over = "x" * 1001 + "\n" + "\n".join(["y = 1;"] * 20)
    assert kept(f, at_limit, over) == [at_limit]


def test_per_extension_applies_the_alphanumeric_and_alpha_thresholds():
    cpp = F.PerExtensionFilter("c++", "cpp")  # alphanumeric share at least 0.25
    assert kept(cpp, "abc = {};", "a = {};", "") == ["abc = {};"]
    ada = F.PerExtensionFilter("ada", "ads")  # alphabetic share at least 0.25 too
    assert kept(ada, "a1111111", "ab111111") == ["ab111111"]


def test_per_extension_drops_unlisted_extensions_and_rejects_unknown_languages(tmp_path):
    assert kept(F.PerExtensionFilter("c++", "weird"), GOOD_CPP) == []
    assert kept(F.PerExtensionFilter("Dockerfile", None), GOOD_CPP) == [GOOD_CPP]
    assert kept(F.PerExtensionFilter("c", "cats"), GOOD_CPP) == []  # listed, not included
    assert kept(F.PerExtensionFilter("C#", "cs"), "class A { }") == ["class A { }"]
    with pytest.raises(ValueError, match="klingon"):
        F.PerExtensionFilter("klingon", "tlh")
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "language,extension,Include,Alphanum_threshold,Long_line_threshold,Alpha filter\n"
        "klingon,tlh,1,0.9,,\n"
    )
    f = F.PerExtensionFilter("klingon", "tlh", metadata_file=csv)
    assert kept(f, "qapla", "####") == ["qapla"]


# --- struct scores: kept, chained and re-thresholded ---------------------------------


def test_struct_scores_are_kept_as_a_column_and_re_thresholded_without_rescoring():
    pages = ["<p>" + "x" * n + "</p>" for n in (5, 50, 200)]
    recipe = [("HTMLBoilerplateFilter", {"min_lang_content_num_chars": 100})]
    f = F.HTMLBoilerplateFilter(min_lang_content_num_chars=100)
    f.score_only = True
    scored = FilterChain([f]).process(table(*pages))
    column = scored.column(f.score_column)
    assert pa.types.is_struct(column.type)
    assert kept_ids(ApplyThresholds(recipe).process(scored)) == ["2"]
    looser = ApplyThresholds(recipe, [("HTMLBoilerplateFilter", "min_lang_content_num_chars", 10)])
    assert kept_ids(looser.process(scored)) == ["1", "2"]


def kept_ids(batch: pa.Table) -> list[str]:
    return batch.column("id").to_pylist()


# --- against NeMo Curator itself, when its venv is there ------------------------------

_NEMO_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from comment_parser import comment_parser
from nemo_curator.stages.text.filters.heuristic.string import PornographicUrlsFilter
from nemo_curator.stages.text.utils.text_utils import get_comments_and_docstring
request = json.load(sys.stdin)
out = {"porn": [], "comments": [], "python": []}
porn = PornographicUrlsFilter()
for text in request["docs"]:
    out["porn"].append(porn.score_document(text))
for mime, text in request["code"]:
    try:
        found = comment_parser.extract_comments_from_str(text, mime=mime)
        out["comments"].append([c.text() for c in found])
    except Exception:
        out["comments"].append(None)
    docs, comments = get_comments_and_docstring(text)
    out["python"].append(None if docs is None or comments is None else len(docs) + len(comments))
json.dump(out, sys.stdout)
"""


def _code_samples(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    pieces = ["//", "/*", "*/", "*", "/", "\n", " ", "x", '"', "'", "`", "\\", "#", "<!--", "-->"]
    pieces += ["def f():\n", "    ", '"""doc"""', "class A:\n", "pass", "=", "é"]
    mimes = sorted(["text/x-c", "text/x-go", "application/javascript", "text/x-python"])
    mimes += ["text/x-ruby", "text/x-shellscript", "text/html"]
    return [
        (
            mimes[int(rng.integers(len(mimes)))],
            "".join(
                pieces[int(i)] for i in rng.integers(len(pieces), size=int(rng.integers(0, 30)))
            ),
        )
        for _ in range(n)
    ]


@needs_nemo
def test_urls_and_comments_match_nemo_curator():
    docs = ["https://porn.example/", "x https://a.com/porn?q=1 y", "porn", "http://p.o/rn", ""]
    code = _code_samples(400, seed=11)
    request = json.dumps({"docs": docs, "code": code})
    done = subprocess.run(
        [str(NEMO_PYTHON), "-c", _NEMO_SCRIPT],
        input=request,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    theirs = json.loads(done.stdout)
    assert scores(F.PornographicUrlsFilter(), *docs) == theirs["porn"]
    for (mime, source), comments, natural in zip(
        code, theirs["comments"], theirs["python"], strict=True
    ):
        try:
            ours = extract_comments(source, mime)
        except CommentSyntaxError:
            ours = None
        assert (mime, source, ours) == (mime, source, comments)
        assert (source, python_natural_text_length(source)) == (source, natural)
