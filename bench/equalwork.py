"""The equal-work baseline for small files: raw boto3 doing what one Strongroom item costs.

``aws s3 cp`` sends one PUT per file with a CRC. A Strongroom item is more:
a create-only PUT of the original with a server-checked SHA-256 and an Object
Lock retention, a HEAD that reads back the stored checksum and lock, and a
second, locked, create-only object (the signed manifest, ~1 KB). This module
does exactly those three requests per file with boto3 at its defaults (what a
plain script would write), 8 threads, so the comparison is on equal work:

1. ``PutObject`` of the original: ``ChecksumSHA256`` (hashed here, one pass),
   ``IfNoneMatch="*"``, ``ObjectLockMode`` + ``ObjectLockRetainUntilDate``;
2. ``HeadObject`` with ``ChecksumMode="ENABLED"``; the size and checksum are
   checked as Strongroom checks them;
3. ``PutObject`` of a ~1 KB JSON document, ``IfNoneMatch="*"``, locked, with
   its ``ChecksumSHA256``.

It runs as its own process (``python -m bench.equalwork``) so the bench
accounts its CPU from the kernel exactly as it does for ``aws`` and
``strongroom``. Credentials come from ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``. It signs nothing, catalogs nothing and keeps no
ledger: it is the floor of the store requests, not of the product.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from botocore.config import Config

THREADS = 8
MANIFEST_BYTES = 1024


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def manifest_body(name: str, sha256_hex: str, size: int) -> bytes:
    """A ~1 KB JSON document standing in for the signed manifest (same size class)."""
    doc = {"file": name, "sha256": sha256_hex, "size": size, "pad": ""}
    body = json.dumps(doc).encode()
    doc["pad"] = "x" * max(0, MANIFEST_BYTES - len(body))
    return json.dumps(doc).encode()


class EqualWork:
    """One client (boto3 defaults, path-style, a pool for the threads) and the three calls."""

    def __init__(self, endpoint_url: str, bucket: str, prefix: str, days: int) -> None:
        self.bucket = bucket
        self.prefix = prefix.rstrip("/")
        self.until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=THREADS * 2),
        )

    def one(self, path: Path) -> None:
        """PUT original (checksum, create-only, locked), HEAD it, PUT its manifest."""
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        size = path.stat().st_size
        checksum = _b64(digest.digest())
        key = f"{self.prefix}/originals/{digest.hexdigest()}"
        lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": self.until}
        with path.open("rb") as body:
            put = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ChecksumSHA256=checksum,
                IfNoneMatch="*",
                **lock,
            )
        head = self.client.head_object(
            Bucket=self.bucket, Key=key, VersionId=put["VersionId"], ChecksumMode="ENABLED"
        )
        if int(head["ContentLength"]) != size or head.get("ChecksumSHA256") != checksum:
            raise RuntimeError(f"{key}: the store does not hold what was sent")
        manifest = manifest_body(path.name, digest.hexdigest(), size)
        self.client.put_object(
            Bucket=self.bucket,
            Key=f"{self.prefix}/manifests/{digest.hexdigest()}.json",
            Body=manifest,
            ChecksumSHA256=_b64(hashlib.sha256(manifest).digest()),
            IfNoneMatch="*",
            ContentType="application/json",
            **lock,
        )

    def run(self, paths: list[Path], threads: int = THREADS) -> int:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return sum(1 for _ in pool.map(self.one, paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.equalwork", description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="equal-work")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.folder.iterdir() if p.is_file())
    done = EqualWork(args.endpoint_url, args.bucket, args.prefix, args.days).run(
        paths, args.threads
    )
    print(json.dumps({"files": done}))
    return 0 if done == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main())
