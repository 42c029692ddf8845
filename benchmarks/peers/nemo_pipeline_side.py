"""The NeMo Curator side of `benchmarks/text_pipeline.py`: runs in NeMo Curator's own venv.

Builds NeMo Curator's own `Pipeline` doing the work of our default `curate text`, as its
tutorials do: `JsonlReader` -> `Modify(UnicodeReformatter())` -> one `ScoreFilter` per
filter of the English heuristic recipe (given as JSON, `[class name, kwargs]` in the yaml's
order, the mapping `benchmarks/nemo_side.py` already uses) -> `ParquetWriter`, run by
`Pipeline.run()` with its default executor (Xenna, which starts Ray) in batch mode: its
streaming mode wants a CPU per stage and refuses to start on a small machine. NeMo's exact dedup
(`ExactDeduplicationWorkflow`) imports cuDF and runs on GPUs only, so it is not part of
this side. Prints one JSON object: documents written, wall seconds of `run()`, and the
seconds before it (imports and building the pipeline).

    python benchmarks/peers/nemo_pipeline_side.py --input docs.jsonl.gz --recipe recipe.json \
        --output out_dir
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()

NEMO_FILTER_MODULES = (
    "nemo_curator.stages.text.filters.heuristic.string",
    "nemo_curator.stages.text.filters.heuristic.repetition",
)


def build_pipeline(input_path: str, recipe: list[list[Any]], output: str) -> Any:
    import importlib

    from nemo_curator.pipeline import Pipeline
    from nemo_curator.stages.text.filters.score_filter import ScoreFilter
    from nemo_curator.stages.text.io.reader import JsonlReader
    from nemo_curator.stages.text.io.writer import ParquetWriter
    from nemo_curator.stages.text.modifiers import Modify
    from nemo_curator.stages.text.modifiers.unicode import UnicodeReformatter

    modules = [importlib.import_module(name) for name in NEMO_FILTER_MODULES]
    pipeline = Pipeline(name="curate_text_equivalent")
    # .jsonl.gz: NeMo's default extensions (.jsonl, .json) would find no file
    reader = JsonlReader(file_paths=input_path, fields=["id", "text"], file_extensions=[".gz"])
    pipeline.add_stage(reader)
    pipeline.add_stage(Modify(UnicodeReformatter(), input_fields="text"))
    for class_name, kwargs in recipe:
        cls = next((getattr(m, class_name) for m in modules if hasattr(m, class_name)), None)
        if cls is None:
            raise ImportError(f"NeMo Curator has no filter {class_name!r} in {NEMO_FILTER_MODULES}")
        pipeline.add_stage(ScoreFilter(cls(**kwargs), text_field="text"))
    pipeline.add_stage(ParquetWriter(path=output))
    return pipeline


def executor(mode: str) -> Any:
    """NeMo's default executor (Xenna); `mode="batch"` is what its error message advises when
    the machine has fewer CPUs than the streaming mode's one per stage (here: 31.5 needed)."""
    from nemo_curator.backends.xenna import XennaExecutor

    return XennaExecutor(config={"execution_mode": mode})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="JSONL (.jsonl.gz) of id and text")
    parser.add_argument("--recipe", required=True, help="JSON list of [class name, kwargs]")
    parser.add_argument("--output", required=True, help="folder for the Parquet output")
    parser.add_argument("--execution-mode", choices=["streaming", "batch"], default="batch")
    args = parser.parse_args(argv)
    with open(args.recipe) as f:
        recipe = json.load(f)

    from importlib.metadata import version

    import pyarrow.parquet as pq

    pipeline = build_pipeline(args.input, recipe, args.output)
    t_run = time.perf_counter()
    pipeline.run(executor=executor(args.execution_mode))
    run_s = time.perf_counter() - t_run
    files = sorted(Path(args.output).rglob("*.parquet"))
    written = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
    result = {
        # the installed wheel's version: `nemo_curator.__version__` appends the git hash of
        # the working directory's repository (ours), not its own
        "engine": f"nemo_curator {version('nemo-curator')}",
        "stages": len(pipeline.stages),
        "documents_out": written,
        "output_files": len(files),
        "before_run_s": t_run - T0,
        "run_s": run_s,
        "execution_mode": args.execution_mode,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
