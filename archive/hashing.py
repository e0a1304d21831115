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
from dataclasses import dataclass

from archive.store import composite_checksum, sha256_b64

READ_CHUNK = 4 * 1024 * 1024


class NotRegularFile(OSError):
    """The path is a link, device, pipe or socket: never read."""


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

    @property
    def store_checksum(self) -> str:
        """What the store's HEAD must report for this file, as we upload it."""
        if self.part_digests:
            return composite_checksum(list(self.part_digests))
        return sha256_b64(bytes.fromhex(self.sha256))


def hash_file(path: str | os.PathLike, part_size: int | None = None) -> FileDigest:
    """Hash ``path`` in one streaming pass (constant memory).

    With ``part_size``, also the digest of every ``part_size`` slice. Opens
    with ``O_NOFOLLOW`` and refuses anything but a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise NotRegularFile(f"{os.fsdecode(path)} is not a regular file")
        whole = hashlib.sha256()
        part = hashlib.sha256()
        part_left = part_size or 0
        parts: list[bytes] = []
        size = 0
        buffer = bytearray(READ_CHUNK)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            chunk = view[:count]
            whole.update(chunk)
            size += count
            while part_size and len(chunk):
                take = min(part_left, len(chunk))
                part.update(chunk[:take])
                chunk = chunk[take:]
                part_left -= take
                if part_left == 0:
                    parts.append(part.digest())
                    part, part_left = hashlib.sha256(), part_size
        if part_size and part_left != part_size:
            parts.append(part.digest())
        identity = FileIdentity.of(before)
        if FileIdentity.of(os.fstat(fd)) != identity or identity.size != size:
            identity = None
    return FileDigest(whole.hexdigest(), size, part_size, tuple(parts), identity)
