"""The postmortem: Markdown rendered from an incident's journal, deterministic and free of credentials.

Same incident and entries give the same bytes (golden-testable). Every value from the journal is redacted
first (values under credential-named keys, and credential-looking strings anywhere) and the whole text is
scrubbed again before it is returned. Facts the journal cannot know are left to the responders with an
explicit placeholder line, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from guard.journal import ActionStatus, Entry, EntryKind, Journal, action_state
from guard.models import Incident, IncidentStatus, InputError
from guard.records import open_incidents, recurrence, resolution
from guard.redact import redact, scrub
from guard.state import StateStore
from guard.triage import incident_from_json

TODO = "_To be completed by the responders._"
NO_MODEL = "No model was consulted; the deterministic playbook planned every action."

_ACTION_KINDS = frozenset({EntryKind.PROPOSAL, EntryKind.DECISION, EntryKind.ACTION_STARTED,
                           EntryKind.ACTION_SUCCEEDED, EntryKind.ACTION_FAILED, EntryKind.VERIFIED})


# Text helpers


def _s(value: Any) -> str:
    """A journal value as text: strings as they are, None and empty containers as "", else sorted JSON."""
    if value is None or (isinstance(value, Mapping | list) and not value):
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


def _md(text: str) -> str:
    """One line of Markdown that cannot break a table: '|' escaped, newlines as <br>, '-' when empty."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>").replace("|", "\\|")
    return text or "-"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {_md(item)}" for item in items)


def _when(stamp: str) -> datetime | None:
    """An ISO-8601 stamp as an aware datetime (naive ones read as UTC), or None when unparseable."""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _elapsed(start: str, end: str) -> str:
    """The time from `start` to `end` as '12.3 s' / '4 min 05 s' / '2 h 03 min', or '' if unknown."""
    first, last = _when(start), _when(end)
    if first is None or last is None or last < first:
        return ""
    seconds = (last - first).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# What the journal says


def _clause(head: str, *details: Any) -> str:
    """`head`, then ': detail' for each detail that is not empty."""
    return head + "".join(f": {_s(detail)}" for detail in details if _s(detail))


def _first(data: Mapping[str, Any], *names: str) -> str:
    """The first of `names` that `data` holds a non-empty value for, as text."""
    return next((text for name in names if (text := _s(data.get(name)))), "")


def _what(action: Any) -> str:
    """An action as text: the description of an Action.to_json() dict, else the value itself."""
    if isinstance(action, Mapping):
        return _s(action.get("description")) or _s(dict(action))
    return _s(action)


def _planned(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The actions a plan entry lists, directly or inside its strategies."""
    lists = [data.get("actions")] + [s.get("actions") for s in data.get("strategies") or [] if isinstance(s, Mapping)]
    return [item for items in lists if isinstance(items, list) for item in items if isinstance(item, Mapping)]


def _plan_summary(data: Mapping[str, Any]) -> str:
    """A plan in one line: its summary, else its strategies and their actions, else its actions."""
    strategies = [s for s in data.get("strategies") or [] if isinstance(s, Mapping)]
    if data.get("summary") or not strategies:
        return _s(data.get("summary")) or ", ".join(_what(item.get("action") or item) for item in _planned(data))
    return "; ".join(_clause(_s(s.get("name")) or "strategy", ", ".join(_what(a) for a in s.get("actions") or []))
                     for s in strategies)


def _evidence(data: Mapping[str, Any]) -> str:
    """What a verification saw: its reason and its evidence."""
    return "; ".join(text for text in (_s(data.get("reason")), _s(data.get("evidence"))) if text)


def _engaged(entry: Entry) -> bool:
    """True for a kill-switch entry that found the switch engaged."""
    return entry.kind is EntryKind.KILL_SWITCH and bool(entry.data.get("engaged", True))


def _describe(entry: Entry) -> str:
    """One line saying what an entry records."""
    d = entry.data
    match entry.kind:
        case EntryKind.INCIDENT:
            return _clause(f"remediation started on {_s(d.get('id'))}", d.get("title"))
        case EntryKind.SIGNAL:
            return _clause(f"signal {_s(d.get('watcher_id'))} on {_s(d.get('resource'))}", d.get("message"))
        case EntryKind.PLAN:
            return _clause(f"plan by {_first(d, 'source', 'planner') or 'playbook'}", _plan_summary(d))
        case EntryKind.MODEL:
            return (f"model {_s(d.get('model'))} (prompt {_s(d.get('prompt_version'))}) proposed "
                    f"{len(d.get('proposals') or [])} action(s)")
        case EntryKind.PROPOSAL:
            reason = f" ({_s(d.get('reason'))})" if d.get("reason") else ""
            return _clause(f"proposed {_s(d.get('action_id'))}", _what(d.get("action"))) + reason
        case EntryKind.DECISION:
            verdict = "allowed" if d.get("allowed") else "REFUSED"
            return _clause(f"policy {verdict} {_s(d.get('action_id'))}", d.get("rule"), d.get("reason"))
        case EntryKind.ACTION_STARTED:
            return _clause(f"started {_s(d.get('action_id'))}", _what(d.get("action")))
        case EntryKind.ACTION_SUCCEEDED:
            return _clause(f"{_s(d.get('action_id'))} succeeded", _first(d, "detail", "reason"))
        case EntryKind.ACTION_FAILED:
            return _clause(f"{_s(d.get('action_id'))} FAILED", _first(d, "error", "reason"))
        case EntryKind.VERIFIED:
            verdict = "postcondition holds" if d.get("ok") else "postcondition FAILED"
            return _clause(f"verified {_s(d.get('action_id'))}: {verdict}", _evidence(d))
        case EntryKind.ESCALATED:
            return _clause(f"escalated to {_s(d.get('to')) or 'humans'}", d.get("reason"))
        case EntryKind.KILL_SWITCH:
            state = "engaged" if _engaged(entry) else "clear"
            source = f" ({_first(d, 'source', 'where')})" if _first(d, "source", "where") else ""
            return _clause(f"kill switch {state}{source}", d.get("reason"))
        case EntryKind.NOTE:
            return _s(d.get("text")) or _s(dict(d))


@dataclass(frozen=True)
class _Action:
    """One action's story across the journal."""

    action_id: str
    what: str
    status: ActionStatus | None
    outcome: str
    verified: bool | None
    evidence: str
    duration: str


def _action(action_id: str, group: Sequence[Entry], planned: str) -> _Action:
    """Summarise the entries of one action (in journal order)."""
    what = next((_what(e.data["action"]) for e in group if e.data.get("action")), planned)
    status = action_state(group).get(action_id)
    starts = [e for e in group if e.kind is EntryKind.ACTION_STARTED]
    decisions = [e for e in group if e.kind is EntryKind.DECISION]
    checks = [e for e in group if e.kind is EntryKind.VERIFIED]
    end = next((e for e in reversed(group) if e.kind in (EntryKind.ACTION_SUCCEEDED, EntryKind.ACTION_FAILED)),
               None)
    if status is ActionStatus.SUCCEEDED:
        outcome = "succeeded"
    elif status is ActionStatus.FAILED:
        outcome = _clause("failed", _first(end.data, "error", "reason") if end else "")
    elif status is ActionStatus.STARTED:
        outcome = "interrupted: started, no outcome recorded"
    elif decisions and decisions[-1].data.get("allowed") is False:
        outcome = f"refused ({_s(decisions[-1].data.get('rule'))})"
    else:
        outcome = "not started"
    if len(starts) > 1:
        outcome += f" ({len(starts)} attempts)"
    duration = _elapsed(starts[-1].at, end.at) if starts and end is not None and status is not ActionStatus.STARTED \
        else ""
    last_check = checks[-1] if checks else None
    return _Action(action_id, what, status, outcome,
                   None if last_check is None else bool(last_check.data.get("ok")),
                   "" if last_check is None else _evidence(last_check.data), duration)


def _actions(entries: Sequence[Entry]) -> list[_Action]:
    """Every action the journal mentions, in first-mention order."""
    groups: dict[str, list[Entry]] = {}
    planned: dict[str, str] = {}
    for entry in entries:
        if entry.kind is EntryKind.PLAN:
            for item in _planned(entry.data):
                if isinstance(item.get("action_id"), str):
                    groups.setdefault(item["action_id"], [])
                    planned.setdefault(item["action_id"], _what(item.get("action") or item))
        elif entry.kind in _ACTION_KINDS and isinstance(entry.data.get("action_id"), str):
            groups.setdefault(entry.data["action_id"], []).append(entry)
    return [_action(action_id, group, planned.get(action_id, "")) for action_id, group in groups.items()]


def _snapshot(entries: Sequence[Entry]) -> Incident | None:
    """The incident as journaled when remediation started, if the journal holds a readable snapshot."""
    for entry in entries:
        if entry.kind is EntryKind.INCIDENT:
            try:
                return incident_from_json(entry.data)
            except (KeyError, ValueError, TypeError):
                return None
    return None


def _signals(incident: Incident | None, entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Signals of the incident and of the journal, deduplicated, earliest first."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    docs = [redact(s.to_json()) for s in incident.signals] if incident else []
    docs += [{**e.data, "since": e.data.get("since") or e.at} for e in entries if e.kind is EntryKind.SIGNAL]
    for doc in docs:
        key = tuple(_s(doc.get(name)) for name in ("watcher_id", "resource", "cause", "message", "since"))
        found.setdefault(key, doc)
    latest = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(enumerate(found.values()), key=lambda pair: (_when(_s(pair[1].get("since"))) or latest,
                                                                  pair[0]))
    return [doc for _, doc in ordered]


# Sections


def _status(incident: Incident) -> str:
    """Open, or resolved and when."""
    if incident.status is IncidentStatus.RESOLVED:
        return f"resolved at {incident.last_seen}"
    return "open"


def _summary(incident: Incident | None, entries: Sequence[Entry], actions: Sequence[_Action],
             refusals: Sequence[Entry], generated_at: str, status: str) -> str:
    title = f"# Postmortem {incident.id}: {_md(incident.title)}" if incident else \
        "# Postmortem: unidentified incident"
    head = f"head {entries[-1].digest[:12]}" if entries else "empty journal"
    count = {status: sum(a.status is status for a in actions) for status in ActionStatus}
    escalations = sum(e.kind is EntryKind.ESCALATED for e in entries)
    outcome = (f"{count[ActionStatus.SUCCEEDED]} action(s) succeeded, {count[ActionStatus.FAILED]} failed, "
               f"{count[ActionStatus.STARTED]} interrupted, {len(refusals)} refusal(s), "
               f"{escalations} escalation(s)")
    rows = [("Incident", incident.id), ("Cause", f"{incident.cause.value}: {incident.cause_key}"),
            ("Resources", ", ".join(incident.resources)), ("First seen", incident.first_seen),
            ("Severity", incident.severity.value), ("Status", status or _status(incident))] if incident else \
        [("Incident", "unknown: the journal holds no incident snapshot")]
    if incident and incident.previous:
        rows.append(("Previous incident", f"{incident.previous} (resolved; this is a recurrence of its cause)"))
    return "\n\n".join([title, f"Generated {_md(generated_at)} from {len(entries)} journal entries ({head}).",
                        "## Summary", _table(("Field", "Value"), [*rows, ("Outcome", outcome)])])


def _timeline(entries: Sequence[Entry]) -> str:
    body = _table(("#", "Time", "Actor", "Entry", "What"),
                  [(str(n), e.at, e.actor, e.kind.value, _describe(e)) for n, e in enumerate(entries, start=1)]) \
        if entries else "The journal is empty."
    return f"## Timeline\n\n{body}"


def _signals_section(signals: Sequence[Mapping[str, Any]]) -> str:
    body = _table(("Since", "Watcher", "Severity", "Resource", "Cause", "Message", "Evidence"),
                  [[_s(doc.get(name)) for name in ("since", "watcher_id", "severity", "resource", "cause",
                                                   "message", "evidence")] for doc in signals]) \
        if signals else "No signal was recorded."
    return f"## Signals\n\n{body}"


def _actions_section(actions: Sequence[_Action]) -> str:
    def verified(action: _Action) -> str:
        if action.verified is None:
            return "not verified"
        return ("yes" if action.verified else "NO") + (f": {action.evidence}" if action.evidence else "")

    body = _table(("Action", "What", "Outcome", "Verified", "Duration"),
                  [(a.action_id, a.what, a.outcome, verified(a), a.duration) for a in actions]) \
        if actions else "No action was proposed or taken."
    return f"## Actions\n\n{body}"


def _refusals_section(refusals: Sequence[Entry]) -> str:
    body = _table(("Time", "Action", "Rule", "Reason"),
                  [(e.at, _s(e.data.get("action_id")), _s(e.data.get("rule")), _s(e.data.get("reason")))
                   for e in refusals]) if refusals else "The policy gate refused nothing."
    return f"## Refusals\n\nA refusal is a journal entry, never silence.\n\n{body}"


def _tokens(data: Mapping[str, Any]) -> str:
    """Token use: input and output from `usage`, else the `tokens` total (of the `token_budget`)."""
    usage = data.get("usage")
    if isinstance(usage, Mapping):
        return f"{_s(usage.get('input_tokens')) or '?'} in / {_s(usage.get('output_tokens')) or '?'} out"
    used, budget = _s(data.get("tokens")), _s(data.get("token_budget"))
    return f"{used} of {budget} budget" if used and budget else used


def _proposed(proposals: Any) -> str:
    if not isinstance(proposals, list):
        return _s(proposals)
    lines = []
    for item in proposals:
        if isinstance(item, Mapping):
            reason = f" ({_s(item.get('reason'))})" if item.get("reason") else ""
            lines.append(f"{_s(item.get('action_id'))}: {_what(item.get('action') or item)}{reason}")
        else:
            lines.append(_s(item))
    return "\n".join(lines)


def _models_section(entries: Sequence[Entry]) -> str:
    models = [e for e in entries if e.kind is EntryKind.MODEL]
    body = _table(("Time", "Model", "Prompt version", "What it saw", "What it proposed", "Why", "Tokens"),
                  [(e.at, _s(e.data.get("model")), _s(e.data.get("prompt_version")), _s(e.data.get("inputs")),
                    _proposed(e.data.get("proposals")), _s(e.data.get("reasoning")), _tokens(e.data))
                   for e in models]) if models else NO_MODEL
    return f"## Model inference\n\n{body}"


def _layer(number: int, name: str, facts: Sequence[str], complete: bool) -> str:
    """One layer: the facts the journal knows, then the placeholder unless they are the whole story."""
    lines = _bullets(facts)
    if not complete or not facts:
        lines = f"{lines}\n- {TODO}" if lines else f"- {TODO}"
    return f"### {number}. {name}\n\n{lines}"


def _analysis(incident: Incident | None, entries: Sequence[Entry], signals: Sequence[Mapping[str, Any]],
              actions: Sequence[_Action], refusals: Sequence[Entry]) -> str:
    first = signals[0] if signals else None
    trigger = [f"{_s(first.get('since'))}: {_s(first.get('watcher_id'))} on {_s(first.get('resource'))}: "
               f"{_s(first.get('message'))}"] if first else []
    proximate = [f"{incident.cause.value} on {incident.cause_key}: {incident.title}"] if incident else []
    contributing = [f"Policy refused {_s(e.data.get('action_id'))} ({_s(e.data.get('rule'))}): "
                    f"{_s(e.data.get('reason'))}" for e in refusals]
    contributing += [f"{a.action_id} {a.outcome}" for a in actions
                     if a.status in (ActionStatus.FAILED, ActionStatus.STARTED)]
    contributing += [f"{a.action_id}: postcondition failed: {a.evidence}" for a in actions if a.verified is False]
    contributing += [_describe(e) for e in entries if e.kind is EntryKind.ESCALATED or _engaged(e)]
    starts = [e for e in entries if e.kind is EntryKind.ACTION_STARTED]
    ends = [e for e in entries if e.kind in (EntryKind.ACTION_SUCCEEDED, EntryKind.ACTION_FAILED)]
    systemic = []
    if first and starts and (lag := _elapsed(_s(first.get("since")), starts[0].at)):
        systemic.append(f"From the first signal to the first action: {lag}.")
    if starts and ends and (span := _elapsed(starts[0].at, ends[-1].at)):
        systemic.append(f"From the first action to the last recorded outcome: {span}.")
    decisions = [e for e in entries if e.kind is EntryKind.DECISION]
    switches = sum(_engaged(e) for e in entries)
    models = [e for e in entries if e.kind is EntryKind.MODEL]
    governance = [f"Policy decisions: {len(decisions)} ({len(decisions) - len(refusals)} allowed, "
                  f"{len(refusals)} refused).",
                  f"Kill switch engaged {switches} time(s).",
                  f"Escalations to humans: {sum(e.kind is EntryKind.ESCALATED for e in entries)}.",
                  f"Model inferences: {len(models)}." if models else NO_MODEL]
    actors = sorted({e.actor for e in entries})
    if actors:
        governance.append(f"Actors in the journal: {', '.join(actors)}.")
    return "\n\n".join(["## Five-layer cause analysis",
                        _layer(1, "Trigger", trigger, complete=True),
                        _layer(2, "Proximate cause", proximate, complete=True),
                        _layer(3, "Contributing factors", contributing, complete=False),
                        _layer(4, "Systemic gap", systemic, complete=False),
                        _layer(5, "Governance", governance, complete=False)])


def _questions(incident: Incident | None, entries: Sequence[Entry], actions: Sequence[_Action]) -> str:
    questions = [] if incident else ["Which incident is this? The journal holds no incident snapshot."]
    for a in actions:
        if a.status is ActionStatus.STARTED:
            questions.append(f"Did {a.action_id} take effect? The run stopped after starting it: re-verify "
                             "before repeating it.")
        elif a.status is ActionStatus.SUCCEEDED and a.verified is None:
            questions.append(f"Did {a.action_id} have the intended effect? It succeeded but no postcondition "
                             "was verified.")
        if a.verified is False:
            questions.append(f"Why did {a.action_id}'s postcondition fail?")
    questions += [f"Who took the escalation of {e.at}, and what did they do?" for e in entries
                  if e.kind is EntryKind.ESCALATED]
    if not any(a.verified for a in actions):
        questions.append("Is service restored? No action's postcondition was verified in this journal.")
    questions.append("What would have stopped this change before it was deployed?")
    return f"## Open questions\n\n{_bullets(questions)}"


def render_postmortem(incident: Incident | None, entries: Sequence[Entry], *, generated_at: str,
                      status: str = "") -> str:
    """The incident's postmortem in Markdown; `incident` defaults to the journal's snapshot.

    `status` replaces the Status line derived from the incident (open, or resolved and when)."""
    clean = [replace(e, data=redact(e.data)) for e in entries]
    incident = incident or _snapshot(clean)
    signals = _signals(incident, clean)
    actions = _actions(clean)
    refusals = [e for e in clean if e.kind is EntryKind.DECISION and e.data.get("allowed") is False]
    sections = [_summary(incident, entries, actions, refusals, generated_at, status), _timeline(clean),
                _signals_section(signals), _actions_section(actions), _refusals_section(refusals),
                _models_section(clean), _analysis(incident, clean, signals, actions, refusals),
                _questions(incident, clean, actions)]
    return scrub("\n\n".join(sections) + "\n")


def _status_now(store: StateStore, incident_id: str) -> str:
    """The incident's status in the watchdog state now: open, resolved (and when, and what recurred), or unknown."""
    current = next((i for i in open_incidents(store) if i.id == incident_id), None)
    if current is not None:
        return _status(current)
    done = resolution(store, incident_id)
    after = recurrence(store, incident_id)
    recurred = f"; its cause recurred as {after}" if after else ""
    if done is not None:
        return f"resolved at {done.resolved_at}{recurred}"
    return f"not open (no resolution on record){recurred}"


def postmortem_from_journal(store: StateStore, incident_id: str) -> str:
    """Render an incident's postmortem now, from its journal and its status; no journal is an input error."""
    entries = Journal(store, incident_id).entries()
    if not entries:
        raise InputError(f"no journal for {incident_id}")
    return render_postmortem(None, entries, generated_at=datetime.now(UTC).isoformat(),
                             status=_status_now(store, incident_id))
