"""Writing key files: private ones 0600 from the first byte, all atomically."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # O_EXCL + mode at creation: the secret is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(mode)  # umask may have narrowed or the fs widened it
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private_file(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only (0600)."""
    _write_atomic(path, data, 0o600)


def write_public_file(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o644)


def read_private_file(path: Path) -> bytes:
    """Read a secret, refusing one that others can read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} is mode {mode:04o}; private keys must be 0600")
    return path.read_bytes()
