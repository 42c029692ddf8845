"""The stage catalog: every stage listed from the code, and the README's table in step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from stages.base import Filter, Resources, Stage
from stages.catalog import (
    BUNDLED,
    CPU,
    GPU,
    LOCAL,
    MARKERS,
    NO_MODEL,
    NONE,
    SERVED,
    Catalog,
    _optional_missing,
    catalog,
    describe,
    docstring_equivalents,
    main,
    markdown_table,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WRITE = ".venv/bin/python -m stages.catalog --write README.md"


@pytest.fixture(scope="module")
def rows() -> Catalog:
    return catalog()


@pytest.fixture(scope="module")
def by_name(rows) -> dict[str, dict]:
    return {row["name"]: row for row in rows}


def test_readme_table_is_the_generated_one(rows):
    from stages.catalog import current_table

    written = current_table(README.read_text(encoding="utf-8"), "README.md")
    assert written == markdown_table(rows), f"the README's stage table is stale: run `{WRITE}`"


def test_no_stage_module_is_skipped_in_this_environment(rows):
    assert rows.skipped == []


def test_catalog_imports_neither_ray_nor_prefect():
    code = (
        "import sys\n"
        "from stages.catalog import catalog, markdown_table\n"
        "markdown_table(catalog())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'prefect')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_known_stages_have_their_fields(by_name):
    word_count = by_name["WordCountFilter"]
    assert word_count["module"] == "stages.text.filters.word_count"
    assert word_count["path"] == "stages/text/filters/word_count.py"
    assert (word_count["modality"], word_count["kind"]) == ("text", "filter")
    assert (word_count["device"], word_count["model"]) == (CPU, NO_MODEL)
    assert word_count["nemo"] == ["WordCountFilter"] and word_count["datatrove"] == []
    assert word_count["equivalent"] == "NeMo Curator's `WordCountFilter`"

    assert by_name["LanguageFilter"]["model"] == BUNDLED  # py3langid's model, in its wheel
    assert by_name["VADSegmentationStage"]["model"] == BUNDLED  # silero-vad
    assert by_name["NudeNetNSFWFilterStage"]["model"] == BUNDLED
    assert by_name["TextEmbedder"]["device"] == GPU
    assert by_name["TextEmbedder"]["modality"] == "dedup"
    assert by_name["FastTextQualityFilter"]["model"] == LOCAL  # takes model_path
    assert by_name["FastTextQualityFilter"]["device"] == CPU
    assert (by_name["QualityClassifier"]["model"], by_name["QualityClassifier"]["device"]) == (
        LOCAL,
        GPU,
    )
    assert by_name["ImageAestheticFilterStage"]["device"] == GPU  # its head picks CUDA
    assert by_name["CaptionGenerationStage"]["model"] == SERVED
    assert by_name["FixedStrideExtractorStage"]["model"] == NO_MODEL
    assert by_name["FixedStrideExtractorStage"]["device"] == CPU


def test_kinds_and_modalities_come_from_the_base_class_and_the_package(by_name):
    assert (by_name["ImageDecoder"]["kind"], by_name["ImageDecoder"]["modality"]) == (
        "validator",
        "image",
    )
    assert by_name["VADSegmentationStage"]["kind"] == "splitter"
    assert by_name["VADSegmentationStage"]["modality"] == "audio"
    assert by_name["ClipTranscodingStage"]["kind"] == "stage"
    assert by_name["ClipTranscodingStage"]["modality"] == "video"


def test_equivalents_read_from_docstrings(by_name):
    assert by_name["GopherQualityFilter"]["datatrove"] == ["GopherQualityFilter"]
    assert by_name["GopherQualityFilter"]["nemo"] == []
    decont = by_name["TaskDecontamination"]
    assert decont["equivalent"] == (
        "NeMo Curator's `TaskDecontamination`; datatrove's `NGramsDecontFilter`"
    )
    assert by_name["SequenceClassifier"]["nemo"] == ["DistributedDataClassifier"]
    assert by_name["GetPairwiseWerStage"]["nemo"] == ["GetPairwiseWerStage"]  # "of that name"
    assert by_name["SilenceFilter"]["equivalent"] == NONE  # its module names it for another


def test_base_classes_and_helpers_are_not_listed(by_name):
    for name in ("Stage", "Filter", "Splitter", "Validator", "StageSequence", "FilterChain"):
        assert name not in by_name
    assert "DropColumns" not in by_name
    assert "EmbeddingHeadFilter" not in by_name  # its build_head only raises
    assert not [name for name in by_name if name.startswith("_")]


def test_table_is_sorted_by_modality_then_name(rows):
    table = markdown_table(list(reversed(rows))).splitlines()
    assert table[0] == "| Stage | Modality | Kind | Device | Model | NeMo Curator / datatrove |"
    modalities = [line.split(" | ")[1] for line in table[2:]]
    order = ["text", "image", "video", "audio", "dedup", "io", "any"]
    assert modalities == sorted(modalities, key=order.index)
    text_names = [line.split("`")[1] for line in table[2:] if " | text | " in line]
    assert text_names == sorted(text_names, key=str.lower)


def test_docstring_rules():
    found = docstring_equivalents(
        "Same rule as NeMo Curator's `A1Filter`; see also NeMo's `score_field` and "
        "`NEMO_THRESHOLD`. NeMo Curator does this with `GetStage` then `KeepStage(x=1)`. "
        "Words as datatrove's spaCy tokenizer cuts them (`word_tokens`). It is NeMo "
        "Curator's one two three four five six (`TooFarStage`)."
    )
    assert found == {"nemo": ["A1Filter", "GetStage", "KeepStage"], "datatrove": []}
    same = "Keyword arguments as NeMo Curator's stage of that name."
    assert docstring_equivalents(same, "MyStage") == {"nemo": ["MyStage"], "datatrove": []}
    own = docstring_equivalents("NeMo's `Helper`; in cut mode NeMo's `Mine`.", "Mine")
    assert own["nemo"] == ["Mine"]


class _Base(Filter):
    def keep(self, scores):
        return scores > 0


class ClaimedStage(Stage):
    """Shaped after NeMo Curator's `SomethingElse`."""

    nemo_equivalent: ClassVar[str] = "DeclaredStage"
    datatrove_equivalent: ClassVar[tuple[str, ...]] = ("One", "Two")

    def process(self, batch: pa.Table) -> pa.Table:
        return batch


class GpuByResources(Stage):
    resources: ClassVar[Resources] = Resources(gpus=0.5)

    def process(self, batch: pa.Table) -> pa.Table:
        return batch


class GpuByCuda(_Base):
    def __init__(self, model_path: str):
        self.model_path = model_path

    def setup(self) -> None:
        import torch

        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def score(self, batch: pa.Table) -> np.ndarray:
        return np.ones(batch.num_rows)


class BundledVad(Stage):
    def __init__(self, model_dir: str | None = None):
        self.model_dir = model_dir

    def setup(self) -> None:
        import silero_vad  # noqa: F401

    def process(self, batch: pa.Table) -> pa.Table:
        return batch


def test_rules_on_classes_defined_here():
    claimed = describe(ClaimedStage)
    assert claimed["nemo"] == ["DeclaredStage"] and claimed["datatrove"] == ["One", "Two"]
    assert claimed["equivalent"] == "NeMo Curator's `DeclaredStage`; datatrove's `One`, `Two`"
    assert (claimed["modality"], claimed["kind"], claimed["device"]) == ("any", "stage", CPU)
    assert describe(GpuByResources)["device"] == GPU
    by_cuda = describe(GpuByCuda)
    assert (by_cuda["device"], by_cuda["model"], by_cuda["kind"]) == (GPU, LOCAL, "filter")
    assert describe(BundledVad)["model"] == BUNDLED  # the model parameter is optional


def test_optional_package_missing_is_skipped_not_other_errors():
    assert _optional_missing(ModuleNotFoundError("no", name="silero_vad")) == "silero_vad"
    assert _optional_missing(ModuleNotFoundError("no", name="stages.text.gone")) is None
    assert _optional_missing(ImportError("cannot import name 'x'")) is None
    table = markdown_table(Catalog([], [("stages.audio.vad", "silero_vad")]))
    assert "`stages.audio.vad` (needs `silero_vad`)" in table


def test_write_and_check(tmp_path, capsys):
    start, end = MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{start}\nold table\n{end}\nafter\n")
    assert main(["--check", str(readme)]) == 1
    assert "-old table" in capsys.readouterr().out
    assert main(["--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(f"# Title\n\nbefore\n{start}\n| Stage |")
    assert text.endswith(f"|\n{end}\nafter\n")
    assert "old table" not in text
    assert main(["--check", str(readme)]) == 0
    assert main(["--write", str(readme)]) == 0 and readme.read_text() == text


def test_missing_markers_are_an_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    assert main(["--write", str(readme)]) == 2
    assert "stage-catalog:start" in capsys.readouterr().err
    assert readme.read_text() == "# no table here\n"
