"""`XMLHeaderFilter`: drop "code" files that are XML under another extension."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.base import Filter, text_column

XML_HEADER = "<?xml version="


class XMLHeaderFilter(Filter):
    """1 when `<?xml version=` occurs within the first `char_prefix_search_length`
    characters of the text, else 0 (null texts: 0).

    Keep rule: `score != 1`. StarCoder's XML filter (Li et al. 2023: files with a wrong
    extension are often XML, recognised by their header); this matches NeMo Curator's
    `XMLHeaderFilter` and its default prefix of 100 characters.
    """

    def __init__(
        self,
        char_prefix_search_length: int = 100,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.char_prefix_search_length = char_prefix_search_length
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        texts = pc.fill_null(text_column(batch, self.text_field, self.stage_name), "")
        prefix = pc.utf8_slice_codeunits(texts, 0, max(self.char_prefix_search_length, 0))
        found = pc.match_substring(prefix, XML_HEADER)
        return found.to_numpy(zero_copy_only=False).astype(np.int64)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores != 1
