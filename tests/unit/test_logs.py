"""Log records pass the one redactor before any handler writes them."""

from __future__ import annotations

import io
import logging

from guard.logs import quiet_wire_loggers


def test_a_credential_in_a_log_record_never_reaches_the_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("deploy_guard.test_logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        quiet_wire_loggers(handler)
        quiet_wire_loggers(handler)  # idempotent: one filter
        canary = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
        log.warning("rerun of %s failed with token %s", "acme/shop", canary)
        log.warning("nothing secret here")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert canary not in text and "acme/shop" in text and "[redacted]" in text
    assert "nothing secret here" in text and len(handler.filters) == 1
