"""`BoilerPlateStringFilter`: drop documents whose paragraphs are mostly site boilerplate."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stages.base import Filter, text_column
from stages.text.filters.words import TextBytes

# Lower-case phrases that mark a paragraph as boilerplate (policy and cookie notices).
POLICY_PHRASES: tuple[str, ...] = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "privacy overview",
    "use of cookies",
    "use cookies",
    "privacy & cookies policy",
    "privacy and cookies policy",
    "this website uses cookies to improve your experience while you navigate through the "
    "website. out of these cookies, the cookies that are categorized as necessary are stored "
    "on your browser as they are essential for the working of basic functionalities of the "
    "website. we also use third-party cookies that help us analyze and understand how you use "
    "this website. these cookies will be stored in your browser only with your consent. you "
    "also have the option to opt-out of these cookies. but opting out of some of these "
    "cookies may have an effect on your browsing experience.",
    "necessary cookies are absolutely essential for the website to function properly. this "
    "category only includes cookies that ensures basic functionalities and security features "
    "of the website. these cookies do not store any personal information.",
    "any cookies that may not be particularly necessary for the website to function and is "
    "used specifically to collect user personal data via analytics, ads, other embedded "
    "contents are termed as non-necessary cookies. it is mandatory to procure user consent "
    "prior to running these cookies on your website.",
    "this site uses cookies, including for analytics, personalization, and advertising "
    "purposes. for more information or to change your cookie settings, click here.",
    "if you continue to browse this site without changing your cookie settings, you agree to "
    "this use. acceptread more",
)
LOREM_IPSUM = "lorem ipsum"


def _boilerplate_ratio(text: str) -> float:
    paragraphs = text.split("\n\n")
    hits = 0
    for paragraph in paragraphs:
        lowered = paragraph.strip().lower()
        if LOREM_IPSUM in lowered:
            return 1.0
        hits += any(phrase in lowered for phrase in POLICY_PHRASES)
    return hits / len(paragraphs)


class BoilerPlateStringFilter(Filter):
    """Share of the paragraphs (blocks separated by a blank line, `"\\n\\n"`) that contain a
    privacy, terms-of-use or cookie phrase, compared lower-cased; any "lorem ipsum" makes
    the score 1.0. An empty text is one empty paragraph and scores 0.0.

    Keep rule: `score <= max_boilerplate_string_ratio`. Adapted from C4's policy-line rule
    (Raffel et al. 2020); this matches NeMo Curator's `BoilerPlateStringFilter`, including
    its phrase list. `remove_if_at_top_or_bottom` is accepted for compatibility and, as
    there, does not change the score.
    """

    def __init__(
        self,
        remove_if_at_top_or_bottom: bool = True,
        max_boilerplate_string_ratio: float = 0.4,
        text_field: str = "text",
        keep_score: bool = False,
    ):
        self.remove_if_at_top_or_bottom = remove_if_at_top_or_bottom
        self.max_boilerplate_string_ratio = max_boilerplate_string_ratio
        self.text_field = text_field
        self.keep_score = keep_score

    def score(self, batch: pa.Table) -> np.ndarray:
        text = TextBytes.from_column(text_column(batch, self.text_field, self.stage_name))
        scores = np.zeros(text.num_rows, dtype=np.float64)
        # Most documents hold none of the phrases: find the few that do in one pass and
        # score those paragraph by paragraph.
        lowered = text.series.str.to_lowercase()
        candidates = lowered.str.contains_any([*POLICY_PHRASES, LOREM_IPSUM]).fill_null(False)
        rows = np.flatnonzero(candidates.to_numpy())
        if rows.size:
            texts = text.array.take(pa.array(rows)).to_pylist()
            scores[rows] = [_boilerplate_ratio(t) for t in texts]
        return scores

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.max_boilerplate_string_ratio
