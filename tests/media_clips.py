"""Small real media files, made with the system's ffmpeg, for tests that need footage.

Plain functions, so any test module can build the set once in its own
session fixture::

    @pytest.fixture(scope="session")
    def clips(tmp_path_factory):
        return media_clips.make_clips(tmp_path_factory.mktemp("media"))

Everything is generated from ffmpeg's ``testsrc2``/``sine`` sources: 3 s at
640x360 (video) is enough to show progress and time limits, and the whole set
takes about a second to make on two cores. The broken files are checked to be
broken in the way their name says, so a test using them proves what it claims.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SECONDS = 3
SIZE = "640x360"
RECORDED = "2026-03-01T08:30:15Z"
_TIMEOUT = 120


@dataclass(frozen=True)
class Clips:
    """Paths of the generated files; ``amr`` is None when ffmpeg has no AMR encoder."""

    dir: Path
    h264_mp4: Path
    h264_mov: Path
    hevc_mp4: Path
    mjpeg_avi: Path
    wav: Path
    amr: Path | None
    jpeg: Path
    truncated_mp4: Path
    garbage_mp4: Path
    random_mp4: Path
    empty_mp4: Path


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail loudly with its own message."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {done.stderr.decode(errors='replace')}")


def has_encoder(name: str) -> bool:
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, timeout=_TIMEOUT, check=True
    )
    return any(line.split()[1:2] == [name] for line in done.stdout.decode().splitlines())


def _video_source(seconds: float = SECONDS, size: str = SIZE) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}"]


def _audio_source(seconds: float = SECONDS, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}"]


def make_h264_mp4(path: Path, *, faststart: bool = False) -> Path:
    """H.264/AAC MP4 as most cameras write it: moov at the end unless asked."""
    flags = ["-movflags", "+faststart"] if faststart else []
    ffmpeg(
        *_video_source(),
        *_audio_source(),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "2"),
        *("-c:a", "aac", "-shortest", "-metadata", f"creation_time={RECORDED}"),
        *flags,
        str(path),
    )
    return path


def make_h264_mov(path: Path) -> Path:
    """H.264/AAC MOV as a phone writes it: device tags and a timecode data track."""
    ffmpeg(
        *_video_source(),
        *_audio_source(),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "2"),
        *("-c:a", "aac", "-shortest", "-timecode", "01:00:00:00"),
        *("-metadata", f"creation_time={RECORDED}"),
        *("-metadata", "com.apple.quicktime.make=Apple"),
        *("-metadata", "com.apple.quicktime.model=iPhone 15"),
        *("-movflags", "use_metadata_tags"),
        str(path),
    )
    return path


def make_hevc_mp4(path: Path) -> Path:
    ffmpeg(
        *_video_source(),
        *_audio_source(),
        *("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"),
        *("-pix_fmt", "yuv420p", "-threads", "2", "-tag:v", "hvc1"),
        *("-c:a", "aac", "-shortest"),
        str(path),
    )
    return path


def make_mjpeg_avi(path: Path) -> Path:
    """MJPEG video with PCM sound in AVI, as cheap recorders write."""
    ffmpeg(
        *_video_source(size="320x240"),
        *_audio_source(rate=16000),
        *("-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"),
        *("-c:a", "pcm_s16le", "-shortest"),
        str(path),
    )
    return path


def make_wav(path: Path) -> Path:
    ffmpeg(*_audio_source(rate=44100), "-c:a", "pcm_s16le", str(path))
    return path


def make_amr(path: Path) -> Path | None:
    """AMR-NB (8 kHz mono voice), or None if this ffmpeg cannot encode it."""
    if not has_encoder("libopencore_amrnb"):
        return None
    ffmpeg(*_audio_source(rate=8000), "-c:a", "libopencore_amrnb", "-b:a", "12.2k", str(path))
    return path


def make_jpeg(path: Path) -> Path:
    ffmpeg(*_video_source(size="320x240"), "-frames:v", "1", str(path))
    return path


def top_level_boxes(path: Path) -> list[str]:
    """Types of the top-level MP4/MOV boxes in file order (stops at a broken box)."""
    boxes: list[str] = []
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8].decode("latin-1")
        header = 8
        if size == 1:
            if offset + 16 > len(data):
                break
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            break  # cut short: this box is not really there
        boxes.append(kind)
        offset += size
    return boxes


def make_truncated_mp4(path: Path, source: Path) -> Path:
    """The first 60 % of an MP4 whose moov is at the end: a recorder that lost power."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    if "moov" in top_level_boxes(path):
        raise AssertionError(f"{source} has its moov first; the cut would not break it")
    return path


def make_garbage_mp4(path: Path, source: Path) -> Path:
    """An MP4 with its middle fifth overwritten by random bytes; the index stays intact."""
    data = bytearray(source.read_bytes())
    start, end = len(data) * 2 // 5, len(data) * 3 // 5
    data[start:end] = random.Random(947).randbytes(end - start)
    path.write_bytes(bytes(data))
    if top_level_boxes(path)[-1:] != ["moov"]:
        raise AssertionError("the garbage reached the moov box; the file would not probe")
    return path


def make_random_mp4(path: Path, size: int = 64 * 1024) -> Path:
    path.write_bytes(random.Random(2016).randbytes(size))
    return path


def make_clips(directory: Path) -> Clips:
    """Write the whole set into ``directory`` (about 2 MB)."""
    directory.mkdir(parents=True, exist_ok=True)
    h264_mp4 = make_h264_mp4(directory / "h264_aac.mp4")
    empty = directory / "empty.mp4"
    empty.write_bytes(b"")
    clips = Clips(
        dir=directory,
        h264_mp4=h264_mp4,
        h264_mov=make_h264_mov(directory / "h264_aac.mov"),
        hevc_mp4=make_hevc_mp4(directory / "hevc_aac.mp4"),
        mjpeg_avi=make_mjpeg_avi(directory / "mjpeg_pcm.avi"),
        wav=make_wav(directory / "voice.wav"),
        amr=make_amr(directory / "voice.amr"),
        jpeg=make_jpeg(directory / "photo.jpg"),
        truncated_mp4=make_truncated_mp4(directory / "truncated.mp4", h264_mp4),
        garbage_mp4=make_garbage_mp4(directory / "garbage_middle.mp4", h264_mp4),
        random_mp4=make_random_mp4(directory / "random_bytes.mp4"),
        empty_mp4=empty,
    )
    return clips


def copy_as(source: Path, target: Path) -> Path:
    """A byte-identical copy under another name (hostile-name tests)."""
    shutil.copyfile(source, target)
    return target
