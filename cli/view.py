"""`circuitmap view`: open a circuit's HTML in the browser, or serve its folder on localhost."""

from __future__ import annotations

import functools
import http.server
import webbrowser
from pathlib import Path

import typer

from circuitmap.errors import CircuitmapError


def circuit_file(run_or_file: Path) -> Path:
    """The HTML file of a run folder (circuit.html) or the file itself."""
    path = run_or_file / "circuit.html" if run_or_file.is_dir() else run_or_file
    if not path.is_file() or path.suffix != ".html":
        raise CircuitmapError(f"{str(run_or_file)!r} is neither a map run folder nor an HTML file")
    return path


def view(run_or_file: Path, *, serve: bool, port: int) -> None:
    path = circuit_file(run_or_file).resolve()
    if not serve:
        if webbrowser.open(path.as_uri()):
            typer.echo(f"opened {path}")
        else:
            typer.echo(
                f"no browser here: open {path} in one, or serve it with "
                f"`circuitmap view {run_or_file} --serve` and open the address it prints"
            )
        return
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        typer.echo(f"serving http://127.0.0.1:{port}/{path.name} (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            typer.echo("stopped")
