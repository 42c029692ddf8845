"""Audio curation stages. Rows carry `audio` (bytes) or `audio_uri`, `duration` (seconds),
`text` (the reference transcript) and `pred_text` (an ASR hypothesis); `AudioDecoder`
(`decode.py`) adds the decoded samples (`pcm` at `pcm_rate`) that the scoring stages read."""
