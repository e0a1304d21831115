"""Playback copies: decide (policy), build the ffmpeg command, run it, hash the result.

The original is only ever *read*: ffmpeg gets it as ``file:<absolute path>``
(never mistaken for an option or a URL) and writes to a temporary name in the
work folder that is renamed to ``<sha256>.<ext>`` only after ffmpeg succeeded
and the output probes cleanly, so a crash or a failure leaves no half-written
copy that could be mistaken for a finished one.

Each step is a separate function so the pipeline can record them: the
:class:`Plan` (which rule, why), the exact argument list (for the derivative
manifest), and the :class:`RunResult` or :class:`TranscodeError` carrying
ffmpeg's own last words.

ffmpeg runs in the media sandbox (``ingest/sandbox.py``): it can read only the
original and write only into the work folder, has no network, and runs under
resource limits; ``-protocol_whitelist file`` is the first layer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import ffmpeg

from config.errors import BadInputError
from config.transcode import NO_STREAM, Action, PolicyRule, TranscodeSettings
from ingest.probe import (
    ProbeError,
    ProbeSummary,
    StreamProbe,
    ffmpeg_input_name,
    last_words,
)
from ingest.sandbox import ENV, Sandbox, SandboxUnavailable, sandbox_for

FFMPEG = "ffmpeg"
#: how many of ffmpeg's last stderr lines are kept (the rest is never held in memory)
STDERR_TAIL_LINES = 40
_STDERR_LINE_MAX = 2000
_HASH_CHUNK = 1024 * 1024
#: a playback copy may be this many times its original's size (plus the slack below)
_OUTPUT_SIZE_FACTOR = 4
_OUTPUT_SIZE_SLACK = 256 * 1024 * 1024

#: called with (percent 0..100, speed as a multiple of real time or None)
ProgressCallback = Callable[[float, float | None], None]

_SUFFIX: dict[str, str] = {"remux": ".mp4", "transcode": ".mp4", "audio": ".m4a"}
_MUXER: dict[str, str] = {"remux": "mp4", "transcode": "mp4", "audio": "ipod"}
_MEDIA_TYPE: dict[str, str] = {"remux": "video/mp4", "transcode": "video/mp4", "audio": "audio/mp4"}


class TranscodeError(BadInputError):
    """ffmpeg failed, was killed at the time limit, or wrote an unusable file."""

    code = "transcode_failed"

    def __init__(
        self,
        reason: str,
        *,
        returncode: int | None = None,
        stderr_tail: tuple[str, ...] = (),
        timed_out: bool = False,
        cmd: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out
        self.cmd = tuple(cmd)
        super().__init__(reason)

    @property
    def retryable(self) -> bool:
        """A time-out or a kill by a signal may pass on a quieter machine; a bad file will not."""
        return self.timed_out or (self.returncode is not None and self.returncode < 0)


# -- policy -------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to make of one original, and which rule said so."""

    action: Action
    reason: str
    rule: str | None = None

    @property
    def suffix(self) -> str:
        """File extension of the playback copy (``""`` for action "none")."""
        return _SUFFIX.get(self.action, "")

    @property
    def media_type(self) -> str | None:
        return _MEDIA_TYPE.get(self.action)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "rule": self.rule}


def choose_action(summary: ProbeSummary, policy: Sequence[PolicyRule]) -> Plan:
    """The first rule in ``policy`` that matches ``summary`` decides. Pure."""
    for rule in policy:
        if _matches(rule, summary):
            return Plan(action=rule.action, reason=rule.reason or rule.name, rule=rule.name)
    return Plan(action="none", reason="no policy rule matched", rule=None)


def _matches(rule: PolicyRule, summary: ProbeSummary) -> bool:
    video = summary.video_streams
    audio = summary.audio_streams
    checks = (
        rule.kind is None or summary.kind in rule.kind,
        rule.container is None or bool(set(summary.containers) & set(rule.container)),
        rule.video_codec is None or _all_listed([s.codec for s in video], rule.video_codec),
        rule.audio_codec is None or _all_listed([s.codec for s in audio], rule.audio_codec),
        rule.pixel_format is None
        or _all_listed([s.pixel_format for s in video], rule.pixel_format),
    )
    return all(checks)


def _all_listed(values: list[str | None], allowed: list[str]) -> bool:
    """Every stream's value is allowed; no streams at all is allowed only via "none"."""
    if not values:
        return NO_STREAM in allowed
    return all(value is not None and value.lower() in allowed for value in values)


# -- the command ----------------------------------------------------------------


def build_command(
    plan: Plan, input_path: Path, output_path: Path, settings: TranscodeSettings
) -> list[str]:
    """The full ffmpeg argument list for ``plan``, built with ffmpeg-python.

    Every variant writes MP4 (``+faststart``: the index first, so a browser can
    start playing before the download ends) and keeps the original's metadata.
    Only video and audio are mapped: camera data tracks (GPS, timecode) often
    cannot go into MP4 and are not needed to play.
    """
    if plan.action not in _MUXER:
        raise ValueError(f"action {plan.action!r} makes no playback copy")
    src = ffmpeg.input(ffmpeg_input_name(input_path), protocol_whitelist="file")
    target = "file:" + os.path.abspath(os.fsdecode(output_path))
    common: dict[str, Any] = {
        "format": _MUXER[plan.action],
        "movflags": "+faststart",
        "map_metadata": 0,
        # copied metadata would otherwise make the muxer invent a timecode data track
        "write_tmcd": 0,
    }
    if plan.action == "remux":
        out = ffmpeg.output(src["V"], src["a?"], target, c="copy", **common)
        if settings.strict:
            # copying never decodes, so damage would pass unseen; decode alongside
            check = ffmpeg.output(src["V"], src["a?"], "-", format="null")
            out = ffmpeg.merge_outputs(out, check)
    elif plan.action == "transcode":
        scale = f"scale=w=-2:h='trunc(min(ih,{settings.max_height})/2)*2'"
        out = ffmpeg.output(
            src["V:0"],
            src["a?"],
            target,
            vf=scale,
            pix_fmt="yuv420p",
            preset=settings.preset,
            crf=settings.crf,
            threads=settings.threads,
            **{"c:v": "libx264", "c:a": "aac", "b:a": settings.audio_bitrate},
            **common,
        )
    else:
        out = ffmpeg.output(
            src["a"],
            target,
            threads=settings.threads,
            **{"c:a": "aac", "b:a": settings.audio_bitrate},
            **common,
        )
    global_args = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-progress",
        "pipe:1",
        "-stats_period",
        f"{settings.progress_interval_seconds:g}",
    ]
    if settings.strict:
        global_args.append("-xerror")
    return out.global_args(*global_args).overwrite_output().compile(cmd=FFMPEG)


# -- running it -----------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """A finished ffmpeg run."""

    returncode: int
    elapsed_s: float
    time_limit_s: float
    speed: float | None  # last reported multiple of real time
    stderr_tail: tuple[str, ...] = ()


@dataclass
class ProgressEvent:
    """One ``-progress`` block: ffmpeg prints key=value lines ending in ``progress=``."""

    out_time_s: float | None = None
    speed: float | None = None
    ended: bool = False


def parse_progress(lines: Iterator[str]) -> Iterator[ProgressEvent]:
    """Yield one :class:`ProgressEvent` per block of ffmpeg's ``-progress`` output."""
    current = ProgressEvent()
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if key in ("out_time_us", "out_time_ms"):  # both are microseconds (an old ffmpeg quirk)
            with contextlib.suppress(ValueError):
                current.out_time_s = max(0.0, int(value) / 1_000_000)
        elif key == "speed":
            with contextlib.suppress(ValueError):
                current.speed = float(value.rstrip("x"))
        elif key == "progress":
            current.ended = value == "end"
            yield current
            current = ProgressEvent(out_time_s=current.out_time_s, speed=current.speed)


def run_ffmpeg(
    cmd: Sequence[str],
    duration_s: float | None,
    settings: TranscodeSettings,
    on_progress: ProgressCallback | None = None,
    *,
    read: Sequence[Path] = (),
    write: Sequence[Path] = (),
    max_file_bytes: int = 0,
) -> RunResult:
    """Run ffmpeg in the sandbox, report progress, and kill it at the time limit.

    The limit is ``max(floor, factor × duration)``; ffmpeg runs in its own
    process group, so the kill takes everything it started (the sandbox dies
    with it). It may read only ``read`` and write only into the folders
    ``write``, files of at most ``max_file_bytes``, and use CPU time of the
    limit times the cores. Progress goes to ``on_progress`` in the calling
    thread, never above 100 and never backwards; an exception raised there
    stops ffmpeg too (a way to cancel).
    """
    limit = settings.time_limit(duration_s)
    try:
        sandboxed = sandbox_for(settings).command(
            cmd,
            read=read,
            write=write,
            cpu_seconds=limit * (os.cpu_count() or 1) + 1,
            max_file_bytes=max_file_bytes,
        )
    except SandboxUnavailable as exc:
        raise TranscodeError(str(exc), cmd=cmd) from None
    argv = sandboxed if settings.nice == 0 else ["nice", "-n", str(settings.nice), *sandboxed]
    started = time.monotonic()
    deadline = started + limit
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    events: queue.Queue[ProgressEvent | None] = queue.Queue()
    readers = [
        threading.Thread(target=_keep_tail, args=(proc.stderr, tail), daemon=True),
        threading.Thread(target=_feed_progress, args=(proc.stdout, events), daemon=True),
    ]
    for reader in readers:
        reader.start()
    reporter = _Reporter(duration_s, on_progress)
    timed_out = False
    try:
        while True:
            try:
                event = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                timed_out = True
                break
            if event is None:  # stdout closed: ffmpeg is exiting
                break
            reporter.update(event)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for reader in readers:
            reader.join(timeout=5)
    elapsed = time.monotonic() - started
    stderr_tail = tuple(tail)
    if timed_out:
        raise TranscodeError(
            f"ffmpeg exceeded the time limit of {limit:g} s (max of "
            f"{settings.time_limit_floor_seconds:g} s and {settings.time_limit_factor:g} × "
            f"{duration_s or 0:g} s of media) and was killed",
            returncode=proc.returncode,
            stderr_tail=stderr_tail,
            timed_out=True,
            cmd=cmd,
        )
    if proc.returncode != 0:
        raise TranscodeError(
            f"ffmpeg exit {proc.returncode}: {last_words(stderr_tail)}",
            returncode=proc.returncode,
            stderr_tail=stderr_tail,
            cmd=cmd,
        )
    reporter.finish()
    return RunResult(
        returncode=0,
        elapsed_s=elapsed,
        time_limit_s=limit,
        speed=reporter.speed,
        stderr_tail=stderr_tail,
    )


class _Reporter:
    """Turns progress blocks into monotonic percentages for the callback."""

    def __init__(self, duration_s: float | None, callback: ProgressCallback | None) -> None:
        self._duration = duration_s if duration_s and duration_s > 0 else None
        self._callback = callback
        self._last = -1.0
        self.speed: float | None = None

    def update(self, event: ProgressEvent) -> None:
        self.speed = event.speed if event.speed is not None else self.speed
        if event.ended:
            self.finish()
        elif self._duration is not None and event.out_time_s is not None:
            # 100 is kept for "done": the muxer still rewrites the file after the last frame
            self._emit(min(99.0, 100.0 * event.out_time_s / self._duration))

    def finish(self) -> None:
        self._emit(100.0)

    def _emit(self, percent: float) -> None:
        if percent > self._last:
            self._last = percent
            if self._callback is not None:
                self._callback(percent, self.speed)


def _keep_tail(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in iter(lambda: stream.readline(_STDERR_LINE_MAX), b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            tail.append(line)
    stream.close()


def _feed_progress(stream: IO[bytes], events: queue.Queue[ProgressEvent | None]) -> None:
    lines = (raw.decode("ascii", "replace") for raw in iter(stream.readline, b""))
    try:
        for event in parse_progress(lines):
            events.put(event)
    finally:
        events.put(None)
        stream.close()


@functools.cache
def ffmpeg_version(sandbox: Sandbox | None = None) -> str:
    """First line of ``ffmpeg -version``, named in every derivative's lineage."""
    cmd = [FFMPEG, "-hide_banner", "-version"]
    done = subprocess.run(
        (sandbox or Sandbox()).command(cmd, cpu_seconds=30),
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=True,
    )
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    return lines[0].strip() if lines else "ffmpeg (unknown version)"


# -- the whole job ----------------------------------------------------------------


@dataclass(frozen=True)
class PlaybackCopy:
    """A finished playback copy and everything its lineage manifest names."""

    path: Path
    sha256: str
    size: int
    probe: ProbeSummary
    plan: Plan
    ffmpeg_version: str
    args: tuple[str, ...] = field(default=())
    run: RunResult | None = None

    @property
    def media_type(self) -> str | None:
        return self.plan.media_type

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for the derivative manifest (the local path is not lineage)."""
        return {
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "plan": self.plan.to_dict(),
            "ffmpeg_version": self.ffmpeg_version,
            "args": list(self.args),
            "probe": self.probe.to_dict(),
        }


def make_playback_copy(
    input_path: Path,
    work_dir: Path,
    summary: ProbeSummary,
    settings: TranscodeSettings,
    on_progress: ProgressCallback | None = None,
) -> PlaybackCopy | None:
    """Make the playback copy the policy asks for, in ``work_dir``; None if it asks for none.

    The result is ``work_dir/<sha256><suffix>``. Raises :class:`TranscodeError`
    (nothing left behind) when ffmpeg fails, runs out of time, or writes a file
    that does not probe as the expected media. Retrying is the caller's choice
    (``settings.retry_attempts``, :attr:`TranscodeError.retryable`).
    """
    plan = choose_action(summary, settings.rules)
    if plan.action == "none":
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    partial = work_dir / f".playback-{uuid.uuid4().hex}{plan.suffix}.part"
    cmd = build_command(plan, input_path, partial, settings)
    sandbox = sandbox_for(settings)
    try:
        version = ffmpeg_version(sandbox)  # cached: asked once per process
        # the output's ffprobe starts now, so its start-up overlaps ffmpeg's run
        with StreamProbe(settings.probe_timeout_seconds, sandbox) as checker:
            run = run_ffmpeg(
                cmd,
                summary.duration,
                settings,
                on_progress,
                read=[input_path],
                write=[work_dir],
                max_file_bytes=_OUTPUT_SIZE_FACTOR * input_path.stat().st_size + _OUTPUT_SIZE_SLACK,
            )
            out_summary, digest, size = check_output(partial, plan, checker, cmd)
        final = work_dir / f"{digest}{plan.suffix}"
        os.replace(partial, final)
    except SandboxUnavailable as exc:
        partial.unlink(missing_ok=True)
        raise TranscodeError(str(exc), cmd=cmd) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return PlaybackCopy(
        path=final,
        sha256=digest,
        size=size,
        probe=out_summary,
        plan=plan,
        ffmpeg_version=version,
        args=tuple(cmd),
        run=run,
    )


def check_output(
    path: Path, plan: Plan, checker: StreamProbe, cmd: Sequence[str]
) -> tuple[ProbeSummary, str, int]:
    """ffmpeg said yes; make sure the file holds what a player will look for, and hash it.

    Returns the output's probe summary, SHA-256 and size. The probe (the
    waiting ffprobe, fed the file through a pipe) and the hash (hashlib
    releases the GIL) run at the same time: the time after ffmpeg is the
    longer of the two, not their sum. Nobody writes the file any more, so the
    hash is of the bytes that are then renamed and stored.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash-copy") as pool:
        hashed = pool.submit(sha256_file, path)
        try:
            summary = checker.read(path)
        except ProbeError as exc:
            raise TranscodeError(
                f"ffmpeg wrote an unreadable file: {exc.reason}",
                stderr_tail=exc.stderr_tail,
                cmd=cmd,
            ) from exc
        digest, size = hashed.result()
    wanted = "audio" if plan.action == "audio" else "video"
    if summary.kind != wanted:
        raise TranscodeError(f"ffmpeg wrote {summary.kind} where {wanted} was expected", cmd=cmd)
    if not index_first(path):
        raise TranscodeError(
            "ffmpeg wrote the MP4 index (moov) after the media data (mdat): "
            "a browser could not start playing before the download ends",
            cmd=cmd,
        )
    return summary, digest, size


def index_first(path: Path) -> bool:
    """Whether the MP4's ``moov`` box comes before its ``mdat`` (what +faststart promises).

    Reads only the top-level box headers (a few bytes each) from the front.
    """
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        offset = 0
        while offset + 8 <= end:
            handle.seek(offset)
            header = handle.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size == 1 and len(header) == 16:  # 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            if size < 8:  # 0 = "to the end of the file", or a broken box
                return False
            offset += size
    return False


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size, read in 1 MiB chunks into one reused buffer
    (files may be many GB; no allocation per chunk)."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return digest.hexdigest(), size
