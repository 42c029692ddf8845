from stages.text.filters.alpha import AlphaFilter  # noqa: F401
from stages.text.filters.boilerplate_string import BoilerPlateStringFilter  # noqa: F401
from stages.text.filters.bullets import BulletsFilter  # noqa: F401
from stages.text.filters.c4_quality import (
    C4LineRemover,  # noqa: F401
    C4QualityFilter,  # noqa: F401
)
from stages.text.filters.comment_to_code import (
    GeneralCommentToCodeFilter,  # noqa: F401
    PythonCommentToCodeFilter,  # noqa: F401
)
from stages.text.filters.common_english_words import CommonEnglishWordsFilter  # noqa: F401
from stages.text.filters.ellipsis import EllipsisFilter  # noqa: F401
from stages.text.filters.fineweb_quality import FineWebQualityFilter  # noqa: F401
from stages.text.filters.gopher_quality import GopherQualityFilter  # noqa: F401
from stages.text.filters.gopher_repetition import GopherRepetitionFilter  # noqa: F401
from stages.text.filters.histogram import HistogramFilter  # noqa: F401
from stages.text.filters.html_boilerplate import HTMLBoilerplateFilter  # noqa: F401
from stages.text.filters.lines_of_code import NumberOfLinesOfCodeFilter  # noqa: F401
from stages.text.filters.long_word import LongWordFilter  # noqa: F401
from stages.text.filters.mean_word_length import MeanWordLengthFilter  # noqa: F401
from stages.text.filters.non_alpha_numeric import NonAlphaNumericFilter  # noqa: F401
from stages.text.filters.numbers import NumbersFilter  # noqa: F401
from stages.text.filters.parentheses import ParenthesesFilter  # noqa: F401
from stages.text.filters.per_extension import PerExtensionFilter  # noqa: F401
from stages.text.filters.pornographic_urls import PornographicUrlsFilter  # noqa: F401
from stages.text.filters.punctuation import PunctuationFilter  # noqa: F401
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
from stages.text.filters.substring import SubstringFilter  # noqa: F401
from stages.text.filters.symbols_to_words import SymbolsToWordsFilter  # noqa: F401
from stages.text.filters.token_count import TokenCountFilter  # noqa: F401
from stages.text.filters.tokenizer_fertility import TokenizerFertilityFilter  # noqa: F401
from stages.text.filters.urls import UrlsFilter  # noqa: F401
from stages.text.filters.white_space import WhiteSpaceFilter  # noqa: F401
from stages.text.filters.word_count import WordCountFilter  # noqa: F401
from stages.text.filters.words_without_alphabets import WordsWithoutAlphabetsFilter  # noqa: F401
from stages.text.filters.xml_header import XMLHeaderFilter  # noqa: F401
