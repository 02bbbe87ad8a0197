"""Inside GitHub Actions: `::error` annotations and a Markdown job summary (GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import os
from pathlib import Path

from guard.gate import GateReport
from guard.report.table import VERDICT

_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    """A workflow command message: `%`, CR and LF escaped, as GitHub's runner unescapes them."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command property value (`title=...`): `:` and `,` escaped as well."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def workflow_commands(report: GateReport) -> list[str]:
    """Workflow commands, one per finding and unverified outcome."""
    lines = [f"::{_LEVEL[f.severity.value]} title={escape_property(f'{f.check_id} {f.target}')}::"
             f"{escape_data(f.message)}" for f in report.findings]
    lines += [f"::error title={escape_property(f'{u.check_id} could not verify')}::"
              f"{escape_data(u.target + ': ' + u.reason)}" for u in report.unverified]
    return lines


def summary_markdown(report: GateReport) -> str:
    """A Markdown summary: verdict, findings table, unverified list."""
    label = VERDICT[report.exit_code][0].split("]")[1].split("[")[0]
    out = [f"## deploy-guard: {label}", "",
           f"{len(report.targets)} target(s), {len(report.findings)} finding(s), "
           f"{len(report.unverified)} unverified, {report.stats.get('total', 0)} API calls, "
           f"{report.duration_s:.2f}s", ""]
    if report.findings:
        out += ["| severity | check | target | message |", "|---|---|---|---|"]
        out += [f"| {f.severity.value} | {f.check_id} | `{f.target}` | {_cell(f.message)} |"
                for f in report.findings]
        out.append("")
    if report.unverified:
        out += ["**Could not verify:**", ""] + [f"- {u.check_id} `{u.target}`: {u.reason}"
                                                 for u in report.unverified]
    return "\n".join(out) + "\n"


def publish(report: GateReport) -> list[str]:
    """Append the summary when GITHUB_STEP_SUMMARY is set; return the annotations to print."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(summary_markdown(report))
    return workflow_commands(report) if os.environ.get("GITHUB_ACTIONS") == "true" else []
