"""ECR lifecycle policies, evaluated: which images a policy expires on its next run, and when it will expire one.

Pure functions over values (no AWS calls), following ECR's documented evaluation rules:

- rules run in `rulePriority` order, lowest first; the only action is `expire`;
- selection: `tagStatus` `any`, `untagged`, or `tagged` with `tagPrefixList` (every prefix starts some tag of
  the image) or `tagPatternList` (every pattern, `*` a wildcard, matches some whole tag);
- `imageCountMoreThan` keeps the newest `countNumber` selected images by push time and expires the rest;
  `sinceImagePushed` (`countUnit` days) expires selected images pushed more than `countNumber` days ago;
- an image that a rule selects is never expired by a lower-priority rule, but lower rules still count it.

Push-time ties are broken by the order of the `images` argument (later = newer), as DescribeImages lists
images in push order. Images an image index references are left out of `images` by the caller and share
their index's fate (`RepositoryLifecycle.forecast`). Not modelled: `sinceImagePulled`, archive transitions
(a policy using them is refused with InputError), and the up-to-24-hour delay before ECR acts.

ECR's own lifecycle policy preview (`PolicyPreview`, read by the ECR gateway) settles what the next run does where
the evaluator says "expires now" or cannot read the policy (`preview_targets`, `judge`): AWS's answer wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from guard.config import WatchConfig
from guard.models import InputError, Severity

IMAGE_COUNT_MORE_THAN = "imageCountMoreThan"
SINCE_IMAGE_PUSHED = "sinceImagePushed"
TAG_STATUSES = ("tagged", "untagged", "any")
MAX_WILDCARDS = 4
DEFAULT_PUSH_LIMIT = 100  # future pushes forecast() simulates before saying "not within reach"

RepoKey = tuple[str, str, str]  # (account, region, repository), as ImageRef.key


@dataclass(frozen=True)
class EcrImage:
    """One image of a repository as DescribeImages reports it."""

    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime


@dataclass(frozen=True)
class RepositoryLifecycle:
    """A repository's lifecycle policy text (None: it has none) and, when it has one, its images.

    `images` are those lifecycle rules consider; `children` maps each image an image index references
    (platform manifests, attestations), which ECR keeps while the index exists, to that index.
    """

    key: RepoKey
    policy: str | None
    images: tuple[EcrImage, ...] = ()
    children: Mapping[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """`repo (account, region)` for messages."""
        return f"{self.key[2]} ({self.key[0]}, {self.key[1]})"

    def forecast(self, digests: Collection[str], now: datetime, limit: int = DEFAULT_PUSH_LIMIT
                 ) -> dict[str, Forecast]:
        """forecast() under this repository's policy; an index's child shares its index's fate.

        InputError when the stored policy is one this evaluator does not understand; {} without a policy.
        """
        if self.policy is None:
            return {}
        owners = {d: self.children.get(d, d) for d in digests}
        found = forecast(parse_policy(self.policy), self.images, set(owners.values()), now, limit)
        return {d: replace(found[o], digest=d) for d, o in owners.items() if o in found}


@dataclass(frozen=True)
class Rule:
    """One validated rule of a lifecycle policy."""

    priority: int
    description: str
    tag_status: str
    prefixes: tuple[str, ...]
    patterns: tuple[str, ...]
    count_type: str
    count: int

    @property
    def label(self) -> str:
        """`rule 2 ("expire untagged after 14 days")` for messages."""
        return f'rule {self.priority} ("{self.description}")' if self.description else f"rule {self.priority}"

    @property
    def summary(self) -> str:
        """What the rule does, in ECR's words: `tagged v* imageCountMoreThan 10`."""
        scope = self.tag_status
        if self.prefixes:
            scope += " prefix " + ",".join(self.prefixes)
        if self.patterns:
            scope += " pattern " + ",".join(self.patterns)
        unit = " days" if self.count_type == SINCE_IMAGE_PUSHED else ""
        return f"{scope} {self.count_type} {self.count}{unit}"

    def selects(self, tags: Sequence[str]) -> bool:
        """Whether an image carrying `tags` meets the rule's tag selection."""
        if self.tag_status == "any":
            return True
        if self.tag_status == "untagged":
            return not tags
        return bool(tags) and all(any(t.startswith(p) for t in tags) for p in self.prefixes) \
            and all(any(_wildcard(p).fullmatch(t) for t in tags) for p in self.patterns)


@dataclass(frozen=True)
class Forecast:
    """When a policy will expire one image.

    `pushes_left`: how many more pushes must happen before `rule` expires it (0: none, None: pushes do not
    matter); `expires_at`: the earliest run that can expire it once those pushes happened (None: the push
    itself does it); `expired_now`: the next run of the policy expires (or archives) it; `source`: `evaluator`
    (this module) or `preview` (ECR's lifecycle policy preview). A preview answer for a policy this module cannot
    read knows only the next run (`later_unknown`); one that keeps the image names no rule.
    """

    digest: str
    rule: Rule
    expired_now: bool
    pushes_left: int | None
    expires_at: datetime | None
    source: str = "evaluator"
    action: str = "expire"  # or "archive" (a transition rule: an archived image cannot be pulled)
    later_unknown: bool = False  # only the next run is known (ECR's preview), nothing after it
    note: str = ""  # why `source` is what it is: the preview's reason for not answering, or a disagreement

    def evidence(self) -> dict[str, str | int | bool | None]:
        """The evidence fields a forecast adds to a finding or a signal (the rule, the date or push count)."""
        ruled = self.expired_now or not self.later_unknown
        found: dict[str, str | int | bool | None] = {
            "digest": self.digest, "rule_priority": self.rule.priority if ruled else None,
            "rule_description": self.rule.description if ruled else None, "rule": self.rule.summary if ruled else None,
            "expired_now": self.expired_now, "pushes_left": self.pushes_left,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None, "source": self.source}
        if self.action != "expire":
            found["action"] = self.action
        if self.note:
            found["preview"] = self.note
        return found

    def within(self, now: datetime, days: timedelta, pushes: int) -> bool:
        """Imminent: expired now, or due within `pushes` more pushes and (for an age rule) within `days`."""
        if self.expired_now or self.later_unknown:
            return self.expired_now
        if self.pushes_left is not None and self.pushes_left > pushes:
            return False
        return self.expires_at is None or self.expires_at <= now + days

    def describe(self) -> str:
        """`expires on the next lifecycle run`, `expires after 3 more pushes`, `expires on 2026-12-01 ...`."""
        if self.expired_now:
            return f"{'is archived (then cannot be pulled)' if self.action == 'archive' else 'expires'} on the " \
                "policy's next run" + (" (ECR's lifecycle policy preview)" if self.source == "preview" else "")
        if self.later_unknown:
            return "is kept by the policy's next run (ECR's lifecycle policy preview); later runs are not forecast"
        parts = []
        if self.pushes_left:
            parts.append(f"after {self.pushes_left} more push{'es' if self.pushes_left != 1 else ''}")
        if self.expires_at is not None:
            parts.append(f"on or after {self.expires_at.strftime('%Y-%m-%d %H:%M UTC')}")
        return "expires " + ", ".join(parts)


@dataclass(frozen=True)
class LifecycleHorizon:
    """How far ahead forecasts are reported (warning) and how close is imminent (error)."""

    warn: timedelta = timedelta(days=14)
    warn_pushes: int = 5
    error: timedelta = timedelta(days=2)
    error_pushes: int = 1
    preview_gate_s: float = 20.0  # the longest wait for ECR's lifecycle policy preview in the gate
    preview_watch_s: float = 10.0  # and in a sweep

    @classmethod
    def from_config(cls, watch: WatchConfig) -> LifecycleHorizon:
        """The `[watch]` table's lifecycle_* settings."""
        return cls(timedelta(days=watch.lifecycle_warn_days), watch.lifecycle_warn_pushes,
                   timedelta(days=watch.lifecycle_error_days), watch.lifecycle_error_pushes,
                   watch.lifecycle_preview_gate_seconds, watch.lifecycle_preview_watch_seconds)

    def severity(self, f: Forecast, now: datetime) -> Severity | None:
        """ERROR when imminent, WARNING within the look-ahead, None (not reported) beyond it; INFO for a next run
        ECR's preview says keeps the image when the evaluator could not forecast beyond it."""
        if f.within(now, self.error, self.error_pushes):
            return Severity.ERROR
        if f.later_unknown:
            return Severity.INFO
        return Severity.WARNING if f.within(now, self.warn, self.warn_pushes) else None


@lru_cache(maxsize=512)
def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _fail(where: str, reason: str) -> InputError:
    return InputError(f"lifecycle policy: {where}: {reason}")


def _strings(selection: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = selection.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"selection.{key} must be a list of non-empty strings")
    return tuple(value)


def _rule(raw: Any, index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise _fail(where, "must be an object")
    priority = raw.get("rulePriority")
    if type(priority) is not int or priority < 1:
        raise _fail(where, "rulePriority must be a positive integer")
    where = f"rule {priority}"
    selection, action = raw.get("selection"), raw.get("action")
    if not isinstance(selection, dict):
        raise _fail(where, "selection must be an object")
    if not isinstance(action, dict) or action.get("type") != "expire":
        raise _fail(where, "action.type must be expire")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _fail(where, "description must be a string")
    status = selection.get("tagStatus")
    if status not in TAG_STATUSES:
        raise _fail(where, f"selection.tagStatus must be one of {', '.join(TAG_STATUSES)}")
    prefixes = _strings(selection, "tagPrefixList", where)
    patterns = _strings(selection, "tagPatternList", where)
    if status == "tagged" and len([x for x in (prefixes, patterns) if x]) != 1:
        raise _fail(where, "tagStatus tagged needs exactly one of selection.tagPrefixList and tagPatternList")
    if status != "tagged" and (prefixes or patterns):
        raise _fail(where, "selection.tagPrefixList and tagPatternList need tagStatus tagged")
    if any(p.count("*") > MAX_WILDCARDS for p in patterns):
        raise _fail(where, f"a selection.tagPatternList entry has more than {MAX_WILDCARDS} wildcards")
    count_type, count, unit = selection.get("countType"), selection.get("countNumber"), selection.get("countUnit")
    if count_type not in (IMAGE_COUNT_MORE_THAN, SINCE_IMAGE_PUSHED):
        raise _fail(where, f"selection.countType must be {IMAGE_COUNT_MORE_THAN} or {SINCE_IMAGE_PUSHED}")
    if type(count) is not int or count < 1:
        raise _fail(where, "selection.countNumber must be a positive integer")
    if count_type == IMAGE_COUNT_MORE_THAN and unit is not None:
        raise _fail(where, f"selection.countUnit is only for {SINCE_IMAGE_PUSHED}")
    if count_type == SINCE_IMAGE_PUSHED and unit != "days":
        raise _fail(where, f"{SINCE_IMAGE_PUSHED} needs selection.countUnit days")
    return Rule(priority, description, str(status), prefixes, patterns, str(count_type), count)


def parse_policy(text: str) -> tuple[Rule, ...]:
    """The policy's rules in evaluation order; InputError naming the rule and key for a policy ECR refuses."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _fail("policy", f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list) or not doc["rules"]:
        raise _fail("policy", "rules must be a non-empty list")
    rules = sorted((_rule(raw, i) for i, raw in enumerate(doc["rules"])), key=lambda r: r.priority)
    seen: set[int] = set()
    for rule in rules:
        if rule.priority in seen:
            raise _fail(f"rule {rule.priority}", "rulePriority must be unique")
        seen.add(rule.priority)
    if sum(r.tag_status == "untagged" for r in rules) > 1:
        raise _fail("policy", "only one rule may select untagged images")
    if any(r.tag_status == "any" for r in rules[:-1]):
        raise _fail(f"rule {next(r.priority for r in rules if r.tag_status == 'any')}",
                    "a rule with tagStatus any must have the highest rulePriority")
    return tuple(rules)


def expired(rules: Iterable[Rule], images: Sequence[EcrImage], now: datetime) -> dict[str, Rule]:
    """Digest -> the rule that expires it on the policy's next run at `now`."""
    order = {id(image): position for position, image in enumerate(images)}
    claimed: set[str] = set()  # selected by a higher-priority rule: still counted below, never expired below
    doomed: dict[str, Rule] = {}
    for rule in sorted(rules, key=lambda r: r.priority):
        selected = [i for i in images if rule.selects(i.tags)]
        if rule.count_type == IMAGE_COUNT_MORE_THAN:
            ranked = sorted(selected, key=lambda i: (i.pushed_at, order[id(i)]), reverse=True)
            hit = ranked[rule.count:]
        else:
            hit = [i for i in selected if i.pushed_at < now - timedelta(days=rule.count)]
        for image in hit:
            if image.digest not in claimed:
                doomed.setdefault(image.digest, rule)
        claimed.update(i.digest for i in selected)
    return doomed


def _owner(rules: Sequence[Rule], tags: Sequence[str]) -> Rule | None:
    """The one rule that may expire an image with `tags`: the highest-priority rule that selects it."""
    return next((r for r in rules if r.selects(tags)), None)


def _push(images: list[EcrImage], tags: tuple[str, ...], moving: bool, at: datetime) -> list[EcrImage]:
    """The repository after one push of a new image carrying `tags` (moved from older images when `moving`)."""
    if moving:
        images = [replace(i, tags=tuple(t for t in i.tags if t not in tags)) for i in images]
    return [*images, EcrImage(f"future:{len(images)}", tags, at)]


def _first_expiry(rules: Sequence[Rule], images: Sequence[EcrImage], digest: str, now: datetime,
                  moving: bool, limit: int) -> Forecast | None:
    """Replay up to `limit` future pushes (one push model) until the image falls to a rule."""
    state = list(images)
    newest = max(reversed(state), key=lambda i: i.pushed_at)  # on a tie, the one listed last
    clock = max(now, newest.pushed_at)
    for pushes in range(limit + 1):
        if pushes:
            tags = newest.tags if moving else tuple(f"{t}-future{pushes}" for t in newest.tags)
            clock += timedelta(microseconds=1)
            state = _push(state, tags, moving, clock)
        image = next(i for i in state if i.digest == digest)
        rule = _owner(rules, image.tags)
        if rule is None:
            if not moving:
                return None  # fresh tags never change the image's own tags: no rule will ever take it
            continue
        if rule.count_type == SINCE_IMAGE_PUSHED:
            at = image.pushed_at + timedelta(days=rule.count)
            return Forecast(digest, rule, pushes == 0 and at < now, pushes or None, at)
        if digest in expired([rule], state, now):
            return Forecast(digest, rule, pushes == 0, pushes, None)
    return None


def forecast(rules: Sequence[Rule], images: Sequence[EcrImage], digests: Collection[str], now: datetime,
             limit: int = DEFAULT_PUSH_LIMIT) -> dict[str, Forecast]:
    """Digest -> when the policy will expire it, for each of `digests` the policy will expire.

    A future push is modelled two ways, and the forecast is the sooner of the two: (moving) the new image
    takes over the tags of the repository's newest image, as `docker push repo:latest` does, so an image
    that loses its last tag becomes untagged (the classic case: a service pinned to the digest that `latest`
    pointed to is taken by the untagged rule); (fresh) the new image carries new tags shaped like the newest
    image's (each of them plus a unique suffix), so prefix and trailing-wildcard rules count it, as a release
    `v124` after `v123` is counted. Pushes happen now; at most `limit` are replayed. Digests not in `images`
    are left out (nothing to forecast).
    """
    ordered = tuple(sorted(rules, key=lambda r: r.priority))
    known = {i.digest for i in images}
    result: dict[str, Forecast] = {}
    for digest in digests:
        if digest not in known:
            continue
        options = [f for f in (_first_expiry(ordered, images, digest, now, m, limit) for m in (True, False)) if f]
        if options:
            result[digest] = min(options, key=_urgency)
    return result


def _urgency(f: Forecast) -> tuple[bool, int, float]:
    """Sort key: expired now first, then fewer pushes, then the earlier date."""
    return (not f.expired_now, f.pushes_left or 0, f.expires_at.timestamp() if f.expires_at else float("inf"))


@dataclass(frozen=True)
class PolicyPreview:
    """ECR's lifecycle policy preview for some image digests: the action and rule its next run applies to each.

    `unavailable` says why there is no answer (not supported, denied, timed out, another policy's preview).
    """

    actions: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # digest -> (EXPIRE|TRANSITION, priority)
    unavailable: str = ""


def preview_targets(repo: RepositoryLifecycle, digests: Collection[str], now: datetime,
                    limit: int = DEFAULT_PUSH_LIMIT) -> frozenset[str]:
    """The digests (an index's child: its index) ECR's preview should settle: every one the repository holds
    when the evaluator cannot read the policy, else those it expires now. Empty without a policy."""
    if repo.policy is None:
        return frozenset()
    known = {i.digest for i in repo.images}
    try:
        found = repo.forecast(digests, now, limit)
    except InputError:
        return frozenset(repo.children.get(d, d) for d in digests if repo.children.get(d, d) in known)
    return frozenset(repo.children.get(d, d) for d, f in found.items() if f.expired_now)


def _loose_rule(text: str, priority: int) -> Rule:
    """Rule `priority` of a policy the evaluator refuses, read as far as messages need it."""
    try:
        raw: Any = next((r for r in json.loads(text).get("rules", []) if r.get("rulePriority") == priority), {})
        selection = raw.get("selection") or {}
        return Rule(priority, str(raw.get("description", "")), str(selection.get("tagStatus", "?")),
                    tuple(selection.get("tagPrefixList", ())), tuple(selection.get("tagPatternList", ())),
                    str(selection.get("countType", "?")), int(selection.get("countNumber", 0)))
    except (ValueError, AttributeError, TypeError):
        return Rule(priority, "", "?", (), (), "?", 0)


def judge(repo: RepositoryLifecycle, digests: Collection[str], now: datetime, limit: int = DEFAULT_PUSH_LIMIT,
          preview: PolicyPreview | None = None) -> dict[str, Forecast]:
    """The evaluator's forecasts, with ECR's preview (when given) settling the next run: AWS's answer wins.

    For a policy the evaluator refuses, the preview alone answers for the next run (later runs unknown); without
    a usable preview that stays an InputError naming why.
    """
    if repo.policy is None:
        return {}
    try:
        found = repo.forecast(digests, now, limit)
    except InputError as exc:
        if preview is None or preview.unavailable:
            why = f"; ECR's lifecycle policy preview: {preview.unavailable}" if preview else ""
            raise InputError(f"{exc}{why}") from None
        return {d: _previewed(repo, d, preview, "the evaluator does not model this policy") for d in digests
                if repo.children.get(d, d) in {i.digest for i in repo.images}}
    if preview is None:
        return found
    out: dict[str, Forecast] = {}
    for digest, f in found.items():
        if not f.expired_now:
            out[digest] = f
        elif preview.unavailable:
            out[digest] = replace(f, note=preview.unavailable)
        else:
            said = f"the evaluator expected {f.rule.label} to expire it on the next run"
            answer = _previewed(repo, digest, preview, said)
            agrees = answer.expired_now and answer.rule.priority == f.rule.priority and answer.action == "expire"
            out[digest] = replace(f, source="preview") if agrees else answer
    return out


def _previewed(repo: RepositoryLifecycle, digest: str, preview: PolicyPreview, why: str) -> Forecast:
    """What ECR's preview says the next run does to `digest`; `why` is noted where the evaluator did not agree."""
    hit = preview.actions.get(repo.children.get(digest, digest))
    if hit is None:
        return Forecast(digest, _loose_rule("", 0), False, None, None, "preview",
                        later_unknown=True, note=f"{why}; ECR's preview: the next run keeps it (AWS's answer wins)")
    action, priority = hit
    rule = _loose_rule(repo.policy or "", priority)
    return Forecast(digest, rule, True, 0, None, "preview", "archive" if action == "TRANSITION" else "expire",
                    later_unknown=True, note=f"{why}; ECR's preview: {rule.label} {action.lower()}s it on the next "
                    "run (AWS's answer wins)")
