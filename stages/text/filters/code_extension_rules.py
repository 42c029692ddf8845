"""Per-extension thresholds of NeMo Curator's `PerExtensionFilter` for code files.

One entry per (language, extension): whether files of that kind are kept at all, the
minimum share of alphanumeric characters, the maximum line length (files with one longer
line are dropped; the mean line length must then also stay at or below 100), and the
minimum share of alphabetic characters. A threshold of None does not apply. The values
are those of NeMo Curator's `code_meta.csv` (StarCoder's per-extension filters, Li et
al. 2023): where that file lists a (language, extension) twice, the later row counts, as
it does there.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ExtensionRule:
    include: bool
    min_alphanum_fraction: float | None
    max_line_length: int | None
    min_alpha_fraction: float | None


# language,extension,include,alphanum threshold,long-line threshold,alpha threshold;
_TABLE = (
    "ada,ada,1,0.25,1000,;ada,adb,1,0.25,1000,;ada,ads,1,0.25,1000,0.25;"
    "agda,agda,1,0.25,1000,;alloy,als,1,0.25,1000,;antlr,g4,1,0.25,1000,;"
    "applescript,applescript,1,0.25,1000,;applescript,scpt,1,0.25,1000,;"
    "assembly,a51,1,0.25,1000,;assembly,asm,1,0.25,,;assembly,nasm,1,0.25,1000,;"
    "augeas,aug,1,0.25,1000,0.25;awk,auk,1,0.25,1000,;awk,awk,1,0.25,1000,;"
    "awk,gawk,1,0.25,1000,;awk,mawk,1,0.25,1000,;awk,nawk,1,0.25,1000,;"
    "batchfile,bat,1,0.25,1000,;batchfile,cmd,1,0.25,1000,;bison,bison,0,0.25,1000,;"
    "bluespec,bsv,1,0.25,,;c,c,1,0.25,1000,;c,cats,0,,,;c,h,1,0.25,1000,;c,w,0,,,;"
    "c-sharp,cake,1,0.25,1000,;c-sharp,cs,1,0.25,1000,;c-sharp,cshtml,1,0.25,1000,;"
    "c-sharp,csx,0,,,;c++,c++,1,0.25,1000,;c++,cc,1,0.25,1000,;c++,cp,1,0.25,1000,;"
    "c++,cpp,1,0.25,1000,;c++,cxx,1,0.25,1000,;c++,h++,1,0.25,1000,;c++,hh,1,0.25,1000,;"
    "c++,hpp,1,0.25,1000,;c++,hxx,1,0.25,1000,;c++,inl,1,0.25,1000,;c++,ipp,1,0.25,1000,;"
    "c++,tcc,1,0.25,1000,;c++,tpp,1,0.25,1000,;clojure,boot,1,0.25,1000,;clojure,cl2,0,,,;"
    "clojure,clj,1,0.25,1000,;clojure,cljc,1,0.25,1000,;clojure,cljs,1,0.25,1000,;"
    "clojure,cljx,1,0.25,1000,;cmake,cmake,1,0.25,,;coffeescript,_coffee,1,0.25,1000,;"
    "coffeescript,cjsx,1,0.25,1000,;coffeescript,coffee,1,0.25,1000,;"
    "coffeescript,cson,1,0.25,1000,;coffeescript,iced,1,0.25,1000,;"
    "common-lisp,asd,1,0.25,1000,;common-lisp,lisp,1,0.25,1000,;common-lisp,lsp,1,0.25,1000,;"
    "common-lisp,ny,1,0.25,1000,;common-lisp,sexp,0,,,;css,css,1,0.25,1000,;"
    "cuda,cu,1,0.25,1000,;cuda,cuh,1,0.25,1000,;dart,dart,1,0.25,1000,;"
    "dockerfile,1,1,0.25,1000,;dockerfile,3,1,0.25,1000,;dockerfile,dockerfile,1,0.25,1000,;"
    "dockerfile,mustache,1,0.25,1000,;dockerfile,,1,0.25,1000,;elixir,ex,1,0.25,1000,;"
    "elixir,exs,1,0.25,1000,;elm,elm,1,0.25,1000,;emacs-lisp,el,1,0.25,1000,;"
    "emacs-lisp,emacs,1,0.25,1000,;erlang,erl,1,0.25,1000,;erlang,escript,1,0.25,1000,;"
    "erlang,hrl,1,0.25,1000,;erlang,xrl,0,,,;erlang,yrl,1,0.25,1000,;f-sharp,fs,1,0.25,1000,;"
    "f-sharp,fsi,1,0.25,1000,;f-sharp,fsx,1,0.25,1000,;fortran,f,1,0.25,1000,;"
    "fortran,f03,1,0.25,1000,;fortran,f08,1,0.25,1000,;fortran,f77,0,,,;"
    "fortran,f90,1,0.25,1000,;fortran,f95,1,0.25,1000,;fortran,for,1,0.25,1000,;"
    "fortran,fpp,1,0.25,1000,;glsl,fp,1,0.25,1000,0.25;glsl,frag,1,0.25,1000,;glsl,frg,0,,,;"
    "glsl,fsh,1,0.25,500,;glsl,fshader,1,0.25,1000,;glsl,geo,0,,,;glsl,geom,1,0.25,1000,;"
    "glsl,glsl,1,0.25,1000,;glsl,glslv,1,0.25,1000,;glsl,shader,1,0.25,1000,;"
    "glsl,vert,1,0.25,1000,;glsl,vrx,0,,,;glsl,vsh,1,0.25,1000,;glsl,vshader,1,0.25,1000,;"
    "go,go,1,0.25,1000,;groovy,groovy,1,0.25,1000,;groovy,grt,0,,,;groovy,gtpl,1,0.25,1000,;"
    "groovy,gvy,1,0.25,1000,;haskell,hs,1,0.25,1000,;haskell,hsc,1,0.25,1000,;"
    "html,htm,1,0.25,1000,;html,html,1,0.25,1000,;html,xht,1,0.25,1000,;"
    "html,xhtml,1,0.25,1000,;idris,idr,1,0.25,1000,;idris,lidr,1,0.25,1000,;"
    "isabelle,thy,1,0.25,1000,;java,java,1,0.25,1000,;java-server-pages,jsp,1,0.25,1000,;"
    "javascript,es6,1,0.25,1000,;javascript,js,1,0.25,1000,;javascript,jsm,1,0.25,1000,;"
    "javascript,pac,1,0.25,1000,;javascript,sjs,1,0.25,1000,;javascript,xsjslib,1,0.25,1000,;"
    "julia,jl,1,0.25,1000,;kotlin,kt,1,0.25,1000,;kotlin,kts,1,0.25,1000,;"
    "lean,hlean,1,0.25,1000,;lean,lean,1,0.25,1000,;literate-agda,lagda,1,0.25,1000,;"
    "literate-coffeescript,litcoffee,1,0.25,1000,;literate-haskell,lhs,1,0.25,1000,;"
    "lua,lua,1,0.25,1000,;lua,nse,1,0.25,1000,;lua,wlua,1,0.25,1000,;"
    "makefile,cmake,1,0.25,1000,;makefile,mak,1,0.25,1000,;makefile,mk,1,0.25,1000,;"
    "makefile,txt,1,0.25,1000,;makefile,,1,0.25,1000,;maple,mpl,1,0.25,1000,0.25;"
    "markdown,markdown,1,0.25,,;markdown,md,1,0.25,,;markdown,mkd,1,0.25,,;"
    "markdown,mkdn,1,0.25,,;markdown,ron,1,0.25,,;mathematica,cdf,0,,,;"
    "mathematica,ma,1,,,0.25;mathematica,mathematica,1,0.25,1000,;"
    "mathematica,mt,1,0.25,1000,;mathematica,nb,1,,,0.25;mathematica,nbp,0,,,;"
    "mathematica,wl,1,0.25,1000,0.25;mathematica,wlt,0,,,;matlab,matlab,1,0.25,,0.25;"
    "ocaml,eliom,1,0.25,1000,;ocaml,eliomi,1,0.25,1000,;ocaml,ml,1,0.25,1000,;"
    "ocaml,ml4,1,0.25,1000,;ocaml,mli,1,0.25,1000,;ocaml,mll,1,0.25,1000,;"
    "ocaml,mly,1,0.25,1000,;pascal,dfm,1,0.25,1000,;pascal,dpr,0,,,;pascal,lpr,1,0.25,1000,;"
    "pascal,pas,1,0.25,1000,;perl,al,0,,,;perl,perl,1,0.25,1000,;perl,ph,0,,,;"
    "perl,pl,1,0.25,1000,;perl,plx,0,,,;perl,pm,1,0.25,1000,;perl,psgi,1,0.25,1000,;"
    "perl,t,1,0.25,1000,;php,ctp,1,0.25,1000,;php,php,1,0.25,1000,;php,phpt,1,0.25,1000,;"
    "powershell,ps1,1,0.25,1000,;powershell,psd1,1,0.25,1000,;powershell,psm1,1,0.25,1000,;"
    "prolog,prolog,1,0.25,1000,;prolog,yap,1,0.25,1000,;protocol-buffer,proto,1,0.25,1000,;"
    "python,bzl,1,0.25,1000,;python,gyp,1,0.25,1000,;python,py,1,0.25,1000,;"
    "python,pyde,1,0.25,1000,;python,pyw,1,0.25,1000,;r,r,1,0.25,,;r,rd,1,0.25,1000,;"
    "r,rsx,1,0.25,1000,;racket,rkt,0,,,;racket,rktd,0,,,;racket,rktl,0,,,;"
    "racket,scrbl,1,0.25,1000,;restructuredtext,rest,0,,,;restructuredtext,rst,1,0.25,,;"
    "rmarkdown,rmd,1,0.25,,;ruby,builder,1,0.25,1000,;ruby,gemspec,1,0.25,1000,;"
    "ruby,jbuilder,1,0.25,1000,;ruby,podspec,1,0.25,1000,;ruby,rabl,1,0.25,1000,;"
    "ruby,rake,1,0.25,1000,;ruby,rb,1,0.25,1000,;ruby,rbw,1,0.25,1000,;ruby,ru,1,0.25,1000,;"
    "ruby,ruby,1,0.25,1000,;ruby,thor,1,0.25,1000,;rust,rs,1,0.25,1000,;sas,sas,1,,1000,;"
    "scala,sbt,1,0.25,1000,;scala,scala,1,0.25,1000,;scheme,scm,1,0.25,1000,0.25;"
    "scheme,sld,1,0.25,1000,0.25;scheme,sps,1,0.25,1000,0.25;shell,bash,1,0.25,1000,;"
    "shell,bats,1,0.25,1000,;shell,command,1,0.25,1000,;shell,ksh,1,0.25,1000,;"
    "shell,sh,1,0.25,1000,;shell,tmux,1,0.25,1000,;shell,tool,1,0.25,1000,;"
    "shell,zsh,1,0.25,1000,;smalltalk,st,1,0.25,1000,;solidity,sol,1,0.25,1000,;"
    "sparql,rq,1,0.25,1000,;sparql,sparql,1,0.25,1000,;sql,cql,1,0.25,1000,;"
    "sql,db2,1,0.25,1000,;sql,ddl,1,0.25,1000,;sql,pck,0,,,;sql,pkb,1,0.25,1000,;"
    "sql,pks,1,0.25,1000,;sql,plb,1,0.25,1000,;sql,pls,0,,,;sql,plsql,1,0.25,1000,;"
    "sql,prc,1,0.25,1000,0.25;sql,sql,1,0.25,,;sql,tab,0,,,;sql,udf,1,0.25,1000,;"
    "stan,stan,1,0.25,1000,;standard-ml,fun,1,0.25,1000,;standard-ml,sig,0,,,;"
    "standard-ml,sml,1,0.25,1000,;stata,ado,1,0.25,,;stata,do,1,0.25,,;"
    "stata,doh,1,0.25,1000,;stata,ihlp,0,,,;stata,mata,1,0.25,1000,;stata,matah,1,0.25,1000,;"
    "stata,sthlp,0,,,;systemverilog,sv,1,0.25,1000,0.25;systemverilog,svh,1,0.25,1000,;"
    "systemverilog,vh,1,0.25,1000,;tcl,adp,1,0.25,1000,;tcl,tcl,1,0.25,1000,;"
    "tcl,tm,1,0.25,1000,;tcsh,csh,1,0.25,1000,;tcsh,tcsh,1,0.25,1000,;tex,aux,0,,,;"
    "tex,bbx,1,0.25,,;tex,bib,1,0.25,,;tex,cbx,1,0.25,,;tex,dtx,1,0.25,,;tex,ins,1,0.25,,;"
    "tex,lbx,1,0.25,,;tex,ltx,0,,,;tex,mkii,1,0.25,,;tex,mkiv,1,0.25,,;tex,mkvi,1,0.25,,;"
    "tex,sty,1,0.25,,;tex,tex,1,0.25,,;tex,toc,0,,,;thrift,thrift,1,0.25,1000,;"
    "typescript,ts,1,0.25,1000,;typescript,tsx,1,0.25,1000,;verilog,veo,1,0.25,1000,;"
    "vhdl,vhd,1,0.25,1000,0.25;vhdl,vhdl,1,0.25,1000,;vhdl,vhf,0,,,;vhdl,vhi,1,0.25,1000,;"
    "vhdl,vho,1,0.25,1000,;vhdl,vht,0,,,;vhdl,vhw,1,0.25,1000,;"
    "visual-basic,bas,1,0.25,1000,0.25;visual-basic,frm,1,,,;visual-basic,frx,0,,,;"
    "visual-basic,vb,1,0.25,1000,;visual-basic,vba,1,0.25,1000,;"
    "visual-basic,vbhtml,1,0.25,1000,;visual-basic,vbs,1,0.25,1000,;xslt,xsl,1,0.25,1000,;"
    "xslt,xslt,1,0.25,1000,;yacc,y,1,0.25,1000,0.25;yacc,yacc,1,0.25,1000,;yacc,yy,0,,,;"
    "zig,zig,1,0.25,1000,;json,json,1,0.25,,0.5;yaml,yaml,1,0.25,1000,0.5;"
    "yaml,yml,1,0.25,1000,0.5;"
)


def _number(value: str, kind):
    try:
        return kind(value)
    except ValueError:
        return None


def _built_in() -> dict[tuple[str, str], ExtensionRule]:
    rules = {}
    for row in _TABLE.split(";"):
        if not row:
            continue
        language, extension, include, alphanum, long_line, alpha = row.split(",")
        rules[(language, extension)] = ExtensionRule(
            include == "1", _number(alphanum, float), _number(long_line, int), _number(alpha, float)
        )
    return rules


EXTENSION_RULES: dict[tuple[str, str], ExtensionRule] = _built_in()


def read_rules_csv(path: str | os.PathLike) -> dict[tuple[str, str], ExtensionRule]:
    """Rules from a CSV file in NeMo Curator's `code_meta.csv` format (columns `language`,
    `extension`, `Include`, `Alphanum_threshold`, `Long_line_threshold`, `Alpha filter`;
    a cell that is not a number leaves that threshold out)."""
    rules = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = ["language", "extension", "Include", "Alphanum_threshold"]
        needed += ["Long_line_threshold", "Alpha filter"]
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (a code_meta.csv has {needed})")
        for row in reader:
            rules[(row["language"], row["extension"])] = ExtensionRule(
                row["Include"] == "1",
                _number(row["Alphanum_threshold"], float),
                _number(row["Long_line_threshold"], int),
                _number(row["Alpha filter"], float),
            )
    return rules
