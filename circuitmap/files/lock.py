"""One writer per run folder: a map holds an exclusive lock on ``<run>/.lock`` while it writes
the folder, and a second map of the same folder refuses instead of mixing its files in."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import LOCK_FILE
from circuitmap.files.storage import write_error


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (released when it ends, or when the process
    dies); a folder another process holds is a one-line error naming its pid."""
    path = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise CircuitmapError(
                f"run folder {str(run_dir)!r} is being written by another circuitmap process "
                f"(pid {holder}): wait for it to finish, or map into another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
