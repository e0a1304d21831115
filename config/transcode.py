"""The ``[transcode]`` section: how playback copies are made, and when.

Originals are never touched; a playback copy is a new object a browser can
play. *Which* copy an original gets is decided by an ordered list of rules kept
here as data (like Archivematica's ``workflow.json``), so a site can add a rule
for a new camera brand in its TOML file instead of patching code::

    [[transcode.rules]]
    name = "acme-h264-in-avi"
    container = ["avi"]
    video_codec = ["h264"]
    action = "transcode"

The first rule whose every condition holds wins; a rule without conditions is
a catch-all. ``ingest.transcode.choose_action`` applies them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: what to make: a stream copy into MP4, a re-encode to H.264/AAC MP4, an AAC
#: M4A from the audio alone, or nothing at all
Action = Literal["remux", "transcode", "audio", "none"]
#: what ``ingest.probe`` found the file to be
Kind = Literal["video", "audio", "image", "unknown"]
#: the libx264 presets; slower ones shrink files but cost CPU on the station
Preset = Literal[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
]

#: the codec name a rule uses to say "this kind of stream is absent"
NO_STREAM = "none"


class PolicyRule(BaseModel):
    """One row of the policy table. Every condition that is set must hold.

    Names are ffprobe's own: ``container`` is any one of the comma-separated
    ``format_name`` entries (ffprobe says ``mov,mp4,m4a,3gp,3g2,mj2`` for both
    MP4 and MOV), codecs are ``codec_name`` values, pixel formats ``pix_fmt``.
    Codec and pixel-format conditions hold when *every* stream of that type is
    listed, so one odd audio track sends a file to the safer action;
    ``"none"`` in a codec list matches a file without streams of that type.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    action: Action
    reason: str | None = Field(None, description="said in the plan; defaults to the rule's name")
    kind: list[Kind] | None = None
    container: list[str] | None = None
    video_codec: list[str] | None = None
    audio_codec: list[str] | None = None
    pixel_format: list[str] | None = None

    @field_validator("container", "video_codec", "audio_codec", "pixel_format")
    @classmethod
    def _lower_names(cls, value: list[str] | None) -> list[str] | None:
        # ffprobe's names are lower case; a rule written "H264" would silently never match
        return None if value is None else [name.strip().lower() for name in value]


def default_rules() -> list[PolicyRule]:
    """The policy every station starts with (first match wins)."""
    return [
        PolicyRule(
            name="not-media",
            container=["tty", "hls", "concat", "ffmetadata"],
            action="none",
            reason="text or playlist, not media: never followed or rendered",
        ),
        PolicyRule(
            name="still-image",
            kind=["image"],
            action="none",
            reason="a still image shows in a browser as it is",
        ),
        PolicyRule(
            name="browser-ready-video",
            kind=["video"],
            container=["mp4", "mov"],
            video_codec=["h264"],
            pixel_format=["yuv420p", "yuvj420p"],
            audio_codec=["aac", NO_STREAM],
            action="remux",
            reason="H.264 4:2:0 with AAC or no audio in MP4/MOV: copy the streams, move moov first",
        ),
        PolicyRule(
            name="other-video",
            kind=["video"],
            action="transcode",
            reason="video a browser may not play: re-encode to H.264/AAC MP4",
        ),
        PolicyRule(
            name="audio-only",
            kind=["audio"],
            action="audio",
            reason="audio only: encode to AAC in M4A",
        ),
        PolicyRule(
            name="unknown",
            action="none",
            reason="no audio or video stream to play",
        ),
    ]


class TranscodeSettings(BaseModel):
    """Everything the derivative workers need, with defaults for one 2-core station."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    workers: int = Field(1, ge=1, le=64, description="playback copies made at once")
    nice: int = Field(10, ge=0, le=19, description="ffmpeg runs under `nice -n N` so ingest wins")

    # -- encoding (transcode and audio actions) --------------------------------
    preset: Preset = "veryfast"
    crf: int = Field(23, ge=0, le=51)
    max_height: int = Field(1080, ge=16, le=4320, description="taller video is scaled down")
    threads: int = Field(0, ge=0, le=64, description="encoder threads; 0 = ffmpeg decides")
    audio_bitrate: str = "128k"

    # -- policy ------------------------------------------------------------------
    rules: list[PolicyRule] = Field(default_factory=default_rules)
    strict: bool = Field(
        True,
        description=(
            "stop at the first decode error (-xerror) and decode while remuxing, so a "
            "damaged original is reported instead of silently copied"
        ),
    )

    # -- limits ------------------------------------------------------------------
    time_limit_factor: float = Field(
        3.0, gt=0, description="wall-clock seconds allowed per second of media"
    )
    time_limit_floor_seconds: float = Field(60.0, gt=0, description="never less than this")
    probe_timeout_seconds: float = Field(30.0, gt=0)
    progress_interval_seconds: float = Field(1.0, ge=0.05, le=60)
    retry_attempts: int = Field(2, ge=0, le=10, description="retries of a retryable failure")

    # -- sandbox (ingest/sandbox.py) ----------------------------------------------
    sandbox: bool = Field(
        True,
        description=(
            "run ffmpeg/ffprobe in bubblewrap (no network, only input and output); "
            "false is for development machines only and warns on every start"
        ),
    )
    sandbox_memory_mb: int = Field(
        4096, ge=256, le=1_048_576, description="address-space limit (RLIMIT_AS) of a media tool"
    )

    @field_validator("audio_bitrate")
    @classmethod
    def _bitrate(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]{0,3}k", value):
            raise ValueError('must look like "128k" (kilobits per second)')
        return value

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[PolicyRule]) -> list[PolicyRule]:
        names = [rule.name for rule in rules]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"rule names must be unique; repeated: {duplicated}")
        return rules

    def time_limit(self, duration_s: float | None) -> float:
        """Seconds a run on media of this length may take before it is killed."""
        return max(self.time_limit_floor_seconds, self.time_limit_factor * (duration_s or 0.0))
