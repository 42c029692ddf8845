from stages.text.filters.repeated_lines import RepeatedLinesFilter  # noqa: F401
from stages.text.filters.repeated_lines_by_char import RepeatedLinesByCharFilter  # noqa: F401
from stages.text.filters.repeated_paragraphs import RepeatedParagraphsFilter  # noqa: F401
from stages.text.filters.repeated_paragraphs_by_char import (  # noqa: F401
    RepeatedParagraphsByCharFilter,
)
from stages.text.filters.repeating_duplicate_ngrams import (  # noqa: F401
    RepeatingDuplicateNGramsFilter,
)
from stages.text.filters.repeating_top_ngrams import RepeatingTopNGramsFilter  # noqa: F401
