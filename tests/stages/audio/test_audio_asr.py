"""Whisper ASR on tiny random Whisper models saved as an openai-whisper checkpoint and as a
Hugging Face folder (the same weights), loaded by path through the stage. A random model
writes gibberish: these tests pin down the plumbing (columns, nulls, windows, batching,
determinism, limits, errors), not the words."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from tiny_whisper import tiny_hf_whisper, tiny_openai_whisper

from stages.audio.asr import InferenceAsrWhisperStage, windows

torch.set_num_threads(1)
RATE = 16000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_openai_whisper(tmp_path_factory.mktemp("whisper") / "tiny.pt")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, checkpoint):
    return tiny_hf_whisper(tmp_path_factory.mktemp("whisper-hf") / "tiny", checkpoint)


def _sounds(seconds: float = 4.0) -> list[np.ndarray]:
    """Different sounds: noise, two tones, a square wave."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(0).normal(0, 0.1, t.size)
    sounds = [
        noise,
        0.3 * np.sin(2 * np.pi * 440 * t),
        0.3 * np.sin(2 * np.pi * 1500 * t),
        0.3 * np.sign(np.sin(2 * np.pi * 200 * t)),
    ]
    return [s.astype(np.float32) for s in sounds]


def _rows(sounds: list, rate: int = RATE) -> pa.Table:
    pcm = [s.astype("<f4").tobytes() if isinstance(s, np.ndarray) else s for s in sounds]
    return pa.table(
        {
            "id": [f"r{i}" for i in range(len(sounds))],
            "pcm": pa.array(pcm, pa.large_binary()),
            "pcm_rate": pa.array([rate] * len(sounds), pa.int32()),
            "text": ["reference"] * len(sounds),
        }
    )


def test_checkpoint_file_adds_pred_text_and_asr_language(checkpoint):
    stage = InferenceAsrWhisperStage(checkpoint, max_new_tokens=6)
    out = stage(_rows(_sounds()))
    assert out.column_names == ["id", "pcm", "pcm_rate", "text", "pred_text", "asr_language"]
    assert out.schema.field("pred_text").type == pa.string()
    assert out.column("id").to_pylist() == ["r0", "r1", "r2", "r3"]
    texts = out.column("pred_text").to_pylist()
    assert all(isinstance(t, str) and t == t.strip() and t for t in texts)
    assert len(set(texts)) > 1  # what it writes depends on what it hears
    assert all(isinstance(c, str) for c in out.column("asr_language").to_pylist())
    assert stage.device == "cpu"


def test_transformers_folder_decodes_the_same_weights_to_the_same_text(checkpoint, hf_folder):
    sounds = _sounds()
    for beam_size in (None, 2):
        openai = InferenceAsrWhisperStage(checkpoint, max_new_tokens=5, beam_size=beam_size)
        hf = InferenceAsrWhisperStage(hf_folder, max_new_tokens=5, beam_size=beam_size)
        assert openai.transcribe(sounds) == hf.transcribe(sounds)


@pytest.mark.parametrize("backend", ["openai", "transformers"])
def test_a_batch_of_three_gives_what_one_by_one_gives(backend, checkpoint, hf_folder):
    model = checkpoint if backend == "openai" else hf_folder
    rows = _rows(_sounds()[:3])
    together = InferenceAsrWhisperStage(model, max_new_tokens=5, batch_size=3)(rows)
    alone = InferenceAsrWhisperStage(model, max_new_tokens=5, batch_size=1)
    one_by_one = pa.concat_tables([alone(rows.slice(i, 1)) for i in range(3)])
    assert together.equals(one_by_one)


def test_transcripts_are_the_same_in_another_worker(checkpoint):
    sounds = _sounds()
    first = InferenceAsrWhisperStage(checkpoint, max_new_tokens=5).transcribe(sounds)
    again = InferenceAsrWhisperStage(checkpoint, max_new_tokens=5).transcribe(sounds[::-1])
    assert first == again[::-1]


def test_a_70_s_recording_is_three_30_s_windows_joined(checkpoint):
    long = np.random.default_rng(1).normal(0, 0.1, 70 * RATE).astype(np.float32)
    assert [w.size for w in windows(long)] == [30 * RATE, 30 * RATE, 10 * RATE]
    stage = InferenceAsrWhisperStage(checkpoint, language="en", max_new_tokens=4, batch_size=2)
    (whole,) = stage.transcribe([long])
    parts = stage.transcribe(windows(long))
    assert whole.windows == 3
    assert whole.tokens == [p.tokens[0] for p in parts]
    assert whole.text == " ".join(p.text for p in parts if p.text)


def test_a_recording_takes_the_language_detected_on_its_first_window(checkpoint):
    stage = InferenceAsrWhisperStage(checkpoint, max_new_tokens=2)
    sounds = _sounds(30.0)
    first = stage.transcribe(sounds)
    assert first[0].language != first[1].language
    (joined,) = stage.transcribe([np.concatenate([sounds[1], sounds[0]])])
    assert joined.language == first[1].language


def test_max_new_tokens_bounds_each_window(checkpoint, hf_folder):
    long = np.random.default_rng(2).normal(0, 0.1, 40 * RATE).astype(np.float32)
    for model in (checkpoint, hf_folder):
        stage = InferenceAsrWhisperStage(model, max_new_tokens=3)
        for transcript in stage.transcribe([*_sounds(), long]):
            assert transcript.tokens and all(len(t) <= 3 for t in transcript.tokens)
    with pytest.raises(ValueError, match="max_new_tokens"):
        InferenceAsrWhisperStage(checkpoint, max_new_tokens=1000)


def test_rows_without_audio_get_nulls_and_the_others_their_text(checkpoint):
    rows = _rows([_sounds()[0], None, b"", b"abc", _sounds()[1]])
    out = InferenceAsrWhisperStage(checkpoint, max_new_tokens=3)(rows)
    texts = out.column("pred_text").to_pylist()
    assert texts[1:4] == [None, None, None]
    assert out.column("asr_language").to_pylist()[1:4] == [None, None, None]
    assert isinstance(texts[0], str) and isinstance(texts[4], str)
    empty = InferenceAsrWhisperStage(checkpoint)(_rows([]))
    assert empty.num_rows == 0 and "pred_text" in empty.column_names


def test_a_model_that_writes_no_text_gives_an_empty_string_not_null(tmp_path):
    silent = tiny_openai_whisper(tmp_path / "silent.pt", writes_text=False)
    out = InferenceAsrWhisperStage(silent, max_new_tokens=4)(_rows(_sounds()[:2]))
    assert out.column("pred_text").to_pylist() == ["", ""]


def test_language_given_by_name_or_code_is_used_for_every_row(checkpoint):
    out = InferenceAsrWhisperStage(checkpoint, language="English", max_new_tokens=2)(
        _rows(_sounds())
    )
    assert out.column("asr_language").to_pylist() == ["en"] * 4
    with pytest.raises(ValueError, match="klingon"):
        InferenceAsrWhisperStage(checkpoint, language="klingon").setup()


def test_an_english_only_model_transcribes_english(tmp_path):
    english = tiny_openai_whisper(tmp_path / "tiny.en.pt", multilingual=False)
    stage = InferenceAsrWhisperStage(english, max_new_tokens=3)
    out = stage(_rows(_sounds()[:2]))
    assert out.column("asr_language").to_pylist() == ["en", "en"]
    for transcript in stage.transcribe(_sounds()[:2]):
        assert all(t < 50256 for t in transcript.tokens[0])  # text tokens only
    with pytest.raises(ValueError, match="English-only"):
        InferenceAsrWhisperStage(english, language="de").setup()


def test_audio_at_another_rate_is_resampled_to_16_khz(checkpoint):
    stage = InferenceAsrWhisperStage(checkpoint, max_new_tokens=3)
    t = np.arange(4 * 8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = stage(_rows([tone], rate=8000))
    assert isinstance(out.column("pred_text")[0].as_py(), str)


def test_a_wrong_model_path_is_named_in_the_error(tmp_path):
    missing = str(tmp_path / "no-such-model.pt")
    with pytest.raises(FileNotFoundError, match="no-such-model.pt"):
        InferenceAsrWhisperStage(missing)
    with pytest.raises(FileNotFoundError, match="without config.json"):
        InferenceAsrWhisperStage(str(tmp_path))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        InferenceAsrWhisperStage(str(junk)).setup()
