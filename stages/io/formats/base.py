"""What a reader format declares: its name, the file extensions it claims, how its files
become shards, and how a shard becomes Arrow tables."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from stages.io.read import ShardReader
    from stages.io.rows import ReadResult
    from stages.io.shards import Shard


class Format:
    """One input format. Subclasses set the class attributes and implement `read`.

    - `name`: the value of `Shard.format` and of `plan_shards(format=...)`.
    - `extensions`: lower-case file name endings the format claims (`.jsonl.gz`); a folder
      or glob given with this format picks only these files.
    - `detected`: whether `plan_shards` picks this format from the extension when no
      format is given (False for formats that share extensions with another or that a
      user must ask for: NeMo manifests are JSONL, media files are read only on request).
    - `splittable`: a line-based file larger than the shard size is split into ranges at
      line starts (byte ranges of a plain file, of the decompressed stream of a gzip or
      zstd one; `stages.io.shards`).
    - `groups_files`: many small files make one shard (`Shard.members`).
    """

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()
    detected: ClassVar[bool] = True
    splittable: ClassVar[bool] = False
    groups_files: ClassVar[bool] = False

    def read(self, shard: Shard, reader: ShardReader) -> Iterator[ReadResult]:
        """The shard's rows and quarantine records, in input order, in pieces of about
        `reader.batch_bytes` of input."""
        raise NotImplementedError

    @classmethod
    def claims(cls, name: str) -> bool:
        """Whether a file name ends with one of the format's extensions."""
        return name.lower().endswith(cls.extensions)


def compression_of(name: str) -> str | None:
    """`gzip`, `zstd` or None, from a file name's last extension."""
    lower = name.lower()
    if lower.endswith((".gz", ".tgz")):
        return "gzip"
    if lower.endswith(".zst"):
        return "zstd"
    return None


def one_required_field(shard, reader) -> None:
    """Formats of named fields (JSONL, Parquet, manifests) take one `required_field`;
    alternatives (`"jpg;png"`) name WebDataset members."""
    if len(reader.required_fields) > 1:
        raise ValueError(
            f"{shard.uri}: required_field {reader.required_field!r}: alternatives apply to "
            f"WebDataset members only; a {shard.format} shard takes one field name"
        )
