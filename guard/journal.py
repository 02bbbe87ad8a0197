"""The incident journal: a durable, append-only, content-addressed record on any StateStore.

Layout under `journal/<incident>/`:

- `objects/<digest>.json`: one immutable entry, the canonical JSON of {kind, at, actor, data, parent},
  written create-exclusive at the sha256 of those bytes (rewriting the same entry is a harmless no-op);
- `head.json`: {"seq": n, "entries": [digest, ...], "updated_at": ...}, the ordered list of entries.
  Appending writes the object first, then the head conditionally (create for the first head,
  compare-and-swap on the version last read afterwards). A lost race raises JournalConflict, so two
  watchdog invocations can never both record (and act on) the same step; the loser re-reads;
- `owner.json`: {"actor", "expires_at"}, a lease naming the one actor that may remediate the incident;
  claiming, renewing (a compare-and-swap on the version this actor last wrote, so a lease taken over in
  between is never silently re-taken), taking over an expired lease, a person's explicit take-over and
  releasing (expiring it at once) are all conditional writes, never a blind overwrite or delete.

Each entry's `parent` is the previous entry's digest, so `entries()` verifies the whole chain: a missing
object, an object whose content does not hash to its name or a broken parent link raises JournalCorrupt.

The `data` of each kind, as the postmortem reads it (an action is text or an Action.to_json() dict with a
"description"; "a|b" means either key; extra keys are kept and shown where useful):

    incident          Incident.to_json() when remediation starts
    signal            Signal.to_json()
    plan              {"source"|"planner", "summary", "actions": [{"action_id", ...}] or
                      "strategies": [{"name", "actions": [...]}]}
    model             {"model", "prompt_version", "inputs", "reasoning", "proposals": [{"action_id", ...,
                      "reason"}], "usage": {"input_tokens", "output_tokens"} or "tokens" (+ "token_budget")}
    proposal          {"action_id", "action", "reason"}
    decision          {"action_id", "allowed": bool, "rule", "reason", "action"}    (action_id, allowed required)
    action_started    {"action_id", "action"}                                      (action_id required)
    action_succeeded  {"action_id", "detail"|"reason"}                             (action_id required)
    action_failed     {"action_id", "error"|"reason"}                              (action_id required)
    verified          {"action_id", "ok": bool, "reason", "evidence"}              (action_id required)
    escalated         {"reason", "to"}
    kill_switch       {"engaged": bool (default true), "source"|"where", "reason"}
    note              {"text"}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from guard.records import JOURNAL_PREFIX
from guard.redact import redact
from guard.state import Conflict, StateStore, check_key

Clock = Callable[[], datetime]

_HEAD = "head.json"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_CLAIM_ATTEMPTS = 3


class EntryKind(StrEnum):
    """What a journal entry records."""

    INCIDENT = "incident"
    SIGNAL = "signal"
    PLAN = "plan"
    MODEL = "model"
    PROPOSAL = "proposal"
    DECISION = "decision"
    ACTION_STARTED = "action_started"
    ACTION_SUCCEEDED = "action_succeeded"
    ACTION_FAILED = "action_failed"
    VERIFIED = "verified"
    ESCALATED = "escalated"
    KILL_SWITCH = "kill_switch"
    NOTE = "note"


class ActionStatus(StrEnum):
    """An action's last recorded status; STARTED without an outcome means the run stopped mid-action."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_STATUS = {EntryKind.ACTION_STARTED: ActionStatus.STARTED, EntryKind.ACTION_SUCCEEDED: ActionStatus.SUCCEEDED,
           EntryKind.ACTION_FAILED: ActionStatus.FAILED}
_NEEDS_ACTION_ID = frozenset({*_STATUS, EntryKind.VERIFIED, EntryKind.DECISION})


class JournalConflict(Conflict):
    """The head moved since this Journal last read it: re-read with entries() before deciding again."""


class JournalCorrupt(Exception):
    """The stored journal does not verify: a missing object, a digest mismatch or a broken chain."""


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes digests are computed over (sorted keys, no whitespace, no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class Entry:
    """One immutable journal record; `parent` is the previous entry's digest ("" for the first)."""

    kind: EntryKind
    at: str
    actor: str
    data: Mapping[str, Any] = field(hash=False)
    parent: str = ""

    def to_json(self) -> dict[str, Any]:
        """The stored shape: exactly the fields the digest covers."""
        return {"kind": self.kind.value, "at": self.at, "actor": self.actor, "data": dict(self.data),
                "parent": self.parent}

    @property
    def digest(self) -> str:
        """sha256 (hex) of the entry's canonical JSON: its content address."""
        return hashlib.sha256(canonical(self.to_json())).hexdigest()


def _entry_from_bytes(raw: bytes, where: str) -> Entry:
    """Parse a stored entry object, or raise JournalCorrupt."""
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or set(doc) != {"kind", "at", "actor", "data", "parent"}:
            raise ValueError("not an entry object")
        if not all(isinstance(doc[name], str) for name in ("at", "actor", "parent")) \
                or not isinstance(doc["data"], dict):
            raise ValueError("entry fields have the wrong types")
        return Entry(EntryKind(doc["kind"]), doc["at"], doc["actor"], doc["data"], doc["parent"])
    except ValueError as exc:
        raise JournalCorrupt(f"{where}: {exc}") from exc


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC; naive datetimes are refused (their zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class _Head:
    """The head as last read: entry digests and the store version (None: no head existed)."""

    digests: tuple[str, ...]
    version: str | None


class Journal:
    """The journal of one incident on `store`; `clock` (default: UTC wall clock) stamps entries."""

    def __init__(self, store: StateStore, incident_id: str, clock: Clock | None = None) -> None:
        if "/" in incident_id:
            raise ValueError(f"invalid incident id {incident_id!r}: it must be a single key segment")
        self.incident_id = incident_id
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._base = check_key(f"{JOURNAL_PREFIX}{incident_id}") + "/"
        self._head: _Head | None = None
        self._lease: str | None = None  # the version of the lease this Journal last wrote

    @property
    def head_key(self) -> str:
        """The state key of this journal's head."""
        return self._base + _HEAD

    @property
    def owner_key(self) -> str:
        """The state key of this incident's ownership lease."""
        return self._base + "owner.json"

    def object_key(self, digest: str) -> str:
        """The state key of the entry object with `digest`."""
        return f"{self._base}objects/{digest}.json"

    def _read_head(self) -> _Head:
        found = self._store.get(self.head_key)
        if found is None:
            return _Head((), None)
        try:
            doc = json.loads(found.data)
            digests = doc["entries"]
            if not isinstance(digests, list) or doc["seq"] != len(digests) \
                    or not all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in digests):
                raise ValueError("seq and entries disagree or an entry is not a sha256 digest")
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalCorrupt(f"{self.head_key}: unreadable head: {exc}") from exc
        return _Head(tuple(digests), found.version)

    def entries(self) -> list[Entry]:
        """Every entry in order, each object loaded and verified; also the view the next append builds on."""
        head = self._read_head()
        out: list[Entry] = []
        for seq, digest in enumerate(head.digests, start=1):
            key = self.object_key(digest)
            found = self._store.get(key)
            if found is None:
                raise JournalCorrupt(f"{key}: entry {seq} is missing")
            entry = _entry_from_bytes(found.data, key)
            if entry.digest != digest:
                raise JournalCorrupt(f"{key}: content hashes to {entry.digest}, not its name (entry {seq})")
            expected = out[-1].digest if out else ""
            if entry.parent != expected:
                raise JournalCorrupt(f"{key}: entry {seq} names parent {entry.parent or '(none)'}, "
                                     f"expected {expected or '(none)'}")
            out.append(entry)
        self._head = head
        return out

    def append(self, kind: EntryKind, data: Mapping[str, Any], actor: str) -> Entry:
        """Record one entry (its data through guard.redact) after the head last read; JournalConflict if it moved."""
        kind = EntryKind(kind)
        try:
            body = redact(json.loads(canonical(dict(data))))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{kind.value} entry data is not JSON-serialisable: {exc}") from exc
        if kind in _NEEDS_ACTION_ID and not (isinstance(body.get("action_id"), str) and body["action_id"]):
            raise ValueError(f"a {kind.value} entry needs a non-empty string data['action_id']")
        if kind is EntryKind.DECISION and not isinstance(body.get("allowed"), bool):
            raise ValueError("a decision entry needs a boolean data['allowed']")
        head = self._head if self._head is not None else self._read_head()
        entry = Entry(kind, _utc(self._clock()).isoformat(), actor, body, head.digests[-1] if head.digests else "")
        self._store.create(self.object_key(entry.digest), canonical(entry.to_json()))
        digests = (*head.digests, entry.digest)
        new_head = canonical({"seq": len(digests), "entries": list(digests), "updated_at": entry.at})
        if head.version is None:
            if not self._store.create(self.head_key, new_head):
                raise JournalConflict(f"{self.head_key}: another writer created the journal first")
            found = self._store.get(self.head_key)
            # If the head moved between our create and this read, keep version None: the next append
            # then fails its create and the caller must re-read, exactly as after a lost compare-and-swap.
            version = found.version if found is not None and found.data == new_head else None
            self._head = _Head(digests, version)
        else:
            try:
                self._head = _Head(digests, self._store.put(self.head_key, new_head, if_version=head.version))
            except Conflict as exc:
                raise JournalConflict(f"{self.head_key}: the head moved since it was read") from exc
        return entry

    def _owner(self) -> tuple[str, datetime, str] | None:
        """The lease as (actor, expires_at, version), or None when there is none."""
        found = self._store.get(self.owner_key)
        if found is None:
            return None
        try:
            doc = json.loads(found.data)
            return str(doc["actor"]), _utc(datetime.fromisoformat(doc["expires_at"])), found.version
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalCorrupt(f"{self.owner_key}: unreadable ownership record: {exc}") from exc

    def holder(self) -> tuple[str, datetime] | None:
        """Who holds the lease and until when (it may have expired), or None when nobody ever claimed."""
        owner = self._owner()
        return None if owner is None else (owner[0], owner[1])

    def _wrote(self, record: bytes) -> None:
        """Remember the version of the lease just written (None if it already changed again)."""
        found = self._store.get(self.owner_key)
        self._lease = found.version if found is not None and found.data == record else None

    def claim(self, actor: str, ttl_seconds: int, now: datetime | None = None) -> bool:
        """Own the incident for `ttl_seconds`: True if `actor` holds it now (new, renewed or taken over)."""
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        moment = _utc(now if now is not None else self._clock())
        record = canonical({"actor": actor, "expires_at": (moment + timedelta(seconds=ttl_seconds)).isoformat()})
        for _ in range(_CLAIM_ATTEMPTS):
            if self._store.create(self.owner_key, record):
                self._wrote(record)
                return True
            owner = self._owner()
            if owner is None:
                continue
            holder, expires_at, version = owner
            if holder != actor and expires_at > moment:
                return False
            try:
                self._lease = self._store.put(self.owner_key, record, if_version=version)
            except Conflict:
                continue
            return True
        return False

    def renew(self, actor: str, ttl_seconds: int, now: datetime | None = None) -> bool:
        """Extend the lease this Journal claimed, as a compare-and-swap on the version it last wrote.

        False when anyone else wrote the lease since (it expired and was taken over, or a person took over):
        the lease is then no longer ours, even if its new holder has released it since."""
        moment = _utc(now if now is not None else self._clock())
        if self._lease is None:
            return False
        record = canonical({"actor": actor, "expires_at": (moment + timedelta(seconds=ttl_seconds)).isoformat()})
        try:
            self._lease = self._store.put(self.owner_key, record, if_version=self._lease)
        except Conflict:
            self._lease = None
            return False
        return True

    def take_over(self, actor: str, ttl_seconds: int, now: datetime | None = None) -> tuple[str, datetime] | None:
        """Own the incident whoever holds it (a person's explicit choice); the lease it replaced, if any."""
        moment = _utc(now if now is not None else self._clock())
        record = canonical({"actor": actor, "expires_at": (moment + timedelta(seconds=ttl_seconds)).isoformat()})
        for _ in range(_CLAIM_ATTEMPTS):
            if self._store.create(self.owner_key, record):
                self._wrote(record)
                return None
            owner = self._owner()
            if owner is None:
                continue
            try:
                self._lease = self._store.put(self.owner_key, record, if_version=owner[2])
            except Conflict:
                continue
            return owner[0], owner[1]
        raise JournalConflict(f"{self.owner_key}: the lease kept changing; try again")

    def release(self, actor: str, now: datetime | None = None) -> bool:
        """End `actor`'s lease (it expires `now`); False if `actor` did not hold it."""
        moment = _utc(now if now is not None else self._clock())
        owner = self._owner()
        if owner is None or owner[0] != actor:
            return False
        try:
            self._store.put(self.owner_key, canonical({"actor": actor, "expires_at": moment.isoformat()}),
                            if_version=owner[2])
        except Conflict:
            return False
        return True


def action_state(entries: Iterable[Entry]) -> dict[str, ActionStatus]:
    """Each action id's last status, in first-seen order: skip SUCCEEDED, re-verify STARTED before repeating."""
    state: dict[str, ActionStatus] = {}
    for entry in entries:
        status = _STATUS.get(entry.kind)
        if status is not None:
            state[str(entry.data["action_id"])] = status
    return state


def incidents_with_journals(store: StateStore) -> list[str]:
    """IDs of the incidents that have a journal head in `store`, sorted."""
    ids = []
    for key in store.list(JOURNAL_PREFIX):
        incident, _, rest = key.removeprefix(JOURNAL_PREFIX).partition("/")
        if rest == _HEAD:
            ids.append(incident)
    return sorted(ids)
