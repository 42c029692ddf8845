"""`AudioEncoder`: the decoded samples written back as one audio file per row, ready for
a WebDataset shard (`KEY.flac`) or a folder of files.

NeMo Curator's pipelines keep audio as files on disk and write manifests pointing at them;
here the audio travels in the row, so the curated set is self-contained.
"""

from __future__ import annotations

import io
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa

from stages.audio.decode import BYTES_COLUMNS, resample
from stages.audio.filters import recordings
from stages.base import Resources, Stage

# libsndfile's name and subtype for each output format: 16-bit PCM in both.
_FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}
_PCM_COLUMNS = ("pcm", "pcm_rate", "pcm_channels")


class AudioEncoder(Stage):
    """Encode each row's `pcm` (mono, from `AudioDecoder`) as 16-bit `format` audio
    (`flac`, the default, or `wav`) at `sample_rate` Hz (resampled with libswresample when
    `pcm_rate` differs; None keeps `pcm_rate`), with soundfile.

    Columns: the bytes go to a binary column named after the format (`flac`), which the
    WebDataset writer stores as `KEY.flac`; `extension` is set to the format. `pcm`,
    `pcm_rate`, `pcm_channels` and the input's other audio bytes columns (`audio`, `wav`,
    `mp3`, `ogg`, `opus`, `m4a`) are dropped, so each sample holds one audio member.
    `audio_uri`, `duration` and the other columns stay. Samples beyond full scale are
    clipped to it. A row with no samples gets a null.
    """

    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 32

    def __init__(self, format: Literal["flac", "wav"] = "flac", sample_rate: int | None = 16000):
        if format not in _FORMATS:
            raise ValueError(f"format={format!r}: expected one of {', '.join(_FORMATS)}")
        if sample_rate is not None and sample_rate <= 0:
            raise ValueError(f"sample_rate={sample_rate}: must be positive")
        self.format = format
        self.sample_rate = sample_rate

    def process(self, batch: pa.Table) -> pa.Table:
        import soundfile as sf

        container, subtype = _FORMATS[self.format]
        encoded: list[bytes | None] = []
        for samples, rate in recordings(batch, self.stage_name):
            if not len(samples) or rate <= 0:
                encoded.append(None)
                continue
            target = self.sample_rate or rate
            samples = np.clip(resample(samples, rate, target), -1.0, 1.0)
            buffer = io.BytesIO()
            sf.write(buffer, samples, target, format=container, subtype=subtype)
            encoded.append(buffer.getvalue())
        drop = {*_PCM_COLUMNS, *BYTES_COLUMNS, self.format, "extension"}
        out = batch.drop_columns([c for c in batch.column_names if c in drop])
        out = out.append_column(self.format, pa.array(encoded, pa.binary()))
        extension = [self.format if value is not None else None for value in encoded]
        return out.append_column("extension", pa.array(extension, pa.string()))
