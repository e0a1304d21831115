"""Handing bytes to a browser or a client: range requests over stored objects,
and export bundles as zips – shared by the evidence routes, the share pages and
the console, so each answers a ``Range`` header and cleans up a bundle the
same way.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from archive.context import Archive
from archive.shares import open_range
from verify.export import export_bundle

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive, or None for the whole object; ValueError if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise ValueError(header)
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(size - int(last), 0), size - 1
    if start > end or start >= size:
        raise ValueError(header)
    return start, end


def unsatisfiable(size: int) -> Response:
    """416 for a ``Range`` that does not fit the object."""
    return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})


def ranged(
    archive: Archive,
    key: str,
    version_id: str | None,
    size: int,
    wanted: tuple[int, int] | None,
    media_type: str,
    headers: Mapping[str, str],
) -> Response:
    """The object's bytes ``wanted`` (all when None), streamed from the store:
    206 with ``Content-Range`` for a range, 200 for the whole."""
    start, end = wanted or (0, size - 1)
    sent = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
    if wanted is not None:
        sent["Content-Range"] = f"bytes {start}-{end}/{size}"
    if size == 0:
        return Response(b"", media_type=media_type, headers=sent)
    return StreamingResponse(
        open_range(archive, key, version_id, start, end),
        status_code=206 if wanted is not None else 200,
        media_type=media_type,
        headers=sent,
    )


def zip_folder(folder: Path, target: Path) -> None:
    """Zip ``folder`` under its own name; stored, not deflated (video does not
    compress, and the auditor's checksums are over the files, not the zip)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, Path(folder.name) / path.relative_to(folder))


def bundle_zip(
    archive: Archive,
    evidence_ids: list[str],
    name: str,
    *,
    actor: str,
    include_derivatives: bool = False,
) -> Path:
    """An export bundle of these items, zipped, in a scratch folder of its own
    under ``<data_dir>/tmp`` (send it with :func:`zip_response`, which removes
    the folder). On any failure the folder is removed and the error raised."""
    scratch = archive.settings.data_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bundle-", dir=scratch))
    try:
        bag = export_bundle(
            archive, evidence_ids, work / name, actor=actor, include_derivatives=include_derivatives
        )
        target = work / f"{bag.name}.zip"
        zip_folder(bag, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def zip_response(target: Path, headers: Mapping[str, str] | None = None) -> FileResponse:
    """Send a :func:`bundle_zip` and remove its scratch folder afterwards."""
    return FileResponse(
        target,
        media_type="application/zip",
        filename=target.name,
        headers=dict(headers or {}),
        background=BackgroundTask(shutil.rmtree, target.parent, ignore_errors=True),
    )
