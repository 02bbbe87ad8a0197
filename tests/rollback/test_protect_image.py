"""protect_image: an in-use image a lifecycle rule will expire gets a keep tag on its digest, policy-gated."""

from __future__ import annotations

from typing import Any

import pytest

from guard.actions import make_action
from guard.agent.playbook import PlanContext, Strategy, escalation
from guard.config import Allow, parse_remediate_config
from guard.iam import generate_policy, scope_from_config
from guard.journal import EntryKind, Journal
from guard.models import Incident, InputError
from guard.postmortem import postmortem_from_journal
from guard.sandbox.lifecycle import apply_lifecycle_policies, put_lifecycle_policy
from tests.support.remedyrun import ALLOW, GOOD, World

KEEP = {"rulePriority": 1, "description": "keep protected images",
        "selection": {"tagStatus": "tagged", "tagPrefixList": ["keep-"], "countType": "imageCountMoreThan",
                      "countNumber": 9999}, "action": {"type": "expire"}}
NEWEST = {"rulePriority": 2, "description": "keep only the newest image",
          "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
          "action": {"type": "expire"}}
PROTECT = (*ALLOW, Allow("ecr:shop/*", ("protect_image",)))


def _forecast_incident(world: World, *rules: dict[str, Any]) -> tuple[Incident, str]:
    """prod/api and prod/worker run the GOOD image; a newer push puts it in reach of `rules`: the incident."""
    good = world.aws.client("ecr").describe_images(repositoryName="shop/api")["imageDetails"][0]["imageDigest"]
    world.aws.push_image("shop/api", "v2")
    put_lifecycle_policy(world.aws.sandbox, "shop/api", {"rules": list(rules)})
    [incident] = [i for i in world.sweep().incidents if any(s.evidence.get("digest") == good for s in i.signals)]
    return incident, str(good)


def _tags(world: World, digest: str) -> list[str]:
    """The tags on `digest` now ([] when the image is gone)."""
    details = world.aws.client("ecr").describe_images(repositoryName="shop/api")["imageDetails"]
    return sorted(t for d in details if d["imageDigest"] == digest for t in d.get("imageTags", []))


def test_protect_tags_the_digest_and_the_policy_spares_it(world: World) -> None:
    incident, good = _forecast_incident(world, KEEP, NEWEST)
    tag = "keep-" + good.removeprefix("sha256:")[:12]
    report = world.remediate(incident, allow=PROTECT)
    assert report.status == "repaired", report.to_json()
    [result] = report.results
    assert result.action["kind"] == "protect_image" and result.action["params"]["tag"] == tag
    assert _tags(world, good) == sorted([GOOD[:7], tag])
    got = world.aws.client("ecr").batch_get_image(repositoryName="shop/api", imageIds=[{"imageTag": tag}])
    assert [i["imageId"]["imageDigest"] for i in got["images"]] == [good]
    apply_lifecycle_policies(world.aws.sandbox)  # the policy runs: the protected image stays
    assert _tags(world, good) == sorted([GOOD[:7], tag])
    entries = Journal(world.store, incident.id).entries()
    [started] = [e for e in entries if e.kind is EntryKind.ACTION_STARTED]
    assert 'rule 2 ("keep only the newest image")' in started.data["precondition"]
    [verified] = [e for e in entries if e.kind is EntryKind.VERIFIED]  # repaired: nothing escalated
    assert verified.data["ok"] and verified.data["evidence"]["tagged_digest"] == good
    postmortem = postmortem_from_journal(world.store, incident.id)
    assert f"as {tag} so that lifecycle rule 2 (\"keep only the newest image\") no longer expires it" in postmortem
    assert "the lifecycle policy no longer expires it" in postmortem


def test_a_tag_no_rule_keeps_is_not_verified_and_goes_to_a_human(world: World) -> None:
    only_newest = {**NEWEST, "rulePriority": 1}
    incident, good = _forecast_incident(world, only_newest)
    report = world.remediate(incident, allow=PROTECT)
    assert report.status == "escalated", report.to_json()
    [verified] = [e for e in Journal(world.store, incident.id).entries()
                  if e.kind is EntryKind.VERIFIED and e.data["action_id"].startswith("protect_image-")]
    assert not verified.data["ok"] and 'rule 1 ("keep only the newest image")' in verified.data["reason"]
    assert world.pager.received  # a person is told the tag did not keep it
    apply_lifecycle_policies(world.aws.sandbox)
    assert _tags(world, good) == []  # an `any` rule counts tagged images too: only a keep rule saves it


def test_dry_run_changes_nothing(world: World) -> None:
    incident, good = _forecast_incident(world, KEEP, NEWEST)
    report = world.remediate(incident, allow=PROTECT, dry_run=True)
    [dry] = [r for r in report.results if r.action["kind"] == "protect_image"]
    assert dry.status == "refused" and "dry_run" in dry.reason and "would act" in dry.reason
    assert _tags(world, good) == [GOOD[:7]]


def test_not_allowed_it_is_not_proposed_and_a_proposal_is_refused_with_the_rule(world: World) -> None:
    incident, good = _forecast_incident(world, KEEP, NEWEST)
    report = world.remediate(incident)  # the default allowlist names no repository
    assert report.status == "escalated" and [r.action["kind"] for r in report.results] == ["escalate"]
    image = f"{world.aws.repository('shop/api')}@{good}"

    def insistent(incident: Incident, ctx: PlanContext, journal: object, actor: str) -> list[Strategy]:
        protect = make_action("protect_image", image=image, tag="keep-" + good[7:19])
        return [Strategy("protect anyway", "a planner outside the allowlist", (protect,)),
                escalation(incident, "refused")]

    world.remediate(incident, planner=insistent)
    refusals = [e.data for e in Journal(world.store, incident.id).entries()
                if e.kind is EntryKind.DECISION and not e.data["allowed"]]
    assert [r["rule"] for r in refusals] == ["allowlist"]
    assert _tags(world, good) == [GOOD[:7]]


@pytest.mark.parametrize("case", ["existing_tag", "other_digest"])
def test_only_a_fresh_prefixed_tag_on_a_digest_the_incident_names(world: World, case: str) -> None:
    incident, good = _forecast_incident(world, KEEP, NEWEST)
    repo = world.aws.repository("shop/api")
    v2 = world.aws.client("ecr").batch_get_image(repositoryName="shop/api", imageIds=[{"imageTag": "v2"}])
    newest = str(v2["images"][0]["imageId"]["imageDigest"])
    image, tag = (f"{repo}@{good}", "v2") if case == "existing_tag" else (f"{repo}@{newest}", "keep-" + newest[7:19])

    def hostile(incident: Incident, ctx: PlanContext, journal: object, actor: str) -> list[Strategy]:
        return [Strategy("hostile", "a planner reaching past the incident",
                         (make_action("protect_image", image=image, tag=tag),)), escalation(incident, "refused")]

    assert world.remediate(incident, planner=hostile, allow=PROTECT).status == "escalated"
    [refusal] = [e.data for e in Journal(world.store, incident.id).entries()
                 if e.kind is EntryKind.DECISION and not e.data["allowed"]]
    assert refusal["rule"] == "image_target"
    assert ("protect_tag_prefix" if case == "existing_tag" else "not an image incident") in refusal["reason"]
    assert _tags(world, good) == [GOOD[:7]] and _tags(world, newest) == ["v2"]


@pytest.mark.parametrize("prefix", ["", "-keep", "keep me", "k" * 101, 7])
def test_a_protect_tag_prefix_that_cannot_start_a_tag_is_refused(prefix: object) -> None:
    with pytest.raises(InputError, match="protect_tag_prefix"):
        parse_remediate_config({"protect_tag_prefix": prefix}, "guard.toml")
    assert parse_remediate_config({"protect_tag_prefix": "retain."}, "guard.toml").protect_tag_prefix == "retain."


def test_iam_policy_lets_protect_image_tag_only_the_allowed_repositories(world: World) -> None:
    world.aws.repository("other/tool")
    world.aws.repository("billing")
    runtime = world.runtime(allow=(*PROTECT, Allow("ecr:billing", ("protect_image",)),
                                   Allow("ecr:other/*", ("ecs_rollback",))))
    scope = scope_from_config(runtime.config, runtime.aws, ["remediate"])
    assert scope.protected_repositories == ("billing", "shop/api")  # patterns matched against what exists
    [statement] = [s for s in generate_policy(scope)["Statement"] if s["Sid"] == "ProtectImages"]
    account = scope.account
    assert statement["Action"] == ["ecr:PutImage"]
    assert statement["Resource"] == [f"arn:aws:ecr:{scope.region}:{account}:repository/{name}"
                                     for name in ("billing", "shop/api")]
