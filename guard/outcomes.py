"""deploy-guard's own outcomes (GRD): not checks of a deploy, but what a run reports about itself.

Each is always an `Unverified` result: the run could not do its job somewhere, so it fails closed (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass

CRASHED = "GRD000"
UNREADABLE = "GRD001"
UNDELIVERED = "GRD002"


@dataclass(frozen=True)
class OwnOutcome:
    """One of deploy-guard's own outcome IDs, documented like a check."""

    id: str
    title: str
    where: str
    meaning: str


OWN_OUTCOMES = (
    OwnOutcome(CRASHED, "A check or watcher crashed", "guard check, guard watch",
               "the rule raised instead of returning results; its verdict is unknown, so the run exits 3 "
               "(`--debug` prints the traceback to stderr)"),
    OwnOutcome(UNREADABLE, "Live state could not be read", "guard watch",
               "a list or describe call failed after retries (throttled, denied, unreachable); what it covers "
               "was not watched, and no incident it covers is resolved"),
    OwnOutcome(UNDELIVERED, "A notification was not delivered", "guard watch",
               "a route refused or did not answer; the alert is kept and sent again by the next sweep"),
)
