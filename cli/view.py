"""`circuitmap view`: open a circuit's HTML in the browser, or serve it on localhost."""

from __future__ import annotations

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


def make_server(page: Path, port: int, host: str = "127.0.0.1") -> http.server.HTTPServer:
    """A server of ``page`` alone (at ``/`` and ``/<its name>``): nothing else of its folder is
    reachable, and a request whose Host header is not this address (DNS rebinding) is refused."""
    if not 0 < port < 65536:
        raise CircuitmapError(f"port {port} is out of range: valid values are 1..65535")
    body = page.read_bytes()
    allowed = {f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            if self.headers.get("Host", "") not in allowed:
                self.send_error(403, "unexpected Host header")
            elif self.path.split("?")[0] not in ("/", f"/{page.name}"):
                self.send_error(404)
            else:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet: the terminal shows the address once."""

    try:
        return http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise CircuitmapError(f"cannot serve on {host}:{port}: {exc.strerror}") from None


def view(run_or_file: Path, *, serve: bool, port: int, host: str = "127.0.0.1") -> None:
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
    with make_server(path, port, host) as server:
        typer.echo(f"serving http://{host}:{port}/{path.name} (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            typer.echo("stopped")
