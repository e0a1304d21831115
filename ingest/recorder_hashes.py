"""The recorder's own word about a file: its MD5/SHA-256 and its 重要文件 marks.

At claim, the files a dock's readers name (``config/recorder.py``) are read
from beside the dock file – through folder handles from the dock root
(``ingest/dockfs.py``: a link is never followed, nothing above the dock is
reached), at most :data:`SIDECAR_CAP` bytes (a per-folder list:
:data:`LIST_CAP`). What a reader cannot use – a link, a huge file, text that is
not a hash, a line naming another file – is ignored with a log line: the
file is archived either way, only without that value to compare.

The values go into the job row (``ingest_jobs.recorder_hashes``); the hash
step compares them with the digest of its one read pass (MD5 is computed in
that pass only when a recorder MD5 is there) and writes ``match`` into each.
The seal copies them into the signed manifest (``source.recorder_hashes``).
Sidecars of one file (``owned``) leave the dock with it at release; per-folder
lists serve several files and stay.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import BadInputError
from config.recorder import MISMATCH_FLAG, READERS, ReaderSpec
from config.settings import DockSettings
from ingest import dockfs

log = logging.getLogger("strongroom.recorder")

#: a sidecar holds one hash and a file name; anything larger is not one
SIDECAR_CAP = 4096
#: a per-folder list names every file of a folder (a day of one recorder: hundreds)
LIST_CAP = 1024 * 1024
_HEX_LENGTH = {"md5": 32, "sha256": 64}
#: ``hex  name``, ``hex *name`` (md5sum/sha256sum), or the BSD ``MD5 (name) = hex``
_GNU_LINE = re.compile(r"^\\?([0-9a-fA-F]+) [ *]?(.+)$")
_BSD_LINE = re.compile(r"^(?:MD5|SHA256) ?\((.+)\) ?= ?([0-9a-fA-F]+)$")


class Unusable(BadInputError):
    """A recorder file whose content is not a hash of this file (the reason says why)."""

    code = "sidecar_unusable"


@dataclass(frozen=True)
class RecordedValue:
    """One value the recorder left: a hash (``md5``/``sha256``) or a mark (``mark``)."""

    kind: str
    value: str
    source: str  # the file it was read from, a name in the media file's folder
    reader: str
    #: device:inode of a file that belongs to this media file alone (released with it)
    identity: str | None = None

    def to_row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "from": self.source,
            "reader": self.reader,
            "identity": self.identity,
            "match": None,
        }


def sidecar_names(media_name: str, suffix: str) -> list[str]:
    """``NAME.EXT.md5`` and ``NAME.md5``, each in lower and upper case."""
    stem = Path(media_name).stem
    bases = [media_name] if stem == media_name else [media_name, stem]
    return [f"{base}.{s}" for base in bases for s in (suffix, suffix.upper())]


def parse_hash(text: str, algorithm: str, media_name: str, *, many: bool) -> str | None:
    """The hex value ``text`` gives for ``media_name`` (lower case), or None if a list
    does not name it. Raises :class:`Unusable` for anything that is not a hash of it."""
    length = _HEX_LENGTH[algorithm]
    found: set[str] = set()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise Unusable("empty")
    if not many and len(lines) > 1:
        raise Unusable(f"{len(lines)} lines; a sidecar holds one")
    for line in lines:
        if line.startswith("#"):
            continue
        value, name = _split(line)
        if len(value) != length or not re.fullmatch(r"[0-9a-fA-F]+", value):
            if many:
                continue  # another algorithm's line or noise in a shared list
            raise Unusable(f"not a {algorithm} value: {line[:80]!r}")
        if name is None:
            if many:
                continue
            found.add(value.lower())
        elif Path(name.replace("\\", "/")).name.casefold() == media_name.casefold():
            found.add(value.lower())
        elif not many:
            raise Unusable(f"names another file: {name[:80]!r}")
    if len(found) > 1:
        raise Unusable(f"{len(found)} different values for {media_name}")
    return found.pop() if found else None


def _split(line: str) -> tuple[str, str | None]:
    if (bsd := _BSD_LINE.match(line)) is not None:
        return bsd.group(2), bsd.group(1)
    if (gnu := _GNU_LINE.match(line)) is not None:
        return gnu.group(1), gnu.group(2)
    return line, None


def read_recorded(dock: DockSettings, root: str, source_path: str) -> list[RecordedValue]:
    """Every value the dock's readers and marks find beside ``source_path``."""
    media_name = os.path.basename(source_path)
    values: list[RecordedValue] = []
    for reader in dock.recorder_hashes:
        spec = READERS[reader]
        value = _read_one(spec, reader, root, source_path, media_name)
        if value is not None:
            values.append(value)
    for suffix, flag in dock.recorder_marks.items():
        for name in sidecar_names(media_name, suffix):
            try:
                found = dockfs.read_beside(root, source_path, name, SIDECAR_CAP)
            except (dockfs.NotReadable, dockfs.Escape) as exc:
                log.warning("%s: recorder mark ignored: %s", media_name, exc)
                continue
            if found is not None:
                values.append(RecordedValue("mark", flag, name, f"mark-{suffix}", found[1]))
                break
    return values


def _read_one(
    spec: ReaderSpec, reader: str, root: str, source_path: str, media_name: str
) -> RecordedValue | None:
    """The first usable value among the reader's names (sidecar forms or lists)."""
    many = spec.suffix is None
    names = spec.lists if many else sidecar_names(media_name, spec.suffix or "")
    for name in names:
        try:
            found = dockfs.read_beside(root, source_path, name, LIST_CAP if many else SIDECAR_CAP)
        except (dockfs.NotReadable, dockfs.Escape) as exc:
            log.warning("%s: recorder %s ignored: %s", media_name, spec.algorithm, exc)
            continue
        if found is None:
            continue
        data, identity = found
        try:
            text = data.decode("utf-8-sig")
            value = parse_hash(text, spec.algorithm, media_name, many=many)
        except (UnicodeDecodeError, Unusable) as exc:
            log.warning("%s: recorder %s in %s ignored: %s", media_name, spec.algorithm, name, exc)
            continue
        if value is not None:
            return RecordedValue(spec.algorithm, value, name, reader, None if many else identity)
    return None


def may_have_md5(dock: DockSettings, path: str) -> bool:
    """A cheap look (no read) whether a recorder MD5 lies beside ``path``: the
    pre-hasher then takes the MD5 in its pass too."""
    folder, media_name = os.path.split(path)
    for reader in dock.recorder_hashes:
        spec = READERS[reader]
        if spec.algorithm != "md5":
            continue
        names = spec.lists if spec.suffix is None else sidecar_names(media_name, spec.suffix)
        if any(os.path.lexists(os.path.join(folder, name)) for name in names):
            return True
    return False


def compare(rows: list[dict[str, Any]], sha256: str, md5: str | None) -> tuple[list, bool]:
    """Each hash row with ``match`` filled in from the computed digests, and
    whether any disagrees (marks are not compared)."""
    computed = {"sha256": sha256, "md5": md5}
    compared = []
    mismatch = False
    for row in rows:
        row = dict(row)
        if row["kind"] in computed:
            row["computed"] = computed[row["kind"]]
            row["match"] = row["value"] == row["computed"]
            mismatch |= not row["match"]
        compared.append(row)
    return compared, mismatch


def wants_md5(rows: list[dict[str, Any]] | None) -> bool:
    """MD5 is computed only when the recorder gave one to compare with."""
    return any(row.get("kind") == "md5" for row in rows or ())


def marks_of(rows: list[dict[str, Any]] | None) -> list[str]:
    return [row["value"] for row in rows or () if row.get("kind") == "mark"]


def for_manifest(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The compared hashes as the signed manifest states them (no inode numbers)."""
    return [
        {k: row.get(k) for k in ("kind", "value", "from", "reader", "computed", "match")}
        for row in rows or ()
        if row.get("kind") != "mark"
    ]


def mismatch_reason(rows: list[dict[str, Any]] | None) -> str:
    """One line for the log, the job's error and the reason file."""
    wrong = [row for row in rows or () if row.get("match") is False]
    return "recorder hash mismatch: " + "; ".join(
        f"{row['kind']} in {row['from']} is {row['value']}, the bytes hash to {row['computed']}"
        for row in wrong
    )


__all__ = ["MISMATCH_FLAG", "RecordedValue", "compare", "read_recorded", "wants_md5"]
