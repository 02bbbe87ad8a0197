"""The stable `--format json` contract (schema version 1, documented in docs/json-schema.md)."""

from __future__ import annotations

import json
from typing import Any

from guard.gate import GateReport

SCHEMA_VERSION = 1


def to_json(report: GateReport) -> dict[str, Any]:
    """One object: version, findings, unverified, targets, summary, stats, exit_code."""
    counts = {s: sum(1 for f in report.findings if f.severity.value == s) for s in ("error", "warning", "info")}
    return {
        "version": SCHEMA_VERSION,
        "findings": [f.to_json() for f in report.findings],
        "unverified": [u.to_json() for u in report.unverified],
        "targets": [{"name": t.name, "kind": t.kind.value, "source": t.source,
                     "images": [i.uri for i in t.images]} for t in report.targets],
        "summary": {**counts, "unverified": len(report.unverified), "checks": list(report.checks_run)},
        "stats": {"api_calls": report.stats, "duration_s": report.duration_s},
        "exit_code": int(report.exit_code),
    }


def render_json(report: GateReport) -> str:
    """Serialise the report, keys sorted for stable diffs."""
    return json.dumps(to_json(report), indent=2, sort_keys=True)
