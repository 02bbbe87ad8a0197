"""The Anthropic sandbox driven through the official SDK: tool-use turns, validation, auth, faults and usage."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from guard.sandbox.anthropic_server import (
    DEFAULT_MODEL,
    EXHAUSTED_TEXT,
    KNOWN_MODELS,
    AnthropicSandbox,
    Turn,
    estimate_tokens,
    text,
    tool_use,
)

KEY = "test-key"
TOOLS: list[ToolParam] = [
    {"name": "describe_service", "description": "Describe an ECS service.",
     "input_schema": {"type": "object", "properties": {"service": {"type": "string"}}, "required": ["service"]}},
    {"name": "rollback", "description": "Roll a service back.", "input_schema": {"type": "object"}},
]
ASK: list[MessageParam] = [{"role": "user", "content": "Why is prod/web failing?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[AnthropicSandbox]:
    """One sandbox for the module."""
    with AnthropicSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(server: AnthropicSandbox) -> AnthropicSandbox:
    """The module's sandbox, reset."""
    server.reset()
    return server


def client(sandbox: AnthropicSandbox, retries: int = 0, **kwargs: Any) -> anthropic.Anthropic:
    """An SDK client on the sandbox."""
    return anthropic.Anthropic(base_url=sandbox.url, api_key=KEY, max_retries=retries, **kwargs)


def ask(api: anthropic.Anthropic, messages: list[MessageParam] = ASK,
        system: str | anthropic.Omit = anthropic.omit) -> anthropic.types.Message:
    """One non-streaming Messages call with the test tools."""
    return api.messages.create(model=DEFAULT_MODEL, max_tokens=512, messages=messages, tools=TOOLS, system=system)


def answered(first: anthropic.types.Message, result: str) -> list[MessageParam]:
    """The conversation after `first`, with a tool_result for each of its tool_use blocks."""
    results: list[Any] = [{"type": "tool_result", "tool_use_id": b.id, "content": result}
                          for b in first.content if b.type == "tool_use"]
    return [*ASK, {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]


def test_default_model_is_current_and_not_deprecated() -> None:
    assert DEFAULT_MODEL in KNOWN_MODELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with AnthropicSandbox() as sandbox:
            sandbox.script([Turn([text("ok")])])
            assert ask(client(sandbox)).model == DEFAULT_MODEL


def test_two_turn_tool_use_exchange(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([text("Checking the service."), tool_use("describe_service", {"service": "web"})]),
                    Turn([text("The image tag is missing from ECR.")])])
    api = client(sandbox)

    first = ask(api)
    second = ask(api, answered(first, '{"runningCount": 0}'))

    assert first.stop_reason == "tool_use" and first.type == "message" and first.role == "assistant"
    call = first.content[1]
    assert call.type == "tool_use" and call.name == "describe_service" and call.input == {"service": "web"}
    assert call.id.startswith("toolu_01") and first.id.startswith("msg_01")
    assert second.stop_reason == "end_turn" and second.stop_sequence is None
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].type == "text" and second.content[0].text == "The image tag is missing from ECR."
    sent = sandbox.requests[1].body
    assert sent is not None
    assert sent["messages"][1]["content"][1]["id"] == call.id
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": '{"runningCount": 0}'}]
    assert sandbox.remaining == 0


def test_callable_turn_reacts_to_the_tool_result(sandbox: AnthropicSandbox) -> None:
    seen: list[dict[str, Any]] = []

    def react(request: dict[str, Any]) -> Turn:
        seen.append(request)
        result = request["messages"][-1]["content"][0]
        if result.get("is_error"):
            return Turn([text("The tool failed: " + result["content"])])
        return Turn([tool_use("rollback", {"service": json.loads(result["content"])["service"]})])

    sandbox.script([Turn([tool_use("describe_service", {"service": "web"}, id="toolu_fixed")]), react, react])
    api = client(sandbox)
    first = ask(api)
    second = ask(api, answered(first, '{"service": "web", "failedTasks": 3}'))
    messages = answered(second, "AccessDenied")
    messages[-1]["content"][0]["is_error"] = True  # type: ignore[index]
    third = ask(api, messages)

    assert first.content[0].type == "tool_use" and first.content[0].id == "toolu_fixed"
    assert second.content[0].type == "tool_use" and second.content[0].input == {"service": "web"}
    assert third.content[0].type == "text" and third.content[0].text == "The tool failed: AccessDenied"
    assert len(seen) == 2 and seen[0]["model"] == DEFAULT_MODEL
    seen[0]["messages"].clear()  # the callable got a copy: the recorded request is intact
    assert sandbox.requests[1].body is not None and len(sandbox.requests[1].body["messages"]) == 3


def test_missing_tool_result_is_a_bad_request(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([tool_use("describe_service", {"service": s}) for s in ("a", "b")])])
    api = client(sandbox, retries=2)
    first = ask(api)
    ids = [b.id for b in first.content if b.type == "tool_use"]
    partial = answered(first, "{}")
    partial[-1]["content"] = partial[-1]["content"][:1]  # type: ignore[index]

    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(api, partial)

    assert caught.value.status_code == 400 and caught.value.type == "invalid_request_error"
    assert caught.value.api_message == (
        f"messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: {ids[1]}. "
        "Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert len(sandbox.requests) == 2  # a 400 is not retried


def test_unexpected_tool_use_id_is_a_bad_request(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([tool_use("describe_service", {"service": "a"})])])
    api = client(sandbox)
    first = ask(api)
    messages = answered(first, "{}")
    messages[-1]["content"][0]["tool_use_id"] = "toolu_invented"  # type: ignore[index]

    with pytest.raises(anthropic.BadRequestError, match="ids were found without `tool_result`"):
        ask(api, messages)
    messages = answered(first, "{}")
    messages[-1]["content"].append({"type": "tool_result", "tool_use_id": "toolu_invented"})  # type: ignore[union-attr]
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id` found in `tool_result` blocks"):
        ask(api, messages)


@pytest.mark.parametrize(("change", "message"), [
    ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ({"messages": []}, "messages: at least one message is required"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 'first message must use the "user" role'),
    ({"messages": [*ASK, *ASK]}, 'found multiple "user" roles in a row'),
    ({"messages": [{"role": "user", "content": ""}]}, "all messages must have non-empty content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "text content blocks must be"),
    ({"tools": [*TOOLS, TOOLS[0]]}, "Tool names must be unique"),
    ({"tools": [{"name": "bad name", "input_schema": {"type": "object"}}]}, "String should match pattern"),
    ({"tools": [{"name": "t", "input_schema": {"type": "array"}}]}, "input_schema.type: Input should be 'object'"),
    ({"tools": [{"name": "t"}]}, "input_schema: Field required"),
    ({"tool_choice": {"type": "tool", "name": "delete_cluster"}}, "no tool named 'delete_cluster'"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"system": [{"type": "image"}]}, "system.0"),
    ({"stream": True}, "streaming is not supported by the deploy-guard sandbox"),
])
def test_invalid_requests_are_rejected_like_the_api(sandbox: AnthropicSandbox, change: dict[str, Any],
                                                    message: str) -> None:
    sandbox.script([Turn([text("never served")])])
    params: dict[str, Any] = {"model": DEFAULT_MODEL, "max_tokens": 64, "messages": ASK, "tools": TOOLS, **change}

    with pytest.raises(anthropic.BadRequestError) as caught:
        client(sandbox).messages.create(**params)

    assert message in str(caught.value.api_message)
    assert caught.value.body == {"type": "error", "request_id": caught.value.request_id,
                                 "error": {"type": "invalid_request_error", "message": caught.value.api_message}}
    assert sandbox.remaining == 1


def test_tool_blocks_without_tools_are_rejected(sandbox: AnthropicSandbox) -> None:
    messages: list[MessageParam] = [
        *ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "x", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]}]

    with pytest.raises(anthropic.BadRequestError, match="must define tools"):
        client(sandbox).messages.create(model=DEFAULT_MODEL, max_tokens=64, messages=messages)


def test_unknown_model_and_unknown_path_are_not_found(sandbox: AnthropicSandbox) -> None:
    api = client(sandbox)
    with pytest.raises(anthropic.NotFoundError) as caught:
        api.messages.create(model="claude-imaginary-9", max_tokens=64, messages=ASK)
    assert caught.value.type == "not_found_error" and caught.value.api_message == "model: claude-imaginary-9"
    with pytest.raises(anthropic.NotFoundError):
        api.models.list()


def test_missing_or_wrong_key_is_an_authentication_error(sandbox: AnthropicSandbox) -> None:
    keyless = client(sandbox, default_headers={"Authorization": anthropic.Omit()})
    with pytest.raises(anthropic.AuthenticationError) as caught:
        ask(keyless)
    assert caught.value.type == "authentication_error" and caught.value.api_message == "x-api-key header is required"
    with AnthropicSandbox(api_key="right-key") as strict:
        with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
            ask(client(strict))
        api = anthropic.Anthropic(base_url=strict.url, api_key="right-key", max_retries=0)
        assert ask(api).content[0].type == "text"


def test_missing_anthropic_version_is_a_bad_request(sandbox: AnthropicSandbox) -> None:
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version: header is required"):
        ask(client(sandbox, default_headers={"anthropic-version": anthropic.Omit()}))


def test_rate_limit_with_retry_after_then_success(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([text("after the limit")])])
    sandbox.fail_next(1, 429, retry_after=0.01)

    started = time.perf_counter()
    reply = ask(client(sandbox, retries=1))
    elapsed = time.perf_counter() - started

    assert reply.content[0].type == "text" and reply.content[0].text == "after the limit"
    assert [r.status for r in sandbox.requests] == [429, 200]
    assert [r.headers["x-stainless-retry-count"] for r in sandbox.requests] == ["0", "1"]
    assert elapsed < 0.3  # the SDK waited retry-after (10 ms), not its own 0.5 s backoff


def test_rate_limit_error_carries_retry_after(sandbox: AnthropicSandbox) -> None:
    sandbox.fail_next(2, 429)

    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client(sandbox))

    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.type == "rate_limit_error"
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize(("status", "error_class", "kind"), [
    (529, anthropic.OverloadedError, "overloaded_error"),
    (500, anthropic.InternalServerError, "api_error"),
])
def test_server_faults_raise_status_errors_and_keep_the_script(sandbox: AnthropicSandbox, status: int,
                                                               error_class: type[anthropic.APIStatusError],
                                                               kind: str) -> None:
    sandbox.script([Turn([text("served later")])])
    sandbox.fail_next(1, status)

    with pytest.raises(error_class) as caught:
        ask(client(sandbox))

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.status_code == status and caught.value.type == kind
    assert sandbox.remaining == 1
    reply = ask(client(sandbox))
    assert reply.content[0].type == "text" and reply.content[0].text == "served later"


def test_sdk_retries_through_overload(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([text("finally")])])
    sandbox.fail_next(2, 529, retry_after=0.001)

    reply = ask(client(sandbox, retries=2))

    assert reply.content[0].type == "text" and reply.content[0].text == "finally"
    assert [r.status for r in sandbox.requests] == [529, 529, 200]


def test_requests_are_recorded_with_headers_and_no_key_in_the_body(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([text("ok")])])

    ask(client(sandbox), system="You are deploy-guard's remediation agent.")

    (request,) = sandbox.requests
    assert request.method == "POST" and request.path == "/v1/messages" and request.status == 200
    assert request.api_key == KEY and request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["anthropic-version"]
    assert request.body is not None
    assert request.body["model"] == DEFAULT_MODEL and request.body["max_tokens"] == 512
    assert request.body["system"] == "You are deploy-guard's remediation agent."
    assert [t["name"] for t in request.body["tools"]] == ["describe_service", "rollback"]
    assert KEY not in json.dumps(request.body)


def test_script_exhausted_answers_a_plain_end_turn(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([text("only turn")])])
    api = client(sandbox)

    replies = [ask(api), ask(api)]

    assert [(r.content[0].type, r.stop_reason) for r in replies] == [("text", "end_turn")] * 2
    assert replies[1].content[0].type == "text" and replies[1].content[0].text == EXHAUSTED_TEXT
    assert sandbox.remaining == 0


def test_usage_is_present_and_deterministic(sandbox: AnthropicSandbox) -> None:
    blocks = [text("Rolling back."), tool_use("rollback", {"service": "web"}, id="toolu_a")]
    sandbox.script([Turn(blocks), Turn(blocks), Turn([text("capped")], stop_reason="max_tokens", usage=(1200, 64))])
    api = client(sandbox)

    first, second, capped = ask(api), ask(api), ask(api)

    assert first.usage.model_dump(include={"input_tokens", "output_tokens", "cache_creation_input_tokens",
                                           "cache_read_input_tokens"}) == {
        "input_tokens": estimate_tokens({"messages": ASK, "tools": TOOLS}),
        "output_tokens": estimate_tokens(blocks), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert second.usage == first.usage
    assert (capped.usage.input_tokens, capped.usage.output_tokens, capped.stop_reason) == (1200, 64, "max_tokens")


def test_ids_are_deterministic_after_reset(sandbox: AnthropicSandbox) -> None:
    def run() -> tuple[str, str]:
        sandbox.reset()
        sandbox.script([Turn([tool_use("describe_service", {"service": "web"})])])
        reply = ask(client(sandbox))
        assert reply.content[0].type == "tool_use"
        return reply.id, reply.content[0].id

    first = run()
    assert run() == first
    assert len(set(first)) == 2


def test_a_script_bug_is_a_500_the_sdk_does_not_retry(sandbox: AnthropicSandbox) -> None:
    def broken(request: dict[str, Any]) -> Turn:
        raise KeyError("no tool_result")

    sandbox.script([Turn([tool_use("delete_cluster", {})])])
    api = client(sandbox, retries=2)
    with pytest.raises(anthropic.InternalServerError, match="calls tool 'delete_cluster'"):
        ask(api)
    assert len(sandbox.requests) == 1 and sandbox.requests[0].status == 500
    assert sandbox.remaining == 1  # the turn stays queued

    sandbox.reset()
    sandbox.script([broken])
    with pytest.raises(anthropic.InternalServerError, match="raised KeyError"):
        ask(api)
    assert sandbox.remaining == 1


def test_base_url_from_the_environment(sandbox: AnthropicSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    sandbox.script([Turn([text("via env")])])

    reply = ask(anthropic.Anthropic(max_retries=0))

    assert reply.content[0].type == "text" and reply.content[0].text == "via env"
    assert sandbox.requests[0].api_key == "env-key"


def test_reset_forgets_script_faults_and_requests(sandbox: AnthropicSandbox) -> None:
    sandbox.script([Turn([text("stale")])])
    sandbox.fail_next(3, 529)
    with pytest.raises(anthropic.OverloadedError):
        ask(client(sandbox))

    sandbox.reset()

    assert (sandbox.requests, sandbox.remaining) == ([], 0)
    reply = ask(client(sandbox))
    assert reply.content[0].type == "text" and reply.content[0].text == EXHAUSTED_TEXT


def test_script_inputs_are_checked_up_front(sandbox: AnthropicSandbox) -> None:
    with pytest.raises(ValueError, match="text and tool_use blocks"):
        Turn([{"type": "image"}])
    with pytest.raises(ValueError, match="stop_reason"):
        Turn([text("x")], stop_reason="done")
    with pytest.raises(ValueError, match="usage"):
        Turn([text("x")], usage=(-1, 2))
    with pytest.raises(TypeError, match="a Turn or a callable"):
        sandbox.script(["just text"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="429, 500, 529"):
        sandbox.fail_next(1, 503)
