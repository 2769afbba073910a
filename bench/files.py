"""Every file and directory qbench writes is written whole: built beside its target, then renamed into place.

A full disk, a crash or Ctrl-C leaves the old file (or report directory) as it was and no temporary file behind;
a path qbench cannot use (unwritable, immutable, the wrong kind) is an OutputError naming it and what was wrong.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import OutputError

#: Linux's FS_IOC_GETFLAGS ioctl and the inode flags (chattr +i, +a) that forbid replacing or removing a file.
_FS_IOC_GETFLAGS = 0x80086601
_FS_FIXED_FLAGS = 0x00000010 | 0x00000020
#: The same flags where stat() reports them (BSD, macOS).
_ST_FIXED_FLAGS = stat.UF_IMMUTABLE | stat.UF_APPEND | stat.SF_IMMUTABLE | stat.SF_APPEND
#: renameat2(2) arguments: relative to the working directory, swap the two paths.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

T = TypeVar("T")


# -- one file ---------------------------------------------------------------------------------------------------


def write_file(path: Path, write: Callable[[Path], object]) -> Path:
    """Have ``write(temp)`` write a temporary file beside ``path``, then rename it over ``path``; returns ``path``.

    ``write`` may be any writer that takes a path (pyperf's dump, pandas' to_csv); the temporary name keeps the
    target's extension so writers that look at it behave the same. The target's permissions are kept (a new file
    gets the umask's). A symlink is followed: the file it points to is replaced. A device or pipe (``/dev/stdout``)
    is written directly, since it cannot be replaced.
    """
    target = check_file_target(path)
    if target.exists() and not target.is_file():
        _reraise(path, "", lambda: write(target))
        return path
    existed = target.exists()
    mode = stat.S_IMODE(target.stat().st_mode) if existed else 0o666 & ~_umask()
    tmp = _temp_file(target, path)
    left = "the old file is unchanged" if existed else "nothing was written"
    try:
        _reraise(path, left, lambda: os.chmod(tmp, mode))
        _reraise(path, left, lambda: _fill(tmp, write))
        _reraise(path, "the old file is unchanged", lambda: os.replace(tmp, target))
        _sync_directory(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole (see write_file)."""
    return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def copy_file(source: Path, path: Path) -> Path:
    """Copy ``source``'s bytes to ``path`` whole (see write_file)."""
    return write_file(path, lambda tmp: shutil.copyfile(source, tmp))


def check_file_target(path: Path) -> Path:
    """The real path a file would be written to, its directory created; OutputError when it cannot be a file.

    Called before long work (``qbench run``) so that a bad ``-o`` fails in the first second, not after the first
    benchmark: it also proves, by creating and removing a temporary file, that the directory takes new files.
    """
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a directory; expected a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        return Path(path)  # a device or a pipe (/dev/stdout, /dev/null): written in place
    target = Path(os.path.realpath(path))
    _make_directory(target.parent, path)
    if _fixed(target):
        raise OutputError(f"cannot write {path}: it is immutable or append-only (see lsattr); it cannot be replaced")
    os.unlink(_temp_file(target, path))
    return target


def check_directory(path: Path) -> Path:
    """A directory qbench will write files into (a cache), created if missing; OutputError when it cannot be."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write into {path}: it is a file; expected a directory")
    _make_directory(target, path)
    os.unlink(_temp_file(target / ".probe", path))
    return target


def _fill(tmp: Path, write: Callable[[Path], object]) -> None:
    write(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)  # the data is on disk before the rename makes it the file: a power cut keeps old or new
    finally:
        os.close(fd)


def _temp_file(target: Path, path: Path) -> Path:
    suffix = "".join(target.suffixes[-2:])
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: cannot create a file in {target.parent}: {_reason(exc)}") from None
    os.close(fd)
    return Path(name)


# -- appending (GitHub's step summary) --------------------------------------------------------------------------


def append_text(path: Path, text: str) -> None:
    """Append ``text`` whole or not at all: one write call, and the file cut back to its old size if it fell short.

    Appending in place, not copy + rename, because the file belongs to someone else (GitHub's runner creates
    $GITHUB_STEP_SUMMARY and reads it after the step): its inode, owner and append-only flag stay as they were.
    """
    data = text.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot append to {path}: {_reason(exc)}") from None
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                short = f"only {written} of {len(data)} bytes could be written"
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({short})")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise OutputError(f"cannot append to {path}: {_reason(exc)}; it was left as it was") from None
    finally:
        os.close(fd)


def append_step_summary(text: str, *, command: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY when it is set; a problem is a one-line warning, never a failure."""
    name = os.environ.get("GITHUB_STEP_SUMMARY")
    if not name:
        return
    try:
        append_text(Path(name), text)
    except OutputError as exc:
        print(f"qbench {command}: warning: GITHUB_STEP_SUMMARY: {exc}", file=sys.stderr)


# -- a directory ------------------------------------------------------------------------------------------------


def replace_directory(path: Path, build: Callable[[Path], object], *, owned: Callable[[str], bool]) -> Path:
    """Have ``build(staging)`` fill a new directory beside ``path``, then swap it in for ``path`` whole.

    Files of the old directory that ``owned(name)`` does not claim (a results file kept beside its report) are
    carried over as hard links. Before anything is built, every entry of the old directory is checked to be
    removable: an immutable file or a subdirectory stops the command with the old directory untouched.
    """
    target = _directory_target(path)
    staging = _temp_directory(target, path)
    try:
        _reraise(path, "the old report is unchanged", lambda: build(staging))
        os.chmod(staging, stat.S_IMODE(target.stat().st_mode) if target.is_dir() else 0o777 & ~_umask())
        if target.is_dir():
            _reraise(path, "the old report is unchanged", lambda: _carry_over(target, staging, owned))
        old = _swap(staging, target, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        _remove_old(old, path)
    return path


def _directory_target(path: Path) -> Path:
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write {path}: it is a file; expected a directory for the report")
    cwd = Path.cwd()
    if target == cwd or target in cwd.parents:
        raise OutputError(f"cannot replace {path}: it is (or holds) the current directory; give the report its own")
    _make_directory(target.parent, path)
    if target.is_dir():
        _check_removable(target, path)
    return target


def _check_removable(directory: Path, path: Path) -> None:
    """Every entry must be removable once the new directory is in place, or the swap would leave a mix."""
    if _fixed(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"cannot replace {path}: its entries cannot be removed (permissions or lsattr)")
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                raise OutputError(
                    f"cannot replace {path}: it holds the directory {entry.name!r}, and a report directory holds only"
                    " files"
                )
            if _fixed(Path(entry.path)):
                raise OutputError(
                    f"cannot replace {path}: {entry.name} is immutable or append-only (see lsattr); nothing was written"
                )


def _temp_directory(target: Path, path: Path) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: cannot create a directory in {target.parent}: {_reason(exc)}"
        ) from None


def _carry_over(old: Path, staging: Path, owned: Callable[[str], bool]) -> None:
    with os.scandir(old) as entries:
        carried = list(entries)
    for entry in carried:
        new = staging / entry.name
        if owned(entry.name) or os.path.lexists(new):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), new)
            continue
        try:
            os.link(entry.path, new)
        except OSError:  # a file system without hard links
            shutil.copy2(entry.path, new)


def _swap(staging: Path, target: Path, path: Path) -> Path | None:
    """Put ``staging`` at ``target``; returns where the old directory went (inside ``staging``'s name) or None."""
    if not os.path.lexists(target):
        _reraise(path, "nothing was written", lambda: os.rename(staging, target))
        return None
    if _reraise(path, "the old report is unchanged", lambda: _exchange(staging, target)):
        return staging
    old = staging.with_name(staging.name + ".old")
    _reraise(path, "the old report is unchanged", lambda: os.rename(target, old))
    try:
        os.rename(staging, target)
    except OSError as exc:
        os.rename(old, target)
        raise OutputError(f"cannot write {path}: {_reason(exc)}; the old report is unchanged") from None
    return old


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # no renameat2 in this C library, or no C library to ask
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


def _remove_old(old: Path, path: Path) -> None:
    failures: list[str] = []
    shutil.rmtree(old, onerror=lambda _f, name, info: failures.append(f"{name}: {_reason(info[1])}"))
    if failures:
        raise OutputError(f"wrote {path}, but the old report left at {old} cannot be removed ({failures[0]})")


# -- shared -----------------------------------------------------------------------------------------------------


def _make_directory(directory: Path, path: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: cannot create its directory {directory}: {_reason(exc)}") from None


def _fixed(path: Path) -> bool:
    """Whether the inode is immutable or append-only (chattr +i / +a): then it cannot be replaced or removed."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if getattr(st, "st_flags", 0) & _ST_FIXED_FLAGS:
        return True
    if stat.S_ISLNK(st.st_mode) or sys.platform != "linux":
        return False
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except OSError:  # a file system without inode flags
        return False
    finally:
        os.close(fd)
    return bool(flags & _FS_FIXED_FLAGS)


def _reraise(path: Path, state: str, step: Callable[[], T]) -> T:
    """Run one file-system step; an OSError becomes an OutputError naming the path, the reason and what is left."""
    try:
        return step()
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_reason(exc)}" + (f"; {state}" if state else "")) from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError), _opened(directory) as fd:
        os.fsync(fd)  # the rename itself survives a power cut


@contextlib.contextmanager
def _opened(directory: Path) -> Iterator[int]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
