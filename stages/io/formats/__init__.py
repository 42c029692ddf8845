"""The registry of input formats: name -> `Format` class.

| name         | files                                 | one row per   | chosen          |
|--------------|---------------------------------------|---------------|-----------------|
| `jsonl`      | .jsonl .json .ndjson (+ .gz, .zst)    | line          | by extension    |
| `parquet`    | .parquet                              | row           | by extension    |
| `webdataset` | .tar .tar.gz .tgz                     | sample (key)  | by extension    |
| `files`      | images, audio, video                  | file          | `format=` only  |
| `manifest`   | NeMo JSONL manifests                  | line (a file) | `format=` only  |
| `wikipedia`  | MediaWiki XML dumps .xml .xml.bz2     | article       | `format=` only  |
| `arxiv`      | arXiv bulk source tarballs .tar(.gz)  | paper         | `format=` only  |
| `warc`       | .warc .warc.gz (Common Crawl)         | HTML response | by extension    |

A new format is a `Format` subclass decorated with `@register_format`.
"""

from __future__ import annotations

from stages.io.formats.arxiv import ArxivFormat
from stages.io.formats.base import Format, compression_of
from stages.io.formats.files import FilesFormat
from stages.io.formats.jsonl import JsonlFormat
from stages.io.formats.manifest import ManifestFormat
from stages.io.formats.parquet import ParquetFormat
from stages.io.formats.warc import WarcFormat
from stages.io.formats.webdataset import WebDatasetFormat
from stages.io.formats.wikipedia import WikipediaFormat

FORMATS: dict[str, type[Format]] = {}


def register_format(cls: type[Format]) -> type[Format]:
    """Add a format to the registry (usable as a class decorator)."""
    FORMATS[cls.name] = cls
    return cls


for _cls in (JsonlFormat, ParquetFormat, WebDatasetFormat, FilesFormat, ManifestFormat):
    register_format(_cls)
register_format(WikipediaFormat)
register_format(ArxivFormat)
register_format(WarcFormat)


def get_format(name: str) -> Format:
    """An instance of the format called `name`; ValueError naming the known ones if none."""
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown format {name!r} (known: {', '.join(FORMATS)})") from None


def format_of(name: str) -> str | None:
    """The detected format claiming a file name (the longest matching extension), or None."""
    lower = name.lower()
    best, best_len = None, 0
    for cls in FORMATS.values():
        if not cls.detected:
            continue
        for ext in cls.extensions:
            if len(ext) > best_len and lower.endswith(ext):
                best, best_len = cls.name, len(ext)
    return best


__all__ = ["FORMATS", "Format", "compression_of", "format_of", "get_format", "register_format"]
