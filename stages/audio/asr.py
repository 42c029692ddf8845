"""Speech recognition with Whisper (Radford et al., 2022, "Robust Speech Recognition via
Large-Scale Weak Supervision"), from a local checkpoint: an openai-whisper `.pt` file
(`tiny.pt` ... `large-v3.pt`, loaded by openai-whisper) or a Hugging Face Whisper folder
(openai/whisper-*, distil-whisper..., loaded by transformers). Nothing is downloaded.

`InferenceAsrWhisperStage` is NeMo Curator's `InferenceAsrNemoStage` with a Whisper model
in place of a NeMo one: same place in a pipeline, same `pred_text` output and keyword
names where they exist (`pred_text_key`, `batch_size`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from stages.audio.decode import resample
from stages.audio.vad import SAMPLE_RATE, mono_pcm
from stages.base import Resources, Stage

WINDOW = 30 * SAMPLE_RATE  # Whisper's input: 30 s, padded or cut


@dataclass(frozen=True)
class Transcript:
    """One recording's transcription: `text` (its windows' texts joined by a space,
    stripped; "" when the model wrote nothing), `language` (the code it was decoded in)
    and `tokens`, the text tokens decoded in each 30 s window."""

    text: str
    language: str
    tokens: list[list[int]]

    @property
    def windows(self) -> int:
        return len(self.tokens)


def windows(samples: np.ndarray) -> list[np.ndarray]:
    """16 kHz `samples` cut into consecutive 30 s windows (the last one shorter)."""
    return [samples[start : start + WINDOW] for start in range(0, samples.size, WINDOW)]


def language_code(language: str | None) -> str | None:
    """Whisper's code for `language` ("en", "EN", "English" -> "en"); ValueError naming
    the languages Whisper knows when it knows none of that name."""
    if language is None:
        return None
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    name = language.strip().lower()
    if name in LANGUAGES:
        return name
    if name in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[name]
    raise ValueError(f"language={language!r}: not a Whisper language (one of {sorted(LANGUAGES)})")


def checkpoint_kind(model_dir: str) -> Literal["openai", "transformers"]:
    """Which loader reads `model_dir`: "openai" for a checkpoint file, "transformers" for
    a folder with a Whisper `config.json`; FileNotFoundError naming the path otherwise."""
    if not model_dir or not os.path.exists(model_dir):
        raise FileNotFoundError(
            f"Whisper model: no such file or folder: {model_dir!r} (an openai-whisper .pt "
            "checkpoint file or a Hugging Face Whisper folder)"
        )
    if os.path.isfile(model_dir):
        return "openai"
    config = os.path.join(model_dir, "config.json")
    if not os.path.isfile(config):
        raise FileNotFoundError(
            f"Whisper model: {model_dir!r} is a folder without config.json (give an "
            "openai-whisper .pt file, or a Hugging Face Whisper folder as save_pretrained "
            "writes it)"
        )
    with open(config, encoding="utf-8") as f:
        kind = json.load(f).get("model_type")
    if kind != "whisper":
        raise FileNotFoundError(f"Whisper model: {config!r} describes a {kind!r} model")
    return "transformers"


class _OpenAIWhisper:
    """A checkpoint loaded by openai-whisper, decoded with its own `decode`."""

    def __init__(self, path: str, device: str, options: dict):
        import torch
        import whisper
        from whisper.tokenizer import get_tokenizer

        try:
            model = whisper.load_model(path, device=device)
        except Exception as error:  # noqa: BLE001  (a pickle, a truncated file, other dims)
            raise ValueError(f"{path}: not an openai-whisper checkpoint ({error})") from None
        self.torch, self.whisper, self.model = torch, whisper, model.eval()
        self.fp16 = device == "cuda"
        self.multilingual = model.is_multilingual
        self.tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
        self.languages = dict(
            zip(self.tokenizer.all_language_tokens, self.tokenizer.all_language_codes, strict=True)
        )
        self.options = options
        self.device = device

    def encode(self, chunk: list[np.ndarray]):
        whisper, torch = self.whisper, self.torch
        mel = torch.stack(
            [
                whisper.log_mel_spectrogram(
                    whisper.pad_or_trim(torch.tensor(w)), self.model.dims.n_mels
                )
                for w in chunk
            ]
        ).to(self.device)
        return self.model.encoder(mel.half() if self.fp16 else mel)

    def detect(self, features) -> list[str]:
        tokens, _ = self.whisper.decoding.detect_language(self.model, features, self.tokenizer)
        return [self.languages[int(t)] for t in tokens]

    def decode(self, features, language: str) -> list[list[int]]:
        options = self.whisper.DecodingOptions(
            task=self.options["task"],
            language=language,
            sample_len=self.options["max_new_tokens"],
            beam_size=self.options["beam_size"],
            without_timestamps=True,
            fp16=self.fp16,
        )
        if options.beam_size:
            # openai-whisper's beam search repeats the tokens, not the audio features, of a
            # batch: it only runs one window at a time.
            results = [self.whisper.decode(self.model, f[None], options)[0] for f in features]
        else:
            results = self.whisper.decode(self.model, features, options)
        # Text tokens are those below the end-of-text token (50257, or 50256 in the
        # English-only vocabulary); timestamps and other special tokens come after it.
        return [[t for t in r.tokens if t < self.tokenizer.eot] for r in results]

    def text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens).strip()


class _HFWhisper:
    """A Hugging Face Whisper folder loaded by transformers, decoded with `generate`."""

    def __init__(self, folder: str, device: str, options: dict):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor
        from transformers.modeling_outputs import BaseModelOutput
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        dtype = torch.float16 if device == "cuda" else torch.float32
        model = WhisperForConditionalGeneration.from_pretrained(
            folder, local_files_only=True, dtype=dtype
        )
        self.processor = WhisperProcessor.from_pretrained(folder, local_files_only=True)
        self.torch, self.outputs = torch, BaseModelOutput
        self.model = model.to(device).eval()
        self.dtype, self.device, self.options = dtype, device, options
        generation = self.model.generation_config
        lang_to_id = getattr(generation, "lang_to_id", None) or {}
        self.multilingual = bool(getattr(generation, "is_multilingual", False) and lang_to_id)
        self.languages = {i: token.strip("<|>") for token, i in lang_to_id.items()}
        eot = generation.eos_token_id
        self.eot = min(eot) if isinstance(eot, list) else eot

    def encode(self, chunk: list[np.ndarray]):
        features = self.processor.feature_extractor(
            chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        features = features.to(self.device, self.dtype)
        return self.model.get_encoder()(features).last_hidden_state

    def detect(self, features) -> list[str]:
        ids = self.model.detect_language(encoder_outputs=self.outputs(last_hidden_state=features))
        return [self.languages[int(i)] for i in ids]

    def decode(self, features, language: str) -> list[list[int]]:
        kwargs = {"language": language, "task": self.options["task"]} if self.multilingual else {}
        sequences = self.model.generate(
            encoder_outputs=self.outputs(last_hidden_state=features),
            num_beams=self.options["beam_size"] or 1,
            do_sample=False,
            max_new_tokens=self.options["max_new_tokens"],
            return_timestamps=False,
            **kwargs,
        )
        if not isinstance(sequences, self.torch.Tensor):
            sequences = sequences["sequences"]
        # The prompt (start, language, task, no-timestamps), the end token and padding are
        # special tokens, all at or above the end token; what is left is the text.
        return [[t for t in row if t < self.eot] for row in sequences.tolist()]

    def text(self, tokens: list[int]) -> str:
        return self.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()


class InferenceAsrWhisperStage(Stage):
    """Adds `pred_text_key` (`pred_text`, string): the transcript Whisper writes for each
    row's audio (`pcm` at `pcm_rate`, channels averaged, resampled to 16 kHz), and
    `language_key` (`asr_language`): the language code it was decoded in, `language` when
    given, else the one Whisper detects on the recording's first 30 s (as
    `whisper.transcribe` does). English-only models decode in "en".

    A recording is cut into consecutive 30 s windows (Whisper's input; the last one is
    padded), each window is decoded without timestamps, and the texts are joined by a
    space: a 70 s recording is 3 windows. Decoding is greedy, or beam search with
    `beam_size`, at temperature 0 with no temperature fallback; at most `max_new_tokens`
    tokens per window (224, Whisper's own limit: half its 448-token context). Words that
    straddle a window boundary may be cut; segment long recordings with
    `VADSegmentationStage(max_duration_sec=30)` first to avoid it.

    A row without decodable audio gets nulls; a model that writes nothing (or only
    spaces) gives "".

    - `model_dir`: an openai-whisper checkpoint file (`.pt`, as `whisper.load_model`
      reads it) or a Hugging Face Whisper folder (`config.json`, weights, the processor);
      FileNotFoundError naming it at construction when it is neither.
    - `language`: a code or name ("en", "English"); None detects it per recording.
    - `task`: "transcribe", or "translate" (to English).
    - `batch_size`: rows per call, and 30 s windows per forward pass (NeMo's 16).
    - `cpus`, `gpus`: what each worker asks for; the model runs on CUDA whenever the
      worker sees a GPU (in float16), on CPU otherwise (float32).
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)

    def __init__(
        self,
        model_dir: str,
        language: str | None = None,
        task: Literal["transcribe", "translate"] = "transcribe",
        batch_size: int = 16,
        beam_size: int | None = None,
        max_new_tokens: int = 224,
        pred_text_key: str = "pred_text",
        language_key: str = "asr_language",
        cpus: float = 1.0,
        gpus: float = 0.0,
    ):
        self.kind = checkpoint_kind(model_dir)
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task={task!r}: expected 'transcribe' or 'translate'")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        if beam_size is not None and beam_size < 1:
            raise ValueError(f"beam_size={beam_size}: must be at least 1 (or None: greedy)")
        if not 1 <= max_new_tokens <= 440:
            raise ValueError(
                f"max_new_tokens={max_new_tokens}: must be in [1, 440] (Whisper's context "
                "is 448 tokens, the prompt included)"
            )
        if not pred_text_key or pred_text_key == language_key:
            raise ValueError(f"pred_text_key={pred_text_key!r}, language_key={language_key!r}")
        self.model_dir = model_dir
        self.language = language
        self.task = task
        self.batch_size = batch_size
        self.beam_size = None if beam_size == 1 else beam_size
        self.max_new_tokens = max_new_tokens
        self.pred_text_key = pred_text_key
        self.language_key = language_key
        if (cpus, gpus) != (type(self).resources.cpus, type(self).resources.gpus):
            self.resources = Resources(cpus=cpus, gpus=gpus)
        self._model: _OpenAIWhisper | _HFWhisper | None = None
        self._language: str | None = None

    def setup(self) -> None:
        if self._model is not None:
            return
        # Models come from local paths only; never reach for the Hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        torch.set_num_threads(max(1, int(self.resources.cpus)))
        code = language_code(self.language)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        options = {
            "task": self.task,
            "beam_size": self.beam_size,
            "max_new_tokens": self.max_new_tokens,
        }
        loader = _OpenAIWhisper if self.kind == "openai" else _HFWhisper
        model = loader(self.model_dir, device, options)
        if not model.multilingual and (code not in (None, "en") or self.task != "transcribe"):
            raise ValueError(
                f"{self.model_dir}: an English-only Whisper model transcribes English only "
                f"(language={self.language!r}, task={self.task!r})"
            )
        self._language = code if model.multilingual else "en"
        self._model = model

    @property
    def device(self) -> str:
        """Where the model runs ("cuda" or "cpu"), after `setup`."""
        self.setup()
        return self._model.device

    def transcribe(self, audio: list[np.ndarray | None]) -> list[Transcript | None]:
        """The transcripts of 16 kHz float32 recordings (None where there is none)."""
        self.setup()
        model = self._model
        pending = [  # (recording, window number, samples), recording by recording
            (r, k, w)
            for r, samples in enumerate(audio)
            if samples is not None and samples.size
            for k, w in enumerate(windows(samples))
        ]
        languages: dict[int, str] = {}
        tokens: dict[int, list[list[int]]] = {}
        with model.torch.inference_mode():
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                features = model.encode([w for _, _, w in chunk])
                # A recording's first window is in this chunk or an earlier one.
                first = [i for i, (r, k, _) in enumerate(chunk) if k == 0]
                if self._language is None and first:
                    found = model.detect(features[first])
                    languages |= {chunk[i][0]: code for i, code in zip(first, found, strict=True)}
                elif self._language is not None:
                    languages |= {chunk[i][0]: self._language for i in first}
                for code in sorted({languages[r] for r, _, _ in chunk}):
                    rows = [i for i, (r, _, _) in enumerate(chunk) if languages[r] == code]
                    for i, decoded in zip(rows, model.decode(features[rows], code), strict=True):
                        tokens.setdefault(chunk[i][0], []).append(decoded)
        out: list[Transcript | None] = []
        for r in range(len(audio)):
            if r not in tokens:
                out.append(None)
                continue
            texts = [model.text(t) for t in tokens[r]]
            out.append(Transcript(" ".join(t for t in texts if t), languages[r], tokens[r]))
        return out

    def process(self, batch: pa.Table) -> pa.Table:
        audio = [
            None if samples is None else resample(samples, rate, SAMPLE_RATE)
            for samples, rate in mono_pcm(batch, self.stage_name)
        ]
        found = self.transcribe(audio) if batch.num_rows else []
        texts = pa.array([t.text if t else None for t in found], pa.string())
        codes = pa.array([t.language if t else None for t in found], pa.string())
        for name, values in ((self.pred_text_key, texts), (self.language_key, codes)):
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, values)
        return batch
