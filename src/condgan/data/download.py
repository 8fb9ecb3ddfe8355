"""The local data cache directory and a checksum-verified downloader."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from condgan.data.base import DataError

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """``$CONDGAN_CACHE`` or ``~/.cache/condgan``; created on demand."""
    env = os.environ.get("CONDGAN_CACHE", "")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "condgan"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create cache directory {path}: {err}") from None
    return path


def file_md5(path: str | os.PathLike) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, md5: str | None = None, timeout: float = 60.0,
             sha256_prefix: str | None = None, check: Callable[[Path], None] | None = None) -> Path:
    """Fetch ``url`` to ``dest`` via a temp file in the same directory, verify its checksum, then rename.

    Give the full hex ``md5``, or ``sha256_prefix``: the leading hex digits of the sha256 that torch hub
    puts in weight file names (``...-6726825d.pth``). The rename happens only after the checksum
    matches, so ``dest`` is never a partial or wrong file. A file with no published checksum is instead given to
    ``check`` (the complete temp file; it raises on a bad one) before the rename. Raises DataError on a network/IO
    failure or a checksum mismatch (the temp file is removed).
    """
    if md5 is not None and sha256_prefix is not None or md5 is sha256_prefix is check is None:
        raise ValueError("give one of md5 and sha256_prefix, or a check of the downloaded file")
    dest = Path(dest)
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]  # deepest first
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _fetch_verified(url, dest, md5, sha256_prefix, timeout, check)
    except BaseException:
        for d in created:  # a failed download leaves no trace, not even empty cache folders
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _fetch_verified(url: str, dest: Path, md5: str | None, sha256_prefix: str | None, timeout: float,
                    check: Callable[[Path], None] | None = None) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.md5() if md5 is not None else hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            # disable=None: the bar shows on a terminal and stays silent in logs and tests.
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except BaseException as err:  # also Ctrl-C: never leave a .part file behind
        tmp.unlink(missing_ok=True)
        if not isinstance(err, (OSError, ValueError)):  # URLError and HTTPError are OSErrors
            raise
        reason = " ".join(str(getattr(err, "reason", err)).split())
        raise DataError(f"download of {url} failed: {reason}") from None
    got = digest.hexdigest()
    ok = (got == md5.lower() if md5 is not None else
          got.startswith(sha256_prefix.lower()) if sha256_prefix is not None else True)
    if not ok:
        tmp.unlink(missing_ok=True)
        want = f"md5 {md5}" if md5 is not None else f"sha256 {sha256_prefix}…"
        raise DataError(f"checksum mismatch for {dest.name} from {url}: expected {want}, got {got}")
    if check is not None:
        try:
            check(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, dest)
    return dest
