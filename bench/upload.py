"""Tune the upload path alone: ``ObjectStore.put_file`` under different settings.

``python -m bench.upload [--quick]`` uploads the same files (clips below and a
large file above the multipart threshold) with a grid of store settings –
multipart threshold, part size, concurrency, payload signing – using as many
threads as the pipeline has workers, next to ``aws s3 cp --recursive`` of the
same folder. It isolates the store from hashing, sealing and the catalog, so
a change to ``archive/store.py`` or the ``[store]`` defaults is judged on its
own numbers before the whole benchmark runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from archive import localstore
from archive.store import ObjectStore, Retention
from bench import data, measure
from bench.station import BenchStation, exit_on_sigterm
from bench.stats import MB, median
from config.settings import StoreSettings

log = logging.getLogger("bench")

#: (label, store settings overrides, payload signing)
GRID: tuple[tuple[str, dict], ...] = (
    ("current defaults", {}),
    ("unsigned payload", {"payload_signing": False}),
    (
        "threshold 8 MB, part 8 MB, unsigned",
        {"multipart_threshold_mb": 8, "part_size_mb": 8, "payload_signing": False},
    ),
    (
        "concurrency 16, unsigned",
        {"max_concurrency": 16, "payload_signing": False},
    ),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def upload_all(store: ObjectStore, files: list[tuple[Path, str, int]], workers: int) -> float:
    retention = Retention.for_days(1)
    prefix = uuid.uuid4().hex[:8]

    def one(item: tuple[Path, str, int]) -> None:
        path, sha, size = item
        store.put_file(f"{prefix}/{sha}", path, sha, size, retention)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files))
    return time.perf_counter() - started


def make_store(local: localstore.LocalStore, bucket: str, overrides: dict) -> ObjectStore:
    overrides = dict(overrides)
    signing = overrides.pop("payload_signing", None)
    settings = StoreSettings(
        endpoint_url=local.endpoint_url,
        bucket=bucket,
        access_key_id=local.credentials["access_key_id"],
        secret_access_key=local.credentials["secret_access_key"],
        **overrides,
    )
    store = ObjectStore(settings)
    if signing is not None:  # only while the setting is not in StoreSettings
        store.client.meta.config.s3["payload_signing_enabled"] = signing
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="threads, as pipeline.workers")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    base = Path(tempfile.mkdtemp(prefix="strongroom-upload-"))
    clips, clip_bytes, big = (6, 8 * MB, 100 * MB) if args.quick else (8, 50 * MB, 500 * MB)
    folder = base / "data" / "files"
    paths = data.clips(folder, clips, clip_bytes, base / "data" / "template.mp4")
    paths.append(data.random_file(folder / "big.bin", big))
    files = [(p, _sha256(p), p.stat().st_size) for p in paths]
    total = sum(size for _, _, size in files)
    local = localstore.start(base / "seaweed")
    results: dict[str, list[float]] = {}
    try:
        station = BenchStation(base / "station", local).create()
        for rep in range(args.repeats):
            results.setdefault("aws s3 cp --recursive", []).append(
                station.aws_cp(folder, f"aws-{rep}").seconds
            )
            for label, overrides in GRID:
                store = make_store(local, station.bucket, overrides)
                try:
                    seconds = upload_all(store, files, args.workers)
                finally:
                    store.close()
                results.setdefault(label, []).append(seconds)
                log.info("rep %d %-40s %.2fs %.1f MB/s", rep, label, seconds, total / MB / seconds)
    finally:
        local.stop()
        measure.remove_tree(base)
    table = {
        label: {
            "median_s": round(median(times), 2),
            "mb_per_s": round(total / MB / median(times), 1),
            "samples": [round(t, 2) for t in times],
        }
        for label, times in results.items()
    }
    print(json.dumps({"bytes": total, "files": len(files), "results": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
