"""The run directory has one owner at a time: an exclusive OS lock held for the whole training process.

The lock is ``flock`` on ``<run dir>/.lock`` (``msvcrt.locking`` on Windows). The OS drops it when the process
ends in any way, SIGKILL included, so a killed run never blocks its rerun, and no stale lock file needs
cleaning: the file stays, only the lock matters. The file holds the owner's pid for the error message.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..config import ConfigError
from ..files import LockHeld, take_lock

LOCK_NAME = ".lock"


class RunDirError(ConfigError):
    """The run directory cannot be used (another process owns it, or --out names a file)."""


class RunDirLock:
    """Own ``run_dir`` (created if missing) until :meth:`release` or the end of the process.

    ``created`` says whether this call made the folder, so a run that fails before writing anything can
    leave no folder behind (:meth:`release` with ``remove_if_empty``).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self._fd: int | None = None
        self.dir = Path(run_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise RunDirError(f"--out {self.dir} is an existing file, not a run directory")
        self.created = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._fd = take_lock(self.dir / LOCK_NAME)
        except LockHeld as held:
            pid = f" (pid {held.pid})" if held.pid else ""
            raise RunDirError(f"run dir {self.dir} is in use by another condgan process{pid}; wait for it to "
                              f"finish or stop it, or use another --out") from None
        except OSError:
            self.release(remove_if_empty=True)
            raise

    def release(self, remove_if_empty: bool = False) -> None:
        """Give the lock back; with ``remove_if_empty``, also remove a folder this lock created and nothing filled."""
        if self._fd is None and not remove_if_empty:
            return
        if remove_if_empty and self.created:
            try:  # while still holding the lock, so no other process can have taken it meanwhile
                if [p.name for p in self.dir.iterdir()] in ([LOCK_NAME], []):
                    (self.dir / LOCK_NAME).unlink(missing_ok=True)
                    self.dir.rmdir()
            except OSError:
                pass  # best effort: an empty run dir left behind is harmless
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:  # a dropped trainer gives its run dir back (the OS would at process exit)
        self.release()
