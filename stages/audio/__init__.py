"""Audio curation stages. Rows carry `audio` (bytes) or `audio_uri`, `duration` (seconds),
`text` (the reference transcript) and `pred_text` (an ASR hypothesis)."""
