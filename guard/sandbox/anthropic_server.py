"""A local Anthropic Messages API (stdlib only) that `guard demo` and the tests reach through the anthropic SDK."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from anthropic.types import Model

from guard.sandbox.local_server import LocalHandler, LocalHTTPServer, LocalServer

JSON = dict[str, Any]

DEFAULT_MODEL = "claude-sonnet-4-6"
EXHAUSTED_TEXT = "(script exhausted)"
MESSAGES_PATH = "/v1/messages"
# Models the API serves: the SDK's known ids (typing.get_args(Model) is (Literal[...], str)).
KNOWN_MODELS = frozenset(typing.get_args(typing.get_args(Model)[0]))
STOP_REASONS = frozenset({
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded",
})
FAULTS: Mapping[int, tuple[str, str]] = {
    429: ("rate_limit_error", "This request would exceed your organization's rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NEEDS_TOOLS = "Requests which include `tool_use` or `tool_result` blocks must define tools."


def text(value: str) -> JSON:
    """A `text` content block."""
    return {"type": "text", "text": value}


def tool_use(name: str, input: Mapping[str, Any], id: str | None = None) -> JSON:
    """A `tool_use` content block; without `id` the sandbox assigns a `toolu_...` id when it serves the turn."""
    return {"type": "tool_use", "id": id, "name": name, "input": dict(input)}


def estimate_tokens(value: object) -> int:
    """Deterministic token count of a JSON value: a quarter of its compact, key-sorted JSON length, at least 1."""
    return max(1, math.ceil(len(json.dumps(value, sort_keys=True, separators=(",", ":"))) / 4))


@dataclass(frozen=True)
class Turn:
    """One scripted assistant reply; `stop_reason` None means tool_use if it calls a tool, else end_turn."""

    content: Sequence[JSON]
    stop_reason: str | None = None
    usage: tuple[int, int] | None = None  # (input_tokens, output_tokens); None estimates both

    def __post_init__(self) -> None:
        """Reject blocks, stop reasons and usage the real API never sends."""
        for i, block in enumerate(self.content):
            _check_reply_block(block, f"content.{i}")
        if self.stop_reason is not None and self.stop_reason not in STOP_REASONS:
            raise ValueError(f"stop_reason {self.stop_reason!r} is not one of {sorted(STOP_REASONS)}")
        if self.usage is not None and (len(self.usage) != 2 or min(self.usage) < 0):
            raise ValueError(f"usage {self.usage!r} must be (input_tokens, output_tokens), both >= 0")


TurnSource = Turn | Callable[[JSON], Turn]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox answered: lower-cased headers, the parsed JSON body (None if unparseable)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: JSON | None
    status: int

    @property
    def api_key(self) -> str | None:
        """The key sent as `x-api-key` or `Authorization: Bearer`, None when absent."""
        return _api_key(self.headers)


class _ScriptError(Exception):
    """A scripted turn that cannot be served (answered as 500 api_error with `x-should-retry: false`)."""


@dataclass
class _Reply:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: float | None


class _Problem(Exception):
    """An error answer in the API's envelope, raised while handling a request."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.reply = _Reply(status, {"type": "error", "error": {"type": kind, "message": message}})


def _invalid(message: str) -> _Problem:
    return _Problem(400, "invalid_request_error", message)


def _api_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key", "").strip()
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if not key and scheme.lower() == "bearer":
        key = token.strip()
    return key or None


def _ident(prefix: str, n: int) -> str:
    digest = int.from_bytes(hashlib.sha256(f"{prefix}{n}".encode()).digest(), "big")
    chars = []
    for _ in range(22):
        digest, rest = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[rest])
    return f"{prefix}01{''.join(chars)}"


def _check_reply_block(block: object, where: str) -> None:
    if not isinstance(block, dict):
        raise ValueError(f"{where}: a content block is a dict")
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise ValueError(f"{where}: a text block needs a str `text`")
    elif kind == "tool_use":
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            raise ValueError(f"{where}: a tool_use block needs a str `name` and a dict `input`")
        if block.get("id") is not None and not isinstance(block["id"], str):
            raise ValueError(f"{where}: a tool_use id is a str or None")
    else:
        raise ValueError(f"{where}: the sandbox serves text and tool_use blocks, not {kind!r}")


class AnthropicSandbox(LocalServer):
    """The Messages API (`POST /v1/messages`, non-streaming) on 127.0.0.1, answering with scripted turns."""

    thread_name = "anthropic-sandbox"

    def __init__(self, *, api_key: str | None = None) -> None:
        """Accept any key, or only `api_key` when given (others get 401 authentication_error)."""
        self._accepted_key = api_key
        self._lock = threading.RLock()
        super().__init__()
        self._init_state()

    def _init_state(self) -> None:
        self._turns: list[TurnSource] = []
        self._faults: list[_Fault] = []
        self._log: list[RecordedRequest] = []
        self._served = 0
        self._ids = {"msg_": 0, "toolu_": 0, "req_": 0}

    # ---- lifecycle -------------------------------------------------------------------------------------

    def _make_server(self) -> LocalHTTPServer:
        return LocalHTTPServer(self, _Handler)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the value for the SDK's base_url and ANTHROPIC_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget the script, pending faults and recorded requests; ids restart; keep serving on the same port."""
        with self._lock:
            self._init_state()

    # ---- scripting -------------------------------------------------------------------------------------

    def script(self, turns: Iterable[TurnSource]) -> None:
        """Queue assistant turns (a Turn, or a callable from the request body to a Turn), served in order."""
        queued = list(turns)
        for turn in queued:
            if not isinstance(turn, Turn) and not callable(turn):
                raise TypeError(f"a scripted turn is a Turn or a callable, not {type(turn).__name__}")
        with self._lock:
            self._turns += queued

    def fail_next(self, n: int, status: int = 529, *, retry_after: float | None = None) -> None:
        """Answer the next `n` authenticated requests with 429, 500 or 529; a 429 has retry-after (1 s default)."""
        if status not in FAULTS:
            raise ValueError(f"status {status}: use one of {sorted(FAULTS)}")
        if status == 429 and retry_after is None:
            retry_after = 1.0
        with self._lock:
            self._faults += [_Fault(status, retry_after)] * n

    @property
    def remaining(self) -> int:
        """Scripted turns not served yet."""
        with self._lock:
            return len(self._turns)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered since the last reset, in order."""
        with self._lock:
            return list(self._log)

    # ---- HTTP ------------------------------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> _Reply:
        with self._lock:
            path = urlsplit(target).path
            try:
                body: JSON | None = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = None
            try:
                reply = self._dispatch(method, path, headers, body)
            except _Problem as problem:
                reply = problem.reply
            self._ids["req_"] += 1
            request_id = _ident("req_", self._ids["req_"])
            if reply.body.get("type") == "error":
                reply.body["request_id"] = request_id
            reply.headers["request-id"] = request_id
            self._log.append(RecordedRequest(method, path, dict(headers), copy.deepcopy(body), reply.status))
            return reply

    def _dispatch(self, method: str, path: str, headers: Mapping[str, str], body: JSON | None) -> _Reply:
        if method != "POST" or path != MESSAGES_PATH:
            raise _Problem(404, "not_found_error", "Not Found")
        key = _api_key(headers)
        if key is None:
            raise _Problem(401, "authentication_error", "x-api-key header is required")
        if self._accepted_key is not None and key != self._accepted_key:
            raise _Problem(401, "authentication_error", "invalid x-api-key")
        if self._faults:
            return self._fault_reply(self._faults.pop(0))
        if not headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")
        if body is None:
            raise _invalid("There was an issue with the format of your request: the body must be a JSON object")
        tool_names = _validate(body)
        if body["model"] not in KNOWN_MODELS:
            raise _Problem(404, "not_found_error", f"model: {body['model']}")
        try:
            return _Reply(200, self._serve(body, tool_names))
        except _ScriptError as error:
            problem = _Problem(500, "api_error", f"sandbox script: {error}")
            problem.reply.headers["x-should-retry"] = "false"
            raise problem from error

    def _fault_reply(self, fault: _Fault) -> _Reply:
        kind, message = FAULTS[fault.status]
        reply = _Problem(fault.status, kind, message).reply
        if fault.retry_after is not None:
            seconds = fault.retry_after
            reply.headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        return reply

    def _serve(self, body: JSON, tool_names: frozenset[str]) -> JSON:
        turn, scripted = self._next_turn(body)
        content = copy.deepcopy(list(turn.content))
        calls = [block for block in content if block["type"] == "tool_use"]
        for block in calls:
            if block["name"] not in tool_names:
                raise _ScriptError(f"turn {self._served + 1} calls tool {block['name']!r}, "
                                   f"but the request defines {sorted(tool_names)}")
        for block in calls:
            if block.get("id") is None:
                self._ids["toolu_"] += 1
                block["id"] = _ident("toolu_", self._ids["toolu_"])
        input_tokens, output_tokens = turn.usage or (
            estimate_tokens({k: body[k] for k in ("system", "tools", "tool_choice", "messages") if k in body}),
            estimate_tokens(content))
        if scripted:  # a turn that cannot be served stays queued: the test sees the same error on every attempt
            self._turns.pop(0)
            self._served += 1
        self._ids["msg_"] += 1
        return {
            "id": _ident("msg_", self._ids["msg_"]), "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": turn.stop_reason or ("tool_use" if calls else "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def _next_turn(self, body: JSON) -> tuple[Turn, bool]:
        if not self._turns:
            return Turn([text(EXHAUSTED_TEXT)], "end_turn"), False
        source = self._turns[0]
        if isinstance(source, Turn):
            return source, True
        try:
            turn = source(copy.deepcopy(body))
        except Exception as error:
            raise _ScriptError(f"turn {self._served + 1} raised {type(error).__name__}: {error}") from error
        if not isinstance(turn, Turn):
            raise _ScriptError(f"turn {self._served + 1} returned {type(turn).__name__}, not a Turn")
        return turn, True


# ---- request validation (messages follow the real API's wording) -----------------------------------------


def _validate(body: JSON) -> frozenset[str]:
    """Check a Messages request like the API does; return the names of the tools it defines."""
    if body.get("stream"):
        raise _invalid("stream: streaming is not supported by the deploy-guard sandbox; call messages.create "
                       "without stream=True")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise _invalid(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _invalid("model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise _invalid("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise _invalid("max_tokens: Input should be greater than or equal to 1")
    _check_system(body.get("system"))
    tool_names = _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"), tool_names, "tools" in body)
    if _check_messages(body["messages"]) and "tools" not in body:
        raise _invalid(_NEEDS_TOOLS)
    return tool_names


def _check_system(system: object) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid("system: Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _invalid(f"system.{i}: Input should be a text block with a str `text`")


def _check_tools(tools: object) -> frozenset[str]:
    if tools is None:
        return frozenset()
    if not isinstance(tools, list):
        raise _invalid("tools: Input should be a valid list")
    names: list[str] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _invalid(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type", "custom") != "custom":
            raise _invalid(f"tools.{i}.type: the sandbox serves client tools only, not {tool['type']!r}")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise _invalid(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if not isinstance(tool.get("description", ""), str):
            raise _invalid(f"tools.{i}.custom.description: Input should be a valid string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _invalid(f"tools.{i}.custom.input_schema: Field required")
        if schema.get("type") != "object":
            raise _invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        names.append(name)
    if len(set(names)) != len(names):
        raise _invalid("tools: Tool names must be unique.")
    return frozenset(names)


def _check_tool_choice(choice: object, tool_names: frozenset[str], has_tools: bool) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
        raise _invalid(f"tool_choice.type: Input should be one of {', '.join(sorted(_TOOL_CHOICES))}")
    if choice["type"] in ("any", "tool") and not has_tools:
        raise _invalid("tool_choice: tool_choice may only be specified while providing tools.")
    if choice["type"] == "tool" and choice.get("name") not in tool_names:
        raise _invalid(f"tool_choice.tool.name: no tool named {choice.get('name')!r} in tools")
    if not isinstance(choice.get("disable_parallel_tool_use", False), bool):
        raise _invalid(f"tool_choice.{choice['type']}.disable_parallel_tool_use: Input should be a valid boolean")


def _check_messages(messages: object) -> bool:
    """Check roles, blocks and tool_use/tool_result pairing; return whether any tool block appears."""
    if not isinstance(messages, list):
        raise _invalid("messages: Input should be a valid list")
    if not messages:
        raise _invalid("messages: at least one message is required")
    pending: list[str] = []  # tool_use ids of the previous assistant message
    previous: str | None = None
    has_tool_blocks = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _invalid('messages: first message must use the "user" role')
        if role == previous:
            raise _invalid(f'messages: roles must alternate between "user" and "assistant", '
                           f'but found multiple "{role}" roles in a row')
        blocks = _blocks(message.get("content"), i, role, final=i == len(messages) - 1)
        has_tool_blocks = has_tool_blocks or any(b["type"] in ("tool_use", "tool_result") for b in blocks)
        if role == "user":
            _check_results(blocks, pending, i)
            pending = []
        else:
            pending = [b["id"] for b in blocks if b["type"] == "tool_use"]
        previous = role
    return has_tool_blocks


def _check_results(blocks: list[JSON], pending: list[str], i: int) -> None:
    answered = {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"}
    missing = [tool_id for tool_id in pending if tool_id not in answered]
    if missing:
        raise _invalid(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                       f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                       "`tool_result` block in the next message.")
    for j, block in enumerate(blocks):
        if block["type"] == "tool_result" and block["tool_use_id"] not in pending:
            raise _invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                           f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                           "`tool_use` block in the previous message.")


def _blocks(content: object, i: int, role: str, *, final: bool) -> list[JSON]:
    empty = _invalid(f"messages.{i}: all messages must have non-empty content except for the optional final "
                     "assistant message")
    if isinstance(content, str):
        if not content and not (final and role == "assistant"):
            raise empty
        return [text(content)]
    if not isinstance(content, list):
        raise _invalid(f"messages.{i}.content: Input should be a valid string or a list of content blocks")
    if not content and not (final and role == "assistant"):
        raise empty
    for j, block in enumerate(content):
        _check_block(block, f"messages.{i}.content.{j}", role)
    return content


def _check_block(block: object, where: str, role: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _invalid(f"{where}: Input should be a content block with a `type`")
    kind = block["type"]
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise _invalid(f"{where}: text content blocks must be non-empty")
    elif kind == "tool_use":
        if role != "assistant":
            raise _invalid(f"{where}: `tool_use` blocks can only be in `assistant` messages")
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str) \
                or not isinstance(block.get("input"), dict):
            raise _invalid(f"{where}.tool_use: `id` (str), `name` (str) and `input` (object) are required")
    elif kind == "tool_result":
        if role != "user":
            raise _invalid(f"{where}: `tool_result` blocks can only be in `user` messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise _invalid(f"{where}.tool_result.tool_use_id: Field required")
        if not isinstance(block.get("content", ""), str | list):
            raise _invalid(f"{where}.tool_result.content: Input should be a valid string or list of blocks")
        if not isinstance(block.get("is_error", False), bool):
            raise _invalid(f"{where}.tool_result.is_error: Input should be a valid boolean")


# ---- HTTP server ------------------------------------------------------------------------------------------


class _Handler(LocalHandler):
    def _serve(self) -> None:
        raw = self.read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.owner._answer(self.command, self.path, headers, raw)
        self.send(reply.status, json.dumps(reply.body).encode(),
                  [("Content-Type", "application/json"), *reply.headers.items()])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
