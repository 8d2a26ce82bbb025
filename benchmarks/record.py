"""Where a benchmark's table goes: ``benchmarks/results/<name>.md``, with the command that made
it, the commit it ran on and the machine, written atomically."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from circuitmap.files.storage import atomic_write_text

RESULTS = Path(__file__).parent / "results"


def _commit() -> str:
    """The checked-out commit, with ``+changes`` when the tree differs from it."""
    root = Path(__file__).parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def record(name: str, table: str) -> Path:
    """Write ``table`` (Markdown) under the results folder with its provenance; returns the path."""
    command = "python " + " ".join(shlex.quote(arg) for arg in sys.argv)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}"
    text = (
        f"# {name}\n\n"
        f"- command: `{command}`\n"
        f"- commit: {_commit()}\n"
        f"- machine: {machine}\n"
        f"- finished: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n\n"
        f"{table.rstrip()}\n"
    )
    path = RESULTS / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
