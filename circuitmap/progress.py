"""One overall progress bar for long commands: units done of total, elapsed and remaining
time; silent when stderr is not a terminal (logs, CI, notebooks that capture output)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(total: int, phase: str) -> tqdm:
    """A context-managed bar over ``total`` units of ``phase``."""
    return tqdm(
        total=total,
        desc=phase,
        unit="unit",
        disable=not sys.stderr.isatty(),
        leave=False,
        bar_format="{desc}: {n_fmt}/{total_fmt} units [{elapsed} elapsed, {remaining} left]",
    )
