"""Atomic file writes: a reader sees the old file or the new one, never a torn one, and no planted link is followed.

Every write goes to a temp file created exclusively (``mkstemp``: O_CREAT | O_EXCL, so a symlink planted at
a predictable name can never redirect it) in the target's directory, is fsync'ed, given the permissions a
plain ``open`` would (0666 minus the umask; mkstemp's own are 0600), then renamed over the target. Only temp
files this process created are ever removed. :func:`try_lock` is the exclusive lock that run dirs and dataset
stores take (:func:`take_lock`).
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

import torch


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (setting it races with other threads)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)  # elsewhere reading the umask means setting it; put it straight back
        os.umask(mask)
        return mask


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PendingFile:
    """A temp file reserved beside ``path`` now, renamed over ``path`` by :meth:`commit`.

    Reserving first makes an unwritable destination fail before any slow work (``condgan eval``).
    Use as a context manager: leaving the block without a commit removes the temp file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._live = False
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as e:
            raise _naming(e, self.path) from None
        self._fd = fd
        self._live = True  # the temp file is ours until it is renamed or removed
        self.tmp = Path(tmp)

    def commit(self, write: Callable[[IO[bytes]], None], replace: bool = True) -> Path:
        """Write the contents with ``write(binary_file)``, fsync, set permissions, rename over the target.

        ``replace=False`` creates the target exclusively instead: FileExistsError (naming it) when a file
        appeared there meanwhile (another process's output is never replaced). A failed write (disk full,
        file too large) raises the OSError itself, even where the writer (as torch.save does) reports it as
        another exception.
        """
        try:
            with os.fdopen(self._take_fd(), "wb") as f:
                sink = _ErrorKeepingWriter(f)
                try:
                    write(sink)  # type: ignore[arg-type]
                except Exception:
                    if sink.error is not None:
                        raise sink.error from None
                    raise
                f.flush()
                os.fsync(f.fileno())
            os.chmod(self.tmp, 0o666 & ~_umask())
            if replace:
                os.replace(self.tmp, self.path)
            else:
                _link_exclusive(self.tmp, self.path)
                self.tmp.unlink()
            self._live = False
        except OSError as e:
            self.discard()
            raise _naming(e, self.path) from None
        except BaseException:
            self.discard()
            raise
        _fsync_dir(self.path.parent)
        return self.path

    def commit_text(self, text: str, replace: bool = True) -> Path:
        return self.commit(lambda f: f.write(text.encode()), replace=replace)

    def discard(self) -> None:
        """Remove the temp file (ours alone) if it is still there."""
        if self._fd is not None:
            os.close(self._take_fd())
        if self._live:
            self._live = False
            self.tmp.unlink(missing_ok=True)

    def _take_fd(self) -> int:
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError(f"temp file for {self.path} was already used")
        return fd

    def __enter__(self) -> "PendingFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def _link_exclusive(src: Path, dst: Path) -> None:
    """Give the finished ``src`` the name ``dst`` only if nothing has it: a hard link fails with EEXIST
    atomically. Where the file system has no hard links, an exclusive open claims the name first."""
    try:
        os.link(src, dst)
        return
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    os.close(fd)
    os.replace(src, dst)


class _ErrorKeepingWriter:
    """A binary file's ``write`` that remembers the OSError it raised (torch.save re-raises it as RuntimeError)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self._f.flush()

    def __getattr__(self, name: str):  # tell, seek, fileno, ...: the file's own
        return getattr(self._f, name)


def _naming(error: OSError, path: Path) -> OSError:
    """The same OSError, naming the file the user asked for (not our temp file, and not nameless)."""
    return type(error)(error.errno, error.strerror or str(error), str(path))


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` and a newline to a log file; an OSError names the file."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as e:
        raise _naming(e, Path(path)) from None


def read_records(path: str | Path) -> list[dict]:
    """The JSON-object lines of a log ``append_line`` wrote (metrics.jsonl) that carry an integer ``step``, in
    order; a missing file is [], and a line a killed writer tore or anything else unreadable is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            out.append(record)
    return out


def save_atomic(obj: object, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with PendingFile(path) as pending:
        return pending.commit(lambda f: torch.save(obj, f))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (the parent folder must exist)."""
    with PendingFile(path) as pending:
        return pending.commit_text(text)


def try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on the open file ``fd``; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _open_lock_file(path: str | Path) -> int:
    """Open (create) a lock file without following a planted link; an OSError names it."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o666)
    except OSError as e:
        raise _naming(e, Path(path)) from None


@contextmanager
def held_lock(path: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (a lock file, created; a planted link is not followed) for the
    block, waiting for another holder: for a short read-modify-write (``eval.json``'s history)."""
    fd = _open_lock_file(path)
    try:
        try:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # Windows: msvcrt's LK_LOCK retries for about ten seconds
            import msvcrt
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        yield
    finally:
        os.close(fd)


class LockHeld(Exception):
    """Another process holds the lock; ``pid`` is the pid it wrote into the lock file ("" when unknown)."""

    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


def take_lock(path: str | Path) -> int:
    """Open ``path`` (created; a planted link is not followed), take its exclusive lock and write this pid into
    it; returns the open fd, whose closing gives the lock back (as does the end of the process, however it
    ends). Raises LockHeld when another process holds it, an OSError naming ``path`` when it cannot be used."""
    fd = _open_lock_file(path)
    try:
        if not try_lock(fd):
            holder = os.read(fd, 32).decode(errors="replace").strip()
            raise LockHeld(holder if holder.isdigit() else "")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException as e:
        os.close(fd)
        if isinstance(e, OSError):
            raise _naming(e, Path(path)) from None
        raise
    return fd


# torch.save's legacy (pre-1.6, non-zip) format opens with this number pickled (torch.serialization's MAGIC_NUMBER)
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def not_a_torch_file(path: Path) -> str | None:
    """Why ``path`` cannot be a torch.save file (a folder, empty, a torn zip, neither of torch's formats), in
    words; None when it may be one. Only its first bytes and its zip directory are read."""
    if path.is_dir():
        return "is a folder, not a PyTorch checkpoint"
    with open(path, "rb") as f:
        head = f.read(32)
    if not head:
        return "is empty (0 bytes), not a PyTorch checkpoint: copy it again"
    if head.startswith(b"PK\x03\x04"):  # a zip, as torch.save writes: its directory is at the end
        return None if zipfile.is_zipfile(path) else ("is a truncated or damaged zip (torch.save's format): its "
                                                      "end is missing; copy it again")
    if head.startswith(b"\x80") and _LEGACY_MAGIC in head:
        return None
    return "is not a PyTorch checkpoint (neither torch.save's zip format nor its legacy one)"


class CorruptFile(ValueError):
    """A file whose stored checksums do not match its contents (a flipped bit, a bad disk)."""


def load_verified(path: str | Path) -> object:
    """``torch.load(path, weights_only=True)`` after checking every CRC-32 the file stores.

    torch's zip format stores a CRC per member but torch.load does not check them, so a flipped byte in a
    tensor would load silently as a changed weight. Raises CorruptFile naming the damaged member.
    """
    path = Path(path)
    problem = not_a_torch_file(path)
    if problem is not None:
        raise CorruptFile(f"{path} cannot be read: it {problem}")
    if zipfile.is_zipfile(path):  # torch's legacy (non-zip) format carries no checksums
        with zipfile.ZipFile(path) as archive:
            try:
                bad = archive.testzip()
            except zipfile.BadZipFile as e:
                raise CorruptFile(f"{path} is damaged: {e}") from None
        if bad is not None:
            raise CorruptFile(f"{path} is damaged: the checksum of '{bad}' does not match its bytes")
    return torch.load(path, map_location="cpu", weights_only=True)
