"""The check of a finished playback copy: ffprobe started ahead of the file, fed
from a pipe, while the copy is hashed.

Real ffmpeg/ffprobe on generated clips. The check must say the same as a plain
ffprobe of the file, refuse what a browser could not stream (index at the end,
wrong kind), and never leave an ffprobe behind.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import media_clips
import psutil
import pytest
from conftest import wait_until

from config.transcode import TranscodeSettings
from ingest.probe import ProbeError, StreamProbe, probe
from ingest.transcode import (
    Plan,
    TranscodeError,
    check_output,
    index_first,
    make_playback_copy,
)

PROBE_TIMEOUT = 10.0
SETTINGS = TranscodeSettings(threads=2, nice=0)
REMUX = Plan(action="remux", reason="test", rule="test")


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> media_clips.Clips:
    return media_clips.make_clips(tmp_path_factory.mktemp("media"))


def ffprobes() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "ffprobe"]


@pytest.mark.parametrize("name", ["h264_mp4", "hevc_mp4", "wav"])
def test_copy_summary_equals_a_plain_ffprobe_of_the_file(
    clips: media_clips.Clips, tmp_path: Path, name: str
) -> None:
    """Probing through the pipe loses nothing: size and bit rate are filled in as
    ffprobe computes them for a file, everything else is ffprobe's own."""
    source = getattr(clips, name)
    copy = make_playback_copy(source, tmp_path, probe(source, PROBE_TIMEOUT), SETTINGS)
    assert copy is not None
    assert copy.probe == probe(copy.path, PROBE_TIMEOUT)
    assert copy.probe.size == copy.size == copy.path.stat().st_size
    assert (copy.sha256, copy.size) == (
        hashlib.sha256(copy.path.read_bytes()).hexdigest(),
        len(copy.path.read_bytes()),
    )


def test_an_mp4_with_its_index_at_the_end_is_refused(clips: media_clips.Clips) -> None:
    """The camera-like clip has moov after mdat: a browser would have to download it all."""
    boxes = media_clips.top_level_boxes(clips.h264_mp4)
    assert boxes.index("mdat") < boxes.index("moov")
    assert not index_first(clips.h264_mp4)
    with StreamProbe(PROBE_TIMEOUT) as checker, pytest.raises(TranscodeError) as caught:
        check_output(clips.h264_mp4, REMUX, checker, ["ffmpeg"])
    assert "moov" in caught.value.reason and "after the media data" in caught.value.reason


@pytest.mark.parametrize("name", ["h264_mp4", "wav"])
def test_every_copy_has_its_index_first(
    clips: media_clips.Clips, tmp_path: Path, name: str
) -> None:
    source = getattr(clips, name)
    copy = make_playback_copy(source, tmp_path, probe(source, PROBE_TIMEOUT), SETTINGS)
    assert copy is not None and index_first(copy.path)
    boxes = media_clips.top_level_boxes(copy.path)
    assert boxes.index("moov") < boxes.index("mdat")


def test_a_truncated_copy_is_refused_with_ffprobes_words(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    copy = make_playback_copy(
        clips.h264_mp4, tmp_path, probe(clips.h264_mp4, PROBE_TIMEOUT), SETTINGS
    )
    assert copy is not None
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(copy.path.read_bytes()[:2000])  # inside the index
    with StreamProbe(PROBE_TIMEOUT) as checker, pytest.raises(TranscodeError) as caught:
        check_output(cut, REMUX, checker, ["ffmpeg"])
    assert caught.value.reason.startswith("ffmpeg wrote an unreadable file: ffprobe exit")
    assert caught.value.stderr_tail, "ffprobe's own words are kept"


def test_a_copy_of_the_wrong_kind_is_refused(clips: media_clips.Clips, tmp_path: Path) -> None:
    audio = make_playback_copy(clips.wav, tmp_path, probe(clips.wav, PROBE_TIMEOUT), SETTINGS)
    assert audio is not None and audio.plan.action == "audio"
    with StreamProbe(PROBE_TIMEOUT) as checker, pytest.raises(TranscodeError) as caught:
        check_output(audio.path, REMUX, checker, ["ffmpeg"])
    assert caught.value.reason == "ffmpeg wrote audio where video was expected"


def test_a_failed_ffmpeg_leaves_no_ffprobe_and_no_file(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    source = clips.h264_mp4
    with pytest.raises(TranscodeError):
        make_playback_copy(clips.garbage_mp4, tmp_path, probe(source, PROBE_TIMEOUT), SETTINGS)
    assert ffprobes() == []
    assert list(tmp_path.iterdir()) == []


def test_an_unfed_stream_probe_is_stopped_on_exit() -> None:
    with StreamProbe(PROBE_TIMEOUT):
        # the sandbox (bwrap, then prlimit) starts first, ffprobe a few ms later
        wait_until(lambda: len(ffprobes()) == 1, timeout=10, message="a waiting ffprobe")
    assert ffprobes() == []


def test_a_stream_probe_that_does_not_finish_is_killed_at_its_timeout(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    """A file that stalls half-way (a FIFO whose writer pauses) costs the timeout, not forever."""
    fifo = tmp_path / "stalls.mp4"
    os.mkfifo(fifo)
    head = clips.h264_mp4.read_bytes()[:4096]
    release = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as handle:
            handle.write(head)
            handle.flush()
            release.wait(30)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with StreamProbe(0.5) as checker:
        threading.Timer(3.0, release.set).start()
        with pytest.raises(ProbeError) as caught:
            checker.read(fifo)
    thread.join(10)
    assert caught.value.timed_out
    assert ffprobes() == []
