"""Reading a bag that may be hostile, without ever leaving it.

The offline verifier is given a folder an attacker may have built: manifest
lines naming ``/etc/passwd`` or ``../../secret``, payload folders that are
symbolic links, FIFOs that block a reader, names that are not UTF-8, files
whose declared sizes lie. Everything here reads through directory file
descriptors opened from the bag's root with ``O_NOFOLLOW`` at every level, so a
path is refused if it is absolute, has an empty, ``.`` or ``..`` component, or
is or passes through a symbolic link – also when the bag is changed while it is
read (nothing is resolved by name twice). Only regular files are read; files
are hashed in fixed-size blocks and small documents are read only up to a
limit, so memory stays flat whatever the bag holds.

Standard library only: this module ships inside the offline verifier.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: longest manifest line read (a path is at most a few KiB on any file system)
MAX_LINE = 64 * 1024
#: largest JSON document, note, key or tag text file read into memory whole
MAX_DOCUMENT = 32 * 1024 * 1024
#: deepest folder nesting walked
MAX_DEPTH = 32
BLOCK = 1024 * 1024

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class BagPathError(ValueError):
    """A path the verifier refuses to read; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One thing found in the bag: a regular file (with its size) or a refusal."""

    name: str
    size: int
    refused: str | None = None


def check_name(name: str) -> tuple[str, ...]:
    """The components of a bag-relative ``/``-separated path, or BagPathError."""
    if not name:
        raise BagPathError("empty path")
    if "\x00" in name:
        raise BagPathError("path contains a NUL byte")
    if name.startswith("/"):
        raise BagPathError("absolute path: refused, a bag names only files inside itself")
    if "\\" in name:
        raise BagPathError("path contains a backslash")
    parts = tuple(name.split("/"))
    if ".." in parts:
        raise BagPathError("path contains '..': refused, it could lead outside the bag")
    if any(part in ("", ".") for part in parts):
        raise BagPathError("path has an empty or '.' component")
    return parts


def _os_message(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is or passes through a symbolic link: refused, never followed"
    if exc.errno == errno.ENOTDIR:
        return "a component of the path is not a folder (or is a symbolic link)"
    if exc.errno == errno.ENOENT:
        return "missing"
    return exc.strerror or str(exc)


class Bag:
    """A bag folder opened once; every later read starts from that handle."""

    def __init__(self, root: Path) -> None:
        # the root itself is what the auditor named: it may be reached through links
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- opening ----------------------------------------------------------------

    def open(self, name: str) -> BinaryIO:
        """A regular file inside the bag, opened without following any link."""
        parts = check_name(name)
        fd = self.fd
        opened: list[int] = []
        try:
            for part in parts[:-1]:
                fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                opened.append(fd)
            file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            raise BagPathError(_os_message(exc)) from None
        finally:
            for handle in opened:
                os.close(handle)
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(file_fd)
            raise BagPathError("not a regular file")
        os.set_blocking(file_fd, True)
        return os.fdopen(file_fd, "rb")

    def size(self, name: str) -> int:
        with self.open(name) as handle:
            return os.fstat(handle.fileno()).st_size

    def read(self, name: str, limit: int = MAX_DOCUMENT) -> bytes:
        """A whole small file; BagPathError if it is larger than ``limit``."""
        with self.open(name) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise BagPathError(f"{size} bytes, more than the {limit} this file may have")
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise BagPathError(f"grew past {limit} bytes while read")
        return data

    def hash(self, name: str, algorithm: str, max_size: int | None = None) -> tuple[str, int]:
        """``(hex digest, bytes read)`` in one streaming pass. With ``max_size``
        a larger file is refused before a byte is read."""
        digest = hashlib.new(algorithm)
        size = 0
        with self.open(name) as handle:
            if max_size is not None and os.fstat(handle.fileno()).st_size > max_size:
                raise BagPathError(
                    f"{os.fstat(handle.fileno()).st_size} bytes, more than the {max_size} "
                    "it may have: not read"
                )
            while chunk := handle.read(BLOCK):
                digest.update(chunk)
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BagPathError(f"grew past {max_size} bytes while read")
        return digest.hexdigest(), size

    def lines(self, name: str) -> Iterator[tuple[int, bytes]]:
        """``(line number, line without its end)``, each at most MAX_LINE bytes.

        Raises BagPathError for a longer line (a manifest that is not one)."""
        with self.open(name) as handle:
            number = 0
            while line := handle.readline(MAX_LINE + 1):
                number += 1
                if len(line) > MAX_LINE and not line.endswith(b"\n"):
                    raise BagPathError(f"line {number} is longer than {MAX_LINE} bytes")
                yield number, line.rstrip(b"\r\n")

    # -- walking ----------------------------------------------------------------

    def walk(self) -> Iterator[Entry]:
        """Every regular file in the bag, and every entry refused (symbolic
        links, devices, FIFOs, sockets, names that are not UTF-8, too deep)."""
        yield from self._walk(self.fd, "", 0)

    def _walk(self, fd: int, prefix: str, depth: int) -> Iterator[Entry]:
        with os.scandir(fd) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            name = f"{prefix}{entry.name}"
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield Entry(shown, 0, "the name is not UTF-8: refused")
                continue
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                yield Entry(name, 0, "is a symbolic link: refused, never followed")
            elif stat.S_ISDIR(info.st_mode):
                if depth >= MAX_DEPTH:
                    yield Entry(name, 0, f"folders nested deeper than {MAX_DEPTH}: refused")
                    continue
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    yield Entry(name, 0, _os_message(exc))
                    continue
                try:
                    yield from self._walk(child, f"{name}/", depth + 1)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                yield Entry(name, info.st_size)
            else:
                yield Entry(name, 0, "not a regular file (device, FIFO or socket): refused")


def parse_manifest_line(line: bytes, digest_length: int) -> tuple[str, str]:
    """``(hex digest, path)`` from one manifest line (RFC 8493 §2.1.3: the
    checksum, whitespace, the path with CR, LF and % percent-encoded).

    Raises BagPathError for a line that is not one, or whose path is refused."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BagPathError("the line is not UTF-8") from None
    digest, _, name = text.strip(" \t").partition(" ")
    if not name:
        digest, _, name = text.strip(" \t").partition("\t")
    name = name.strip(" \t")
    if name.startswith("*"):  # sha256sum's binary-mode marker
        name = name[1:]
    digest = digest.lower()
    if len(digest) != digest_length or any(c not in "0123456789abcdef" for c in digest):
        raise BagPathError(f"{digest[:80]!r} is not a {digest_length}-digit hex checksum")
    name = name.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
    check_name(name)
    return digest, name
