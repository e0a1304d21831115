"""ffmpeg and ffprobe in the sandbox (ingest/sandbox.py): no network, nothing readable
beyond the input, nothing writable beyond the output folder, limits, no secrets.

Each confinement is shown twice: the tool run *without* the sandbox does the
forbidden thing (so the detector works), the same tool in the sandbox does
not. The hostile recordings then go through a real station: archived as they
are, no playback copy, the reason logged, no connection made, nothing read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import media_clips
import pytest
from conftest import Station

from ingest import sandbox as sandbox_module
from ingest.probe import ProbeError, probe
from ingest.sandbox import ENV, Sandbox
from ingest.transcode import TranscodeError, make_playback_copy

STRICT = Sandbox()
OPEN = Sandbox(enabled=False)  # the control: the same tool, unconfined


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> media_clips.Clips:
    return media_clips.make_clips(tmp_path_factory.mktemp("sandbox-media"))


@contextlib.contextmanager
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A listening loopback socket; yields its port and the requests it received."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    received.append(conn.recv(4096) or b"(connected)")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        server.close()


@contextlib.contextmanager
def open_detector(fifo: Path) -> Iterator[list[str]]:
    """A FIFO that records whether anything opened it for reading (the canary file)."""
    os.mkfifo(fifo)
    opened: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.01):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody has it open for reading
                continue
            opened.append("opened")
            with contextlib.suppress(OSError):
                os.write(fd, b"#EXTM3U\n")
            os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join(5)


def run(box: Sandbox, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    cmd = box.command(argv, cpu_seconds=20, **kwargs)
    return subprocess.run(cmd, capture_output=True, env=ENV, timeout=30, check=False)


# -- the sandbox itself, with the first layer (the protocol whitelist) left out ----


def test_no_network_even_without_the_protocol_whitelist() -> None:
    with listener() as (port, received):
        url = f"http://127.0.0.1:{port}/evidence.ts"
        argv = ["ffprobe", "-v", "error", "-rw_timeout", "3000000", "-i", url]
        run(OPEN, argv)
        assert received, "control: unconfined ffprobe should have connected"
        received.clear()
        confined = run(STRICT, argv)
    assert received == []
    assert confined.returncode != 0
    assert b"Connection refused" in confined.stderr or b"unreachable" in confined.stderr


def test_nothing_readable_beyond_the_input(clips: media_clips.Clips, tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    secret = media_clips.copy_as(clips.wav, tmp_path / "secret" / "key.wav")
    given = media_clips.copy_as(clips.wav, tmp_path / "given.wav")
    argv = ["ffprobe", "-v", "error", "-show_format", "-of", "json", "-i"]
    assert run(OPEN, [*argv, f"file:{secret}"]).returncode == 0  # control
    confined = run(STRICT, [*argv, f"file:{secret}"], read=[given])
    assert confined.returncode != 0
    assert b"No such file" in confined.stderr
    for outside in ("/etc/passwd", str(Path.home()), os.getcwd()):
        assert run(STRICT, ["ffprobe", "-v", "error", "-i", f"file:{outside}"]).returncode != 0
    allowed = run(STRICT, [*argv, f"file:{given}"], read=[given])
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["format"]["format_name"] == "wav"


def test_nothing_writable_beyond_the_output_folder(
    clips: media_clips.Clips, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["ffmpeg", "-v", "error", "-i", f"file:{clips.wav}", "-c", "copy", "-y"]
    big = {"read": [clips.wav], "max_file_bytes": 10_000_000}
    refused = run(STRICT, [*argv, f"file:{tmp_path / 'beside.wav'}"], write=[out], **big)
    assert refused.returncode != 0
    assert not (tmp_path / "beside.wav").exists()
    done = run(STRICT, [*argv, f"file:{out / 'copy.wav'}"], write=[out], **big)
    assert done.returncode == 0, done.stderr
    assert (out / "copy.wav").stat().st_size > 0
    # the input itself stays read-only even inside a writable folder
    inside = media_clips.copy_as(clips.wav, out / "input.wav")
    before = inside.read_bytes()
    clobber = run(STRICT, [*argv, f"file:{inside}"], read=[inside], write=[out], max_file_bytes=1)
    assert clobber.returncode != 0
    assert inside.read_bytes() == before


def test_probe_of_a_playlist_opens_nothing_outside(tmp_path: Path) -> None:
    """The ingest probe and the playback worker's probe: the whitelist allows ``file``,
    so only the sandbox keeps an HLS playlist from opening a file outside."""
    playlist = tmp_path / "dock" / "clip.m3u8"
    playlist.parent.mkdir()
    with open_detector(tmp_path / "canary.ts") as opened:
        playlist.write_text(PLAYLIST.format(tmp_path / "canary.ts"), encoding="utf-8")
        with pytest.raises(ProbeError):
            probe(playlist, 5, OPEN)  # control: the unconfined probe opens it
        assert opened, "control: unconfined ffprobe should open the canary"
        opened.clear()
        with pytest.raises(ProbeError, match="Error when loading first segment"):
            probe(playlist, 5)  # the default: sandboxed
        assert opened == []


def test_limits_apply_and_the_environment_holds_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRONGROOM_STORE__SECRET_ACCESS_KEY", "do-not-leak")
    box = Sandbox(memory_mb=512, open_files=64)
    cmd = box.command(
        ["sh", "-c", "env; ulimit -v; ulimit -n; ulimit -t; ulimit -f"],
        cpu_seconds=7,
        max_file_bytes=1024 * 1024,
    )
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=30, check=True
    )  # env inherited
    assert "do-not-leak" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[-4:] == [str(512 * 1024), "64", "7", str(1024 * 1024 // 512)]


def test_no_bwrap_means_no_media_tool_and_a_clear_reason(
    monkeypatch: pytest.MonkeyPatch, clips: media_clips.Clips, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox_module, "BWRAP", "bwrap-not-installed")
    sandbox_module._working_bwrap.cache_clear()
    try:
        with pytest.raises(ProbeError, match="media sandbox unavailable: bwrap is not installed"):
            probe(clips.wav, 10)
        assert "media sandbox unavailable" in caplog.text
        # the development switch runs the tool unconfined, and says so loudly
        with caplog.at_level(logging.WARNING):
            sandbox_module._warn_disabled.cache_clear()
            assert probe(clips.wav, 10, OPEN).kind == "audio"
        assert "WITHOUT a sandbox" in caplog.text
    finally:
        sandbox_module._working_bwrap.cache_clear()


def test_bwrap_that_cannot_make_namespaces_means_no_media_tool(
    monkeypatch: pytest.MonkeyPatch, clips: media_clips.Clips, tmp_path: Path
) -> None:
    """As in a container that forbids user namespaces: bwrap exists but fails."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox_module, "BWRAP", str(fake))
    sandbox_module._working_bwrap.cache_clear()
    try:
        assert "No permissions to create new namespace" in (sandbox_module.available() or "")
        with pytest.raises(ProbeError, match="bwrap cannot create its namespaces"):
            probe(clips.wav, 10)
    finally:
        monkeypatch.undo()
        sandbox_module._working_bwrap.cache_clear()
    assert sandbox_module.available() is None  # the real one works here


def test_a_playback_copy_without_the_sandbox_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, clips: media_clips.Clips, tmp_path: Path
) -> None:
    from config.transcode import TranscodeSettings

    settings = TranscodeSettings(threads=2, nice=0)
    summary = probe(clips.hevc_mp4, 10)
    monkeypatch.setattr(sandbox_module, "BWRAP", "bwrap-not-installed")
    sandbox_module._working_bwrap.cache_clear()
    try:
        with pytest.raises(TranscodeError, match="media sandbox unavailable"):
            make_playback_copy(clips.hevc_mp4, tmp_path / "out", summary, settings)
    finally:
        sandbox_module._working_bwrap.cache_clear()
    assert list((tmp_path / "out").iterdir()) == []


# -- hostile recordings through a real station -----------------------------------

PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\n{}\n#EXT-X-ENDLIST\n"


def hostile_files(folder: Path, port: int, canary: Path, secret: Path) -> dict[str, str]:
    """file name → content: playlists naming the network, a canary and a secret outside."""
    return {
        "ABC1234_012345_20260301083015_0001.m3u8": PLAYLIST.format(f"http://127.0.0.1:{port}/a.ts"),
        "ABC1234_012345_20260301083016_0001.m3u8": PLAYLIST.format(f"file:{canary}"),
        "ABC1234_012345_20260301083017_0001.m3u8": PLAYLIST.format(secret),
        "ABC1234_012345_20260301083018_0001.ffconcat": f"ffconcat version 1.0\nfile {secret}\n",
        "ABC1234_012345_20260301083019_0001.ffconcat": (
            f"ffconcat version 1.0\nfile http://127.0.0.1:{port}/b.ts\n"
        ),
    }


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "control-unconfined"])
def test_hostile_playlists_are_archived_and_reach_nothing(
    station: Station, clips: media_clips.Clips, tmp_path: Path, sandboxed: bool
) -> None:
    """The control run (``sandbox = false``, the whitelist alone) shows what is at
    stake: ffprobe opens the canary outside and reads the secret's three seconds."""
    station.write_config(
        f"[transcode]\nthreads = 2\nnice = 0\nretry_attempts = 0\n"
        f"sandbox = {str(sandboxed).lower()}\n"
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.ts"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clips.wav), "-c:a", "aac", "-f", "mpegts", str(secret)],
        check=True,
    )
    station.dock.mkdir(exist_ok=True)
    with listener() as (port, received), open_detector(outside / "canary.ts") as opened:
        files = hostile_files(station.dock, port, outside / "canary.ts", secret)
        for name, text in files.items():
            (station.dock / name).write_text(text, encoding="utf-8")
        done = station.cli("ingest", str(station.dock), "--playback", "--json", check=False)
    items = {item["file"]: item for item in json.loads(done.stdout)["items"]}
    assert set(items) == set(files)
    copies = {}
    for name, item in items.items():
        assert item["sha256"] and item["evidence_state"] == "sealed", item  # archived as it is
        shown = json.loads(station.cli("show", item["evidence_id"], "--json").stdout)
        (copies[name],) = shown["derivatives"]
    if not sandboxed:
        assert opened, "control: unconfined ffprobe should open the canary"
        assert copies[next(iter(n for n in files if "083017" in n))]["state"] == "skipped"
        return
    assert received == [], "a media tool connected to the loopback port"
    assert opened == [], "a media tool opened a file outside its sandbox"
    for name, copy in copies.items():
        # refused, with ffprobe's words as the reason (the secret never probed as media)
        assert copy["state"] == "failed" and copy["error"], (name, copy)
    assert secret.exists() and (outside / "canary.ts").exists()
