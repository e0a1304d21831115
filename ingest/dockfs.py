"""Claiming a dock file through directory handles, so a swapped folder cannot lead out.

Inspecting a path and then renaming it *by path* is a race: between the two, a
folder above the file can be replaced by a symbolic link to a folder outside
the dock, and the rename then takes (and the release later deletes) a file
that was never in the dock. Here every step goes through file descriptors
opened from the dock root: each folder with ``O_DIRECTORY | O_NOFOLLOW`` from
the one above (a link anywhere on the way is refused, never followed), the
file checked with ``fstatat`` in the folder we hold, and moved with
``renameat`` between the held folder and the held spool folder. A folder
swapped after it was opened does not matter: the handle is the folder that was
checked. The file's device and inode are compared with those seen at
inspection just before the rename, and the entry that arrived in the spool is
compared again right after it (a swap in the last microsecond lands in the
spool, is never archived, and is set aside with the reason).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from config.errors import NotFoundError, RefusedError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Escape(RefusedError):
    """The claim would leave the dock, or the file is not the one inspected; nothing moved
    (or what moved is only in the spool). ``str()`` is the reason for the quarantine."""

    code = "dock_escape"


class Vanished(NotFoundError):
    """The file (or a folder above it) is gone from the dock."""

    code = "vanished"


def identity(st: os.stat_result) -> str:
    """Device and inode as one text, as the job row keeps them (inodes may exceed 2**63)."""
    return f"{st.st_dev}:{st.st_ino}"


@contextlib.contextmanager
def open_folder(root_fd: int, parts: tuple[str, ...], *, create: bool = False) -> Iterator[int]:
    """A handle on ``root/parts…``, opened one level at a time without following links.

    ``create``: make missing folders (mode 0700) on the way, as the spool needs.
    Raises :class:`Escape` at a link or non-folder, :class:`Vanished` if missing.
    """
    fd = os.dup(root_fd)
    try:
        for depth, part in enumerate(parts):
            if part in ("", ".", "..") or "/" in part:
                raise Escape(f"path component {part!r} is not a plain name")
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise Vanished(os.path.join(*parts[: depth + 1])) from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                next_fd = _open_no_follow(part, fd, parts[: depth + 1])
            except OSError as exc:
                raise _escape(exc, parts[: depth + 1]) from None
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _open_no_follow(part: str, fd: int, shown: tuple[str, ...]) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _escape(exc, shown) from None


def _escape(exc: OSError, parts: tuple[str, ...]) -> Exception:
    where = os.path.join(*parts)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return Escape(
            f"folder {where!r} in the dock is a symbolic link or not a folder: never followed"
        )
    if exc.errno == errno.ENOENT:
        return Vanished(where)
    return exc


def claim(
    root: str | os.PathLike[str],
    source: str | os.PathLike[str],
    spool: str | os.PathLike[str],
    expected: str | None,
) -> os.stat_result:
    """Move the dock file ``source`` to ``spool`` (both below ``root``) through handles.

    ``expected``: the file's :func:`identity` at inspection (None: not known,
    e.g. a job registered by an older version). Returns the moved file's stat.
    Raises :class:`Escape` (nothing outside the dock is touched), :class:`Vanished`,
    or OSError (e.g. the spool on another file system).
    """
    root_path = Path(root)
    src_parts = _relative_parts(root_path, Path(source))
    dst_parts = _relative_parts(root_path, Path(spool))
    root_fd = os.open(root_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        root_dev = os.fstat(root_fd).st_dev
        with (
            open_folder(root_fd, src_parts[:-1]) as src_fd,
            open_folder(root_fd, dst_parts[:-1], create=True) as dst_fd,
        ):
            name, target = src_parts[-1], dst_parts[-1]
            try:
                st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise Vanished(os.path.join(*src_parts)) from None
            if stat.S_ISLNK(st.st_mode):
                raise Escape("symbolic link: never followed out of a dock")
            if not stat.S_ISREG(st.st_mode):
                raise Escape("not a regular file (device, pipe or socket)")
            if st.st_dev != root_dev:
                raise Escape("the file is on another file system than the dock (a mount inside it)")
            if expected is not None and identity(st) != expected:
                raise Escape(
                    f"the file was replaced after inspection (device:inode {identity(st)}, "
                    f"inspected {expected})"
                )
            _renameat(src_fd, name, dst_fd, target)
            moved = os.stat(target, dir_fd=dst_fd, follow_symlinks=False)
            if identity(moved) != identity(st):
                raise Escape(
                    f"another file took its place during the claim (device:inode "
                    f"{identity(moved)}, checked {identity(st)}); set aside, not archived"
                )
            os.fsync(dst_fd)
            os.fsync(src_fd)
            return moved
    finally:
        os.close(root_fd)


def _renameat(src_fd: int, name: str, dst_fd: int, target: str) -> None:
    """``renameat(2)``: both ends are held folders, never paths (a seam for the race tests)."""
    os.rename(name, target, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def _relative_parts(root: Path, path: Path) -> tuple[str, ...]:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise Escape(f"{os.fsdecode(path)!r} is not below the dock {os.fsdecode(root)!r}") from None
    if not parts or any(part in ("..", ".") for part in parts):
        raise Escape(f"{os.fsdecode(path)!r} does not name a file below the dock")
    return parts


def check_claimed(digest_device: int, digest_inode: int, expected: str | None) -> None:
    """The spool file just read is the file the claim moved (a rename keeps device and
    inode); else :class:`Escape` – ``.strongroom`` sits in the dock and could be swapped."""
    if expected is not None and f"{digest_device}:{digest_inode}" != expected:
        raise Escape(
            f"the spool copy is not the claimed file (device:inode "
            f"{digest_device}:{digest_inode}, claimed {expected}): a folder was swapped"
        )


def unlink_claimed(
    root: str | os.PathLike[str], spool: str | os.PathLike[str], expected: str | None
) -> None:
    """Delete the spool copy through folder handles, only if it is the claimed file.

    Missing is fine (a retry after a crash). Raises :class:`Escape` rather than
    follow a link or delete another file.
    """
    parts = _relative_parts(Path(root), Path(spool))
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with open_folder(root_fd, parts[:-1]) as fd:
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            check_claimed(st.st_dev, st.st_ino, expected)
            os.unlink(parts[-1], dir_fd=fd)
            os.fsync(fd)
    except Vanished:
        return
    finally:
        os.close(root_fd)


class NotReadable(RefusedError):
    """A small file beside a dock file that is not read: a link, not a regular file,
    on another file system, or larger than allowed. ``str()`` says which."""

    code = "sidecar_refused"


def read_beside(
    root: str | os.PathLike[str], source: str | os.PathLike[str], name: str, cap: int
) -> tuple[bytes, str] | None:
    """The bytes and :func:`identity` of the file ``name`` in ``source``'s folder, read
    through folder handles from the dock root (never following a link), at most
    ``cap`` bytes. None if there is no such file; :class:`NotReadable` or
    :class:`Escape` (a linked folder on the way) if it is there but not taken."""
    if not name or "/" in name or name in (".", ".."):
        raise NotReadable(f"{name!r} is not a plain file name")
    parts = _relative_parts(Path(root), Path(source))
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        root_dev = os.fstat(root_fd).st_dev
        with open_folder(root_fd, parts[:-1]) as folder:
            try:
                fd = os.open(
                    name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder
                )
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise NotReadable(f"{name}: symbolic link, never followed") from None
                raise NotReadable(f"{name}: cannot open: {exc.strerror}") from None
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise NotReadable(f"{name}: not a regular file")
                if st.st_dev != root_dev:
                    raise NotReadable(f"{name}: on another file system than the dock")
                if st.st_size > cap:
                    raise NotReadable(f"{name}: {st.st_size} bytes, more than {cap}")
                data = os.read(fd, cap + 1)
                if len(data) > cap:
                    raise NotReadable(f"{name}: grew beyond {cap} bytes while read")
                return data, identity(st)
            finally:
                os.close(fd)
    except Vanished:
        return None
    finally:
        os.close(root_fd)
