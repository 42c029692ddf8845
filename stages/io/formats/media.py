"""Media file extensions, their kind (image, audio, video) and their magic numbers.

A file or tar member whose first bytes are not a known signature for its extension is
corrupt (a truncated download, an HTML error page saved as `.jpg`).
"""

from __future__ import annotations

IMAGE = ("jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp")
AUDIO = ("flac", "wav", "mp3", "ogg", "opus", "m4a")
VIDEO = ("mp4", "webm", "mkv", "mov", "avi", "m4v")
KINDS = {
    **dict.fromkeys(IMAGE, "image"),
    **dict.fromkeys(AUDIO, "audio"),
    **dict.fromkeys(VIDEO, "video"),
}

_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def kind_of(extension: str) -> str | None:
    """`image`, `audio`, `video` for a media extension (without dot), else None."""
    return KINDS.get(extension.lower())


def looks_like(extension: str, head: bytes) -> bool:
    """Whether `head` (the first 16 bytes or more) starts like a file of `extension`.
    Extensions without a known signature always pass."""
    ext = extension.lower()
    riff = head[:4] == b"RIFF"
    if ext in ("jpg", "jpeg"):
        return head[:3] == b"\xff\xd8\xff"
    if ext == "png":
        return head[:8] == b"\x89PNG\r\n\x1a\n"
    if ext == "webp":
        return riff and head[8:12] == b"WEBP"
    if ext == "gif":
        return head[:6] in (b"GIF87a", b"GIF89a")
    if ext in ("tif", "tiff"):
        return head[:4] in (b"II*\x00", b"MM\x00*")
    if ext == "bmp":
        return head[:2] == b"BM"
    if ext == "flac":
        return head[:4] == b"fLaC" or head[:3] == b"ID3"
    if ext == "wav":
        return riff and head[8:12] == b"WAVE"
    if ext == "avi":
        return riff and head[8:12] == b"AVI "
    if ext == "mp3":
        return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    if ext in ("ogg", "opus"):
        return head[:4] == b"OggS"
    if ext in ("mp4", "m4a", "m4v", "mov"):
        return head[4:8] in _ISO_BOXES
    if ext in ("webm", "mkv"):
        return head[:4] == b"\x1a\x45\xdf\xa3"
    return True


def declared_duration(container, stream) -> float | None:
    """Seconds a PyAV `container` claims for `stream` (its header's word, which the media
    stages check against the packets or samples they find), None when it claims none."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None
