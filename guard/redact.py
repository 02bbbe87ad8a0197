"""Secret redaction for everything that leaves deploy-guard: postmortems, the model's prompts and tool results.

`scrub` replaces credential-shaped substrings of a text; `redact` walks a JSON-like value, scrubbing its
strings and hiding whole values named like credentials and task-definition environment values. Every
pattern runs in linear time: keys and tokens are only matched from the start of a run, never re-scanned.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# A mapping member whose key has one of these words (or two adjacent words that join into one) is hidden.
_KEY_WORDS = frozenset({"token", "secret", "password", "passwd", "passphrase", "key", "apikey", "authorization",
                        "auth", "credential", "credentials", "cookie", "signature", "privatekey"})
# Text is prose too ("registry auth: ..."): only these words make `key=value` / `key: value` a credential.
_LABEL_WORDS = frozenset({"token", "secret", "password", "passwd", "passphrase", "apikey", "privatekey"})
# A word containing one of these (PGPASSWORD, DBPASSWD), or ending in one of these (APITOKEN, clientsecret),
# names a credential whatever surrounds it.
_PASSWORD_STEMS = ("password", "passwd", "passphrase")
_CREDENTIAL_ENDINGS = ("secret", "token")
# Domain fields whose names contain a sensitive word but whose values are identifiers, never credentials.
_SAFE_NAMES = frozenset({"cause_key"})
# A name with one of these words names a quantity (token_budget, max_tokens), not a credential.
_MEASURE_WORDS = frozenset({"budget", "count", "limit", "max", "min", "used", "usage", "length", "size", "ttl"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# Credential shapes, each replaced by REDACTED after its `keep` group. The PEM block goes first so that a
# label in front of it ("private_key: -----BEGIN ...") cannot hide its body from the block pattern; a JWT goes
# before the 40-character secret key, which would otherwise take its first segment and leave the rest.
_SHAPES = [re.compile(pattern) for pattern in (
    r"-----BEGIN [A-Z ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
    r"(?:AKIA|ASIA)[A-Z0-9]{16}",
    # an AWS secret access key: exactly 40 base64 characters with upper and lower case (never a hex digest)
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])[A-Za-z0-9/+]{40}"
    r"(?![A-Za-z0-9/+=])",
    r"gh[pousr]_[A-Za-z0-9_]{6,}",
    r"github_pat_[A-Za-z0-9_]{10,}",
    r"xox[abprs]-[A-Za-z0-9-]{6,}",
    r"(?P<keep>(?i:hooks\.slack\.com)/(?:services|workflows|triggers)/)[A-Za-z0-9_/-]+",
    r"sk-ant-[A-Za-z0-9_-]{4,}",
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}",
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",
    r"(?P<keep>(?i:authorization)(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?(?:[A-Za-z][A-Za-z0-9-]*[ \t]+)?)"
    r"[^\s\"',;\\]+",
    r"(?P<keep>(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}",
)]
# A key that may name a credential, then `=` or `:` (the key quoted or not).
_LABEL = re.compile(r"(?<![\w.-])(?=[\w.-]*?(?i:token|secret|pass|key))(?P<key>(?>[\w.-]+))"
                    r"(?P<sep>(?:\\?[\"'])?[ \t]*[:=])[ \t]*")
# A label's value: a quoted string (plain or JSON-escaped), else everything up to the next whitespace.
_VALUE = re.compile(r"\"(?:[^\"\\\r\n]|\\.)*\"|\\\"(?:[^\"\\\r\n]|\\[^\"])*\\\"|'[^'\r\n]*'|\S+")


def _keep(match: re.Match[str]) -> str:
    """The part of a match that stays (a webhook's host, a header's name and scheme), then REDACTED."""
    return (match.groupdict().get("keep") or "") + REDACTED


def _names_credential(name: str, words: frozenset[str]) -> bool:
    """True for a key naming a credential: one of `words` (alone or joined from two), never a measure."""
    found = [word.lower() for word in _WORDS.findall(name)]
    if name.lower() in _SAFE_NAMES or _MEASURE_WORDS.intersection(found):
        return False
    joined = {first + second for first, second in itertools.pairwise(found)}
    return bool(words.intersection(found) or words & joined) or \
        any(word.endswith(_CREDENTIAL_ENDINGS) or any(stem in word for stem in _PASSWORD_STEMS) for word in found)


def _mask(value: str) -> str:
    """REDACTED inside the value's own quotes (the closing one only if it had one)."""
    for quote in ('\\"', '"', "'"):
        if value.startswith(quote):
            return quote + REDACTED + (quote if len(value) > len(quote) and value.endswith(quote) else "")
    return REDACTED


def _scrub_labels(text: str) -> str:
    """`text` with the value of every `key=value` / `key: value` / `"key": "value"` naming a credential hidden."""
    parts: list[str] = []
    done = 0
    for label in _LABEL.finditer(text):
        if label.start() < done or not _names_credential(label["key"], _LABEL_WORDS):
            continue
        if label["sep"].endswith(":") and text[label.start() - 1:label.start()] in (":", "/"):
            continue  # a step of an ARN or a path: "arn:aws:secretsmanager:...:secret:prod/db" holds no secret
        value = _VALUE.match(text, label.end())
        if value is None or value.group().strip("\\\"'").startswith("arn:"):
            continue
        parts += [text[done:label.end()], _mask(value.group())]
        done = value.end()
    return "".join(parts) + text[done:]


def scrub(text: str) -> str:
    """`text` with every credential-shaped substring replaced by "[redacted]"."""
    for shape in _SHAPES:
        text = shape.sub(_keep, text)
    return _scrub_labels(text)


def _environment_entry(value: Mapping[Any, Any]) -> bool:
    """True for a mapping shaped like a container environment entry: a `name` and its `value`."""
    return {"name", "value"} <= {str(key).lower() for key in value}


def redact(value: Any) -> Any:
    """`value` with credential-named members, environment values and credential-shaped strings hidden, recursively."""
    if isinstance(value, Mapping):
        environment = _environment_entry(value)
        return {scrub(str(k)): REDACTED if (environment and str(k).lower() == "value")
                or _names_credential(str(k), _KEY_WORDS) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value
