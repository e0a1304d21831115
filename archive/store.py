"""The object store: one small interface over an S3 bucket with Object Lock.

Everything Strongroom keeps for good goes through :class:`ObjectStore`, and the
guarantees live here where one reader can find them:

* every write is **create-only** (``If-None-Match: *``), so a retry or a second
  station can never overwrite an object;
* every original is sent with its **SHA-256 checksum** (whole-object for a
  single PUT, per part for multipart) and the server refuses bytes that do not
  match, so what is stored is what was hashed;
* every write carries its **Object Lock** retention, which may later be
  extended but never shortened (the store refuses, and we never try).

Retries of single requests are botocore's ("standard" mode, bounded attempts
and timeouts); retrying a whole step after the store was down is the
pipeline's job. Every call has a connect and a socket timeout sized to its
kind: calls that move data (uploads, parts, GETs) wait ``read_timeout`` for
the next bytes, small calls (HEAD, locks, holds, listings, the health probe)
only ``request_timeout``, so a hung store is noticed quickly without cutting
off a slow but healthy upload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from archive.failover import FailoverClient
from config.errors import UnavailableError
from config.settings import ConfigError, StoreSettings, read_private_file

if TYPE_CHECKING:  # the stubs (types-boto3[s3]) are a test extra, not a run-time need
    from types_boto3_s3 import S3Client

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]
MiB = 1024 * 1024
READ_CHUNK = 1 * MiB


class StoreError(UnavailableError):
    """The store refused or could not be reached; ``retryable`` says which."""

    code = "store_unavailable"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class AlreadyExists(StoreError):
    """A create-only write found the key taken (HTTP 412)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} already exists", retryable=False)
        self.key = key


class ContentChanged(StoreError):
    """The store computed another SHA-256 than ours: the file changed after hashing."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class NotFound(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"{key} not found", retryable=False)
        self.key = key


@dataclass(frozen=True)
class Retention:
    """The lock an object is written with."""

    mode: LockMode
    retain_until: datetime
    legal_hold: bool = False

    @classmethod
    def for_days(
        cls, days: float, mode: LockMode = "COMPLIANCE", *, legal_hold: bool = False
    ) -> Retention:
        until = datetime.now(UTC) + timedelta(days=days)
        return cls(mode, until.replace(microsecond=0) + timedelta(seconds=1), legal_hold)


def stronger_mode(current: str | None, wanted: str) -> LockMode:
    """COMPLIANCE can never become GOVERNANCE (the store refuses; it would weaken
    the lock), so the stronger of the two modes is kept."""
    return "COMPLIANCE" if "COMPLIANCE" in (current, wanted) else "GOVERNANCE"


def grown_lock(
    current_mode: str | None, current_until: datetime | None, mode: str, until: datetime
) -> tuple[LockMode, datetime] | None:
    """Locks only grow: the lock to set when ``mode`` until ``until`` is asked of
    a lock that is ``current_mode`` until ``current_until`` – the later date and
    the stronger mode – or None when the current lock already lasts as long.

    The one rule for every lock Strongroom changes: an object in the store
    (:meth:`ObjectStore.extend_retention`), an item's lock in the catalog
    (:func:`archive.retention.set_category`), a playback copy brought up to its
    original's lock.
    """
    if current_until is not None and current_until >= until:
        return None
    return stronger_mode(current_mode, mode), until


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD says about one object version."""

    key: str
    version_id: str | None
    size: int
    checksum_sha256: str | None
    lock_mode: LockMode | None
    retain_until: datetime | None
    legal_hold: bool
    metadata: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    """A confirmed write: the exact version and the checksum the server holds."""

    key: str
    version_id: str | None
    size: int
    checksum_sha256: str
    created: bool  # False when the content-addressed key already held these bytes


@dataclass(frozen=True)
class ClockReading:
    """What :meth:`ObjectStore.clock_probe` measured."""

    latency_seconds: float
    #: this host's clock minus the store's; None when the store sent no usable ``Date``
    offset_seconds: float | None


def sha256_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def composite_checksum(part_digests: list[bytes]) -> str:
    """S3's checksum of a multipart object: SHA-256 over the parts' digests, ``-N``."""
    return f"{sha256_b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _wrap(exc: Exception, what: str) -> StoreError:
    if isinstance(exc, ClientError):
        status = _status(exc)
        retryable = status >= 500 or status in (408, 429) or status == 0
        return StoreError(f"{what}: {_error_code(exc) or status}: {exc}", retryable=retryable)
    return StoreError(f"{what}: store unreachable: {exc}", retryable=True)


def load_credentials(settings: StoreSettings) -> tuple[str | None, str | None]:
    """Keys from the environment/settings, else from a 0600 JSON file."""
    key_id = settings.access_key_id.get_secret_value() if settings.access_key_id else None
    secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
    if (key_id is None or secret is None) and settings.credentials_file is not None:
        import json

        data = json.loads(read_private_file(settings.credentials_file))
        key_id = key_id or data.get("access_key_id")
        secret = secret or data.get("secret_access_key")
    return key_id, secret


class _FileRange(io.RawIOBase):
    """One upload part read straight from the file, never held in memory whole.

    A part held as ``bytes`` costs ``part_size`` of RAM for every part in
    flight, and glibc's per-thread arenas keep much of it after release
    (bench/ measured 243 MB peak RSS for a 256 MiB file with 16 MiB parts,
    against a 200 MB bar). Streamed, a part costs one read block. Seekable, so
    botocore can rewind it for a retry; a file that shrank is an error, not a
    short part (the part's SHA-256 would refuse it anyway).
    """

    BLOCK = 1024 * 1024

    def __init__(self, fd: int, offset: int, length: int, name: str) -> None:
        super().__init__()
        self._fd, self._start, self._length, self._name = fd, offset, length, name
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._position
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            return b""
        data = os.pread(self._fd, size, self._start + self._position)
        if len(data) != size:
            raise StoreError(f"{self._name}: the file shrank while uploading", retryable=False)
        self._position += size
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def sha256(self) -> bytes:
        """The part's digest, from one streaming pass (when the caller has none)."""
        digest = hashlib.sha256()
        self.seek(0)
        while block := self.read(self.BLOCK):
            digest.update(block)
        self.seek(0)
        return digest.digest()


#: test hook (the crash matrix): the process kills itself once this part number is
#: stored, so a test knows its SIGKILL landed in the middle of a multipart upload
CRASH_AFTER_PART_ENV = "STRONGROOM_TEST_CRASH_AFTER_PART"


class ObjectStore:
    """A bucket with versioning and Object Lock, seen through create-only writes."""

    def __init__(self, settings: StoreSettings, *, client: S3Client | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.part_size = settings.part_size_mb * MiB
        self.multipart_threshold = settings.multipart_threshold_mb * MiB
        # test hook: die once this many parts are stored (counted as they finish:
        # parts finish out of order, so "part number N" could be the last one)
        self._crash_after_part = int(os.environ.get(CRASH_AFTER_PART_ENV) or 0)
        self._parts_stored = itertools.count(1)
        # bounds the parts in flight across all uploads at once (each streams from its file)
        self._part_slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._parts_pool = ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="s3-part"
        )
        # one session for the three clients: its loader reads and parses the S3
        # service model and endpoint rules once, not once per client (bench/:
        # ObjectStore() 0.28–0.42 s of CPU → 0.07 s; ~25 MB less peak RSS)
        session = None if client else boto3.session.Session()
        self.client = client or self._make_client(settings, settings.read_timeout, session)
        #: small calls: a hung store must not hold them for a data call's timeout
        self.quick = client or self._make_client(settings, settings.request_timeout, session)
        #: the health probe: one attempt, short timeouts, its own connections
        self._probe = client or self._make_client(
            settings, settings.request_timeout, session, attempts=1, pool=1
        )

    @staticmethod
    def _make_client(
        settings: StoreSettings,
        read_timeout: float,
        session: boto3.session.Session | None = None,
        *,
        attempts: int | None = None,
        pool: int = 0,
    ) -> Any:
        """One client, or with several ``endpoints`` one that fails over between them.

        ``session``: made once per store and shared (a client keeps only what it
        was given: its own endpoint, keys, timeouts and connection pool).
        """
        endpoints = settings.endpoint_list
        session = session or boto3.session.Session()
        clients = [
            ObjectStore._endpoint_client(settings, session, url, read_timeout, attempts, pool)
            for url in endpoints
        ]
        if len(clients) == 1:
            return clients[0]
        return FailoverClient(clients, [str(url) for url in endpoints])

    @staticmethod
    def _endpoint_client(
        settings: StoreSettings,
        session: boto3.session.Session,
        endpoint_url: str | None,
        read_timeout: float,
        attempts: int | None,
        pool: int,
    ) -> Any:
        key_id, secret = load_credentials(settings)
        if endpoint_url and (key_id is None or secret is None):
            raise ConfigError(
                "store credentials missing: set STRONGROOM_STORE__ACCESS_KEY_ID and "
                "STRONGROOM_STORE__SECRET_ACCESS_KEY, or store.credentials_file (mode 0600)"
            )
        config = Config(
            region_name=settings.region,
            connect_timeout=min(settings.connect_timeout, read_timeout),
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": attempts or settings.max_attempts},
            max_pool_connections=pool or max(10, settings.max_concurrency * 2 + 8),
            # UNSIGNED-PAYLOAD: botocore would otherwise SHA-256 every body a second
            # time for the SigV4 signature on plain-HTTP endpoints (~0.75 s of CPU
            # per GB, measured by bench/). Integrity does not rest on it: the
            # x-amz-checksum-sha256 header is signed and the server refuses a
            # body that does not match it (tests/test_store_upload.py).
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            # we send our own SHA-256 checksums; botocore must not add CRCs on top
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=config,
        )

    def close(self) -> None:
        self._parts_pool.shutdown(wait=False, cancel_futures=True)

    def drop_idle_connections(self) -> None:
        """Close the kept-alive connections of every client (the store went away).

        A dead store's connections would otherwise linger half-closed in the
        pool until reused, and with them the server's side of each, which keeps
        a restarted store from binding its port again for a minute.
        """
        every = [
            one
            for client in (self.client, self.quick, self._probe)
            for one in getattr(client, "clients", [client])
        ]
        for client in {id(c): c for c in every}.values():
            session = getattr(getattr(client, "_endpoint", None), "http_session", None)
            if session is not None:
                with contextlib.suppress(Exception):
                    session.close()

    def probe(self) -> None:
        """Is the store usable? One HEAD of the bucket, one attempt, short timeouts.

        Raises :class:`StoreError` unless the bucket answers with success: a
        refusal counts as not answering too (a restarted SeaweedFS refuses our
        keys for a moment until its identities are loaded, and jobs woken then
        would only fail again).
        """
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, "probe") from exc

    def clock_probe(self) -> ClockReading:
        """One small call (HEAD of the bucket): its round trip, and this host's clock
        against the store's HTTP ``Date`` header.

        ``Date`` has whole seconds, so the server's time is taken as the middle
        of its second and compared with the middle of the round trip: the
        offset is good to about ±0.5 s plus half the round trip – enough to see
        a station clock that is seconds off (recorded times and locks use it).
        """
        sent = time.time()
        started = time.perf_counter()
        try:  # the probe's client: one attempt, short timeouts (a hung store holds no one long)
            response = self._probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, "clock probe") from exc
        latency = time.perf_counter() - started
        header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        offset = None
        if header:
            try:
                server = parsedate_to_datetime(header).timestamp() + 0.5
            except (TypeError, ValueError):
                server = None
            if server is not None:
                offset = sent + latency / 2 - server
        return ClockReading(latency, offset)

    # -- bucket -------------------------------------------------------------

    def ensure_bucket(self, default_retention_days: float | None, mode: LockMode) -> bool:
        """Create the bucket with Object Lock (which implies versioning) if absent.

        Returns True when created. An existing bucket is checked, never changed,
        except that a missing default retention is added.
        """
        created = False
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) != 404:
                raise _wrap(exc, f"bucket {self.bucket}") from exc
            try:
                self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)
            except ClientError as exc2:
                raise _wrap(exc2, f"create bucket {self.bucket}") from exc2
            created = True
        except BotoCoreError as exc:
            raise _wrap(exc, f"bucket {self.bucket}") from exc
        if created and default_retention_days:
            days = max(1, int(default_retention_days))
            self.client.put_object_lock_configuration(
                Bucket=self.bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
                },
            )
        return created

    def bucket_lock_enabled(self) -> bool:
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except ClientError as exc:
            if _status(exc) >= 500:
                raise _wrap(exc, f"bucket {self.bucket}") from exc
            return False
        except BotoCoreError as exc:
            raise _wrap(exc, f"bucket {self.bucket}") from exc
        enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        return enabled and versioning == "Enabled"

    # -- writes -------------------------------------------------------------

    def put_bytes(
        self,
        key: str,
        data: bytes,
        retention: Retention | None,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        """Create ``key`` with ``data``; raises :class:`AlreadyExists` if taken."""
        digest = hashlib.sha256(data).digest()
        args = self._put_args(key, retention, content_type, metadata)
        try:
            response = self.client.put_object(
                Body=data, ChecksumSHA256=sha256_b64(digest), ContentLength=len(data), **args
            )
        except ClientError as exc:
            if _status(exc) == 412:
                raise AlreadyExists(key) from exc
            raise _wrap(exc, f"put {key}") from exc
        except BotoCoreError as exc:
            raise _wrap(exc, f"put {key}") from exc
        return StoredObject(key, response.get("VersionId"), len(data), sha256_b64(digest), True)

    def put_file(
        self,
        key: str,
        path: Path,
        sha256_hex: str,
        size: int,
        retention: Retention | None,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        part_digests: tuple[bytes, ...] = (),
        part_size: int | None = None,
    ) -> StoredObject:
        """Upload a file whose SHA-256 is already known, create-only.

        Below the multipart threshold: one PUT whose ``ChecksumSHA256`` is the
        whole file's hash, checked by the server. Above: parts of
        ``part_size``, uploaded concurrently, each sent with its SHA-256 from
        ``part_digests`` (computed when the file was hashed, see
        :mod:`archive.hashing`) so the server refuses bytes that changed since;
        without them each part's digest is computed from the bytes sent.

        Raises :class:`AlreadyExists` when the key is taken.
        """
        args = self._put_args(key, retention, content_type, metadata)
        if size < self.multipart_threshold:
            checksum = sha256_b64(bytes.fromhex(sha256_hex))
            try:
                with path.open("rb") as body:
                    response = self.client.put_object(
                        Body=body, ChecksumSHA256=checksum, ContentLength=size, **args
                    )
            except ClientError as exc:
                if _status(exc) == 412:
                    raise AlreadyExists(key) from exc
                if _error_code(exc) in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"):
                    raise ContentChanged(
                        f"put {key}: the store computed a different SHA-256 than ours: "
                        "the file changed after hashing"
                    ) from exc
                raise _wrap(exc, f"put {key}") from exc
            except BotoCoreError as exc:
                raise _wrap(exc, f"put {key}") from exc
            return StoredObject(key, response.get("VersionId"), size, checksum, True)
        return self._put_multipart(key, path, size, args, part_digests, part_size or self.part_size)

    def _put_args(
        self,
        key: str,
        retention: Retention | None,
        content_type: str,
        metadata: dict[str, str] | None,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "IfNoneMatch": "*",
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",
        }
        if metadata:
            args["Metadata"] = metadata
        if retention is not None:
            args["ObjectLockMode"] = retention.mode
            args["ObjectLockRetainUntilDate"] = retention.retain_until
            if retention.legal_hold:
                args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def _put_multipart(
        self,
        key: str,
        path: Path,
        size: int,
        args: dict[str, Any],
        part_digests: tuple[bytes, ...],
        part_size: int,
    ) -> StoredObject:
        create_args = dict(args)
        create_args.pop("IfNoneMatch")
        try:
            upload_id = self.client.create_multipart_upload(**create_args)["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"start multipart {key}") from exc
        count = (size + part_size - 1) // part_size
        if part_digests and len(part_digests) != count:
            raise StoreError(
                f"{key}: {len(part_digests)} part digests for {count} parts", retryable=False
            )
        fd = os.open(path, os.O_RDONLY)
        try:
            futures = []
            for number in range(1, count + 1):
                # at most max_concurrency parts in flight; a stalled upload of another
                # worker holds its slots only until its own calls time out
                if not self._part_slots.acquire(timeout=self._slot_wait()):
                    raise StoreError(f"{key}: no upload slot free: the store is not taking parts")
                known = part_digests[number - 1] if part_digests else None
                futures.append(
                    self._parts_pool.submit(
                        self._upload_part, key, upload_id, fd, number, size, part_size, known
                    )
                )
            parts = [future.result() for future in futures]
            digests = [digest for _, digest in parts]
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                IfNoneMatch="*",
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": i + 1, "ETag": etag, "ChecksumSHA256": sha256_b64(digest)}
                        for i, (etag, digest) in enumerate(parts)
                    ]
                },
            )
        except BaseException as exc:
            for future in futures:  # no part may still read the file once it is closed
                future.cancel()
            for future in futures:
                with contextlib.suppress(BaseException):
                    future.exception()
            self._abort(key, upload_id)
            if isinstance(exc, ClientError):
                if _status(exc) == 412:
                    raise AlreadyExists(key) from exc
                raise _wrap(exc, f"multipart {key}") from exc
            if isinstance(exc, BotoCoreError):
                raise _wrap(exc, f"multipart {key}") from exc
            raise
        finally:
            os.close(fd)
        return StoredObject(key, response.get("VersionId"), size, composite_checksum(digests), True)

    def _slot_wait(self) -> float:
        """How long a part may wait for a slot: other parts' calls, timeouts and retries."""
        settings = self.settings
        return (settings.connect_timeout + settings.read_timeout) * settings.max_attempts + 5

    def _upload_part(
        self,
        key: str,
        upload_id: str,
        fd: int,
        number: int,
        size: int,
        part_size: int,
        known_digest: bytes | None,
    ) -> tuple[str, bytes]:
        try:
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            body = _FileRange(fd, offset, length, f"{key} part {number}")
            digest = known_digest or body.sha256()
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                # a RawIOBase is a binary file, though typeshed does not call it IO[bytes]
                Body=cast(IO[bytes], body),
                ContentLength=length,
                ChecksumSHA256=sha256_b64(digest),
                ChecksumAlgorithm="SHA256",
            )
            if self._crash_after_part and next(self._parts_stored) == self._crash_after_part:
                os.kill(os.getpid(), 9)
            return response["ETag"], digest
        except ClientError as exc:
            if _error_code(exc) in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"):
                raise ContentChanged(
                    f"{key} part {number}: the bytes differ from those hashed: "
                    "the file changed after hashing"
                ) from exc
            raise
        finally:
            self._part_slots.release()

    def _abort(self, key: str, upload_id: str) -> None:
        # the store cleans stale uploads itself; the original error is what matters
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- reads --------------------------------------------------------------

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            args["VersionId"] = version_id
        try:
            response = self.quick.head_object(**args)
        except ClientError as exc:
            if _status(exc) in (404, 405):  # 405: the version is a delete marker
                raise NotFound(key) from exc
            raise _wrap(exc, f"head {key}") from exc
        except BotoCoreError as exc:
            raise _wrap(exc, f"head {key}") from exc
        return ObjectInfo(
            key=key,
            version_id=response.get("VersionId"),
            size=int(response["ContentLength"]),
            checksum_sha256=response.get("ChecksumSHA256"),
            lock_mode=response.get("ObjectLockMode"),
            retain_until=response.get("ObjectLockRetainUntilDate"),
            legal_hold=response.get("ObjectLockLegalHoldStatus") == "ON",
            metadata=response.get("Metadata", {}),
        )

    def exists(self, key: str) -> ObjectInfo | None:
        try:
            return self.head(key)
        except NotFound:
            return None

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as body:
            return body.read()

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A streaming body for one object version (close it when done)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            # botocore's StreamingBody: read, iterate, close, as a binary file does
            return cast(BinaryIO, self.client.get_object(**args)["Body"])
        except ClientError as exc:
            if _status(exc) in (404, 405):
                raise NotFound(key) from exc
            raise _wrap(exc, f"get {key}") from exc
        except BotoCoreError as exc:
            raise _wrap(exc, f"get {key}") from exc

    def iter_chunks(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        body = self.open(key, version_id)
        try:
            yield from iter(lambda: body.read(READ_CHUNK), b"")
        finally:
            body.close()

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.quick.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"]

    # -- locks --------------------------------------------------------------

    def set_legal_hold(self, key: str, version_id: str | None, on: bool) -> None:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "LegalHold": {"Status": "ON" if on else "OFF"},
        }
        if version_id:
            args["VersionId"] = version_id
        try:
            self.quick.put_object_legal_hold(**args)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"legal hold {key}") from exc

    def extend_retention(
        self, key: str, version_id: str | None, mode: str, until: datetime
    ) -> bool:
        """Raise the lock to ``until``; never lowers it. Returns True if changed.

        Never weakens it either (:func:`grown_lock`): a COMPLIANCE lock stays
        COMPLIANCE when a GOVERNANCE item extends it (an object shared by two
        items, e.g. one playback copy of two originals), which the store would
        refuse anyway.
        """
        current = self.head(key, version_id)
        grown = grown_lock(current.lock_mode, current.retain_until, mode, until)
        if grown is None:
            return False
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Retention": {"Mode": grown[0], "RetainUntilDate": grown[1]},
        }
        if version_id:
            args["VersionId"] = version_id
        try:
            self.quick.put_object_retention(**args)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"extend retention {key}") from exc
        return True

    def delete_version(self, key: str, version_id: str, *, bypass_governance: bool = False) -> None:
        """Delete one version. Only disposition calls this, after its retention ended."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "VersionId": version_id}
        if bypass_governance:
            args["BypassGovernanceRetention"] = True
        try:
            self.quick.delete_object(**args)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"delete {key}@{version_id}") from exc
