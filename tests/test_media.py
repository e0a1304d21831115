"""Probing, policy and playback copies, proven on real clips with the system's ffmpeg."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import media_clips
import psutil
import pytest
from pydantic import ValidationError

from config.transcode import PolicyRule, TranscodeSettings, default_rules
from ingest.probe import ProbeError, ProbeSummary, probe, summarize
from ingest.transcode import (
    Plan,
    PlaybackCopy,
    TranscodeError,
    build_command,
    choose_action,
    ffmpeg_version,
    make_playback_copy,
    parse_progress,
)

PROBE_TIMEOUT = 10.0
#: tests run on 2 cores next to other suites: keep ffmpeg to two threads
SETTINGS = TranscodeSettings(threads=2, nice=0)


def settings(**changes: object) -> TranscodeSettings:
    """SETTINGS with some keys changed, validated like a config file would be."""
    return TranscodeSettings.model_validate({**SETTINGS.model_dump(), **changes})


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> media_clips.Clips:
    return media_clips.make_clips(tmp_path_factory.mktemp("media"))


def clip(clips: media_clips.Clips, name: str) -> Path:
    path = getattr(clips, name)
    if path is None:
        pytest.skip(f"this ffmpeg cannot make the {name} clip")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ffmpeg_children() -> list[psutil.Process]:
    return [
        p for p in psutil.Process().children(recursive=True) if "ffmpeg" in " ".join(p.cmdline())
    ]


# -- probe --------------------------------------------------------------------------

EXPECTED_PROBE = {
    "h264_mp4": ("video", ["h264", "aac"]),
    "h264_mov": ("video", ["h264", "aac", None]),  # None: the timecode data track
    "hevc_mp4": ("video", ["hevc", "aac"]),
    "mjpeg_avi": ("video", ["mjpeg", "pcm_s16le"]),
    "wav": ("audio", ["pcm_s16le"]),
    "amr": ("audio", ["amr_nb"]),
    "jpeg": ("image", ["mjpeg"]),
}


@pytest.mark.parametrize("name", EXPECTED_PROBE)
def test_probe_summarises_each_kind_in_plain_json(clips: media_clips.Clips, name: str) -> None:
    summary = probe(clip(clips, name), PROBE_TIMEOUT)
    kind, codecs = EXPECTED_PROBE[name]
    assert summary.kind == kind
    assert [s.codec for s in summary.streams] == codecs
    data = summary.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert ProbeSummary.from_dict(data) == summary
    if kind != "image":
        assert summary.duration == pytest.approx(media_clips.SECONDS, abs=0.1)


def test_probe_reports_stream_details_and_device_tags(clips: media_clips.Clips) -> None:
    summary = probe(clips.h264_mov, PROBE_TIMEOUT)
    video, audio = summary.video_streams[0], summary.audio_streams[0]
    assert (video.width, video.height, video.pixel_format) == (640, 360, "yuv420p")
    assert video.frame_rate == "25/1"
    assert (audio.sample_rate, audio.channels, audio.channel_layout) == (48000, 1, "mono")
    assert summary.creation_time is not None
    assert summary.creation_time.startswith("2026-03-01T08:30:15")
    assert summary.device_tags["com.apple.quicktime.make"] == "Apple"
    assert summary.device_tags["com.apple.quicktime.model"] == "iPhone 15"
    assert "major_brand" not in summary.device_tags


def test_probe_cover_art_does_not_make_audio_a_video() -> None:
    report = {
        "format": {"format_name": "mp3", "duration": "61.5"},
        "streams": [
            {"index": 0, "codec_type": "audio", "codec_name": "mp3", "sample_rate": "44100"},
            {
                "index": 1,
                "codec_type": "video",
                "codec_name": "mjpeg",
                "disposition": {"attached_pic": 1},
            },
        ],
    }
    summary = summarize(report)
    assert summary.kind == "audio"
    assert choose_action(summary, default_rules()).action == "audio"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("truncated_mp4", "moov atom not found"),
        ("random_mp4", "Invalid data found when processing input"),
        ("empty_mp4", "Invalid data found when processing input"),
    ],
)
def test_unreadable_files_raise_probe_error_with_ffprobes_words(
    clips: media_clips.Clips, name: str, words: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        probe(getattr(clips, name), PROBE_TIMEOUT)
    assert time.monotonic() - started < 5
    assert caught.value.returncode == 1
    assert any(words in line for line in caught.value.stderr_tail)
    assert words in str(caught.value) or words in caught.value.reason


def test_probe_is_killed_at_its_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "never-written.mp4"
    os.mkfifo(fifo)  # opening it blocks forever: a stand-in for a hung mount
    started = time.monotonic()
    with pytest.raises(ProbeError) as caught:
        probe(fifo, timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert caught.value.timed_out
    assert not [p for p in psutil.Process().children() if "ffprobe" in p.name()]


# -- policy -----------------------------------------------------------------------------

EXPECTED_ACTION = {
    "h264_mp4": "remux",
    "h264_mov": "remux",
    "hevc_mp4": "transcode",
    "mjpeg_avi": "transcode",
    "wav": "audio",
    "amr": "audio",
    "jpeg": "none",
}


@pytest.mark.parametrize("name", EXPECTED_ACTION)
def test_default_policy_chooses_by_kind_and_codec(clips: media_clips.Clips, name: str) -> None:
    plan = choose_action(probe(clip(clips, name), PROBE_TIMEOUT), SETTINGS.rules)
    assert plan.action == EXPECTED_ACTION[name]
    assert plan.rule is not None and plan.reason


def _video_report(codec: str, pix_fmt: str, audio: str | None, container: str) -> dict:
    streams = [{"index": 0, "codec_type": "video", "codec_name": codec, "pix_fmt": pix_fmt}]
    if audio:
        streams.append({"index": 1, "codec_type": "audio", "codec_name": audio})
    return {"format": {"format_name": container, "duration": "10"}, "streams": streams}


@pytest.mark.parametrize(
    ("report", "action"),
    [
        (_video_report("h264", "yuvj420p", None, "mov,mp4,m4a,3gp,3g2,mj2"), "remux"),
        (_video_report("h264", "yuv422p", "aac", "mov,mp4,m4a,3gp,3g2,mj2"), "transcode"),
        (_video_report("h264", "yuv420p", "pcm_s16le", "mov,mp4,m4a,3gp,3g2,mj2"), "transcode"),
        (_video_report("h264", "yuv420p", "aac", "matroska,webm"), "transcode"),
        (_video_report("h264", "yuv420p", "aac", "mpegts"), "transcode"),
        ({"format": {"format_name": "tty"}, "streams": [{"codec_type": "video"}]}, "none"),
        ({"format": {"format_name": "mpegts"}, "streams": [{"codec_type": "data"}]}, "none"),
    ],
)
def test_default_policy_edge_cases(report: dict, action: str) -> None:
    assert choose_action(summarize(report), default_rules()).action == action


def test_policy_is_data_first_match_wins(clips: media_clips.Clips) -> None:
    summary = probe(clips.h264_mp4, PROBE_TIMEOUT)
    rules = [
        PolicyRule(name="always-transcode", video_codec=["H264"], action="transcode"),
        *default_rules(),
    ]
    assert choose_action(summary, rules).rule == "always-transcode"
    assert choose_action(summary, []) == Plan("none", "no policy rule matched", None)


def test_transcode_settings_defaults_and_validation() -> None:
    settings = TranscodeSettings()
    assert (settings.enabled, settings.workers, settings.nice) == (True, 1, 10)
    assert (settings.preset, settings.crf, settings.max_height) == ("veryfast", 23, 1080)
    assert (settings.threads, settings.audio_bitrate, settings.retry_attempts) == (0, "128k", 2)
    assert settings.time_limit(10) == 60.0 and settings.time_limit(100) == 300.0
    assert settings.probe_timeout_seconds == 30.0
    for bad in ({"nice": 20}, {"workers": 0}, {"audio_bitrate": "loud"}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            TranscodeSettings(**bad)
    twice = [{"name": "a", "action": "none"}, {"name": "a", "action": "remux"}]
    with pytest.raises(ValidationError, match="unique"):
        TranscodeSettings(rules=twice)


# -- the command --------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["remux", "transcode", "audio"])
def test_command_is_a_safe_list(tmp_path: Path, action: str) -> None:
    cmd = build_command(Plan(action, "test"), Path("-i evil.mp4"), tmp_path / "out.part", SETTINGS)
    assert cmd[0] == "ffmpeg"
    source = cmd[cmd.index("-i") + 1]
    assert source == "file:" + os.path.abspath("-i evil.mp4")
    for flag in ("-nostdin", "-y", "-nostats", "-xerror"):
        assert flag in cmd
    assert cmd[cmd.index("-progress") + 1] == "pipe:1"
    assert cmd[cmd.index("-movflags") + 1] == "+faststart"
    assert cmd[cmd.index("-map_metadata") + 1] == "0"
    assert "file:" + str(tmp_path / "out.part") in cmd
    if action == "remux":
        assert cmd[cmd.index("-c") + 1] == "copy"
        assert "libx264" not in cmd
        assert cmd[cmd.index("-map") + 1] == "0:V"
    elif action == "transcode":
        for pair in (("-c:v", "libx264"), ("-preset", "veryfast"), ("-crf", "23")):
            assert cmd[cmd.index(pair[0]) + 1] == pair[1]
        assert cmd[cmd.index("-pix_fmt") + 1] == "yuv420p"
        assert "min(ih,1080)" in cmd[cmd.index("-vf") + 1]
        assert cmd[cmd.index("-c:a") + 1] == "aac"
    else:
        assert cmd[cmd.index("-f") + 1] == "ipod"
        assert cmd[cmd.index("-c:a") + 1] == "aac"
    with pytest.raises(ValueError):
        build_command(Plan("none", "test"), Path("a.jpg"), tmp_path / "x", SETTINGS)


def test_ffmpeg_version_is_the_first_line() -> None:
    assert ffmpeg_version().startswith("ffmpeg version ")
    assert "\n" not in ffmpeg_version()


def test_progress_parser_tolerates_missing_values() -> None:
    lines = ["out_time_us=N/A", "speed=N/A", "progress=continue", "out_time_ms=1500000"]
    lines += ["speed= 2.5x", "progress=end"]
    events = list(parse_progress(iter(lines)))
    assert [(e.out_time_s, e.speed, e.ended) for e in events] == [
        (None, None, False),
        (1.5, 2.5, True),
    ]


# -- playback copies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    source: Path
    source_summary: ProbeSummary
    sha_before: str
    sha_after: str
    copy: PlaybackCopy
    leftovers: list[str]


COPY_CLIPS = ["h264_mp4", "h264_mov", "hevc_mp4", "mjpeg_avi", "wav", "amr"]


@pytest.fixture(scope="module")
def made(clips: media_clips.Clips, tmp_path_factory: pytest.TempPathFactory):
    """Playback copies made once per clip, on first use, with the original's hash around it."""
    cache: dict[str, Made] = {}

    def make(name: str) -> Made:
        if name not in cache:
            source = clip(clips, name)
            work = tmp_path_factory.mktemp(f"work-{name}")
            before = sha256(source)
            summary = probe(source, PROBE_TIMEOUT)
            copy = make_playback_copy(source, work, summary, SETTINGS)
            assert copy is not None
            leftovers = sorted(p.name for p in work.iterdir() if p != copy.path)
            cache[name] = Made(source, summary, before, sha256(source), copy, leftovers)
        return cache[name]

    return make


@pytest.mark.parametrize("name", COPY_CLIPS)
def test_copy_decodes_cleanly_end_to_end(made, name: str) -> None:
    out = made(name).copy.path
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", f"file:{out}", "-f", "null", "-"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr, done.stdout) == (0, b"", b"")


@pytest.mark.parametrize("name", COPY_CLIPS)
def test_copy_has_moov_before_mdat(made, name: str) -> None:
    boxes = media_clips.top_level_boxes(made(name).copy.path)
    assert boxes.index("moov") < boxes.index("mdat")


@pytest.mark.parametrize("name", COPY_CLIPS)
def test_copy_keeps_the_duration(made, name: str) -> None:
    result = made(name)
    assert result.source_summary.duration is not None and result.copy.probe.duration is not None
    assert abs(result.copy.probe.duration - result.source_summary.duration) <= 0.1


@pytest.mark.parametrize("name", COPY_CLIPS)
def test_original_is_byte_identical_afterwards(made, name: str) -> None:
    result = made(name)
    assert result.sha_before == result.sha_after


@pytest.mark.parametrize("name", COPY_CLIPS)
def test_copy_is_named_by_its_hash_with_lineage(made, name: str) -> None:
    result = made(name)
    copy = result.copy
    assert copy.path.name == copy.sha256 + copy.plan.suffix
    assert (copy.sha256, copy.size) == (sha256(copy.path), copy.path.stat().st_size)
    assert result.leftovers == []  # the temp name is gone
    assert copy.plan.action == EXPECTED_ACTION[name]
    assert copy.ffmpeg_version == ffmpeg_version()
    assert copy.args[0] == "ffmpeg" and "file:" + str(result.source) in copy.args
    record = copy.to_dict()
    assert json.loads(json.dumps(record)) == record
    if copy.plan.action == "audio":
        assert copy.probe.kind == "audio" and copy.path.suffix == ".m4a"
        assert [s.codec for s in copy.probe.streams] == ["aac"]
    else:
        assert [s.codec for s in copy.probe.streams] == ["h264", "aac"]
        assert copy.probe.video_streams[0].pixel_format == "yuv420p"


@pytest.mark.parametrize("name", ["h264_mp4", "h264_mov"])
def test_remux_copies_streams_without_reencoding(made, name: str) -> None:
    result = made(name)
    source, copy = result.source_summary, result.copy.probe
    assert result.copy.plan.action == "remux"

    def shape(summary: ProbeSummary) -> list[tuple]:
        return [(s.type, s.codec, s.profile, s.width, s.height) for s in summary.streams]

    assert shape(copy) == [row for row in shape(source) if row[0] != "data"]
    assert copy.creation_time is not None and copy.creation_time.startswith("2026-03-01T08:30:15")

    def packets(path: Path) -> str:
        done = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", f"file:{path}", "-map", "0:v", "-c", "copy",
             "-f", "md5", "-"],
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout.decode().strip()

    assert packets(result.copy.path) == packets(result.source)


def test_remux_is_much_faster_than_a_transcode(clips: media_clips.Clips, tmp_path: Path) -> None:
    summary = probe(clips.h264_mp4, PROBE_TIMEOUT)
    forced = settings(rules=[{"name": "force", "action": "transcode"}])
    remux = make_playback_copy(clips.h264_mp4, tmp_path / "r", summary, SETTINGS)
    transcode = make_playback_copy(clips.h264_mp4, tmp_path / "t", summary, forced)
    assert remux is not None and transcode is not None
    assert remux.run is not None and transcode.run is not None
    assert remux.run.speed is not None and transcode.run.speed is not None
    # ffmpeg's own speed (media seconds per wall second) leaves out process start-up
    assert remux.run.speed > 3 * transcode.run.speed


def test_transcode_scales_to_max_height_keeping_aspect(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    summary = probe(clips.hevc_mp4, PROBE_TIMEOUT)
    copy = make_playback_copy(clips.hevc_mp4, tmp_path, summary, settings(max_height=101))
    assert copy is not None
    video = copy.probe.video_streams[0]
    assert (video.width, video.height) == (178, 100)  # 640x360 → even sizes, same shape


def test_still_gets_no_copy(clips: media_clips.Clips, tmp_path: Path) -> None:
    summary = probe(clips.jpeg, PROBE_TIMEOUT)
    assert make_playback_copy(clips.jpeg, tmp_path / "w", summary, SETTINGS) is None
    assert not (tmp_path / "w").exists()


def test_progress_rises_to_100(clips: media_clips.Clips, tmp_path: Path) -> None:
    seen: list[tuple[float, float | None]] = []
    fast = settings(progress_interval_seconds=0.05)
    summary = probe(clips.hevc_mp4, PROBE_TIMEOUT)
    make_playback_copy(clips.hevc_mp4, tmp_path, summary, fast, lambda p, s: seen.append((p, s)))
    percents = [p for p, _ in seen]
    assert len(percents) >= 3
    assert all(a < b for a, b in itertools.pairwise(percents))
    assert percents[-1] == 100.0 and all(0 <= p < 100 for p in percents[:-1])
    assert any(speed is not None and speed > 0 for _, speed in seen)


# -- failures -------------------------------------------------------------------------------------


def test_garbage_in_the_middle_fails_the_copy_with_ffmpegs_reason(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    before = sha256(clips.garbage_mp4)
    summary = probe(clips.garbage_mp4, PROBE_TIMEOUT)  # ffprobe does not see the damage
    assert choose_action(summary, SETTINGS.rules).action == "remux"
    started = time.monotonic()
    with pytest.raises(TranscodeError) as caught:
        make_playback_copy(clips.garbage_mp4, tmp_path, summary, SETTINGS)
    assert time.monotonic() - started < 10
    error = caught.value
    assert error.returncode == 1 and not error.timed_out and not error.retryable
    decoder_words = ("error while decoding", "Invalid", "corrupt", "not allocated")
    assert any(w in line for line in error.stderr_tail for w in decoder_words)
    assert any(w in str(error) for w in decoder_words)
    assert list(tmp_path.iterdir()) == []
    assert sha256(clips.garbage_mp4) == before


def test_garbage_in_the_middle_fails_a_transcode_too(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    summary = probe(clips.garbage_mp4, PROBE_TIMEOUT)
    forced = settings(rules=[{"name": "force", "action": "transcode"}])
    with pytest.raises(TranscodeError, match="ffmpeg exit 1"):
        make_playback_copy(clips.garbage_mp4, tmp_path, summary, forced)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["truncated_mp4", "random_mp4", "empty_mp4"])
def test_unreadable_input_given_to_ffmpeg_anyway_fails_cleanly(
    clips: media_clips.Clips, tmp_path: Path, name: str
) -> None:
    """Even if a caller skips the probe, ffmpeg's refusal arrives as a TranscodeError."""
    summary = probe(clips.h264_mp4, PROBE_TIMEOUT)  # a lie: the plan says remux
    started = time.monotonic()
    with pytest.raises(TranscodeError) as caught:
        make_playback_copy(getattr(clips, name), tmp_path, summary, SETTINGS)
    assert time.monotonic() - started < 10
    assert any("Invalid data found" in line for line in caught.value.stderr_tail)
    assert list(tmp_path.iterdir()) == []


def test_time_limit_kills_ffmpeg(clips: media_clips.Clips, tmp_path: Path) -> None:
    tight = settings(time_limit_factor=0.001, time_limit_floor_seconds=0.05)
    summary = probe(clips.hevc_mp4, PROBE_TIMEOUT)
    started = time.monotonic()
    with pytest.raises(TranscodeError) as caught:
        make_playback_copy(clips.hevc_mp4, tmp_path, summary, tight)
    assert time.monotonic() - started < 5
    assert caught.value.timed_out and caught.value.retryable
    assert "time limit" in str(caught.value)
    assert ffmpeg_children() == []
    assert list(tmp_path.iterdir()) == []


def test_a_raising_progress_callback_stops_ffmpeg(clips: media_clips.Clips, tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    def cancel(percent: float, speed: float | None) -> None:
        raise Cancelled

    summary = probe(clips.hevc_mp4, PROBE_TIMEOUT)
    with pytest.raises(Cancelled):
        make_playback_copy(clips.hevc_mp4, tmp_path, summary, SETTINGS, cancel)
    assert ffmpeg_children() == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "hostile",
    [
        "-i evil.mp4",
        " leading and trailing spaces .mp4",
        "执法记录仪 证据 01.mp4",
        "line\nbreak.mp4",
    ],
)
def test_hostile_file_names_are_plain_input(
    clips: media_clips.Clips, tmp_path: Path, hostile: str
) -> None:
    source = media_clips.copy_as(clips.h264_mp4, tmp_path / hostile)
    before = sha256(source)
    summary = probe(source, PROBE_TIMEOUT)
    copy = make_playback_copy(source, tmp_path / "work", summary, settings(nice=5))
    assert copy is not None and copy.probe.kind == "video"
    assert "file:" + str(source) in copy.args
    assert sha256(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([hostile, "work"])
