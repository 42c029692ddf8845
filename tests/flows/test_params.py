"""Parameters and locations are checked before any work: paths with any character a
filesystem or S3 accepts, one version however a path is spelled, an output kept out of its
input, languages the detector knows, columns the input has, a bucket that exists, one line
per invalid option, and a run whose every row was bad is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from documents import english_documents
from pydantic import ValidationError

from flows.dedup import DEDUP, DedupParams, run_dedup
from flows.runtime import storage
from flows.runtime.builder import plan_run
from flows.text import TEXT, TextParams, curate_text, run_text
from stages.io.commit import VersionWriter, read_manifest

REPO = Path(__file__).resolve().parents[2]


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def _curate(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(cwd / "prefect-home")
    env["PYTHONPATH"] = str(REPO)
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"  # a busy machine is slow
    # Ray's socket paths must stay short (AF_UNIX limit): not under pytest's tmp_path.
    env["CURATE_RAY_TMPDIR"] = tempfile.mkdtemp(prefix="r", dir=os.environ["CURATE_RAY_TMPDIR"])
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("curate: error:")]


# --------------------------------------------------------------------------- 1. paths


ODD_NAMES = ["in put #1 %20 & 'q' [1]", "out [x]?", 'a"b<c>{d}|e\\f^g`h~i', "tab\there"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_asset_keys_of_any_path_pass_prefects_validator_and_stay_distinct(
    tmp_path, name, s3_endpoint
):
    from prefect.types.names import validate_valid_asset_key

    target = tmp_path / name
    target.mkdir()
    key = storage.asset_key(str(target))
    assert validate_valid_asset_key(key) == key
    assert key.startswith(f"file://{tmp_path}/")
    s3_key = storage.asset_key(f"s3://bucket/{name}", pattern=False)
    assert validate_valid_asset_key(s3_key) == s3_key
    # The escape character itself is escaped: two names never share a key.
    plain = "".join(c if c.isalnum() or c in "/._-" else "x" for c in name)
    assert storage.asset_key(f"s3://bucket/{plain}") != s3_key


def test_asset_key_of_a_glob_names_the_folder_and_a_long_path_is_shortened(tmp_path, s3_endpoint):
    from prefect.types.names import MAX_ASSET_KEY_LENGTH, validate_valid_asset_key

    assert storage.asset_key(f"{tmp_path}/raw/*.jsonl") == f"file://{tmp_path}/raw"
    assert storage.asset_key("s3://raw/cc/part-[0-9].jsonl") == "s3://raw/cc"
    long = "s3://bucket/" + "/".join(["a folder with a long name"] * 40)
    key = storage.asset_key(long, pattern=False)
    assert len(key) <= MAX_ASSET_KEY_LENGTH and validate_valid_asset_key(key) == key
    assert key != storage.asset_key(long + "x", pattern=False)


def test_a_folder_named_like_a_glob_is_read_as_that_folder(tmp_path):
    from stages.io.shards import plan_shards

    folder = tmp_path / "a [1]"
    _jsonl(folder / "docs.jsonl", ["one", "two"])
    _jsonl(tmp_path / "a1" / "other.jsonl", ["not me"])
    shards = plan_shards(str(folder))
    assert [s.uri for s in shards] == [str(folder / "docs.jsonl")]


@pytest.mark.parametrize(
    "input_name, output_name", [("in put #1 %20 & 'q'", "out [x]?"), ("a [1]", "b #2 %")]
)
def test_text_flow_commits_and_resumes_with_odd_characters_in_both_paths(
    tmp_path, prefect_harness, ray_cluster, input_name, output_name
):
    source = tmp_path / input_name
    _jsonl(source / "docs.jsonl", english_documents(6))
    output = tmp_path / output_name
    params = TextParams(input=str(source), output=str(output), dedup="none")

    first = curate_text(params)

    assert first["report"]["rows_written"] == 6
    manifest = read_manifest(str(output))
    assert manifest["rows"] == 6
    event = _asset_event(manifest["flow_run_id"])
    assert event["resource"]["prefect.resource.id"] == storage.asset_key(str(output))
    assert storage.asset_key(str(source)) in {r["prefect.resource.id"] for r in event["related"]}
    again = curate_text(params)
    assert again["already_committed"] and again["output"] == first["output"]


def _asset_event(run_id: str) -> dict:
    """The asset materialization event of a flow run (events reach the API later)."""
    import datetime as dt
    import time

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            now = dt.datetime.now(dt.UTC)
            window = {
                "since": (now - dt.timedelta(hours=1)).isoformat(),
                "until": (now + dt.timedelta(minutes=1)).isoformat(),
            }
            name = {"name": ["prefect.asset.materialization.succeeded"]}
            response = client.request(
                "POST", "/events/filter", json={"filter": {"occurred": window, "event": name}}
            )
            related = f"prefect.flow-run.{run_id}"
            for event in response.json()["events"]:
                if any(r["prefect.resource.id"] == related for r in event["related"]):
                    return event
            assert time.monotonic() < deadline, "no asset materialization recorded"
            time.sleep(1)


# --------------------------------------------------------------------------- 2. spelling


def test_version_does_not_depend_on_how_the_paths_are_spelled(tmp_path, monkeypatch):
    data = tmp_path / "work"
    _jsonl(data / "big" / "docs.jsonl", ["some text"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(data)
    spellings = [("big", "out"), ("./big/", "./out/"), (f"{data}/big/", f"{data}/out")]
    versions = {plan_run(TEXT, TextParams(input=i, output=o)).version for i, o in spellings}
    monkeypatch.chdir(tmp_path / "elsewhere")
    versions.add(plan_run(TEXT, TextParams(input="../work/big", output="../work/out")).version)
    assert len(versions) == 1


# --------------------------------------------------------------------------- 3. output in input


@pytest.mark.parametrize("output", ["data/curated", "data", "data/sub/deeper"])
def test_output_inside_the_input_folder_is_refused_before_any_work(tmp_path, output):
    _jsonl(tmp_path / "data" / "docs.jsonl", ["some text"])
    params = TextParams(input=str(tmp_path / "data"), output=str(tmp_path / output))
    with pytest.raises(ValueError, match="is inside the input folder") as error:
        plan_run(TEXT, params)
    assert str(tmp_path / output) in str(error.value)
    assert not (tmp_path / "data" / "curated").exists()


def test_output_inside_a_glob_that_would_match_its_files_is_refused(tmp_path):
    _jsonl(tmp_path / "data" / "docs.jsonl", ["some text"])
    refused = TextParams(input=f"{tmp_path}/data/**", output=f"{tmp_path}/data/out")
    with pytest.raises(ValueError, match="is inside the input folder"):
        plan_run(TEXT, refused)
    # `*.jsonl` never matches the Parquet files of a version folder: allowed.
    plan_run(TEXT, TextParams(input=f"{tmp_path}/data/*.jsonl", output=f"{tmp_path}/data/out"))


def test_output_inside_a_dataset_read_through_its_manifest_is_allowed(tmp_path):
    dataset = tmp_path / "curated"
    version = VersionWriter(str(dataset), "v1")
    entry = version.write_part("00000-0000", pa.table({"id": ["a"], "text": ["some text"]}))
    version.commit_shard("00000-0000", [entry], {})
    version.commit(inputs=[], parameters={}, code_version="test", flow_run_id=None)
    plan = plan_run(TEXT, TextParams(input=str(dataset), output=str(dataset / "deduped")))
    assert len(plan.shards) == 1


# --------------------------------------------------------------------------- 4. languages


CATALAN = (
    "El riu era ample i lent, i el vell pont cruixia sota el pes dels carros. Ella va obrir "
    "la finestra per deixar entrar l'aire del matí i va escoltar els ocells del jardí. El "
    "nostre equip va mesurar la temperatura de l'aigua cada hora durant tres dies seguits."
)


@pytest.mark.parametrize("code", ["xx", "english", "zz"])
def test_a_language_the_detector_cannot_produce_is_refused_when_the_parameters_are_made(code):
    with pytest.raises(ValidationError, match="languages") as error:
        TextParams(input="in", output="out", languages=["en", code])
    message = str(error.value)
    assert repr(code) in message and "'de'" in message  # names it and some valid codes


def test_language_codes_are_normalised_to_lower_case():
    assert TextParams(input="in", output="out", languages=["EN", " Ca "]).languages == ["en", "ca"]


def test_a_run_keeping_catalan_keeps_catalan_text(tmp_path, ray_cluster):
    source = _jsonl(tmp_path / "ca.jsonl", [CATALAN, english_documents(1)[0]])
    params = TextParams(
        input=str(source),
        output=str(tmp_path / "out"),
        languages=["ca"],
        filters="none",
        dedup="none",
    )
    summary = run_text(params)
    assert summary["report"]["rows_written"] == 1
    files = read_manifest(summary["output"])["files"]
    rows = pq.read_table(f"{summary['output']}/{files[0]['path']}").to_pylist()
    assert [r["text"][:10] for r in rows] == [CATALAN[:10]]


# --------------------------------------------------------------------------- 5. dedup columns


def _parquet(path: Path, columns: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
@pytest.mark.parametrize(
    "given, missing",
    [
        ({"column": "nosuchcol"}, "nosuchcol"),
        ({"keep": "score", "score_column": "nosuch"}, "nosuch"),
        ({"method": "exact", "column": "nosuchcol"}, "nosuchcol"),
    ],
)
def test_a_column_the_input_lacks_is_refused_at_planning(tmp_path, kind, given, missing):
    texts = ["one text", "another text"]
    if kind == "parquet":
        source = _parquet(tmp_path / "in" / "a.parquet", {"id": ["a", "b"], "text": texts})
    else:
        source = tmp_path / "in" / "a.jsonl"
        source.parent.mkdir()
        source.write_text(
            "\n" + "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
        )
    params = DedupParams(input=str(tmp_path / "in"), output=str(tmp_path / "out"), **given)
    with pytest.raises(ValueError, match=f"'{missing}'") as error:
        plan_run(DEDUP, params)
    assert str(source) in str(error.value)
    assert "\n" not in str(error.value)


def test_run_dedup_with_a_missing_column_raises_before_writing(tmp_path):
    _parquet(tmp_path / "in" / "a.parquet", {"id": ["a"], "text": ["one text"]})
    params = DedupParams(input=str(tmp_path / "in"), output=str(tmp_path / "out"), column="nope")
    with pytest.raises(ValueError, match="'nope'"):
        run_dedup(params)
    assert not (tmp_path / "out").exists()


def test_a_column_present_in_some_rows_of_a_jsonl_file_is_accepted(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "body": "x"}\n{"id": 2, "text": "y"}\n')
    plan_run(DEDUP, DedupParams(input=str(source), output=str(tmp_path / "out")))


def test_cli_dedup_of_a_missing_column_exits_non_zero_naming_column_and_file(tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", ["one text", "two texts"])
    result = _curate(
        "dedup", "--input", str(source), "--output", "out", "--column", "nosuchcol", cwd=tmp_path
    )
    assert result.returncode != 0, result.stdout + result.stderr
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "'nosuchcol'" in lines[0] and str(source) in lines[0]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 6. option errors


@pytest.mark.parametrize(
    "args, option",
    [
        (["text", "--shard-size-mb", "0"], "--shard-size-mb"),
        (["text", "--shard-size-mb", "inf"], "--shard-size-mb"),
        (["text", "--shard-size-mb", "nan"], "--shard-size-mb"),
        (["text", "--partitions", "0"], "--partitions"),
        (["text", "--languages", "en,xx"], "--languages"),
        (["dedup", "--threshold", "1.5"], "--threshold"),
        (["dedup", "--eps", "-1"], "--eps"),
        (["dedup", "--bands", "0"], "--bands"),
        (["dedup", "--num-bands", "0"], "--num-bands"),
    ],
)
def test_an_invalid_option_is_one_line_naming_it_before_any_work(tmp_path, args, option):
    source = _jsonl(tmp_path / "in.jsonl", ["some text"])
    command, *rest = args
    result = _curate(command, "--input", str(source), "--output", "out", *rest, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"curate: error: {option} {rest[-1]}:"), lines[0]
    assert "validation error" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_each_invalid_option_gets_its_own_line(tmp_path):
    result = _curate(
        "dedup", "--input", "x", "--output", "o", "--eps", "2", "--bands", "0", cwd=tmp_path
    )
    assert result.returncode == 2
    lines = _error_lines(result)
    assert [line.split()[2] for line in lines] == ["--bands", "--eps"] or [
        line.split()[2] for line in lines
    ] == ["--eps", "--bands"], lines


# --------------------------------------------------------------------------- 7. buckets


def test_a_missing_bucket_is_refused_unless_create_bucket_is_set(tmp_path, s3_endpoint):
    import s3fs

    source = _jsonl(tmp_path / "in.jsonl", ["some text"])
    output = "s3://typo-bukcet/out"
    with pytest.raises(ValueError, match="typo-bukcet") as error:
        plan_run(TEXT, TextParams(input=str(source), output=output))
    assert "create_bucket" in str(error.value)
    fs = s3fs.S3FileSystem(use_listings_cache=False)
    assert not fs.exists("typo-bukcet")

    plan_run(TEXT, TextParams(input=str(source), output=output, create_bucket=True))
    assert fs.exists("typo-bukcet")
    fs.rm("typo-bukcet", recursive=True)


def test_an_existing_bucket_needs_no_create_bucket(tmp_path, s3_bucket):
    source = _jsonl(tmp_path / "in.jsonl", ["some text"])
    plan_run(TEXT, TextParams(input=str(source), output=f"s3://{s3_bucket}/out"))


def test_create_bucket_and_allow_empty_do_not_change_the_version(tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", ["some text"])
    base = {"input": str(source), "output": str(tmp_path / "out")}
    versions = {
        plan_run(TEXT, TextParams(**base, **extra)).version
        for extra in ({}, {"create_bucket": True}, {"allow_empty": True})
    }
    assert len(versions) == 1


# --------------------------------------------------------------------------- 8. all bad


def test_a_run_whose_every_row_was_quarantined_exits_non_zero(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": 1, "text": "unterminated\n{"id": 2}\n[1, 2]\n')
    result = _curate("text", "--input", str(source), "--output", "out", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "no row was written" in lines[0] and "quarantined" in lines[0]
    assert "--allow-empty" in lines[0]

    allowed = _curate(
        "text", "--input", str(source), "--output", "out", "--allow-empty", cwd=tmp_path
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_the_prefect_run_of_an_all_bad_input_fails_after_publishing_the_quarantine(
    tmp_path, prefect_harness, ray_cluster
):
    from flows.runtime.builder import NothingWritten

    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": 1, "text": "unterminated\n[1, 2]\n')
    params = TextParams(input=str(source), output=str(tmp_path / "out"), dedup="none")

    state = curate_text(params, return_state=True)

    assert state.is_failed()
    with pytest.raises(NothingWritten, match="every input row \\(2\\) was quarantined"):
        state.result()
    manifest = read_manifest(str(tmp_path / "out"))  # committed: the quarantine says why
    assert manifest["rows"] == 0 and manifest["quarantined_rows"] == 2
    with pytest.raises(NothingWritten):  # the committed version fails a re-run the same way
        run_text(params)
    assert run_text(params.model_copy(update={"allow_empty": True}))["already_committed"]


def test_list_options_take_commas_and_repeats():
    from flows.cli import build_parser

    args = build_parser().parse_args(
        ["apply-thresholds", "--input", "a", "--output", "b",
         "--set", "WordCountFilter.min_words=80",
         "--set", "RepeatingTopNGramsFilter(n=2).max_repeating_ngram_ratio=0.15,"
                  "BulletsFilter.max_bullet_lines_ratio=0.5"]
    )  # fmt: skip
    assert args.param_set == [
        "WordCountFilter.min_words=80",
        "RepeatingTopNGramsFilter(n=2).max_repeating_ngram_ratio=0.15",
        "BulletsFilter.max_bullet_lines_ratio=0.5",
    ]
    args = build_parser().parse_args(["text", "--input", "a", "--output", "b", "--languages", "en"])
    assert args.param_languages == ["en"]
