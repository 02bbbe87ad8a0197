"""The redactor: every credential shape leaves, everything around it stays, and nothing else is touched."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from guard.redact import REDACTED, redact, scrub

PROPERTY = settings(max_examples=200, deadline=None, database=None)
CANARY = "CANARYs3cr3tValue0123456789abcdef"
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-password-AbCdEf"
DIGEST = "sha256:" + "3f2c1a9e" * 8
ECR = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/api@{DIGEST}"

# (text, the secret that must go, fragments around it that must stay)
SHAPES: list[tuple[str, str, tuple[str, ...]]] = [
    ("aws key AKIAIOSFODNN7CANARY1 in use", "IOSFODNN7CANARY1", ("aws key ", " in use")),
    ("session ASIAQWERTYUIOP123456 expired", "QWERTYUIOP123456", ("session ", " expired")),
    (f"export aws_secret_access_key={CANARY}/K7MDENG+bPxRfi= now", CANARY, ("export aws_secret_access_key=", " now")),
    (f'{{"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "{CANARY}/K7MD"}}', CANARY,
     ('"SecretAccessKey": "', '"}')),
    *[(f"push with {prefix}{CANARY} failed", CANARY, ("push with ", " failed"))
      for prefix in ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_11AB_")],
    *[(f"slack {prefix}-1234-{CANARY} ok", CANARY, ("slack ", " ok")) for prefix in ("xoxa", "xoxb", "xoxp", "xoxr",
                                                                                      "xoxs")],
    (f"POST https://hooks.slack.com/services/T0CANARY1/B0CANARY2/{CANARY} answered 404", CANARY,
     ("POST https://hooks.slack.com/services/", " answered 404")),
    (f"key sk-ant-api03-{CANARY}-_x9 rejected", CANARY, ("key ", " rejected")),
    (f"Authorization: Bearer {CANARY}.x~y+z/=\nnext line", CANARY, ("Authorization: Bearer ", "\nnext line")),
    (f"curl -H 'Authorization: Basic {CANARY}=' https://x", CANARY, ("curl -H 'Authorization: Basic ", "' https://x")),
    (f'{{"authorization": "token {CANARY}"}}', CANARY, ('{"authorization": "token ', '"}')),
    (f"sent Bearer {CANARY} upstream", CANARY, ("sent Bearer ", " upstream")),
    (f"clone https://deploy:{CANARY}@git.example.com/org/repo.git done", CANARY,
     ("clone https://", "@git.example.com/org/repo.git done")),
    (f"db postgres://app:{CANARY}@db.internal:5432/app", CANARY, ("db postgres://", "@db.internal:5432/app")),
    (f"before\n-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n{CANARY}\n-----END RSA PRIVATE KEY-----\nafter",
     CANARY, ("before\n", "\nafter")),
    (f"key: -----BEGIN OPENSSH PRIVATE KEY-----\\n{CANARY}\\n-----END OPENSSH PRIVATE KEY-----", CANARY, ("key: ",)),
    (f"clipped -----BEGIN PRIVATE KEY-----\n{CANARY}", CANARY, ("clipped ",)),
    (f"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{CANARY}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c ok", CANARY,
     ("jwt ", " ok")),
    (f"db password={CANARY} user=app", CANARY, ("db password=", " user=app")),
    (f"DB_PASSWORD: {CANARY}\nDB_USER: app", CANARY, ("DB_PASSWORD: ", "\nDB_USER: app")),
    (f"PGPASSWORD={CANARY} psql", CANARY, ("PGPASSWORD=", " psql")),
    (f"APITOKEN={CANARY} MYSECRET={CANARY}", CANARY, ("APITOKEN=", " MYSECRET=")),
    (f"pushed to x-ghp_{CANARY}", CANARY, ("pushed to x-",)),
    (f"https://example.com/callback/token={CANARY} ok", CANARY, ("https://example.com/callback/token=", " ok")),
    (f"passphrase = {CANARY};x,y&z<br> next", CANARY, ("passphrase = ", " next")),
    (f'{{"api_key": "{CANARY} with spaces", "region": "eu-west-1"}}', CANARY,
     ('{"api_key": "', '", "region": "eu-west-1"}')),
    (f"GET /v1?apiKey={CANARY}&page=2 HTTP/1.1", CANARY, ("GET /v1?apiKey=", " HTTP/1.1")),
    (f'export X="token={CANARY}"', CANARY, ('export X="token=',)),
    (f'password="{CANARY} clipped', CANARY, ('password="', " clipped")),
    (f"x-api-key: {CANARY}", CANARY, ("x-api-key: ",)),
    (f"client_secret='{CANARY}', scope=read", CANARY, ("client_secret='", "', scope=read")),
    (f"SESSION_TOKEN={CANARY}", CANARY, ("SESSION_TOKEN=",)),
    (f'escaped {{\\"password\\": \\"{CANARY}\\", \\"user\\": \\"app\\"}}', CANARY,
     ('escaped {\\"password\\": \\"', '\\", \\"user\\": \\"app\\"}')),
]

UNTOUCHED = [
    "the token budget was 20000 tokens; secrets are fetched when the task starts",
    '{"token_budget": 20000, "max_tokens": 1024, "input_tokens": 5, "output_tokens": 7, "tokens": 12}',
    "token_budget=20000 max_tokens: 1024",
    ARN,
    f"secret: {ARN}",
    f'"valueFrom": "{ARN}"',
    "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db_password",
    "arn:aws:iam::123456789012:role/token-reader",
    DIGEST,
    ECR,
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:3f2c1a9",
    "INC-2489074b746e",
    "commit 3f2c1a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a",
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed",
    "secretsmanager:GetSecretValue: User is not authorized (AccessDenied, request 0f3c)",
    "cause_key: img",
    "ssh://git@github.com/org/repo and https://github.com/org/repo/actions/runs/42",
    "a Bearer token is required; basic checks passed",
    "ecs:prod/api running 3 of 3, task definition api:7",
    "key: value, cache key: abc, primary key = id",
]

SENSITIVE_KEYS = ["password", "passwd", "passphrase", "secret", "client_secret", "token", "sessionToken", "apiKey",
                  "api_key", "x-api-key", "ApiKey", "APIKey", "private_key", "privateKey", "credentials", "credential",
                  "Authorization", "cookie", "signature", "SecretAccessKey", "PGPASSWORD", "GITHUB_TOKEN",
                  "ANTHROPIC_API_KEY", "key", "auth", "clientsecret", "ACCESSTOKEN"]
SAFE_KEYS = ["token_budget", "max_tokens", "input_tokens", "output_tokens", "tokens", "cause_key", "secrets", "author",
             "name", "valueFrom", "message", "passwordLength", "keyCount", "cache_read_input_tokens"]


@pytest.mark.parametrize(("text", "secret", "kept"), SHAPES, ids=[text[:32] for text, _, _ in SHAPES])
def test_each_shape_is_scrubbed_and_its_surroundings_kept(text: str, secret: str, kept: tuple[str, ...]) -> None:
    out = scrub(text)
    assert secret not in out and REDACTED in out, out
    for fragment in kept:
        assert fragment in out, (fragment, out)
    assert scrub(out) == out  # scrubbing twice (as the postmortem does) changes nothing more


@pytest.mark.parametrize("text", UNTOUCHED)
def test_ordinary_text_ids_and_arns_are_untouched(text: str) -> None:
    assert scrub(text) == text


def test_the_url_userinfo_goes_and_the_scheme_and_host_stay() -> None:
    assert scrub("https://bot:hunter2@github.com/org/repo") == f"https://{REDACTED}@github.com/org/repo"


def test_a_labelled_value_keeps_its_quotes() -> None:
    assert scrub('{"password": "p w", "token": \'t\'}') == f'{{"password": "{REDACTED}", "token": \'{REDACTED}\'}}'


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
@pytest.mark.parametrize("value", ["plain", 12345, None, {"nested": "x"}, ["a", "b"]])
def test_a_credential_named_member_is_hidden_whatever_its_value(key: str, value: Any) -> None:
    assert redact({key: value, "other": "kept"}) == {key: REDACTED, "other": "kept"}


@pytest.mark.parametrize("key", SAFE_KEYS)
def test_measures_and_identifiers_are_not_credentials(key: str) -> None:
    assert redact({key: 20000}) == {key: 20000}
    assert redact({key: "ok"}) == {key: "ok"}


def test_strings_and_keys_are_scrubbed_recursively_and_tuples_become_lists() -> None:
    doc = {"events": ("deploy", f"push ghp_{CANARY}"), f"ghp_{CANARY}": [{"note": f"password={CANARY}"}], "n": 3}
    assert redact(doc) == {"events": ["deploy", f"push {REDACTED}"], REDACTED: [{"note": f"password={REDACTED}"}],
                           "n": 3}


def test_task_definition_environment_values_never_leave_and_secret_references_stay() -> None:
    container = {"name": "api", "image": ECR,
                 "environment": [{"name": "DB_HOST", "value": "db.internal"}, {"name": "MODE", "value": CANARY}],
                 "secrets": [{"name": "DB_PASSWORD", "valueFrom": ARN}],
                 "repositoryCredentials": {"credentialsParameter": ARN}}
    assert redact({"containerDefinitions": [container]}) == {"containerDefinitions": [{
        "name": "api", "image": ECR,
        "environment": [{"name": "DB_HOST", "value": REDACTED}, {"name": "MODE", "value": REDACTED}],
        "secrets": [{"name": "DB_PASSWORD", "valueFrom": ARN}],
        "repositoryCredentials": REDACTED}]}
    assert redact({"Name": "DB_URL", "Value": CANARY, "Type": "PLAINTEXT"}) == \
        {"Name": "DB_URL", "Value": REDACTED, "Type": "PLAINTEXT"}


def test_postmortem_shaped_model_entries_keep_their_counts() -> None:
    doc = {"model": "claude", "tokens": 120, "token_budget": 20000, "max_turns": 6,
           "usage": {"input_tokens": 100, "output_tokens": 20}, "inputs": {"incident": "INC-2489074b746e"}}
    assert redact(doc) == doc


# ---- linear time ----------------------------------------------------------------------------------------------

MEGABYTE = 1_000_000
ADVERSARIAL = {
    "one word": "a" * MEGABYTE,
    "keys without values": "password" * (MEGABYTE // 8),
    "labels in a row": "token: " * (MEGABYTE // 7),
    "unterminated quoted value": '"password": "' + "a" * MEGABYTE,
    "escaped quotes": '"password": "\\' * (MEGABYTE // 14),
    "jwt heads": "eyJa." * (MEGABYTE // 5),
    "userinfo without host": "://" + "a:" * (MEGABYTE // 2),
    "pem heads": "-----BEGIN " * (MEGABYTE // 11),
    "unterminated pem": "-----BEGIN RSA PRIVATE KEY-----" + "A" * MEGABYTE,
    "bearers": "Bearer " * (MEGABYTE // 7),
    "authorization headers": "Authorization: Basic " * (MEGABYTE // 21),
    "arn colons": "secret:" * (MEGABYTE // 7),
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_a_megabyte_of_adversarial_text_is_scrubbed_in_linear_time(text: str) -> None:
    start = time.perf_counter()
    scrub(text)
    assert time.perf_counter() - start < 5.0  # linear: well under a second; backtracking: hours


# ---- properties ---------------------------------------------------------------------------------------------

BODY = st.text(string.ascii_letters + string.digits, min_size=16, max_size=40)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
SEPARATOR = st.sampled_from(list(" \t\n,;()[]{}<>|'\""))
LABEL_WORDS = [("password",), ("db", "password"), ("secret",), ("client", "secret"), ("token",),
               ("session", "token"), ("api", "key"), ("private", "key"), ("aws", "secret", "access", "key")]
STYLES: list[Callable[[tuple[str, ...]], str]] = [
    "_".join, "-".join, ".".join, lambda w: "_".join(w).upper(),
    lambda w: w[0] + "".join(x.title() for x in w[1:]), lambda w: "".join(x.title() for x in w)]


@st.composite
def label_keys(draw: st.DrawFn) -> str:
    """A credential-naming key in snake_case, kebab-case, dotted, UPPER_CASE, camelCase or PascalCase."""
    return draw(st.sampled_from(STYLES))(draw(st.sampled_from(LABEL_WORDS)))


@st.composite
def canaries(draw: st.DrawFn) -> tuple[str, str]:
    """(text of one credential shape, its secret part)."""
    body = draw(BODY)
    key = draw(label_keys())
    aws = (body.upper() + "X" * 16)[:16]
    shapes = {
        "aws key id": (draw(st.sampled_from(["AKIA", "ASIA"])) + aws, aws),
        "github": (draw(st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"])) + body, body),
        "slack token": (draw(st.sampled_from(["xoxa", "xoxb", "xoxp", "xoxr", "xoxs"])) + "-" + body, body),
        "slack webhook": (f"https://hooks.slack.com/services/T01/B02/{body}", body),
        "anthropic": (f"sk-ant-api03-{body}", body),
        "authorization": (f"Authorization: {draw(st.sampled_from(['Bearer', 'Basic']))} {body}", body),
        "bearer": (f"Bearer {body}", body),
        "url userinfo": (f"https://deploy:{body}@git.example.com/org/repo", body),
        "pem": (f"-----BEGIN EC PRIVATE KEY-----\n{body}\n{body}\n-----END EC PRIVATE KEY-----", body),
        "jwt": (f"eyJ{body}.eyJ{body[::-1]}.{body}", body),
        "key=value": (f"{key}={body}", body),
        "key: value": (f"{key}: {body}", body),
        "quoted": (f'"{key}": "{body}"', body),
    }
    return shapes[draw(st.sampled_from(sorted(shapes)))]


@st.composite
def planted_text(draw: st.DrawFn) -> tuple[str, str]:
    """A canary at a random position in random text, delimited as a credential is in real text."""
    text, secret = draw(canaries())
    before, after = draw(TEXT), draw(TEXT)
    assume(secret not in before and secret not in after)
    return before + draw(SEPARATOR) + text + draw(SEPARATOR) + after, secret


JSON = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)


@st.composite
def planted_json(draw: st.DrawFn) -> tuple[Any, str]:
    """A canary deep inside random JSON: in a string, as a sensitive member's value, or as an environment value."""
    body = draw(BODY)
    planted: Any
    match draw(st.sampled_from(["text", "sensitive key", "label key", "environment"])):
        case "text":
            planted, secret = draw(planted_text())
        case "sensitive key":
            planted, secret = {draw(st.sampled_from(SENSITIVE_KEYS)): draw(st.sampled_from([body, [body],
                                                                                           {"v": body}]))}, body
        case "label key":
            planted, secret = {draw(label_keys()): body}, body
        case _:
            name = draw(TEXT)
            assume(body not in name)
            planted, secret = {"name": name, "value": body}, body
    doc: Any = planted
    skeleton: Any = None  # everything but the canary
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            before, after = draw(st.lists(JSON, max_size=2)), draw(st.lists(JSON, max_size=2))
            doc, skeleton = [*before, doc, *after], [*before, skeleton, *after]
        else:
            siblings, key = draw(st.dictionaries(TEXT, JSON, max_size=3)), draw(TEXT)
            doc, skeleton = {**siblings, key: doc}, {**siblings, key: skeleton}
    assume(secret not in json.dumps(skeleton, ensure_ascii=False))
    return doc, secret


@PROPERTY
@given(planted_text())
def test_a_canary_in_random_text_never_survives(case: tuple[str, str]) -> None:
    text, secret = case
    assert secret not in scrub(text)
    assert secret not in json.dumps(redact([text]), ensure_ascii=False)


@PROPERTY
@given(planted_json())
def test_a_canary_in_random_json_never_survives(case: tuple[Any, str]) -> None:
    doc, secret = case
    assert secret not in json.dumps(redact(doc), ensure_ascii=False)


@PROPERTY
@given(label_keys(), BODY, st.sampled_from(["{k}={v}", "{k} = {v}", "{k}: {v}", '"{k}": "{v}"', "'{k}': '{v}'"]))
def test_the_value_of_a_credential_label_never_survives(key: str, body: str, form: str) -> None:
    assert body not in scrub(form.format(k=key, v=body))
    assert redact({key: body}) == {key: REDACTED}


@PROPERTY
@given(TEXT)
def test_scrubbing_is_idempotent(text: str) -> None:
    once = scrub(text)
    assert scrub(once) == once


def test_a_jwt_whose_first_segment_looks_like_a_secret_key_is_redacted_whole() -> None:
    token = "eyJ" + "0" * 37 + ".eyJ" + "0" * 37 + "." + "0" * 37
    assert scrub(f" {token} ") == f" {REDACTED} "
