"""ECR lifecycle policies, applied: moto stores them (Put/Get/DeleteLifecyclePolicy) but never runs them.

`apply_lifecycle_policies` plays one run of ECR's lifecycle evaluator over every repository of the sandbox's
default account and region, entirely through the ECR API over HTTP (GetLifecyclePolicy, DescribeImages,
BatchGetImage, BatchDeleteImage), so an expiry is a real deletion the watchdog can see. It follows ECR's
documented evaluation rules:

- rules run in rulePriority order (lowest first); the action is `expire`;
- selection: `tagStatus` `any`, `untagged`, or `tagged` with `tagPrefixList` (every prefix starts some tag of
  the image) or `tagPatternList` (every pattern, `*` as wildcard, matches some tag);
- `imageCountMoreThan` keeps the newest N selected images by imagePushedAt and expires the rest;
  `sinceImagePushed` (countUnit `days`) expires selected images pushed more than N days before `now`;
- an image that matches the tag selection of a rule cannot be expired by a lower-priority rule, but lower
  rules still count it (ECR's Example A: prod-1/beta-1 A, prod-2/beta-2 B, beta-3 C, keep 1 prod then keep
  1 beta expires only A);
- an image referenced by an image index (multi-arch manifests, attestations) of the repository is not
  considered while the index exists.

Push times are ECR's own imagePushedAt as DescribeImages reports it (moto stamps the push, in whole seconds);
ties are broken by the order DescribeImages lists images, which is push order. Pass `now` in the future to
age images.

`preview` answers ECR's lifecycle policy preview (StartLifecyclePolicyPreview / GetLifecyclePolicyPreview, filled
in `guard.sandbox.aws`) with this same engine, independent of the product's evaluator. A rule whose action is
`transition` (`targetStorageClass` `archive`) is previewed (action TRANSITION) but not applied: moto has no
archive storage class. Not modelled: the 24-hour delay of real ECR, the `storageClass` selection,
`sinceImageTransitioned`, and `sinceImagePulled` (moto records no pull time: DescribeImages gives no
`lastRecordedPullTime`), which are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from guard.sandbox.aws import AwsSandbox

IMAGE_COUNT_MORE_THAN = "imageCountMoreThan"
SINCE_IMAGE_PUSHED = "sinceImagePushed"
_TAG_STATUSES = ("tagged", "untagged", "any")
_MAX_WILDCARDS = 4
_BATCH = 100
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
_MANIFEST_TYPES = (*_INDEX_TYPES, "application/vnd.oci.image.manifest.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json")


@dataclass(frozen=True)
class LifecycleRule:
    """One rule of a lifecycle policy, validated."""

    priority: int
    action: str  # expire | transition (to the archive storage class)
    tag_status: str
    prefixes: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    count_type: str
    count: int

    def selects(self, tags: Sequence[str]) -> bool:
        """Whether an image with `tags` meets the rule's tag selection."""
        if self.tag_status == "any":
            return True
        if self.tag_status == "untagged":
            return not tags
        return all(any(t.startswith(p) for t in tags) for p in self.prefixes) \
            and all(any(p.fullmatch(t) for t in tags) for p in self.patterns)


@dataclass(frozen=True)
class _Image:
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime
    position: int


def _fail(reason: str) -> ValueError:
    return ValueError(f"Lifecycle policy validation failure: {reason}")


def _strings(selection: Mapping[str, Any], key: str, priority: int) -> tuple[str, ...]:
    value = selection.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(f"rule {priority}: {key} must be a list of non-empty strings")
    return tuple(value)


def _rule(raw: Any) -> LifecycleRule:
    if not isinstance(raw, dict) or not isinstance(raw.get("selection"), dict):
        raise _fail("each rule must be an object with a selection")
    priority, selection = raw.get("rulePriority"), raw["selection"]
    if type(priority) is not int or priority < 1:
        raise _fail("rulePriority must be a positive integer")
    action = raw.get("action")
    if not isinstance(action, dict) or action.get("type") not in ("expire", "transition"):
        raise _fail(f"rule {priority}: action.type must be expire or transition")
    if (action.get("type") == "transition") != (action.get("targetStorageClass") == "archive") \
            or set(action) - {"type", "targetStorageClass"}:
        raise _fail(f"rule {priority}: action.targetStorageClass archive goes with type transition, and only there")
    if "storageClass" in selection:
        raise _fail(f"rule {priority}: selection.storageClass is not modelled by the sandbox")
    status, count, count_type = selection.get("tagStatus"), selection.get("countNumber"), selection.get("countType")
    if status not in _TAG_STATUSES:
        raise _fail(f"rule {priority}: tagStatus must be one of {', '.join(_TAG_STATUSES)}")
    prefixes, patterns = _strings(selection, "tagPrefixList", priority), _strings(selection, "tagPatternList", priority)
    if status == "tagged" and len([x for x in (prefixes, patterns) if x]) != 1:
        raise _fail(f"rule {priority}: tagStatus tagged needs exactly one of tagPrefixList and tagPatternList")
    if status != "tagged" and (prefixes or patterns):
        raise _fail(f"rule {priority}: tagPrefixList and tagPatternList need tagStatus tagged")
    if any(p.count("*") > _MAX_WILDCARDS for p in patterns):
        raise _fail(f"rule {priority}: a tagPatternList entry has more than {_MAX_WILDCARDS} wildcards")
    if type(count) is not int or count < 1:
        raise _fail(f"rule {priority}: countNumber must be a positive integer")
    if count_type not in (IMAGE_COUNT_MORE_THAN, SINCE_IMAGE_PUSHED):
        raise _fail(f"rule {priority}: countType must be {IMAGE_COUNT_MORE_THAN} or {SINCE_IMAGE_PUSHED}")
    unit = selection.get("countUnit")
    if count_type == IMAGE_COUNT_MORE_THAN and unit is not None:
        raise _fail(f"rule {priority}: countUnit is only for {SINCE_IMAGE_PUSHED}")
    if count_type == SINCE_IMAGE_PUSHED and unit != "days":
        raise _fail(f"rule {priority}: {SINCE_IMAGE_PUSHED} needs countUnit days")
    compiled = tuple(re.compile(".*".join(re.escape(part) for part in p.split("*"))) for p in patterns)
    return LifecycleRule(priority, str(action["type"]), status, prefixes, compiled, count_type, count)


def parse_policy(text: str) -> tuple[LifecycleRule, ...]:
    """The policy's rules in evaluation order; ValueError saying why for a policy ECR refuses."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise _fail("Could not map policyString into LifecyclePolicy.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list) or not doc["rules"]:
        raise _fail("the policy needs a non-empty list of rules")
    rules = sorted((_rule(raw) for raw in doc["rules"]), key=lambda r: r.priority)
    priorities = [r.priority for r in rules]
    if len(set(priorities)) != len(priorities):
        raise _fail("rulePriority values must be unique")
    if sum(r.tag_status == "untagged" for r in rules) > 1:
        raise _fail("only one rule may select untagged images")
    if any(r.tag_status == "any" for r in rules[:-1]):
        raise _fail("a rule with tagStatus any must have the highest rulePriority")
    return tuple(rules)


def _evaluate(rules: Iterable[LifecycleRule], images: Sequence[_Image], now: datetime
              ) -> list[tuple[_Image, LifecycleRule]]:
    """The images one evaluator run acts on, oldest first, each with the rule that acts on it."""
    claimed: set[str] = set()  # images a higher-priority rule selected: counted below, never acted on below
    acted: dict[str, tuple[_Image, LifecycleRule]] = {}
    for rule in rules:
        selected = [i for i in images if rule.selects(i.tags)]
        if rule.count_type == IMAGE_COUNT_MORE_THAN:
            doomed = sorted(selected, key=lambda i: (i.pushed_at, i.position), reverse=True)[rule.count:]
        else:
            doomed = [i for i in selected if i.pushed_at < now - timedelta(days=rule.count)]
        acted.update((i.digest, (i, rule)) for i in doomed if i.digest not in claimed)
        claimed.update(i.digest for i in selected)
    return sorted(acted.values(), key=lambda pair: (pair[0].pushed_at, pair[0].position))


def _expire(rules: Iterable[LifecycleRule], images: Sequence[_Image], now: datetime) -> list[_Image]:
    """The images one evaluator run expires (transitions are not applied), oldest first."""
    return [image for image, rule in _evaluate(rules, images, now) if rule.action == "expire"]


def preview(repository: Any, text: str, now: datetime) -> list[dict[str, Any]]:
    """ECR's `previewResults` for `text` over a moto ECR repository's images, oldest first (ValueError: refused).

    Reads moto's repository object in the server process (the fill answers inside a request, so it does not call
    the API back); images an index of the repository references are left out, as the policy's run leaves them.
    """
    rules = parse_policy(text)
    stored = list(repository.images)
    children: set[str] = set()
    for image in stored:
        if image.image_manifest_media_type in _INDEX_TYPES:
            children.update(str(m.get("digest")) for m in json.loads(image.image_manifest).get("manifests", []))
    images = [_Image(i.image_digest, tuple(i.image_tags), datetime.fromtimestamp(i.image_pushed_at, UTC), n)
              for n, i in enumerate(stored) if i.image_digest not in children]
    return [{"imageTags": list(image.tags), "imageDigest": image.digest,
             "imagePushedAt": image.pushed_at.timestamp(), "appliedRulePriority": rule.priority,
             "action": {"type": "EXPIRE"} if rule.action == "expire"
             else {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"}}
            for image, rule in _evaluate(rules, images, now)]


def _index_children(ecr: Any, repository: str, indexes: Sequence[str]) -> set[str]:
    """Digests of the manifests the repository's image indexes reference."""
    children: set[str] = set()
    for start in range(0, len(indexes), _BATCH):
        found = ecr.batch_get_image(repositoryName=repository, acceptedMediaTypes=list(_MANIFEST_TYPES),
                                    imageIds=[{"imageDigest": d} for d in indexes[start:start + _BATCH]])
        for image in found["images"]:
            children.update(str(m["digest"]) for m in json.loads(image["imageManifest"]).get("manifests", []))
    return children


def _images(ecr: Any, repository: str) -> list[_Image]:
    """The repository's images that lifecycle rules consider (not those an index references)."""
    details = [d for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository)
               for d in page["imageDetails"]]
    indexes = [str(d["imageDigest"]) for d in details if d.get("imageManifestMediaType") in _INDEX_TYPES]
    children = _index_children(ecr, repository, indexes)
    return [_Image(str(d["imageDigest"]), tuple(d.get("imageTags", ())), d["imagePushedAt"], position)
            for position, d in enumerate(details) if d["imageDigest"] not in children]


def apply_lifecycle_policies(sandbox: AwsSandbox, now: datetime | None = None) -> list[tuple[str, str]]:
    """Run every repository's lifecycle policy once (default account and region); return what expired."""
    ecr = sandbox.client("ecr")
    when = now or datetime.now(UTC)
    expired: list[tuple[str, str]] = []
    repositories = [str(r["repositoryName"]) for page in ecr.get_paginator("describe_repositories").paginate()
                    for r in page["repositories"]]
    for repository in sorted(repositories):
        try:
            text = ecr.get_lifecycle_policy(repositoryName=repository)["lifecyclePolicyText"]
        except ecr.exceptions.LifecyclePolicyNotFoundException:
            continue
        doomed = [i.digest for i in _expire(parse_policy(text), _images(ecr, repository), when)]
        for start in range(0, len(doomed), _BATCH):
            batch = doomed[start:start + _BATCH]
            answer = ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageDigest": d} for d in batch])
            # Failures, not imageIds: moto lists no imageId for a deleted untagged image (ECR lists its digest).
            failed = {f["imageId"].get("imageDigest") for f in answer["failures"]}
            expired += [(repository, d) for d in batch if d not in failed]
    return expired


def put_lifecycle_policy(target: AwsSandbox | Any, repository: str, policy: Mapping[str, Any] | str) -> str:
    """PutLifecyclePolicy over HTTP (`target`: the sandbox or an ECR client); return the stored policy text."""
    ecr = target.client("ecr") if isinstance(target, AwsSandbox) else target
    text = policy if isinstance(policy, str) else json.dumps(policy)
    return str(ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=text)["lifecyclePolicyText"])
