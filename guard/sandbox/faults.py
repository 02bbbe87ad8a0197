"""A fault-injecting reverse proxy in front of the AWS sandbox (stdlib only): throttles, 5xx, resets, delays.

moto never throttles and never fails a connection. `FaultProxy` forwards every request (method, path, headers,
body) to the upstream and answers its response byte-exact, unless a rule fires first. Rules are checked in
the order they were added; each affects the next `n` requests it matches (None: every one). Delay rules add
up and then let the request go on; of the other rules the first that matches answers the request.

Fault answers follow the protocol of the request: the query protocol's XML `ErrorResponse` for STS, IAM and
the other form-encoded services, AWS JSON (`__type`, `x-amzn-ErrorType`) for every other request (the JSON
and REST-JSON services: ECR, ECS, Lambda; S3's XML errors are not modelled). A reset closes the client
socket with SO_LINGER (1, 0), so the client reads a TCP RST.

Request bodies are read by Content-Length, as botocore sends them; `Expect: 100-continue` is answered here.
The proxy counts requests by operation (the X-Amz-Target header, else the query `Action`, else
"METHOD /path"), both received and forwarded, and the number of image IDs in each ECR BatchGetImage request.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from guard.sandbox.local_server import LocalHandler, LocalHTTPServer, LocalServer

Match = Callable[[str], bool]
"""A predicate on a request's operation key: `AmazonEC2ContainerRegistry_V20150921.BatchGetImage`,
`GetCallerIdentity` (query protocol) or `GET /2015-03-31/functions/NAME` (REST)."""

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "transfer-encoding", "upgrade", "proxy-connection", "expect"})
_FORM = "application/x-www-form-urlencoded"
_BATCH_GET_IMAGE = "AmazonEC2ContainerRegistry_V20150921.BatchGetImage"
_INTERNAL = ("InternalFailure", "The request processing has failed because of an unknown error")
_SERVER_ERRORS = {503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server")}


def operation(*names: str) -> Match:
    """A match for the operations named (`BatchGetImage`, `UpdateService`), in any service."""
    wanted = frozenset(names)
    return lambda key: key.rpartition(".")[2] in wanted or key in wanted


@dataclass
class _Rule:
    fault: Literal["throttle", "server_error", "reset", "delay"]
    remaining: int | None
    match: Match | None
    status: int = 0
    seconds: float = 0.0

    def takes(self, key: str) -> bool:
        """Whether the rule fires for this request (spending one of its `n`)."""
        if self.remaining == 0 or (self.match is not None and not self.match(key)):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class FaultProxy(LocalServer):
    """A reverse proxy on 127.0.0.1 (free port) in daemon threads; rules and counters are thread-safe."""

    thread_name = "fault-proxy"

    def __init__(self, upstream: str, timeout: float = 30.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        super().__init__()
        self._upstream = (parts.hostname, parts.port or 80)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._received: Counter[str] = Counter()
        self._forwarded: Counter[str] = Counter()
        self._batch_sizes: list[int] = []

    def _make_server(self) -> LocalHTTPServer:
        return LocalHTTPServer(self, _Handler)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, for AWS_ENDPOINT_URL."""
        return f"http://127.0.0.1:{self.port}"

    # -- rules -------------------------------------------------------------------------------------
    def throttle(self, n: int | None = None, status: int = 400, match: Match | None = None) -> None:
        """Answer ThrottlingException (JSON) / Throttling (query XML) with HTTP 400 or 429."""
        if status not in (400, 429):
            raise ValueError("a throttle answers 400 or 429")
        self._add(_Rule("throttle", _count(n), match, status=status))

    def server_error(self, n: int | None = None, status: int = 503, match: Match | None = None) -> None:
        """Answer a 5xx (InternalFailure, ServiceUnavailable, ...) in the request's protocol."""
        if not 500 <= status <= 599:
            raise ValueError("a server error is a 5xx status")
        self._add(_Rule("server_error", _count(n), match, status=status))

    def reset(self, n: int | None = None, match: Match | None = None) -> None:
        """Read the request, then close the client socket with a TCP RST (SO_LINGER (1, 0))."""
        self._add(_Rule("reset", _count(n), match))

    def delay(self, seconds: float, n: int | None = None, match: Match | None = None) -> None:
        """Hold matching requests `seconds` before the other rules and the upstream see them."""
        if seconds < 0:
            raise ValueError("a delay is not negative")
        self._add(_Rule("delay", _count(n), match, seconds=seconds))

    def clear(self) -> None:
        """Remove every rule (counters are kept)."""
        with self._lock:
            self._rules.clear()

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    # -- counters ----------------------------------------------------------------------------------
    @property
    def received(self) -> Counter[str]:
        """Requests that reached the proxy, by operation key (faulted ones included)."""
        with self._lock:
            return Counter(self._received)

    @property
    def forwarded(self) -> Counter[str]:
        """Requests passed on to the upstream, by operation key."""
        with self._lock:
            return Counter(self._forwarded)

    @property
    def batch_sizes(self) -> list[int]:
        """Image IDs carried by each ECR BatchGetImage request received, in arrival order."""
        with self._lock:
            return list(self._batch_sizes)

    def _decide(self, key: str, body: bytes) -> tuple[float, _Rule | None]:
        """Count one request; return the total delay and the fault rule that answers it, if any."""
        with self._lock:
            self._received[key] += 1
            if key == _BATCH_GET_IMAGE:
                self._batch_sizes.append(_image_ids(body))
            delay = sum(r.seconds for r in self._rules if r.fault == "delay" and r.takes(key))
            fault = next((r for r in self._rules if r.fault != "delay" and r.takes(key)), None)
            if fault is None:
                self._forwarded[key] += 1
        return delay, fault

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]],
                 body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """One request to the upstream on a fresh connection; its status, reason, headers and body."""
        conn = http.client.HTTPConnection(*self._upstream, timeout=self._timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()


def _count(n: int | None) -> int | None:
    if n is not None and n < 1:
        raise ValueError("n is a positive number of requests, or None for every one")
    return n


def _image_ids(body: bytes) -> int:
    try:
        ids = json.loads(body).get("imageIds")
    except (ValueError, AttributeError):
        return 0
    return len(ids) if isinstance(ids, list) else 0


def _query_action(content_type: str, path: str, body: bytes) -> str | None:
    """The query protocol's Action (form body or URL), or None for a JSON or REST request."""
    query = urlsplit(path).query
    if content_type.startswith(_FORM):
        query = body.decode("utf-8", "replace")
    found = parse_qs(query).get("Action")
    return found[0] if found else None


def _fault_answer(rule: _Rule, query: bool) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of a throttle or server error, shaped as the request's protocol answers it."""
    request_id = str(uuid.uuid4())
    if rule.fault == "throttle":
        code, message, party = ("Throttling" if query else "ThrottlingException"), "Rate exceeded", "Sender"
    else:
        (code, message), party = _SERVER_ERRORS.get(rule.status, _INTERNAL), "Receiver"
    if query:
        xml = (f"<ErrorResponse><Error><Type>{party}</Type>"
               f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
               "</ErrorResponse>")
        return [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()
    data = json.dumps({"__type": code, "message": message}).encode()
    return [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", code)], data


class _Handler(LocalHandler):

    def _proxy(self) -> None:
        """Read one request; answer it with a fault, or with the upstream's response byte-exact."""
        proxy = self.server.owner
        body = self.read_body()
        content_type = self.headers.get("Content-Type", "")
        action = _query_action(content_type, self.path, body)
        key = self.headers.get("X-Amz-Target") or action or f"{self.command} {urlsplit(self.path).path}"
        delay, fault = proxy._decide(key, body)
        if delay:
            time.sleep(delay)
        if fault is None:
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            status, reason, answer_headers, data = proxy._forward(self.command, self.path, headers, body)
            self._answer(status, reason, answer_headers, data)
        elif fault.fault == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # drop the makefile reference, so close() really closes: RST, not FIN
            self.connection.close()
        else:
            fault_headers, data = _fault_answer(fault, action is not None)
            self._answer(fault.status, "", fault_headers, data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _proxy

    def _answer(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response_only(status, reason or None)
        length = next((v for k, v in headers if k.lower() == "content-length"), str(len(data)))
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
