"""arXiv bulk source tarballs: one row per paper with its LaTeX cleaned (inputs inlined,
comments, preamble and bibliography gone, macros expanded); each bad paper quarantined
with the reason while the rest of the tarball is read."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from stages.io.errors import InputError
from stages.io.formats.arxiv import ArxivFormat, arxiv_id
from stages.io.read import ShardReader
from stages.io.shards import plan_inputs
from stages.text import latex
from tests.http_server import serve

MAIN = r"""\documentclass{article}
\usepackage{amsmath}
% Macros of the authors
\newcommand{\R}{\mathbb{R}}
\newcommand{\vect}[1]{\mathbf{#1}}
\newcommand{\norm}[2][2]{\|#2\|_{#1}}
\def\eg{e.g.}
\title{Fast Things}
\begin{document}
\maketitle
\begin{abstract}
We study fast things in $\R^n$. % a note to co-authors
\end{abstract}
\input{sections/intro}
\include{method}
%\input{old_draft}
\bibliography{refs}
\appendix
\section{Proofs}
Secret appendix text.
\end{document}
"""

INTRO = r"""\section{Introduction}
Let $\vect{x} \in \R^n$, \eg a vector; its size is \norm{\vect{x}} or \norm[1]{x}.
Prices rose by 50\% this year.
"""

METHOD = r"""\section{Method}
% TODO: rewrite
Our method is fast\footnote{Very fast.}.
"""

SINGLE = r"""\documentclass{revtex4}
\newcommand{\ours}{FastNet}
\begin{document}
\begin{abstract}
\ours{} beats everything.
\end{abstract}
\section{Results}
\ours\ wins. % really
\begin{thebibliography}{9}
\bibitem{a} A. Author.
\end{thebibliography}
\end{document}
"""


def _tar(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _paper_tar(files: dict[str, str | bytes]) -> bytes:
    members = [(n, d.encode() if isinstance(d, str) else d) for n, d in files.items()]
    return gzip.compress(_tar(members), mtime=0)


MULTI = _paper_tar(
    {
        "main.tex": MAIN,
        "sections/intro.tex": INTRO,
        "method.tex": METHOD,
        "refs.bib": "@article{a, title={A}}",
        "figure.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    }
)


def _tarball(path, members: list[tuple[str, bytes]], mode: str = "w") -> str:
    path.write_bytes(_tar(members, mode))
    return str(path)


PAPERS = [
    ("2301/2301.00001.gz", MULTI),
    ("2301/2301.00002.gz", gzip.compress(SINGLE.encode(), mtime=0)),
    ("2301/2301.00003.gz", b"\x1f\x8b\x08\x00" + b"not really gzip data" * 5),
]


def _read(uri: str, **kwargs):
    planned = plan_inputs(uri, format="arxiv")
    assert [s.format for s in planned.shards] == ["arxiv"]
    return ShardReader(**kwargs).read(planned.shards[0])


def test_each_paper_is_a_row_and_a_malformed_one_is_quarantined(tmp_path):
    uri = _tarball(tmp_path / "arXiv_src_2301_001.tar", PAPERS)
    result = _read(uri)
    table = result.table
    assert table.column_names == ["id", "text", "source", "_order", "tex_files"]
    assert table.column("id").to_pylist() == ["2301.00001", "2301.00002"]
    assert table.column("_order").to_pylist() == [1, 2]
    assert set(table.column("source").to_pylist()) == {uri}
    assert table.column("tex_files").to_pylist() == [
        ["main.tex", "sections/intro.tex", "method.tex"],
        ["2301.00002.tex"],
    ]
    (record,) = result.quarantine.to_pylist()
    assert record["line"] == 3
    assert record["reason"].startswith(
        f"{uri}: member 2301/2301.00003.gz: not a readable gzip file: "
    )
    assert record["raw"] == PAPERS[2][1]
    assert record["length"] == len(PAPERS[2][1])
    with open(uri, "rb") as f:  # offset and length find the member's bytes again
        f.seek(record["offset"])
        assert f.read(record["length"]) == PAPERS[2][1]


def test_the_text_is_cleaned_latex_with_inputs_inlined_and_macros_expanded(tmp_path):
    uri = _tarball(tmp_path / "src.tar", PAPERS)
    multi, single = _read(uri).table.column("text").to_pylist()
    assert multi == (
        "\\maketitle\n"
        "\\begin{abstract}\n"
        "We study fast things in $\\mathbb{R}^n$. \n"
        "\\end{abstract}\n"
        "\\section{Introduction}\n"
        "Let $\\mathbf{x} \\in \\mathbb{R}^n$, e.g. a vector; its size is "
        "\\|\\mathbf{x}\\|_{2} or \\|x\\|_{1}.\n"
        "Prices rose by 50\\% this year.\n"
        "\n"
        "\\section{Method}\n"
        "Our method is fast\\footnote{Very fast.}."
    )
    gone = ["documentclass", "usepackage", "newcommand", "\\def", "%", "Secret", "old_draft"]
    for word in [*gone, "bibliography", "TODO", "appendix"]:
        assert word not in multi.replace("50\\%", ""), word
    assert single == (
        "\\begin{abstract}\nFastNet beats everything.\n\\end{abstract}\n"
        "\\section{Results}\nFastNet\\ wins."
    )


def test_start_at_section_cuts_title_and_abstract_as_nemo_does(tmp_path):
    uri = _tarball(tmp_path / "src.tar", PAPERS[:2])
    shard = plan_inputs(uri, format="arxiv").shards[0]
    (result,) = ArxivFormat(start_at="section").read(shard, ShardReader())
    multi, single = result.table.column("text").to_pylist()
    assert multi.startswith("\\section{Introduction}\nLet $\\mathbf{x}")
    assert single == "\\section{Results}\nFastNet\\ wins."
    with pytest.raises(ValueError, match="start_at"):
        ArxivFormat(start_at="abstract")


def test_papers_without_tex_are_quarantined_with_the_reason(tmp_path):
    latin = "\\documentclass{article}\\begin{document}\\section{A}Erd\xf6s\\end{document}"
    members = [
        ("2301/2301.00004.pdf", b"%PDF-1.4\n..."),
        ("2301/2301.00005.gz", _paper_tar({"README": "see the pdf", "fig.eps": "%!PS"})),
        ("2301/2301.00006.gz", _paper_tar({"paper.tex": latin.encode("latin-1")})),
        ("2301/2301.00007.gz", _paper_tar({"paper.tex": "\\documentclass{article}\n"})),
        ("2301/2301.00008.gz", gzip.compress(b"%PDF-1.5 compressed pdf", mtime=0)),
        ("astro-ph/astro-ph0001001.gz", gzip.compress(SINGLE.encode(), mtime=0)),
    ]
    uri = _tarball(tmp_path / "src.tar", members)
    result = _read(uri)
    bad_at = latin.index("\xf6")
    assert result.table.column("id").to_pylist() == ["astro-ph/0001001"]
    reasons = [r["reason"] for r in result.quarantine.to_pylist()]
    assert reasons == [
        f"{uri}: member 2301/2301.00004.pdf: a PDF submission, no TeX source",
        f"{uri}: member 2301/2301.00005.gz: no .tex file (has: README, fig.eps)",
        f"{uri}: member 2301/2301.00006.gz: paper.tex: not UTF-8 (invalid byte at {bad_at})",
        f"{uri}: member 2301/2301.00007.gz: no text left after cleaning "
        "(from \\begin{document} to the bibliography)",
        f"{uri}: member 2301/2301.00008.gz: a PDF submission, no TeX source",
    ]
    assert [r["line"] for r in result.quarantine.to_pylist()] == [1, 2, 3, 4, 5]
    with pytest.raises(InputError, match="2301.00004.pdf: a PDF submission"):
        _read(uri, strict=True)

    shard = plan_inputs(uri, format="arxiv").shards[0]
    (latin_read,) = ArxivFormat(fallback_encoding="latin-1").read(shard, ShardReader())
    assert "\\section{A}Erdös" in latin_read.table.column("text").to_pylist()


def test_a_truncated_tarball_keeps_the_papers_before_the_damage(tmp_path):
    data = _tar(PAPERS[:2] + [("2301/2301.00009.gz", MULTI)])
    cut = data.index(b"2301/2301.00009.gz") + 512 + 100  # inside the last member's data
    path = tmp_path / "src.tar"
    path.write_bytes(data[:cut])
    result = _read(str(path))
    assert result.table.column("id").to_pylist() == ["2301.00001", "2301.00002"]
    (record,) = result.quarantine.to_pylist()
    assert record["line"] == 3
    assert record["reason"].startswith(
        f"{path}: member 2301/2301.00009.gz: truncated tar at or after this member ("
    )


def test_a_gzipped_tarball_and_no_main_file_concatenate_every_root_tex(tmp_path):
    files = {
        "b.tex": "\\section{Second}\nMore \\input{c}.",
        "a.tex": "\\section{First}\n\\newcommand{\\x}{X}Text \\x.",
        "c.tex": "inlined words",
    }
    uri = _tarball(tmp_path / "src.tar.gz", [("2301.00010.gz", _paper_tar(files))], "w:gz")
    result = _read(uri)
    assert result.table.column("text").to_pylist() == [
        "\\section{First}\nText X.\n\\section{Second}\nMore inlined words."
    ]
    assert result.table.column("tex_files").to_pylist() == [["a.tex", "b.tex", "c.tex"]]


def test_a_subfile_brings_its_body_once(tmp_path):
    files = {
        "a_intro.tex": "\\documentclass[main]{subfiles}\n\\begin{document}\n"
        "\\section{Intro}\nHi.\n\\end{document}\n",
        "main.tex": "\\documentclass{article}\n\\begin{document}\n\\subfile{a_intro}\n"
        "\\section{End}\nBye.\n\\end{document}\n",
    }
    uri = _tarball(tmp_path / "src.tar", [("2301.00011.gz", _paper_tar(files))])
    result = _read(uri)
    assert result.table.column("text").to_pylist() == [
        "\\section{Intro}\nHi.\n\n\\section{End}\nBye."
    ]
    assert result.table.column("tex_files").to_pylist() == [["main.tex", "a_intro.tex"]]


def test_arxiv_ids_follow_nemo():
    assert arxiv_id("2301/2301.00001.gz") == "2301.00001"
    assert arxiv_id("0001/astro-ph0001001.gz") == "astro-ph/0001001"
    assert arxiv_id("0001/hep-th0001001.pdf") == "hep-th/0001001"
    assert arxiv_id("misc/notes_v2.gz") == "notes_v2"


def test_latex_helpers():
    assert latex.strip_comments("a % c\n% whole line\nb \\% kept\\\\% gone\n") == (
        "a \nb \\% kept\\\\\n"
    )
    assert latex.strip_comments(
        "% \\begin{comment}\nkept\n\\begin{comment}\nx\n\\end{comment}"
    ) == ("kept\n")
    files = {"main.tex": "A \\input{main} \\input{part}", "part.tex": "P \\input{part}"}

    def load(name, here):
        path = name if name.endswith(".tex") else f"{name}.tex"
        return (path, files[path]) if path in files else None

    assert latex.inline_inputs(files["main.tex"], load, "main.tex") == (
        "A \\input{main} P \\input{part}",  # a file never includes itself
        ["part.tex"],
    )
    macros, rest = latex.macro_definitions(
        "\\newcommand*\\a{A}\\renewcommand{\\b}[2]{#2#1}\\def\\c#1.{delimited}x"
    )
    assert rest == "x"
    assert macros["c"].expandable is False
    assert latex.expand_macros("\\a{} \\b{1}{2} \\c 1.", macros) == "A 21 \\c 1."
    loops, _ = latex.macro_definitions("\\def\\loop{\\loop\\loop}")
    assert latex.expand_macros("\\loop", loops) == "\\loop"  # TeX would loop: left as is
    styled, rest = latex.macro_definitions(
        "\\renewcommand{\\section}{\\@startsection{section}{1}{0pt}}"
        "\\def\\fn{\\@footnotetext}\\section{A}\\fn"
    )
    assert rest == "\\section{A}\\fn"
    assert latex.expand_macros(rest, styled) == rest  # layout internals are not expanded
    nested, _ = latex.macro_definitions("\\newcommand{\\x}{\\y}\\newcommand{\\y}{Y}")
    assert latex.expand_macros("\\x and \\xy", nested) == "Y and \\xy"


def test_a_tarball_is_read_over_http(tmp_path):
    _tarball(tmp_path / "arXiv_src_2301_001.tar", PAPERS)
    with serve(
        {"/arXiv_src_2301_001.tar": (tmp_path / "arXiv_src_2301_001.tar").read_bytes()}
    ) as server:
        url = server.url("/arXiv_src_2301_001.tar")
        result = _read(url)
    assert result.table.column("id").to_pylist() == ["2301.00001", "2301.00002"]
    assert set(result.table.column("source").to_pylist()) == {url}
    assert "\\section{Method}" in result.table.column("text")[0].as_py()
    (record,) = result.quarantine.to_pylist()
    assert record["reason"].startswith(f"{url}: member 2301/2301.00003.gz: not a readable gzip")
