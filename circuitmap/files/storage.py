"""Run folders: every result is written atomically (temp file + rename) as JSON or safetensors
(:mod:`.tensors`), formats that other tools read, with the run's config beside it. Importing
this module does not import torch."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import CONFIG_FILE

_UMASK = os.umask(0o022)  # read the process umask (and put it back)
os.umask(_UMASK)


def write_error(path: Path, exc: OSError) -> CircuitmapError:
    """The one-line error for a file the system refused to write: what it said, and what to do
    (free space; choose a writable folder)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free space on that disk (earlier files are intact) and run the command again"
    else:
        advice = "choose a folder you can write (e.g. with --out), or make this one writable"
    return CircuitmapError(f"cannot write {path}: {reason}: {advice}")


def atomic_write(path: Path, write: Any, new: bool = False) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``, so readers never see a partial file
    and a failed write leaves the earlier file intact; a full disk or a folder that cannot be
    written is a one-line error naming ``path``. With ``new``, an existing ``path`` is kept
    and FileExistsError raised (two writers: only one creates it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it the usual mode
        if new:
            os.link(tmp, path)  # fails if path exists, atomically
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, data: Any, new: bool = False) -> None:
    """Write ``data`` as standard JSON: a NaN or infinity is refused, never written. With
    ``new``, a file already at ``path`` raises FileExistsError and is kept."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise CircuitmapError(f"refusing to write {path}: {exc}") from None
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"), new)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def read_json(path: Path) -> Any:
    """Read a JSON file of a run; a missing or corrupt file is a one-line error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CircuitmapError(f"cannot read {path}: {exc}") from None


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Around the code that rebuilds a saved result from ``path``: a file that parses but holds
    the wrong shape (a missing key, a wrong type) is a one-line error naming it."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CircuitmapError(
            f"cannot read {path}: it is not a result circuitmap wrote ({type(exc).__name__}: {exc})"
        ) from None


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of a user's file, or a one-line error naming it and what is wrong."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CircuitmapError(f"{what} {str(path)!r} is not a UTF-8 text file") from None
    except FileNotFoundError:
        raise CircuitmapError(f"cannot read {what} {str(path)!r}: it does not exist") from None
    except OSError as exc:
        raise CircuitmapError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None


def writable_dir(path: Path, what: str) -> Path:
    """``path`` as a folder that exists and can be written, or a one-line error (checked before
    any work, so a run never ends by failing to save)."""
    if path.exists() and not path.is_dir():
        raise CircuitmapError(f"{what} {str(path)!r} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CircuitmapError(f"cannot create {what} {str(path)!r}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise CircuitmapError(f"{what} {str(path)!r} is not writable")
    return path


def new_run_dir(root: Path, name: str) -> Path:
    """A fresh folder ``root/<timestamp>-<name>`` (suffixed if it exists)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{name}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def check_run_dir(path: Path) -> Path:
    """A readable run folder (holding config.json), or a one-line error."""
    if not path.is_dir():
        raise CircuitmapError(f"run folder {str(path)!r} does not exist")
    if not (path / CONFIG_FILE).is_file():
        raise CircuitmapError(
            f"{str(path)!r} is not a circuitmap run folder: it has no {CONFIG_FILE}"
        )
    return path
