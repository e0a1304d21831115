"""What a dock's recorders leave beside their files: integrity values and marks.

Many recorders and 采集站 write the file's own MD5 or SHA-256 beside it
(``NAME.MP4.md5``, ``NAME.md5``, ``NAME.sha256``), or one list per folder in
``md5sum`` format (``MD5SUMS``, ``checksums.md5``), and some mark a file
important (重要文件) with a small file of its own (e.g. ``NAME.imp``). The
reader names a dock may switch on (``[[docks]] recorder_hashes``) and the file
names each reader looks at are fixed here, in the configuration layer, so the
scanner can leave those files out of the candidates and ``ingest`` can read
them (``ingest/recorder_hashes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the flag an item gets when a recorder's own hash disagrees with its bytes
MISMATCH_FLAG = "recorder-hash-mismatch"

#: readers on by default: one sidecar per file, beside it
DEFAULT_READERS = ("sidecar-md5", "sidecar-sha256")


@dataclass(frozen=True)
class ReaderSpec:
    """One recorder-hash reader: its algorithm, and how its files are named.

    ``suffix``: a sidecar per media file, ``NAME.EXT.<suffix>`` or ``NAME.<suffix>``
    (either case); ``lists``: per-folder lists in ``md5sum`` format.
    """

    algorithm: str
    suffix: str | None = None
    lists: tuple[str, ...] = ()

    def patterns(self) -> list[str]:
        """Glob patterns of the names this reader reads (never archived as items)."""
        if self.suffix is not None:
            return [f"*.{self.suffix}", f"*.{self.suffix.upper()}"]
        return list(self.lists)


READERS: dict[str, ReaderSpec] = {
    "sidecar-md5": ReaderSpec("md5", suffix="md5"),
    "sidecar-sha256": ReaderSpec("sha256", suffix="sha256"),
    "list-md5": ReaderSpec("md5", lists=("MD5SUMS", "md5sums.txt", "checksums.md5")),
    "list-sha256": ReaderSpec("sha256", lists=("SHA256SUMS", "sha256sums.txt", "checksums.sha256")),
}


def check_readers(names: list[str]) -> list[str]:
    """Refuse a reader name this program does not know (a typo would silently read nothing)."""
    unknown = [name for name in names if name not in READERS]
    if unknown:
        raise ValueError(f"unknown recorder hash reader(s) {unknown}; known: {sorted(READERS)}")
    return list(dict.fromkeys(names))


def check_marks(marks: dict[str, str]) -> dict[str, str]:
    """Mark suffixes are plain words (``imp``), their flags non-empty."""
    for suffix, flag in marks.items():
        if not suffix.isalnum() or not flag.strip():
            raise ValueError(
                f"recorder mark {suffix!r} = {flag!r}: the suffix must be letters or digits "
                "and the flag must not be empty"
            )
    return {suffix.lower(): flag.strip() for suffix, flag in marks.items()}


def sidecar_patterns(readers: list[str], marks: dict[str, str]) -> list[str]:
    """Every name a dock's recorder readers and marks read: left out of the candidates."""
    patterns: list[str] = []
    for name in readers:
        patterns.extend(READERS[name].patterns())
    for suffix in marks:
        patterns.extend([f"*.{suffix}", f"*.{suffix.upper()}"])
    return patterns
