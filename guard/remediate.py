"""The remediation engine: claim the incident, plan, pass every action through the gate, act, verify, journal.

A run is resumable: the plan, every decision and every action's start and outcome are journal entries, so a
run that crashed mid-action re-checks that action's precondition (it may already be done) instead of
repeating it blindly, and never repeats an action that succeeded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from guard.actions import Action, ActionContext, action_from_json, action_types
from guard.agent.playbook import PlanContext, Strategy, escalation
from guard.config import Mode
from guard.exitcodes import ExitCode
from guard.journal import ActionStatus, Entry, EntryKind, Journal, JournalConflict, action_state
from guard.models import Incident
from guard.policy import STOP_RULES, PolicyGate
from guard.postmortem import render_postmortem
from guard.records import load_incident, postmortem_key
from guard.state import StateStore

Planner = Callable[[Incident, PlanContext, Journal, str], list[Strategy]]


class RemediationStatus(StrEnum):
    """How one remediation run ended."""

    REPAIRED = "repaired"
    ESCALATED = "escalated"
    REFUSED = "refused"
    STOPPED = "stopped"
    FAILED = "failed"
    CLAIMED_ELSEWHERE = "claimed_elsewhere"
    CLAIM_LOST = "claim_lost"
    ESCALATION_UNDELIVERED = "escalation_undelivered"


class ClaimLost(Exception):
    """This actor no longer owns the incident: it stops before its next action."""


@dataclass
class _Lease:
    """The claim this run holds: renewed while it waits, re-verified (a conditional write) before each action."""

    journal: Journal
    actor: str
    ttl: int
    clock: Callable[[], datetime]
    renewed_at: datetime

    def verify(self) -> None:
        """Renew now; ClaimLost if anyone else wrote the lease since this run last did."""
        now = self.clock()
        if not self.journal.renew(self.actor, self.ttl, now):
            holder = self.journal.holder()
            who = f"{holder[0]} holds it until {holder[1].isoformat()}" if holder else "nobody holds it"
            raise ClaimLost(f"{self.actor} lost its claim on {self.journal.incident_id} ({who}): stopped before "
                            "its next step")
        self.renewed_at = now

    def beat(self) -> None:
        """The heartbeat: renew once a third of the lease has passed since the last renewal."""
        if (self.clock() - self.renewed_at).total_seconds() * 3 >= self.ttl:
            self.verify()


class _Step(StrEnum):
    """What one action's attempt leaves the strategy loop to do."""

    VERIFIED = "verified"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ActionResult:
    """What happened to one action this run."""

    action: dict[str, Any]
    status: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON for reports."""
        return {"action": self.action, "status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class RemediationReport:
    """One run's outcome for one incident."""

    incident_id: str
    mode: Mode
    status: RemediationStatus
    strategies: tuple[dict[str, Any], ...] = ()
    results: tuple[ActionResult, ...] = ()
    postmortem_key: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> ExitCode:
        """0 repaired, 1 not repaired (a dry run, refused, escalated, failed, claimed elsewhere, claim lost)."""
        return ExitCode.CLEAN if self.status is RemediationStatus.REPAIRED else ExitCode.FINDINGS

    def to_json(self) -> dict[str, Any]:
        """JSON for `guard remediate --format json`."""
        return {"incident_id": self.incident_id, "mode": self.mode.value, "status": self.status.value,
                "strategies": list(self.strategies), "results": [r.to_json() for r in self.results],
                "postmortem": self.postmortem_key, "notes": list(self.notes)}


def default_actor() -> str:
    """host:pid, so two runs never share an identity."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Remediator:
    """Runs remediation for one incident at a time; every side effect goes through the gate and the journal."""

    store: StateStore
    gate: PolicyGate
    ctx: ActionContext
    plan_ctx: PlanContext
    planner: Planner
    actor: str = field(default_factory=default_actor)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def run(self, incident_id: str, *, mode: Mode, dry_run: bool = False,
            take_over: bool = False) -> RemediationReport:
        """Claim (or, `take_over`, take from whoever holds it), plan or resume, act within policy, verify."""
        incident = load_incident(self.store, incident_id)
        journal = Journal(self.store, incident_id, clock=self.clock)
        ttl = self.gate.config.lock_ttl_seconds
        if take_over:
            previous = journal.take_over(self.actor, ttl, self.clock())
            self._append(journal, EntryKind.NOTE, {
                "take_over": self.actor, "from": previous[0] if previous else "",
                "until": previous[1].isoformat() if previous else "",
                "text": f"{self.actor} took the incident over explicitly"})
        elif not journal.claim(self.actor, ttl, self.clock()):
            holder = journal.holder()
            who = f"{holder[0]} holds this incident until {holder[1].isoformat()}" if holder else "another actor"
            return RemediationReport(incident_id, mode, RemediationStatus.CLAIMED_ELSEWHERE,
                                     notes=(f"{who}: nothing done (a person may take over with --take-over)",))
        lease = _Lease(journal, self.actor, ttl, self.clock, self.clock())
        try:
            return self._run(incident, journal, mode, dry_run, lease)
        except ClaimLost as lost:
            self._append(journal, EntryKind.NOTE, {"claim_lost": self.actor, "text": str(lost)})
            return RemediationReport(incident_id, mode, RemediationStatus.CLAIM_LOST, notes=(str(lost),))
        finally:
            journal.release(self.actor, self.clock())

    def _append(self, journal: Journal, kind: EntryKind, data: dict[str, Any]) -> Entry:
        try:
            return journal.append(kind, data, self.actor)
        except JournalConflict:
            journal.entries()  # re-read the head; we hold the claim, so the next append wins
            return journal.append(kind, data, self.actor)

    def _run(self, incident: Incident, journal: Journal, mode: Mode, dry_run: bool,
             lease: _Lease) -> RemediationReport:
        entries = journal.entries()
        if not any(e.kind is EntryKind.INCIDENT for e in entries):
            self._append(journal, EntryKind.INCIDENT, incident.to_json())
        strategies, since = self._strategies(incident, journal, entries)
        states = action_state(journal.entries()[since:])
        taken = sum(1 for e in entries if e.kind is EntryKind.ACTION_STARTED and _counts(e.data.get("kind")))
        results: list[ActionResult] = []
        if dry_run:
            status = self._dry_run(incident, journal, strategies, states, taken, mode, results)
        else:
            status = RemediationStatus.FAILED
            ctx = replace(self.ctx, wait=_beating(self.ctx.wait, lease))
            run = _Run(incident, journal, mode, states, results, lease, ctx)
            for strategy in strategies:
                outcome, taken = self._strategy(run, strategy, taken)
                if outcome is not None:
                    status = outcome
                    break
        self._append(journal, EntryKind.NOTE, {"outcome": status.value, "mode": mode.value, "dry_run": dry_run})
        key = self._postmortem(incident, journal)
        return RemediationReport(incident.id, mode, status, tuple(s.to_json() for s in strategies), tuple(results),
                                 key)

    def _dry_run(self, incident: Incident, journal: Journal, strategies: Sequence[Strategy],
                 states: dict[str, ActionStatus], taken: int, mode: Mode,
                 results: list[ActionResult]) -> RemediationStatus:
        """Every decision the policy would take, for every action of every strategy; nothing is done."""
        for strategy in strategies:
            for action in strategy.actions:
                if action.always_allowed:
                    results.append(ActionResult(action.to_json(), "dry_run", f"would {action.describe()}"))
                    continue
                if states.get(action.action_id) is ActionStatus.SUCCEEDED:
                    results.append(ActionResult(action.to_json(), "skipped", "already succeeded (journal)"))
                    continue
                decision = self.gate.decide(action, incident=incident, mode=mode, actions_taken=taken, dry_run=True)
                self._append(journal, EntryKind.DECISION, {"action_id": action.action_id, "action": action.to_json(),
                                                           "strategy": strategy.name, **decision.to_json()})
                results.append(ActionResult(action.to_json(), "refused", f"{decision.rule}: {decision.reason}"))
                if action.counts_toward_cap and self.gate.rules(action, incident=incident, mode=mode,
                                                                actions_taken=taken).allowed:
                    taken += 1
        return RemediationStatus.REFUSED

    def _strategies(self, incident: Incident, journal: Journal,
                    entries: Sequence[Entry]) -> tuple[list[Strategy], int]:
        """Resume the last plan if its run never finished (a crash), else plan anew; return the plan and the
        index of its journal entry, from which action states count."""
        plans = [i for i, e in enumerate(entries) if e.kind is EntryKind.PLAN]
        finished = plans and any(e.kind is EntryKind.NOTE and "outcome" in e.data for e in entries[plans[-1]:])
        if plans and not finished:
            data = entries[plans[-1]].data
            return ([Strategy(s["name"], s["rationale"], tuple(action_from_json(a) for a in s["actions"]))
                     for s in data["strategies"]], plans[-1])
        strategies = self.planner(incident, self.plan_ctx, journal, self.actor)
        self._append(journal, EntryKind.PLAN, {"planner": getattr(self.planner, "name", "playbook"),
                                               "strategies": [s.to_json() for s in strategies]})
        return strategies, len(journal.entries()) - 1

    def _strategy(self, run: _Run, strategy: Strategy, taken: int) -> tuple[RemediationStatus | None, int]:
        """Run one strategy's actions in order; return (outcome, or None to try the next; actions taken so far)."""
        for planned in strategy.actions:
            action = self._escalation(run, planned) if planned.always_allowed else planned
            aid = action.action_id
            if run.states.get(aid) is ActionStatus.SUCCEEDED:
                run.results.append(ActionResult(action.to_json(), "skipped", "already succeeded (journal)"))
                continue
            run.lease.verify()  # ownership re-verified with a conditional write immediately before every action
            decision = self.gate.decide(action, incident=run.incident, mode=run.mode, actions_taken=taken,
                                        dry_run=False)
            self._append(run.journal, EntryKind.DECISION, {"action_id": aid, "action": action.to_json(),
                                                           **decision.to_json()})
            if not decision.allowed:
                run.results.append(ActionResult(action.to_json(), "refused", f"{decision.rule}: {decision.reason}"))
                if decision.rule in STOP_RULES:
                    return self._escalate(run, f"{decision.rule}: {decision.reason}"), taken
                return RemediationStatus.REFUSED, taken
            outcome = self._act(run, action, run.states.get(aid))
            if action.counts_toward_cap:
                taken += 1
            if outcome is _Step.STOPPED:
                return RemediationStatus.STOPPED, taken
            if action.always_allowed:
                return (RemediationStatus.ESCALATED if outcome is _Step.VERIFIED
                        else RemediationStatus.ESCALATION_UNDELIVERED), taken
            if outcome is not _Step.VERIFIED:
                return None, taken
        return RemediationStatus.REPAIRED, taken

    def _escalation(self, run: _Run, planned: Action) -> Action:
        """The planned escalation, carrying the stored incident and what this run tried and why it stopped."""
        tried = tuple(f"{r.action.get('description', r.action.get('kind'))}: {r.status}: {r.reason}"
                      for r in run.results)
        return escalation(run.incident, str(planned.params.get("reason", "")), tried).actions[0]

    def _act(self, run: _Run, action: Action, previous: ActionStatus | None) -> _Step:
        """Kill switch, precondition, start, execute, postcondition: each step journaled."""
        journal, results, ctx = run.journal, run.results, run.ctx
        aid, data = action.action_id, action.to_json()
        engaged = None if action.always_allowed else self.gate.kill_switch()
        if engaged:
            self._append(journal, EntryKind.KILL_SWITCH, {"action_id": aid, "where": engaged})
            results.append(ActionResult(data, "stopped", f"kill switch engaged ({engaged})"))
            return _Step.STOPPED
        try:
            pre = action.precondition(ctx)
        except ClaimLost:
            raise
        except Exception as exc:
            return self._failed(run, action, f"precondition could not be checked: {exc}")
        if not pre.ok:
            return self._failed(run, action, f"precondition failed: {pre.reason}")
        if pre.done_already:
            self._append(journal, EntryKind.ACTION_SUCCEEDED, {"action_id": aid, "kind": action.kind,
                                                               "reason": pre.reason, "resumed": True})
            results.append(ActionResult(data, "verified", pre.reason))
            return _Step.VERIFIED
        if previous is not ActionStatus.STARTED:
            self._append(journal, EntryKind.ACTION_STARTED, {"action_id": aid, "kind": action.kind,
                                                             "action": data, "precondition": pre.reason})
            if action.counts_toward_cap:
                self.gate.record_action()
        ctx.progress(f"{action.describe()}")
        try:
            action.execute(ctx)
            post = action.postcondition(ctx)
        except ClaimLost:
            raise
        except Exception as exc:
            run.lease.verify()
            return self._failed(run, action, f"{type(exc).__name__}: {exc}")
        run.lease.verify()  # only the owner records the outcome
        self._append(journal, EntryKind.VERIFIED, {"action_id": aid, "ok": post.ok, "reason": post.reason,
                                                   "evidence": _jsonable(post.evidence)})
        if not post.ok:
            return self._failed(run, action, f"not verified: {post.reason}")
        self._append(journal, EntryKind.ACTION_SUCCEEDED, {"action_id": aid, "kind": action.kind,
                                                           "reason": post.reason})
        results.append(ActionResult(data, "verified", post.reason))
        return _Step.VERIFIED

    def _failed(self, run: _Run, action: Action, reason: str) -> _Step:
        self._append(run.journal, EntryKind.ACTION_FAILED, {"action_id": action.action_id, "kind": action.kind,
                                                            "reason": reason})
        run.results.append(ActionResult(action.to_json(), "failed", reason))
        return _Step.FAILED

    def _escalate(self, run: _Run, reason: str) -> RemediationStatus:
        """A refusal that ends automation hands the incident to a human (the escalation itself is journaled)."""
        self._append(run.journal, EntryKind.ESCALATED, {"reason": reason})
        [planned] = escalation(run.incident, reason).actions
        step = self._act(run, self._escalation(run, planned), None)
        return RemediationStatus.ESCALATED if step is _Step.VERIFIED else RemediationStatus.ESCALATION_UNDELIVERED

    def _postmortem(self, incident: Incident, journal: Journal) -> str:
        key = postmortem_key(incident.id)
        text = render_postmortem(incident, journal.entries(), generated_at=self.clock().isoformat())
        self.store.put(key, text.encode())
        return key


@dataclass(frozen=True)
class _Run:
    """What one run's strategy loop shares."""

    incident: Incident
    journal: Journal
    mode: Mode
    states: dict[str, ActionStatus]
    results: list[ActionResult]
    lease: _Lease
    ctx: ActionContext


def _beating(wait: Callable[[float], None], lease: _Lease) -> Callable[[float], None]:
    """`wait`, then the lease's heartbeat: an owner waiting on an action keeps its claim."""

    def beat_after(seconds: float) -> None:
        wait(seconds)
        lease.beat()

    return beat_after


def _counts(kind: Any) -> bool:
    """Whether a journaled action kind counts toward the per-incident cap (unknown kinds count)."""
    cls = action_types().get(str(kind))
    return cls is None or cls.counts_toward_cap


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
