"""The Action's log: a table read from guard's JSON report (stdlib only; runs on the runner's Python).

`python report.py REPORT EXIT_CODE STDERR_FILE`: prints the findings (check) or verdicts (verify) as a
table. When guard stopped before writing a report (bad input, unreachable endpoint), it writes one:
`{"version": 1, "exit_code": N, "error": "<guard's message>"}`, so the `report` output is always JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

VERDICT: dict[int, str] = {0: "PASS", 1: "FAILED", 2: "INPUT ERROR", 3: "COULD NOT VERIFY"}


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [min(60, max(len(r[i]) for r in [header, *rows])) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


def render(doc: dict[str, Any]) -> list[str]:
    """Lines for a check report (findings, unverified) or a verify report (targets)."""
    out: list[str] = []
    findings = doc.get("findings") or []
    unverified = doc.get("unverified") or []
    targets = doc.get("targets") or []
    if "findings" in doc:
        rows = [(str(f["severity"]), str(f["check_id"]), str(f["target"]), str(f["message"])) for f in findings]
        rows += [("unverified", str(u["check_id"]), str(u["target"]), str(u["reason"])) for u in unverified]
        out += _table(("severity", "check", "target", "message"), rows) if rows else ["no findings"]
        out.append(f"{len(targets)} target(s), {len(findings)} finding(s), {len(unverified)} unverified")
    elif isinstance(targets, list):
        rows = [(str(t["status"]), str(t["target"]), str(t.get("cause") or "-"), str(t["message"])) for t in targets]
        out += _table(("status", "target", "cause", "detail"), rows)
    return out


def main(argv: list[str]) -> int:
    """Print the table; write a minimal report when guard wrote none."""
    report, code, stderr = Path(argv[1]), int(argv[2]), Path(argv[3])
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    if not text.strip():
        errors = [line.split(":", 1)[1].strip() for line in stderr.read_text(encoding="utf-8").splitlines()
                  if line.startswith(("guard:", "Error:"))]
        message = errors[-1] if errors else f"guard exited {code}"
        report.write_text(json.dumps({"version": 1, "exit_code": code, "error": message}) + "\n", encoding="utf-8")
        print(f"::error title=deploy-guard ({VERDICT.get(code, str(code)).lower()})::{message.replace('%', '%25')}")
        return 0
    for line in render(json.loads(text)):
        print(line)
    print(f"deploy-guard: {VERDICT.get(code, str(code))} (exit {code}); JSON report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
