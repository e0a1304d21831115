"""A cheap look at a file's first bytes: is it worth asking ffprobe?

ffprobe costs tens of milliseconds of CPU per file even when the answer is
"not media" (it tries every demuxer on random bytes). A dock of small
non-media files would spend most of its time there. Every container a
body-worn camera or a docking station writes starts with a recognisable
signature, so files without one are archived without a probe and flagged
``not_media`` – the original is archived all the same.
"""

from __future__ import annotations

import os

#: (offset, signature, container) – first match wins
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4/mov"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (4, b"skip", "mov"),
    (0, b"RIFF", "riff (avi/wav)"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"#!AMR", "amr"),
    (0, b"ID3", "mp3"),
    (0, b"OggS", "ogg"),
    (0, b"fLaC", "flac"),
    (0, b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (0, b"FLV", "flv"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf/wmv"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"),
    (0, b"\x00\x00\x00\x01", "h264/h265 elementary stream"),
    (0, b"DHAV", "dahua dav"),
    (0, b"IMKH", "hikvision"),
    (0, b"GIF8", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
)


def media_signature(path: str | os.PathLike) -> str | None:
    """The container a file's header names, or None when it names none we know."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(377)
    except OSError:
        return None
    for offset, signature, container in SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return container
    if head[:1] == b"\x47" and head[188:189] == b"\x47":
        return "mpeg-ts"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mpeg audio / adts"
    return None
