"""Hash large dock files while they settle, so the digest is ready at claim.

A file is claimed only after it has been still for ``settle_seconds``; until
then the daemon just waits. For a large file that wait can do the hash pass
instead: once the kernel says no process holds the file open, it is read and
hashed in the background, and the claim step takes the finished digest
instead of reading the file again. A 1 GB file then starts uploading about
0.7 s earlier (the content-addressed key needs the whole hash before the
first byte can be sent).

Reusing a digest is safe for the same reason re-hashing is: a digest is only
handed out for the file identity it was computed on (device, inode, size,
mtime – kept by the rename into the spool, changed by any write), and the
store checks every uploaded byte against it (the whole-file or per-part
SHA-256), so bytes that changed anyway are refused and hashed again.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

from archive.hashing import FileDigest, FileIdentity, hash_file
from ingest.settle import open_by_others

log = logging.getLogger("strongroom.prehash")

#: below this, hashing takes a few milliseconds: not worth a second thread's time
#: (the daemon passes the multipart threshold: files sent in parts are the large ones)
MIN_SIZE = 16 * 1024 * 1024
#: digests kept for files not yet claimed (the oldest are dropped first)
CAPACITY = 64


class PreHasher:
    """One background thread hashing offered files; :meth:`take` hands digests out once."""

    def __init__(
        self,
        part_size_for: Callable[[int], int | None],
        *,
        min_size: int = MIN_SIZE,
        capacity: int = CAPACITY,
    ) -> None:
        self._part_size_for = part_size_for
        self._min_size = min_size
        self._capacity = capacity
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prehash")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[FileIdentity, Future[FileDigest | None]] = OrderedDict()
        self._reading: set[str] = set()

    def offer(self, path: str, size: int, md5: Callable[[str], bool] | None = None) -> None:
        """Hash ``path`` in the background if it is large and not already done or under way.

        ``size``: what the caller last saw (a cheap first filter; the file is stat'ed again).
        ``md5``: asked of a large file only – whether the recorder left an MD5 to compare
        with (then the pass takes the MD5 too, and the claim can use it).
        """
        if size < self._min_size:
            return
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode) or st.st_size < self._min_size:
            return
        identity = FileIdentity.of(st)
        want_md5 = md5 is not None and md5(path)
        with self._lock:
            if identity in self._jobs:
                return
            while len(self._jobs) >= self._capacity:
                _, oldest = self._jobs.popitem(last=False)
                oldest.cancel()
            future = self._pool.submit(self._hash, path, identity, want_md5)
            self._jobs[identity] = future
        future.add_done_callback(lambda done: self._drop_if_empty(identity, done))

    def take(
        self, identity: FileIdentity, part_size: int | None, *, md5: bool = False
    ) -> FileDigest | None:
        """The digest of exactly this file state, waiting if its hash is under way.

        None when there is none to give: never offered, not started yet (it
        is cancelled, the caller hashes at once rather than queue behind other
        files), the file changed, or it was hashed with other upload parts, or
        without the MD5 the caller needs (``md5``).
        """
        with self._lock:
            future = self._jobs.pop(identity, None)
        if future is None or future.cancel():
            return None
        try:
            digest = future.result()
        except CancelledError:
            return None
        except Exception as exc:  # the caller's own pass will meet and report it
            log.debug("pre-hash of %s failed: %s", identity, exc)
            return None
        if digest is None or digest.identity != identity or digest.part_size != part_size:
            return None
        if md5 and digest.md5 is None:
            return None
        log.debug("using the digest taken while %s settled", identity)
        return digest

    def drain(self) -> None:
        """Wait until every file offered so far has been hashed (or given up)."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._jobs.clear()

    def reading(self, path: str) -> bool:
        """True while ``path`` is open here (its lease check or its hash pass)."""
        with self._lock:
            return path in self._reading

    def _hash(self, path: str, identity: FileIdentity, md5: bool = False) -> FileDigest | None:
        with self._lock:
            self._reading.add(path)
        try:
            try:
                now = FileIdentity.of(os.stat(path, follow_symlinks=False))
            except OSError:
                return None
            if now != identity or open_by_others(path):
                return None  # written since it was offered, or still being written
            digest = hash_file(path, self._part_size_for(identity.size), md5=md5)
        finally:
            with self._lock:
                self._reading.discard(path)
        return digest if digest.identity == identity else None

    def _drop_if_empty(self, identity: FileIdentity, future: Future[FileDigest | None]) -> None:
        """A pass that gave nothing is forgotten, so the next offer tries again."""
        if future.cancelled() or future.exception() is not None or future.result() is None:
            with self._lock:
                if self._jobs.get(identity) is future:
                    del self._jobs[identity]
