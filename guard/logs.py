"""Logging hygiene: library wire logs (which print whole request and response bodies) stay off, and every
record that reaches a handler passes the one secret redactor (guard.redact)."""

from __future__ import annotations

import logging

from guard.redact import scrub

# botocore at DEBUG logs every response body (task definition environment values included); urllib3,
# PyGithub and the HTTP clients log headers. None of them may follow the root logger down to DEBUG.
_WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "github", "httpx", "httpcore", "httpx2", "httpcore2",
                 "anthropic")


class Redact(logging.Filter):
    """Scrubs credential-shaped text from a record's message before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message by its scrubbed form when it held a credential; never drops a record."""
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_REDACT = Redact()


def quiet_wire_loggers(*handlers: logging.Handler) -> None:
    """Pin the libraries' loggers at WARNING, and redact through every handler in use (idempotent)."""
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in (*logging.getLogger().handlers, logging.lastResort, *handlers):
        if handler is not None and _REDACT not in handler.filters:
            handler.addFilter(_REDACT)
