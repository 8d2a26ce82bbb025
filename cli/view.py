"""`circuitmap view`: open a circuit's HTML in the browser, or serve it on localhost."""

from __future__ import annotations

import http.server
import socket
import sys
import webbrowser
from pathlib import Path

import typer

from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import HTML_FILE


def circuit_file(run_or_file: Path) -> Path:
    """The HTML file of a run folder (circuit.html) or the file itself."""
    path = run_or_file / HTML_FILE if run_or_file.is_dir() else run_or_file
    if not path.is_file() or path.suffix != ".html":
        raise CircuitmapError(f"{str(run_or_file)!r} is neither a map run folder nor an HTML file")
    return path


WILDCARDS = ("0.0.0.0", "::", "")  # addresses that listen on every interface


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers a server on ``host``:``port`` answers: the address itself, localhost and
    the loopback addresses; listening on every interface (``0.0.0.0``, ``::``), also this
    machine's names (``socket.gethostname``, ``getfqdn``) and the addresses they resolve to.
    Any other Host (a DNS rebinding attack, an unknown proxy) is refused."""
    names = {"localhost", "127.0.0.1", "::1"} | ({host} - set(WILDCARDS))
    if host in WILDCARDS:
        own = {socket.gethostname(), socket.getfqdn()}
        for name in list(own):
            try:
                own |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
            except OSError:  # a name that does not resolve is still accepted as a name
                pass
        names |= own
    hosts = {f"[{n}]" if ":" in n else n for n in names if n}
    return {f"{h}:{port}" for h in hosts} | (hosts if port == 80 else set())


class _Server(http.server.ThreadingHTTPServer):
    """Serves each request in a thread; a client that goes away early is no error."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def make_server(page: Path, port: int, host: str = "127.0.0.1") -> http.server.HTTPServer:
    """A server of ``page`` alone (at ``/`` and ``/<its name>``): nothing else of its folder is
    reachable, and a request whose Host header is not one of :func:`allowed_hosts` (DNS
    rebinding) is refused with 403. A client that disconnects early is ignored."""
    if not 0 < port < 65536:
        raise CircuitmapError(f"port {port} is out of range: valid values are 1..65535")
    body = page.read_bytes()
    allowed = allowed_hosts(host, port)

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
        return _Server((host, port), Handler)
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
