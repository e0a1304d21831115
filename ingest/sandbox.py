"""ffmpeg and ffprobe in a sandbox: no network, only the input readable, only the output writable.

A recording is hostile input for a media tool: ffmpeg's demuxers follow
playlists (HLS, concat) to URLs and absolute paths, and an exploited decoder
runs as the daemon's user – the user that can read the store's secrets and
reach its ports. ``-protocol_whitelist`` is the first layer; this module is the
second, which holds even when a demuxer ignores the whitelist or a decoder is
exploited. Every ffmpeg/ffprobe start goes through :meth:`Sandbox.command`:

- ``bwrap`` (Debian ``bubblewrap``) puts the tool in its own user, network,
  PID, IPC, UTS and cgroup namespaces (no network interface but an unconnected
  loopback), with a root file system that holds only ``/usr`` (read-only), the
  dynamic linker's cache, ``/dev``'s harmless nodes, the input file(s)
  read-only and the output folder writable; everything else – the dock, the
  data folder, keys, ``/etc``, ``/home``, ``/tmp`` – does not exist in there;
- ``prlimit`` (util-linux) sets RLIMIT_AS, RLIMIT_CPU, RLIMIT_NOFILE and
  RLIMIT_FSIZE beside the wall-clock limits the callers already enforce;
- the environment is cleared to :data:`ENV` (no secrets from the daemon's).

When bwrap is missing or cannot create namespaces the tools are *not* run
(:class:`SandboxUnavailable`, logged as an ERROR once): the original is still
archived – archiving never depends on ffmpeg – but it gets no probe summary
and no playback copy until the sandbox works (``playback retry --failed``).
``[transcode] sandbox = false`` runs them without bwrap (limits still apply),
for development machines only, with a WARNING on every start of a process.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from config.errors import UnavailableError
from config.transcode import TranscodeSettings

log = logging.getLogger(__name__)

BWRAP = "bwrap"
PRLIMIT = "prlimit"
#: the whole environment a media tool gets (the daemon's may hold store keys)
ENV: dict[str, str] = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
#: top-level folders that are (on merged-/usr systems) links into /usr
_USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: files outside /usr that the dynamic linker and library alternatives need; no secrets
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/alternatives")
_MIB = 1024 * 1024


class SandboxUnavailable(UnavailableError, RuntimeError):
    """bwrap is missing or cannot build its namespaces; media tools are not run."""

    code = "sandbox_unavailable"


@dataclass(frozen=True)
class Sandbox:
    """How media tools are confined; built from ``[transcode]`` by :func:`sandbox_for`."""

    enabled: bool = True
    memory_mb: int = 4096
    open_files: int = 256

    def command(
        self,
        argv: Sequence[str],
        *,
        read: Sequence[str | os.PathLike[str]] = (),
        write: Sequence[str | os.PathLike[str]] = (),
        cpu_seconds: float,
        max_file_bytes: int = 0,
    ) -> list[str]:
        """``argv`` wrapped: bwrap (unless disabled), then prlimit, then the tool.

        ``read``: files the tool may read (bound read-only at the same path);
        ``write``: folders it may write (bound read-write). ``cpu_seconds``
        caps CPU time over all threads, ``max_file_bytes`` the size of any file
        it writes (0: it writes none). Raises :class:`SandboxUnavailable`.
        """
        limits = [
            PRLIMIT,
            f"--as={self.memory_mb * _MIB}",
            f"--cpu={max(1, math.ceil(cpu_seconds))}",
            f"--nofile={self.open_files}",
            f"--fsize={max(0, max_file_bytes)}",
            "--",
        ]
        if not self.enabled:
            _warn_disabled()
            return [*limits, *argv]
        bwrap = _working_bwrap()
        tool = shutil.which(argv[0])
        if tool is None:  # as Popen would say: the tool itself is missing, not the file's fault
            raise FileNotFoundError(errno.ENOENT, "not installed", argv[0])
        args = [bwrap, *_base_args()]
        if not tool.startswith("/usr/"):
            args += ["--ro-bind", tool, tool]
        for folder in write:
            path = os.path.abspath(os.fspath(folder))
            args += ["--bind", path, path]
        for file in read:
            path = os.path.abspath(os.fspath(file))
            args += ["--ro-bind", path, path]
        return [*args, "--remount-ro", "/", "--", *limits, tool, *argv[1:]]


def sandbox_for(settings: TranscodeSettings) -> Sandbox:
    """The sandbox ``[transcode]`` asks for (also used by the ingest probe)."""
    return Sandbox(enabled=settings.sandbox, memory_mb=settings.sandbox_memory_mb)


def available() -> str | None:
    """None if the sandbox works here, else why not (for ``status`` and tests)."""
    try:
        _working_bwrap()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


@functools.cache
def _base_args() -> tuple[str, ...]:
    """The namespaces and the read-only system part of the sandbox's file system."""
    args = [
        "--unshare-all",  # user (when allowed), net, pid, ipc, uts, cgroup
        "--die-with-parent",  # killing bwrap (time limit) kills the tool
        "--new-session",  # no TIOCSTI into the daemon's terminal
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    for key, value in ENV.items():
        args += ["--setenv", key, value]
    args += ["--ro-bind", "/usr", "/usr", "--dev", "/dev"]
    for link in _USR_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    for path in _SYSTEM_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


@functools.cache
def _working_bwrap() -> str:
    """bwrap's path once it has run ``true`` inside the sandbox; else SandboxUnavailable."""
    found = shutil.which(BWRAP)
    hint = (
        "ffmpeg and ffprobe are not run without it: originals are archived without a "
        "probe summary or playback copy (install bubblewrap, or set [transcode] "
        "sandbox = false on a development machine only)"
    )
    if found is None:
        log.error("media sandbox unavailable: bwrap is not installed; %s", hint)
        raise SandboxUnavailable(f"media sandbox unavailable: bwrap is not installed; {hint}")
    try:
        done = subprocess.run(
            [found, *_base_args(), "--remount-ro", "/", "--", "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=ENV,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        detail = str(exc)
    else:
        if done.returncode == 0:
            return found
        detail = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
    log.error("media sandbox unavailable: bwrap cannot create namespaces (%s); %s", detail, hint)
    raise SandboxUnavailable(
        f"media sandbox unavailable: bwrap cannot create its namespaces ({detail}); {hint}"
    )


@functools.cache
def _warn_disabled() -> None:
    log.warning(
        "[transcode] sandbox = false: ffmpeg and ffprobe run WITHOUT a sandbox, with the "
        "network and every file this user can read – a hostile recording can reach the "
        "store and its secrets. Development only."
    )
