"""One read pass over a file: its SHA-256, and the SHA-256 of each upload part.

The part digests are what makes a multi-part upload as strong as a single PUT:
each part is sent with the digest computed *here*, from the bytes we hashed,
and the store refuses a part whose bytes differ. So the object stored under
``originals/sha256/<hex>`` is provably the file that hashed to ``<hex>``, even
if something wrote to the file between hashing and uploading.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

from archive.store import composite_checksum, sha256_b64
from config.errors import BadInputError

READ_CHUNK = 4 * 1024 * 1024


class NotRegularFile(BadInputError, OSError):
    """The path is a link, device, pipe or socket: never read."""

    code = "not_regular_file"


@dataclass(frozen=True)
class FileIdentity:
    """Which file, in which state: device, inode, size and mtime.

    A rename keeps it (the spool move is a rename), any write changes it. A
    digest is only ever reused for the same identity, and even then the store
    checks the bytes against it on upload.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int
    part_size: int | None = None
    part_digests: tuple[bytes, ...] = ()
    #: the file's identity while it was read; None if it changed during the read
    identity: FileIdentity | None = None
    #: MD5 of the same pass, only when asked for (a recorder's MD5 to compare with)
    md5: str | None = None

    @property
    def store_checksum(self) -> str:
        """What the store's HEAD must report for this file, as we upload it."""
        if self.part_digests:
            return composite_checksum(list(self.part_digests))
        return sha256_b64(bytes.fromhex(self.sha256))


def hash_file(
    path: str | os.PathLike[str], part_size: int | None = None, *, md5: bool = False
) -> FileDigest:
    """Hash ``path`` in one streaming pass (constant memory).

    With ``part_size``, also the digest of every ``part_size`` slice; the two
    digests of each block run on two cores (hashlib releases the GIL), so a
    multi-part file costs little more time than one SHA-256 pass (1 GB: 1.45 s
    one after the other, 0.95 s side by side). Opens with ``O_NOFOLLOW`` and
    refuses anything but a regular file. ``md5``: also the MD5 of the same bytes
    in the same pass (about a third more CPU, so only when a recorder's MD5 is
    there to compare with; never used to identify anything).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise NotRegularFile(f"{os.fsdecode(path)} is not a regular file")
        whole = hashlib.sha256()
        legacy = hashlib.md5(usedforsecurity=False) if md5 else None
        parts = _PartDigests(part_size) if part_size else None
        size = 0
        buffer = bytearray(READ_CHUNK)
        view = memoryview(buffer)
        # the digests of one block run side by side (hashlib releases the GIL): the
        # whole-file SHA-256 here, the part digests and the MD5 on helper threads
        side: list[Callable[[memoryview], None]] = [
            update
            for update in (parts.update if parts else None, legacy.update if legacy else None)
            if update is not None
        ]
        with ThreadPoolExecutor(len(side), "hash") if side else nullcontext() as helper:
            while count := handle.readinto(buffer):
                block = view[:count]
                size += count
                pending = [helper.submit(update, block) for update in side] if helper else []
                whole.update(block)
                for done in pending:
                    done.result()
        identity: FileIdentity | None = FileIdentity.of(before)
        if FileIdentity.of(os.fstat(fd)) != identity or identity.size != size:
            identity = None
    part_digests = parts.finish() if parts else ()
    return FileDigest(
        whole.hexdigest(),
        size,
        part_size,
        part_digests,
        identity,
        legacy.hexdigest() if legacy is not None else None,
    )


class _PartDigests:
    """SHA-256 of each ``part_size`` slice of a stream fed in blocks of any size."""

    def __init__(self, part_size: int) -> None:
        self._size = part_size
        self._left = part_size
        self._current = hashlib.sha256()
        self._done: list[bytes] = []

    def update(self, block: memoryview) -> None:
        while len(block):
            take = min(self._left, len(block))
            self._current.update(block[:take])
            block = block[take:]
            self._left -= take
            if self._left == 0:
                self._done.append(self._current.digest())
                self._current, self._left = hashlib.sha256(), self._size

    def finish(self) -> tuple[bytes, ...]:
        if self._left != self._size:
            self._done.append(self._current.digest())
        return tuple(self._done)
