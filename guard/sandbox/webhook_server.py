"""A local Slack-style incoming-webhook server (stdlib only): records POSTs, and fails when told to."""

from __future__ import annotations

import copy
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

from guard.sandbox.local_server import LocalHandler, LocalHTTPServer, LocalServer

DEFAULT_HOOK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: drop the connection without answering
    body: str


class WebhookSandbox(LocalServer):
    """Slack incoming webhooks on 127.0.0.1: 200 "ok" for a valid post to the hook path, Slack's errors otherwise."""

    thread_name = "webhook-sandbox"

    def __init__(self, hook_path: str = DEFAULT_HOOK_PATH) -> None:
        if not hook_path.startswith("/"):
            raise ValueError("hook_path must start with /")
        self.hook_path = hook_path
        self._lock = threading.Lock()
        super().__init__()
        self._received: list[Any] = []
        self._attempts = 0
        self._faults: list[_Fault] = []
        self._standing: _Fault | None = None

    def _make_server(self) -> LocalHTTPServer:
        return LocalHTTPServer(self, _Handler)

    @property
    def url(self) -> str:
        """The webhook URL (a secret in real life: the path is the credential)."""
        return f"http://127.0.0.1:{self.port}{self.hook_path}"

    @property
    def received(self) -> list[Any]:
        """Parsed JSON bodies of the posts that were accepted (answered 200 "ok"), oldest first."""
        with self._lock:
            return copy.deepcopy(self._received)

    @property
    def attempts(self) -> int:
        """Requests that reached the server since the last reset, failed ones included."""
        with self._lock:
            return self._attempts

    def fail_with(self, status: int, body: str = "no_service", times: int | None = None) -> None:
        """Answer `status` with `body` (Slack's error strings): the next `times` requests, or all until reset."""
        self._inject(_Fault(status, body), times)

    def drop_connections(self, times: int | None = None) -> None:
        """Close the connection without answering: the next `times` requests, or all until reset."""
        self._inject(_Fault(None, ""), times)

    def reset(self) -> None:
        """Forget received posts, attempts and faults; keep serving on the same port."""
        with self._lock:
            self._received.clear()
            self._attempts = 0
            self._faults.clear()
            self._standing = None

    def _inject(self, fault: _Fault, times: int | None) -> None:
        with self._lock:
            if times is None:
                self._standing = fault
            else:
                self._faults += [fault] * times

    def _answer(self, path: str, content_type: str, raw: bytes) -> _Fault:
        """What to do with one POST: an (HTTP status, body) answer, or a drop (status None)."""
        with self._lock:
            self._attempts += 1
            if self._faults:
                return self._faults.pop(0)
            if self._standing is not None:
                return self._standing
            if path != self.hook_path:
                return _Fault(404, "no_service")
            if "json" not in content_type:
                return _Fault(400, "invalid_payload")
            try:
                payload = json.loads(raw)
            except (UnicodeDecodeError, ValueError):
                return _Fault(400, "invalid_payload")
            if not isinstance(payload, dict):
                return _Fault(400, "invalid_payload")
            if not payload.get("text") and not payload.get("blocks"):
                return _Fault(400, "no_text")
            self._received.append(payload)
            return _Fault(200, "ok")


class _Handler(LocalHandler):
    def do_POST(self) -> None:
        """Record or refuse one webhook post."""
        answer = self.server.owner._answer(self.path, self.headers.get("Content-Type", ""), self.read_body())
        if answer.status is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send(answer.status, answer.body.encode(), [("Content-Type", "text/html")])

    def do_GET(self) -> None:
        """Webhooks take POST only."""
        self.send(405, b"invalid_method")
