"""What a media file is, asked of ffprobe: container, streams, duration, device tags.

The summary goes into the signed manifest and the catalog, so it is a frozen
value with plain JSON types, and it names what the transcode policy needs
(``kind``, codecs, pixel formats). ffprobe reads only the container and a few
packets: it does not notice mid-file damage (that shows when ffmpeg decodes),
but it does reject files without a readable index, which is the common
truncation of a recorder that lost power.

ffprobe runs through ``subprocess`` with a hard timeout rather than
``ffmpeg.probe`` (which has none in ffmpeg-python 0.2): a FIFO, a stalled
network mount or a hostile file must not hold a worker forever. It runs in
the media sandbox (``ingest/sandbox.py``: no network, only the probed file
readable, resource limits) with ``-protocol_whitelist`` as the first layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from config.errors import BadInputError
from ingest.sandbox import ENV, Sandbox, SandboxUnavailable

FFPROBE = "ffprobe"
#: how many of ffprobe's last stderr lines an error keeps
STDERR_TAIL_LINES = 20
#: bytes written to a waiting ffprobe at a time (it reads 32 KiB at a time)
_FEED_CHUNK = 256 * 1024

#: demuxers that read single pictures; their files are stills, never video
_IMAGE_DEMUXERS = frozenset({"image2"})
#: codecs that usually hold a photo; a one-frame stream of these is a still
_IMAGE_CODECS = frozenset(
    {"mjpeg", "png", "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "jpegxl", "heif"}
)
#: tag keys worth keeping as evidence of which device made the file
_DEVICE_TAG = re.compile(
    r"(^|[._:\-])(make|model|manufacturer|maker|vendor|encoder|software|firmware|"
    r"device|serial|camera|lens)|^com\.(apple|android|samsung)\.",
    re.IGNORECASE,
)
#: values muxers write when a tag has nothing to say
_PLACEHOLDER_VALUES = frozenset({"", "[0][0][0][0]"})


class ProbeError(BadInputError):
    """ffprobe could not read the file; ``stderr_tail`` holds ffprobe's own words."""

    code = "probe_failed"

    def __init__(
        self,
        path: str | os.PathLike[str],
        reason: str,
        *,
        stderr_tail: tuple[str, ...] = (),
        returncode: int | None = None,
        timed_out: bool = False,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.stderr_tail = stderr_tail
        self.returncode = returncode
        self.timed_out = timed_out
        super().__init__(f"cannot probe {os.fsdecode(path)!r}: {reason}")


@dataclass(frozen=True)
class StreamInfo:
    """One stream as ffprobe reports it; fields that do not apply are None."""

    index: int
    type: str
    codec: str | None = None
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None  # exact fraction, e.g. "30000/1001"
    pixel_format: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None
    duration: float | None = None
    frames: int | None = None
    rotation: int | None = None
    attached_pic: bool = False  # cover art / thumbnail, not motion video

    @property
    def is_video(self) -> bool:
        """Motion (or still) pictures, but not a cover-art picture."""
        return self.type == "video" and not self.attached_pic

    @property
    def is_audio(self) -> bool:
        return self.type == "audio"


@dataclass(frozen=True)
class ProbeSummary:
    """The facts about one file that the manifest, catalog and policy use."""

    format_name: str
    format_long_name: str | None
    duration: float | None
    bit_rate: int | None
    size: int | None
    streams: tuple[StreamInfo, ...]
    kind: str  # "video" | "audio" | "image" | "unknown"
    creation_time: str | None = None
    device_tags: dict[str, str] = field(default_factory=dict)

    @property
    def containers(self) -> tuple[str, ...]:
        """ffprobe's format names: ``mov,mp4,m4a`` → ``("mov", "mp4", "m4a")``."""
        return tuple(name for name in self.format_name.split(",") if name)

    @property
    def video_streams(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.is_video)

    @property
    def audio_streams(self) -> tuple[StreamInfo, ...]:
        return tuple(s for s in self.streams if s.is_audio)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (str, int, float, bool, None, list, dict)."""
        data = asdict(self)
        data["streams"] = [asdict(s) for s in self.streams]
        data["device_tags"] = dict(sorted(self.device_tags.items()))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeSummary:
        """Rebuild a summary stored by :meth:`to_dict` (e.g. read back from the catalog)."""
        values = dict(data)
        values["streams"] = tuple(StreamInfo(**s) for s in values.get("streams", ()))
        values["device_tags"] = dict(values.get("device_tags") or {})
        return cls(**values)


def ffmpeg_input_name(path: str | os.PathLike[str]) -> str:
    """A path ffmpeg/ffprobe read as a local file and never as an option or URL.

    Absolute, so a name starting with ``-`` is not an option; ``file:`` so one
    containing ``:`` (``http:…``, ``concat:…``) is not another protocol.
    """
    return "file:" + os.path.abspath(os.fsdecode(path))


def probe(
    path: str | os.PathLike[str], timeout_s: float, sandbox: Sandbox | None = None
) -> ProbeSummary:
    """Run ffprobe on ``path`` in ``sandbox`` (default: the strict one); raise
    :class:`ProbeError` if it cannot read it (or the sandbox is unavailable).

    ffprobe is killed after ``timeout_s`` seconds. OSError means ffprobe itself
    could not be started (not installed), which is not the file's fault.
    """
    return probe_report(path, timeout_s, sandbox)[0]


def probe_report(
    path: str | os.PathLike[str], timeout_s: float, sandbox: Sandbox | None = None
) -> tuple[ProbeSummary, dict[str, Any]]:
    """:func:`probe`, with ffprobe's whole JSON report beside the summary (the
    seal reads the media's tags from it: ``ingest.metadata``)."""
    argv = [
        FFPROBE,
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        "file",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        "-i",
        ffmpeg_input_name(path),
    ]
    try:
        cmd = (sandbox or Sandbox()).command(argv, read=[path], cpu_seconds=timeout_s + 1)
    except SandboxUnavailable as exc:
        raise ProbeError(path, str(exc)) from None
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=ENV,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(
            path,
            f"ffprobe did not finish within {timeout_s:g} s and was killed",
            stderr_tail=_tail(exc.stderr or b""),
            timed_out=True,
        ) from None
    return _report_of(path, done.returncode, done.stdout, done.stderr)


def _summary_of(
    path: str | os.PathLike[str], returncode: int, stdout: bytes, stderr: bytes
) -> ProbeSummary:
    """ffprobe's answer (exit code, JSON, stderr) as a summary or a :class:`ProbeError`."""
    return _report_of(path, returncode, stdout, stderr)[0]


def _report_of(
    path: str | os.PathLike[str], returncode: int, stdout: bytes, stderr: bytes
) -> tuple[ProbeSummary, dict[str, Any]]:
    """ffprobe's answer as (summary, its JSON report) or a :class:`ProbeError`."""
    stderr_tail = _tail(stderr)
    if returncode != 0:
        raise ProbeError(
            path,
            f"ffprobe exit {returncode}: {last_words(stderr_tail)}",
            stderr_tail=stderr_tail,
            returncode=returncode,
        )
    try:
        report = json.loads(stdout)
    except ValueError as exc:
        raise ProbeError(
            path, f"ffprobe printed no JSON ({exc})", stderr_tail=stderr_tail
        ) from None
    if not isinstance(report, dict):
        raise ProbeError(path, "ffprobe printed no JSON object", stderr_tail=stderr_tail)
    summary = summarize(report)
    if not summary.streams:
        raise ProbeError(path, "ffprobe found no streams", stderr_tail=stderr_tail, returncode=0)
    return summary, report


class StreamProbe:
    """An ffprobe started *ahead* of its file, which it then reads from a pipe.

    Starting ffprobe costs ~55 ms on a station (it links ~200 shared
    libraries) – more than reading the header of a playback copy. Started
    while ffmpeg still writes the copy, that cost is hidden; once ffmpeg is
    done, :meth:`read` streams the finished file into ffprobe's stdin until
    ffprobe has seen enough: with the index (``moov``) first, as ``+faststart``
    writes it, that is a few hundred KiB; otherwise ffprobe reads on to the
    index. Only the ``pipe`` protocol is allowed, and the sandbox binds no file
    at all, so the file cannot make ffprobe open anything else.

    Use as a context manager: leaving it kills an ffprobe that was never fed.
    Raises :class:`ingest.sandbox.SandboxUnavailable` when the sandbox cannot run.
    """

    def __init__(self, timeout_s: float, sandbox: Sandbox | None = None) -> None:
        self.timeout_s = timeout_s
        argv = [
            FFPROBE,
            "-v",
            "error",
            "-hide_banner",
            "-protocol_whitelist",
            "pipe",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
            "-i",
            "pipe:0",
        ]
        self._proc = subprocess.Popen(
            (sandbox or Sandbox()).command(argv, cpu_seconds=timeout_s + 1),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        # drained all along, so ffprobe never blocks writing while we block feeding it
        self._readers = [
            threading.Thread(target=_drain, args=(self._proc.stdout, self._out), daemon=True),
            threading.Thread(target=_drain, args=(self._proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def read(self, path: str | os.PathLike[str]) -> ProbeSummary:
        """Feed ``path`` to the waiting ffprobe and return its summary (once only).

        ffprobe is killed ``timeout_s`` after feeding starts. ``size`` and
        ``bit_rate`` (which ffprobe cannot know from a pipe) are filled in from
        the file's size the way ffprobe computes them for a file.
        """
        proc = self._proc
        assert proc.stdin is not None
        timed_out = threading.Event()
        killer = threading.Timer(self.timeout_s, _time_out, args=(proc, timed_out))
        killer.daemon = True
        killer.start()
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                with contextlib.suppress(BrokenPipeError):  # ffprobe has seen enough
                    while chunk := handle.read(_FEED_CHUNK):
                        proc.stdin.write(chunk)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait()  # the timer kills it at the deadline
            for reader in self._readers:
                reader.join(self.timeout_s)
        finally:
            killer.cancel()
        if timed_out.is_set():
            raise ProbeError(
                path,
                f"ffprobe did not finish within {self.timeout_s:g} s and was killed",
                stderr_tail=_tail(b"".join(self._err)),
                timed_out=True,
            )
        summary = _summary_of(path, proc.returncode, b"".join(self._out), b"".join(self._err))
        return replace(
            summary,
            size=summary.size if summary.size is not None else size,
            bit_rate=summary.bit_rate
            if summary.bit_rate is not None
            else _file_bit_rate(size, summary.duration),
        )

    def close(self) -> None:
        """Stop ffprobe if it still runs (never fed, or fed and stuck) and reap it."""
        if self._proc.poll() is None:
            _kill(self._proc)
        self._proc.wait()
        with contextlib.suppress(BrokenPipeError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        for reader in self._readers:
            reader.join(1)

    def __enter__(self) -> StreamProbe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _drain(stream: IO[bytes] | None, into: list[bytes]) -> None:
    assert stream is not None
    with stream:
        # a Popen pipe is a BufferedReader (read1: what is there now), which IO[bytes]
        # does not promise
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            into.append(chunk)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _time_out(proc: subprocess.Popen[bytes], flag: threading.Event) -> None:
    if proc.poll() is None:
        flag.set()
        _kill(proc)


def _file_bit_rate(size: int, duration: float | None) -> int | None:
    """ffprobe's estimate for a file of known size: size × 8 / duration, truncated.

    libavformat keeps the duration in microseconds (printed with six decimals)
    and divides in double precision; the same arithmetic gives the same number.
    """
    if not duration or duration <= 0 or size <= 0:
        return None
    return int(size * 8.0 * 1_000_000 / round(duration * 1_000_000))


def summarize(report: Mapping[str, Any]) -> ProbeSummary:
    """Turn ffprobe's JSON (``-show_format -show_streams``) into a summary. Pure."""
    fmt = report.get("format") or {}
    streams = tuple(_stream(raw) for raw in report.get("streams") or ())
    duration = _float(fmt.get("duration"))
    if duration is None:
        durations = [s.duration for s in streams if s.duration is not None]
        duration = max(durations) if durations else None
    format_name = str(fmt.get("format_name") or "")
    tags = _tags(fmt, report.get("streams") or ())
    return ProbeSummary(
        format_name=format_name,
        format_long_name=fmt.get("format_long_name"),
        duration=duration,
        bit_rate=_int(fmt.get("bit_rate")),
        size=_int(fmt.get("size")),
        streams=streams,
        kind=_kind(format_name, streams),
        creation_time=tags.pop("creation_time", None) or tags.get("date"),
        device_tags={k: v for k, v in tags.items() if _DEVICE_TAG.search(k)},
    )


def _stream(raw: Mapping[str, Any]) -> StreamInfo:
    disposition = raw.get("disposition") or {}
    rotation = None
    for side in raw.get("side_data_list") or ():
        if "rotation" in side:
            rotation = _int(side["rotation"])
    if rotation is None:
        rotation = _int((raw.get("tags") or {}).get("rotate"))
    return StreamInfo(
        index=int(raw.get("index", 0)),
        type=str(raw.get("codec_type") or "unknown"),
        codec=raw.get("codec_name"),
        profile=raw.get("profile"),
        width=_int(raw.get("width")),
        height=_int(raw.get("height")),
        frame_rate=_rate(raw.get("avg_frame_rate")) or _rate(raw.get("r_frame_rate")),
        pixel_format=raw.get("pix_fmt"),
        sample_rate=_int(raw.get("sample_rate")),
        channels=_int(raw.get("channels")),
        channel_layout=raw.get("channel_layout"),
        duration=_float(raw.get("duration")),
        frames=_int(raw.get("nb_frames")),
        rotation=rotation,
        attached_pic=bool(disposition.get("attached_pic")),
    )


def _kind(format_name: str, streams: tuple[StreamInfo, ...]) -> str:
    """video | audio | image | unknown; cover art does not make audio a video."""
    video = [s for s in streams if s.is_video]
    audio = [s for s in streams if s.is_audio]
    if video:
        names = set(format_name.split(","))
        image_demuxer = bool(names & _IMAGE_DEMUXERS) or any(n.endswith("_pipe") for n in names)
        if not audio and (image_demuxer or all(_one_picture(s) for s in video)):
            return "image"
        return "video"
    return "audio" if audio else "unknown"


def _one_picture(stream: StreamInfo) -> bool:
    """A photo codec holding one frame (or no count and no real length)."""
    if stream.codec not in _IMAGE_CODECS:
        return False
    if stream.frames is not None:
        return stream.frames <= 1
    return (stream.duration or 0.0) < 0.5


def _tags(fmt: Mapping[str, Any], streams: Any) -> dict[str, str]:
    """Container tags, then stream tags the container lacks (cameras use both)."""
    tags: dict[str, str] = {}
    for source in [fmt.get("tags") or {}] + [s.get("tags") or {} for s in streams]:
        for key, value in source.items():
            text = str(value).strip()
            if key not in tags and text not in _PLACEHOLDER_VALUES:
                tags[key] = text
    return tags


def last_words(lines: tuple[str, ...], count: int = 3) -> str:
    """The last few lines a tool printed, on one line, for an error message."""
    return " / ".join(lines[-count:]) if lines else "no message"


def _tail(stderr: bytes) -> tuple[str, ...]:
    lines = stderr.decode("utf-8", "replace").splitlines()
    return tuple(line for line in lines if line.strip())[-STDERR_TAIL_LINES:]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _rate(value: Any) -> str | None:
    """``"25/1"`` kept exact; ffprobe's ``"0/0"`` (no rate) becomes None."""
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return str(value) if rate > 0 else None
