"""The upload area: resumable uploads (tus 1.0.0) kept durable on the station's disk.

Why tus rather than S3-style multipart through the API: tus is an open,
versioned protocol with maintained clients in every language (tuspy,
tus-js-client, TUSKit, tus-android-client, tusd's Go client) and resumes
with one ``HEAD`` – the client asks "how far did you get?" and sends the
rest – without keeping a list of parts, part numbers or ETags; the server
never has to hold or reassemble parts. Multipart would also mean a second,
home-made protocol in front of the store, since clients must not get store
credentials.

The guarantees this module keeps:

- **streamed, never held**: bytes go from the socket to the partial file in
  bounded chunks; the SHA-256 is computed as they arrive (``rehashes``, whose
  hasher state can be serialised), so completion never re-reads the file;
- **an offset is acknowledged only when durable**: the partial file is
  fsync'd before its offset and hash state are committed to the catalog, and
  a resumed append first cuts the file back to the committed offset, so bytes
  a crash left unacknowledged are never trusted;
- **safe names**: a partial is named by its random upload id, never by the
  client's file name, opened with ``O_NOFOLLOW`` in a 0700 folder; the
  declared file name is only recorded, stripped of folders and control
  characters;
- **limits**: ``[uploads] max_bytes``, unfinished uploads per token, free
  space, and expiry of untouched uploads (a scheduled clean-up);
- **the declared SHA-256 decides**: a complete upload whose bytes do not hash
  to it is refused and its partial discarded; one that matches is handed, in
  the same catalog transaction that marks it complete, to the pipeline as an
  ingest job (``hand_off``, supplied by :mod:`ingest.uploads`), which claims
  it into the spool by rename and archives it like a docked file.

Two processes may serve one upload folder: an append holds an exclusive
``flock`` on the partial, so a second append to the same upload is refused
(423) rather than interleaved.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rehashes import PySha256
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.custody import record_event
from archive.db import utcnow
from archive.scope import Scope
from archive.seal import evidence_id_for
from archive.upload_models import ABORTED, COMPLETE, EXPIRED, RECEIVING, REFUSED, Upload

log = logging.getLogger("strongroom.uploads")

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum,expiration"
#: Upload-Checksum algorithms (tus checksum extension): one request's body
CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
#: the folder of partial files inside the upload folder
PARTIAL = "partial"
#: the spool inside the upload folder, laid out as a dock's (same file system: a rename)
SPOOL = (".strongroom", "spool")
#: what the pipeline's jobs call this "dock"
UPLOAD_DOCK = "@upload"
_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_FIELD = re.compile(r"^[\w.\-]{1,64}$")
_MAX_METADATA = 8192
_MAX_NAME_BYTES = 255


class UploadError(Exception):
    """An upload request refused on purpose: HTTP status, stable code, message."""

    status = 422
    code = "invalid_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class UnknownUpload(UploadError):
    status, code = 404, "upload_not_found"


class UploadGone(UploadError):
    """Expired, aborted or refused: 410, with what happened."""

    status, code = 410, "upload_gone"


class OffsetMismatch(UploadError):
    status, code = 409, "offset_mismatch"


class Busy(UploadError):
    status, code = 423, "upload_busy"


class ChecksumMismatch(UploadError):
    """The tus checksum extension's 460: this request's body or the whole file."""

    status, code = 460, "checksum_mismatch"


@dataclass(frozen=True)
class Declared:
    """What the client declared at creation (from ``Upload-Metadata``)."""

    file_name: str
    sha256: str
    unit: str | None = None
    officer: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class Uploader:
    """Who sends: the token's name and role, its unit scope, the client address."""

    name: str
    role: str
    scope: Scope
    client: str | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


@dataclass(frozen=True)
class Progress:
    """An upload as a tus client sees it."""

    upload_id: str
    length: int
    offset: int
    state: str
    expires_at: datetime
    evidence_id: str | None = None
    job_id: int | None = None
    error: str | None = None


#: hands a complete upload to the pipeline in the caller's transaction; returns the job id
HandOff = Callable[[Session, Upload, Path, os.stat_result], int]


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (tus 1.0.0)."""
    if not header:
        return {}
    if len(header) > _MAX_METADATA:
        raise UploadError(f"Upload-Metadata is longer than {_MAX_METADATA} characters")
    values: dict[str, str] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2 or parts[0] in values:
            raise UploadError(f"Upload-Metadata: malformed or repeated pair {pair.strip()[:40]!r}")
        raw = parts[1] if len(parts) == 2 else ""
        try:
            values[parts[0]] = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise UploadError(
                f"Upload-Metadata: value of {parts[0]!r} is not base64 of UTF-8 text"
            ) from None
    return values


def safe_file_name(name: str) -> str:
    """The declared name as it may be recorded: its last path component, no control
    characters, at most 255 bytes. The bytes on disk never take this name."""
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if cleaned in ("", ".", ".."):
        raise UploadError("Upload-Metadata: filename is empty or not a file name")
    encoded = cleaned.encode("utf-8")[:_MAX_NAME_BYTES]
    return encoded.decode("utf-8", errors="ignore")


def declared(metadata: dict[str, str]) -> Declared:
    """Check the metadata a Strongroom upload needs: ``filename`` and ``sha256``
    (hex) required; ``unit``, ``officer``, ``device`` optional."""
    name = metadata.get("filename") or metadata.get("name")
    if not name:
        raise UploadError("Upload-Metadata must name the file: filename")
    sha256 = metadata.get("sha256", "")
    if not _SHA256.match(sha256):
        raise UploadError(
            "Upload-Metadata must declare the file's SHA-256: sha256 (64 hex digits); "
            "it is checked against the bytes received"
        )
    extra = {}
    for key in ("unit", "officer", "device"):
        value = (metadata.get(key) or "").strip() or None
        if value is not None and not _FIELD.match(value):
            raise UploadError(f"Upload-Metadata: {key} must be 1-64 letters, digits, . _ or -")
        extra[key] = value
    return Declared(safe_file_name(name), sha256.lower(), **extra)


class UploadArea:
    """Partial files in ``[uploads] folder`` and their rows in the catalog."""

    def __init__(self, archive: Archive, hand_off: HandOff) -> None:
        self.archive = archive
        self.settings = archive.settings.uploads
        self.root = archive.settings.uploads_dir
        self.partials = self.root / PARTIAL
        self.hand_off = hand_off
        self._create_lock = threading.Lock()
        self.partials.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        os.chmod(self.partials, 0o700)

    # -- paths ----------------------------------------------------------------

    def partial_path(self, upload_id: str) -> Path:
        if not _ID.match(upload_id):
            raise UnknownUpload(f"no upload {upload_id[:40]!r}")
        return self.partials / upload_id

    # -- creation ---------------------------------------------------------------

    def create(self, uploader: Uploader, length: int, what: Declared) -> Progress:
        """A new upload: checks role-independent limits and the unit scope, makes an
        empty partial file (0600) and its row."""
        limit = self.settings.max_bytes
        if length > limit:
            raise UploadError(
                f"Upload-Length {length} is larger than [uploads] max_bytes = {limit}",
                status=413,
                code="too_large",
            )
        unit = what.unit
        if (
            unit is not None
            and self.archive.settings.units
            and unit not in self.archive.settings.units
        ):
            raise UploadError(f"unit {unit!r} is not in [units]", code="unknown_unit")
        if unit is None and not uploader.scope.all_units:
            raise UploadError(
                "this token is limited to some units: Upload-Metadata must name the unit",
                code="unit_required",
            )
        if not uploader.scope.covers(unit) and unit is not None:
            raise UploadError(
                f"unit {unit!r} is outside this token's units", status=403, code="unit_not_in_scope"
            )
        floor = self.archive.settings.station.min_free_mb * 1024 * 1024
        free = shutil.disk_usage(self.root).free
        if free - length < floor:
            raise UploadError(
                f"not enough space for {length} bytes in the upload folder "
                f"({free} free, station.min_free_mb kept)",
                status=507,
                code="insufficient_storage",
            )
        now = utcnow()
        upload_id = secrets.token_hex(16)
        with self._create_lock, self.archive.db.session() as session:
            active = session.scalar(
                select(func.count())
                .select_from(Upload)
                .where(
                    Upload.token == uploader.name,
                    Upload.state == RECEIVING,
                    Upload.expires_at > now,
                )
            )
            if (active or 0) >= self.settings.max_active_per_token:
                raise UploadError(
                    f"this token already has {active} unfinished upload(s) "
                    f"([uploads] max_active_per_token = {self.settings.max_active_per_token}); "
                    "finish or DELETE one first",
                    status=429,
                    code="too_many_uploads",
                )
            fd = os.open(
                self.partial_path(upload_id),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.partials)
            row = Upload(
                upload_id=upload_id,
                station=self.archive.station,
                token=uploader.name,
                role=uploader.role,
                client=uploader.client,
                file_name=what.file_name,
                declared_sha256=what.sha256,
                unit=unit,
                officer=what.officer,
                device=what.device,
                length=length,
                offset=0,
                hash_state=PySha256().serialize(),
                state=RECEIVING,
                created_at=now,
                updated_at=now,
                expires_at=self._expiry(now),
            )
            session.add(row)
        log.info(
            "upload %s created by %s: %s, %d bytes",
            upload_id,
            uploader.actor,
            what.file_name,
            length,
        )
        if length == 0:  # nothing to send: complete at once
            return self.append(uploader, upload_id, 0, iter(()), None)
        return self.progress(uploader, upload_id)

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(hours=self.settings.expire_hours)

    # -- reading ----------------------------------------------------------------

    def _row(self, session: Session, uploader: Uploader, upload_id: str) -> Upload:
        """The caller's own upload (another token's answers exactly like a missing one)."""
        self.partial_path(upload_id)  # validates the id's shape
        row = session.get(Upload, upload_id)
        if row is None or row.token != uploader.name or row.station != self.archive.station:
            raise UnknownUpload(f"no upload {upload_id!r}")
        return row

    def progress(self, uploader: Uploader, upload_id: str) -> Progress:
        """HEAD: the committed offset (never bytes past it)."""
        with self.archive.db.session() as session:
            row = self._row(session, uploader, upload_id)
            if row.state == RECEIVING and row.expires_at <= utcnow():
                self._discard(session, row, EXPIRED, "expired before it was complete")
            return _progress(row)

    # -- appending --------------------------------------------------------------

    def open_append(
        self, uploader: Uploader, upload_id: str, offset: int, checksum: str | None
    ) -> Append:
        """Start a PATCH: the offset must be the committed one; the partial is locked
        and cut back to it. The caller feeds :meth:`Append.write` and then
        :meth:`Append.finish` (or :meth:`Append.abandon` when the client went away)."""
        with self.archive.db.session() as session:
            row = self._row(session, uploader, upload_id)
            if row.state == RECEIVING and row.expires_at <= utcnow():
                self._discard(session, row, EXPIRED, "expired before it was complete")
            current = _progress(row)
            state = row.hash_state
        # raised after the commit: an expiry found here is recorded, not rolled back
        if current.state != RECEIVING:
            if current.state == COMPLETE:
                raise OffsetMismatch("the upload is complete; nothing more to send")
            raise UploadGone(_gone_message_of(current))
        if offset != current.offset:
            raise OffsetMismatch(
                f"Upload-Offset {offset} is not the upload's offset {current.offset}; "
                "HEAD the upload and send from there"
            )
        length = current.length
        return Append(self, uploader, upload_id, offset, length, state, _checksum(checksum))

    def append(
        self,
        uploader: Uploader,
        upload_id: str,
        offset: int,
        chunks: Iterable[bytes],
        checksum: str | None,
    ) -> Progress:
        """A whole PATCH from an iterable of chunks (for callers without a stream)."""
        append = self.open_append(uploader, upload_id, offset, checksum)
        try:
            for chunk in chunks:
                append.write(chunk)
            return append.finish()
        finally:
            append.close()

    def _commit_progress(
        self, upload_id: str, offset: int, hash_state: bytes, *, hand_off: bool = False
    ) -> Progress:
        with self.archive.db.session() as session:
            row = session.get(Upload, upload_id)
            assert row is not None
            now = utcnow()
            row.offset, row.hash_state, row.updated_at = offset, hash_state, now
            row.expires_at = self._expiry(now)
            if hand_off:
                self._hand_off(session, row)
            return _progress(row)

    def _hand_off(self, session: Session, row: Upload) -> None:
        """Complete and matching: the pipeline takes it, in this very transaction."""
        path = self.partial_path(row.upload_id)
        st = os.stat(path, follow_symlinks=False)
        row.job_id = self.hand_off(session, row, self.root, st)
        row.state = COMPLETE
        record_event(
            session,
            "uploaded",
            actor=row.actor,
            evidence_id=evidence_id_for(row.declared_sha256),
            details={
                "upload_id": row.upload_id,
                "file_name": row.file_name,
                "size": row.length,
                "sha256": row.declared_sha256,
                "unit": row.unit,
                "officer": row.officer,
                "device": row.device,
                "role": row.role,
                "client": row.client,
                "station": row.station,
                "job": row.job_id,
            },
        )

    def _declared(self, upload_id: str) -> str:
        with self.archive.db.session() as session:
            row = session.get(Upload, upload_id)
            assert row is not None
            return row.declared_sha256

    def _refuse(self, upload_id: str, computed: str) -> ChecksumMismatch:
        with self.archive.db.session() as session:
            row = session.get(Upload, upload_id)
            assert row is not None
            message = (
                f"the {row.length} bytes received hash to SHA-256 {computed}, not the declared "
                f"{row.declared_sha256}; the upload is refused and its partial discarded "
                "(nothing was archived): check the file and upload it again"
            )
            self._discard(session, row, REFUSED, message)
            record_event(
                session,
                "upload_refused",
                actor=row.actor,
                details={
                    "upload_id": row.upload_id,
                    "file_name": row.file_name,
                    "size": row.length,
                    "declared_sha256": row.declared_sha256,
                    "computed_sha256": computed,
                    "client": row.client,
                },
            )
        log.warning("upload %s refused: %s", upload_id, message)
        return ChecksumMismatch(message, code="sha256_mismatch")

    # -- ending -------------------------------------------------------------------

    def abort(self, uploader: Uploader, upload_id: str) -> None:
        """DELETE (tus termination): the partial is removed. A complete upload
        belongs to the pipeline and cannot be taken back."""
        with self.archive.db.session() as session:
            row = self._row(session, uploader, upload_id)
            if row.state == COMPLETE:
                raise UploadError(
                    "the upload is complete and handed to the archive; it cannot be aborted",
                    status=409,
                    code="upload_complete",
                )
            if row.state != RECEIVING:
                raise UploadGone(_gone_message(row))
            path = self.partial_path(upload_id)
            with _locked(path):
                self._discard(session, row, ABORTED, f"aborted by {uploader.actor}")

    def _discard(self, session: Session, row: Upload, state: str, reason: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial_path(row.upload_id))
        row.state, row.error, row.updated_at, row.hash_state = state, reason, utcnow(), None

    def expire(self) -> int:
        """The scheduled clean-up: discard this station's unfinished uploads untouched
        for ``expire_hours``, and partial files no row claims (a crash between file
        and row) once they are as old. Returns how many were removed."""
        now = utcnow()
        removed = 0
        with self.archive.db.session() as session:
            rows = session.scalars(
                select(Upload).where(
                    Upload.station == self.archive.station,
                    Upload.state == RECEIVING,
                    Upload.expires_at <= now,
                )
            ).all()
            for row in rows:
                path = self.partial_path(row.upload_id)
                try:
                    with _locked(path):
                        self._discard(session, row, EXPIRED, "expired before it was complete")
                except Busy:
                    continue  # being appended to right now: not stale
                removed += 1
            known = set(
                session.scalars(
                    select(Upload.upload_id).where(Upload.station == self.archive.station)
                )
            )
        cutoff = (now - timedelta(hours=self.settings.expire_hours)).timestamp()
        with os.scandir(self.partials) as entries:
            for entry in entries:
                if entry.name in known or not _ID.match(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        if removed:
            log.info("discarded %d stale upload(s)", removed)
        return removed


class Append:
    """One PATCH in progress: bytes to the partial, SHA-256 as they come, the offset
    and hash state committed only after an fsync."""

    def __init__(
        self,
        area: UploadArea,
        uploader: Uploader,
        upload_id: str,
        offset: int,
        length: int,
        hash_state: bytes | None,
        checksum: tuple[bytes, object] | None,
    ) -> None:
        self.area = area
        self.uploader = uploader
        self.upload_id = upload_id
        self.committed = offset
        self.offset = offset
        self.length = length
        self.path = area.partial_path(upload_id)
        self._sync_every = area.settings.sync_every_mb * 1024 * 1024
        self._fd = _open_partial(self.path)
        try:
            _lock(self._fd)
            size = os.fstat(self._fd).st_size
            if size < offset:
                raise UploadError(
                    f"the partial file holds {size} bytes, fewer than the recorded offset "
                    f"{offset}; the upload cannot continue (DELETE it and start again)",
                    status=500,
                    code="upload_damaged",
                )
            # bytes past the committed offset were never acknowledged: never trusted
            os.ftruncate(self._fd, offset)
            os.lseek(self._fd, offset, os.SEEK_SET)
            self.hasher = self._hasher(hash_state)
        except BaseException:
            os.close(self._fd)
            raise
        # the tus checksum extension covers this one request's body: with it, no
        # offset may be committed before the whole body is known to match
        self.checksum = checksum
        self._request_hash = checksum[1]() if checksum else None  # type: ignore[operator]

    def _hasher(self, state: bytes | None) -> PySha256:
        if state is not None:
            try:
                return PySha256.deserialize(state)
            except Exception:  # a state from another library version: read the bytes again
                log.warning(
                    "upload %s: hash state unreadable; hashing the partial again", self.upload_id
                )
        hasher = PySha256()
        with open(self.path, "rb") as stream:
            remaining = self.offset
            while remaining:
                block = stream.read(min(remaining, 1 << 20))
                if not block:
                    break
                hasher.update(block)
                remaining -= len(block)
        return hasher

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.offset + len(data) > self.length:
            raise UploadError(
                f"the body goes past Upload-Length {self.length}", status=413, code="too_large"
            )
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.hasher.update(data)
        if self._request_hash is not None:
            self._request_hash.update(data)
        self.offset += len(data)
        if self._request_hash is None and self.offset - self.committed >= self._sync_every:
            self.commit()

    def commit(self) -> Progress:
        """Make what was written durable, then acknowledge it in the catalog."""
        os.fsync(self._fd)
        progress = self.area._commit_progress(self.upload_id, self.offset, self.hasher.serialize())
        self.committed = self.offset
        return progress

    def abandon(self) -> None:
        """The client went away mid-body: keep (durably) what arrived, unless a
        per-request checksum says the body must be whole."""
        if self._request_hash is not None or self.offset == self.committed:
            return
        if self.offset == self.length:
            return  # a finish would hand it off; the client's next HEAD/PATCH decides
        self.commit()

    def finish(self) -> Progress:
        """The body is in: check a per-request checksum, make it durable, and when the
        upload is whole, check the declared SHA-256 and hand it to the pipeline."""
        if self.checksum is not None:
            expected = self.checksum[0]
            assert self._request_hash is not None
            if self._request_hash.digest() != expected:
                # nothing of this request is acknowledged; the next PATCH cuts it away
                raise ChecksumMismatch(
                    "Upload-Checksum does not match this request's body; nothing of it was kept"
                )
        if self.offset < self.length:
            return self.commit()
        os.fsync(self._fd)
        computed = self.hasher.finalize()
        if computed != self.area._declared(self.upload_id):
            raise self.area._refuse(self.upload_id, computed)
        progress = self.area._commit_progress(self.upload_id, self.offset, b"", hand_off=True)
        self.committed = self.offset
        log.info(
            "upload %s complete: handed to the pipeline as job %s", self.upload_id, progress.job_id
        )
        return progress

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also drops the lock
            self._fd = -1


def _checksum(header: str | None) -> tuple[bytes, object] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` → (digest, hash constructor)."""
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    constructor = CHECKSUM_ALGORITHMS.get(algorithm.lower())
    if constructor is None:
        raise UploadError(
            f"Upload-Checksum algorithm {algorithm!r} is not supported "
            f"(Tus-Checksum-Algorithm: {','.join(CHECKSUM_ALGORITHMS)})",
            status=400,
            code="checksum_algorithm",
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise UploadError("Upload-Checksum: the digest is not base64", status=400) from None
    return digest, constructor


def _open_partial(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UploadGone("the upload's partial file is gone") from None


def _lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Busy("another request is appending to this upload right now") from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the partial's append lock (a missing partial is fine)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        yield
        return
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _gone_message(row: Upload) -> str:
    return f"the upload was {row.state}: {row.error or 'no reason recorded'}"


def _gone_message_of(progress: Progress) -> str:
    return f"the upload was {progress.state}: {progress.error or 'no reason recorded'}"


def _progress(row: Upload) -> Progress:
    return Progress(
        upload_id=row.upload_id,
        length=row.length,
        offset=row.offset,
        state=row.state,
        expires_at=row.expires_at,
        evidence_id=evidence_id_for(row.declared_sha256) if row.state == COMPLETE else None,
        job_id=row.job_id,
        error=row.error,
    )
