"""Finding candidate files in a dock folder without ever leaving it.

A dock is walked with ``os.scandir`` and ``lstat`` only: symbolic links are
never followed (a link to ``/etc/shadow`` dropped in a dock must not be
archived, nor a link to a folder walked), only regular files are candidates,
each with its device and inode (``ingest/dockfs.py`` claims exactly that file),
and names matching the dock's ignore globs – partial downloads and dotfiles,
which include Strongroom's own ``.strongroom`` folder – are skipped.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.dockfs import identity

#: Strongroom's folder inside every dock (same file system, so renames are atomic)
WORK_DIR = ".strongroom"


@dataclass(frozen=True)
class Candidate:
    path: str  # absolute, as the dock wrote it
    size: int
    mtime_ns: int
    #: "device:inode" at inspection; the claim refuses a file that is not this one
    identity: str | None = None


@dataclass(frozen=True)
class Rejected:
    path: str
    reason: str


def is_ignored(name: str, ignore: list[str]) -> bool:
    return name == WORK_DIR or any(fnmatch.fnmatchcase(name, pattern) for pattern in ignore)


def scan_dock(
    root: Path, ignore: list[str], on_ignored: Callable[[str], None] | None = None
) -> Iterator[Candidate | Rejected]:
    """Yield every regular file below ``root`` and every thing we refuse to take.

    ``on_ignored`` hears each path skipped by the ignore patterns (not our own
    folder), so a dock cannot hide files from ``status`` behind a pattern."""
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            yield Rejected(folder, f"folder cannot be listed: {exc.strerror}")
            continue
        for entry in entries:
            if is_ignored(entry.name, ignore):
                if on_ignored is not None and entry.name != WORK_DIR:
                    on_ignored(entry.path)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                yield Rejected(entry.path, f"cannot stat: {exc.strerror}")
                continue
            if stat.S_ISLNK(st.st_mode):
                yield Rejected(entry.path, "symbolic link: never followed out of a dock")
            elif stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                yield Candidate(entry.path, st.st_size, st.st_mtime_ns, identity(st))
            else:
                yield Rejected(entry.path, "not a regular file (device, pipe or socket)")


def inspect_path(path: str, root: Path, ignore: list[str]) -> Candidate | Rejected | None:
    """One path, as :func:`scan_dock` would see it (None: not ours to take)."""
    try:
        relative = Path(path).relative_to(root)
    except ValueError:
        return None
    if any(is_ignored(part, ignore) for part in relative.parts):
        return None
    # a symlinked folder above the file would lead out of the dock
    parent = root
    for part in relative.parts[:-1]:
        parent = parent / part
        try:
            if stat.S_ISLNK(os.lstat(parent).st_mode):
                return Rejected(path, f"inside symbolic link {parent}: never followed")
        except FileNotFoundError:
            return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Rejected(path, "symbolic link: never followed out of a dock")
    if stat.S_ISREG(st.st_mode):
        return Candidate(path, st.st_size, st.st_mtime_ns, identity(st))
    if stat.S_ISDIR(st.st_mode):
        return None
    return Rejected(path, "not a regular file (device, pipe or socket)")
