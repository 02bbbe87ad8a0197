"""The lifecycle every sandbox HTTP server shares: an ephemeral 127.0.0.1 port served from a daemon thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class LocalServer:
    """Start, stop and context-manage a server built by `_make_server`; `port` once started."""

    thread_name = "sandbox-server"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def _on_start(self) -> None:
        """Hook run once the server is listening."""

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread (a no-op when started)."""
        if self._server is None:
            self._server = self._make_server()
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name=self.thread_name, daemon=True)
            self._thread.start()
            self._on_start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        """Start serving."""
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Stop serving."""
        self.stop()

    @property
    def port(self) -> int:
        """The bound port; RuntimeError before `start`."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_port)


class LocalHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, Nagle off (headers and body go out in two writes: no 40 ms delayed-ACK stall)."""

    server: LocalHTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def read_body(self) -> bytes:
        """The request body (Content-Length bytes)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, data: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer with `data` and its Content-Length."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the demo's and the tests' output quiet."""


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading server on an ephemeral 127.0.0.1 port; `owner` is the sandbox object answering requests."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: Any, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.owner = owner
