"""The interface every dataset writer implements, and what they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa

from stages.io.fs import join, write_bytes_atomic

if TYPE_CHECKING:
    from stages.io.commit import VersionWriter


class DatasetWriter(ABC):
    """Writes one shard's rows as data files of a dataset version.

    A writer only writes files; the caller records them with `VersionWriter.commit_shard`
    (the shard's marker comes after its files, the manifest after every marker).
    """

    name: ClassVar[str]

    @abstractmethod
    def write_shard(self, version: VersionWriter, shard, table: pa.Table) -> list[dict]:
        """Write one shard's rows into the version; return the file entries
        (`{"path": relative path, "rows": n, "bytes": b}`) for `VersionWriter.commit_shard`.

        `shard` is a `stages.io.shards.Shard` (its `key` names the files). Columns whose
        name starts with `_` are never written.
        """


def is_binary(data_type: pa.DataType) -> bool:
    """True for Arrow's binary types (encoded media travels as these)."""
    return (
        pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_fixed_size_binary(data_type)
        or pa.types.is_binary_view(data_type)
    )


def write_file(version: VersionWriter, path: str, data: bytes) -> int:
    """Write `data` atomically at `path` (relative to the version); returns its size."""
    return write_bytes_atomic(join(version.uri, path), data, version.storage_options)
