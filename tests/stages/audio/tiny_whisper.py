"""Tiny randomly initialised Whisper models in the layouts real checkpoints are published
in, so tests load them through the code that loads a real one:

- `tiny_openai_whisper`: an openai-whisper checkpoint file (`torch.save` of
  `{"dims": ..., "model_state_dict": ...}`, the layout of `tiny.pt` ... `large-v3.pt`), of the
  real architecture with 64-wide, one-layer towers and the multilingual vocabulary
  (51865 tokens: 99 languages), so Whisper's own tokenizer decodes its output;
- `tiny_hf_whisper`: the same weights as a Hugging Face folder, as openai/whisper-* ships
  it (`config.json`, `model.safetensors`, `generation_config.json` with `lang_to_id` and
  `task_to_id`, the tokenizer's `vocab.json` / `merges.txt` / special tokens, the feature
  extractor's `preprocessor_config.json`). The tokenizer is converted offline from the
  `multilingual.tiktoken` file that the openai-whisper package bundles, so both loaders
  map the same ids to the same text.

A 30 s window costs a few milliseconds through these models; decoding a random model runs
to `max_new_tokens` (it rarely emits the end token), so tests keep that small.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

WIDTH, HEADS, FFN = 64, 2, 256


def tiny_openai_whisper(
    path: Path, seed: int = 0, writes_text: bool = True, multilingual: bool = True
) -> str:
    """Save a tiny random openai-whisper checkpoint at `path`; returns the path. With
    `writes_text=False` the model writes only timestamp tokens: no text at all; with
    `multilingual=False` it has the English-only vocabulary (51864 tokens, as `tiny.en`)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=WIDTH,
        n_audio_head=HEADS,
        n_audio_layer=1,
        # the multilingual tokenizer's 50257 text tokens + 1608 special ones (1 language
        # fewer in the English-only one, whose end-of-text token is 50256)
        n_vocab=51865 if multilingual else 51864,
        n_text_ctx=448,
        n_text_state=WIDTH,
        n_text_head=HEADS,
        n_text_layer=1,
    )
    torch.manual_seed(seed)
    model = Whisper(dims)
    with torch.no_grad():
        # openai-whisper leaves the decoder's positions uninitialised (torch.empty: a real
        # checkpoint fills them), which can hold NaNs
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        # Sharp cross-attention with a strong output, so that what the model writes
        # depends on the audio: at the default init it attends almost evenly to all 1500
        # frames and writes the same tokens whatever it hears.
        for block in model.decoder.blocks:
            block.cross_attn.key.weight.mul_(10.0)
            block.cross_attn.out.weight.mul_(30.0)
        # Special tokens (end of text, languages, timestamps) are rarely the likeliest, so
        # the model writes text (the output layer is the token embedding, transposed).
        specials = 50257 if multilingual else 50256
        model.decoder.token_embedding.weight[specials:].mul_(0.1)
        if not writes_text:  # <|0.00|> ... <|30.00|> outscore every text token
            model.decoder.token_embedding.weight[-1501:].mul_(100.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return str(path)


def _hf_state(openai_state: dict) -> dict:
    """openai-whisper's parameter names to transformers' (WhisperForConditionalGeneration)."""
    renames = [
        ("encoder.positional_embedding", "encoder.embed_positions.weight"),
        ("decoder.positional_embedding", "decoder.embed_positions.weight"),
        ("decoder.token_embedding", "decoder.embed_tokens"),
        ("encoder.ln_post", "encoder.layer_norm"),
        ("decoder.ln.", "decoder.layer_norm."),
        (".blocks.", ".layers."),
        (".cross_attn_ln.", ".encoder_attn_layer_norm."),
        (".cross_attn.", ".encoder_attn."),
        (".attn_ln.", ".self_attn_layer_norm."),
        (".attn.", ".self_attn."),
        (".query.", ".q_proj."),
        (".key.", ".k_proj."),
        (".value.", ".v_proj."),
        (".out.", ".out_proj."),
        (".mlp_ln.", ".final_layer_norm."),
        (".mlp.0.", ".fc1."),
        (".mlp.2.", ".fc2."),
    ]
    out = {}
    for name, tensor in openai_state.items():
        for old, new in renames:
            name = name.replace(old, new)
        out["model." + name] = tensor
    out["proj_out.weight"] = out["model.decoder.embed_tokens.weight"]
    return out


def _tokenizer(folder: Path):
    """Whisper's multilingual tokenizer as transformers saves it, built from the tiktoken
    file bundled with openai-whisper (no download)."""
    import whisper
    from transformers import AddedToken, WhisperTokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from whisper.tokenizer import get_tokenizer

    ranks = os.path.join(os.path.dirname(whisper.__file__), "assets", "multilingual.tiktoken")
    vocab, merges = TikTokenConverter(vocab_file=ranks).extract_vocab_merges_from_model(ranks)
    special = get_tokenizer(True, num_languages=99).encoding._special_tokens
    ordered = sorted(special, key=special.get)  # <|endoftext|> 50257 ... <|30.00|> 51864
    vocab[ordered[0]] = special[ordered[0]]
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ordered[1:]],
        special_tokens=True,
    )
    wrong = [t for t in ordered if tokenizer.convert_tokens_to_ids(t) != special[t]]
    assert not wrong, f"special token ids differ from Whisper's: {wrong[:5]}"
    return tokenizer, special


def tiny_hf_whisper(folder: Path, checkpoint: str) -> str:
    """Save the openai-whisper `checkpoint` (from `tiny_openai_whisper`) as a Hugging Face
    Whisper folder in `folder` (created); returns the folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    from whisper.tokenizer import LANGUAGES, get_tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    dims = saved["dims"]
    openai_tokens = get_tokenizer(True, num_languages=99)
    # The tokens openai-whisper suppresses by default ("-1": non-speech symbols, and the
    # task/start tokens), so both loaders decode under the same rules.
    suppress = sorted(
        {
            *openai_tokens.non_speech_tokens,
            openai_tokens.transcribe,
            openai_tokens.translate,
            openai_tokens.sot,
            openai_tokens.sot_prev,
            openai_tokens.sot_lm,
            openai_tokens.no_speech,
        }
    )
    eot, sot = openai_tokens.eot, openai_tokens.sot
    config = WhisperConfig(
        vocab_size=dims["n_vocab"],
        num_mel_bins=dims["n_mels"],
        d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"],
        decoder_layers=dims["n_text_layer"],
        encoder_attention_heads=dims["n_audio_head"],
        decoder_attention_heads=dims["n_text_head"],
        encoder_ffn_dim=4 * dims["n_audio_state"],
        decoder_ffn_dim=4 * dims["n_text_state"],
        max_source_positions=dims["n_audio_ctx"],
        max_target_positions=dims["n_text_ctx"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        begin_suppress_tokens=[220, eot],
        suppress_tokens=suppress,
    )
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(_hf_state(saved["model_state_dict"]), strict=True)
    model.eval().save_pretrained(folder)

    tokenizer, special = _tokenizer(folder)
    generation = GenerationConfig(
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        begin_suppress_tokens=[220, eot],
        suppress_tokens=suppress,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": special[f"<|{code}|>"] for code in list(LANGUAGES)[:99]},
        task_to_id={"transcribe": openai_tokens.transcribe, "translate": openai_tokens.translate},
        no_timestamps_token_id=openai_tokens.no_timestamps,
        prev_sot_token_id=openai_tokens.sot_prev,
        max_initial_timestamp_index=50,
        max_length=dims["n_text_ctx"],
    )
    generation.save_pretrained(folder)
    features = WhisperFeatureExtractor(feature_size=dims["n_mels"], sampling_rate=16000)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return str(folder)
