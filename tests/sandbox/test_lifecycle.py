"""ECR lifecycle policies applied in the sandbox: rules as ECR documents them, deletions seen over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from guard.sandbox.lifecycle import apply_lifecycle_policies, put_lifecycle_policy
from guard.sandbox.scenarios import Scenario

REPO = "shop/api"


def _rule(priority: int, tag_status: str, count_type: str = "imageCountMoreThan", count: int = 1,
          **filters: Any) -> dict[str, Any]:
    selection: dict[str, Any] = {"tagStatus": tag_status, "countType": count_type, "countNumber": count, **filters}
    if count_type == "sinceImagePushed":
        selection["countUnit"] = "days"
    return {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}


def _tags(aws: Scenario, repo: str = REPO) -> dict[str, tuple[str, ...]]:
    """digest -> tags of every image in the repository, as DescribeImages answers now."""
    details = aws.client("ecr").describe_images(repositoryName=repo)["imageDetails"]
    return {d["imageDigest"]: tuple(d.get("imageTags", ())) for d in details}


def _push(aws: Scenario, *tags: str, repo: str = REPO) -> dict[str, str]:
    aws.repository(repo)
    return {tag: aws.push_image(repo, tag) for tag in tags}


def test_count_based_expiry_keeps_the_newest_n(aws: Scenario) -> None:
    pushed = _push(aws, "v1", "v2", "v3", "v4", "v5")
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [_rule(1, "any", count=3)]})
    assert apply_lifecycle_policies(aws.sandbox) == [(REPO, pushed["v1"]), (REPO, pushed["v2"])]
    assert sorted(t for tags in _tags(aws).values() for t in tags) == ["v3", "v4", "v5"]
    missing = aws.client("ecr").batch_get_image(repositoryName=REPO, imageIds=[{"imageTag": "v1"}])
    assert missing["images"] == [] and missing["failures"][0]["failureCode"] == "ImageNotFound"
    assert apply_lifecycle_policies(aws.sandbox) == []  # three left: nothing more to expire


def test_tag_prefix_selection(aws: Scenario) -> None:
    pushed = _push(aws, "prod-1", "dev-1", "prod-2", "dev-2", "prod-3")
    put_lifecycle_policy(aws.client("ecr"), REPO, {"rules": [_rule(1, "tagged", count=1, tagPrefixList=["prod"])]})
    assert apply_lifecycle_policies(aws.sandbox) == [(REPO, pushed["prod-1"]), (REPO, pushed["prod-2"])]
    assert sorted(t for tags in _tags(aws).values() for t in tags) == ["dev-1", "dev-2", "prod-3"]


def test_every_prefix_or_pattern_must_match_some_tag(aws: Scenario) -> None:
    pushed = _push(aws, "rc-1", "rc-2", "build-7", "build-8")
    ecr = aws.client("ecr")
    manifest = ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageTag": "rc-2"}])["images"][0]
    ecr.put_image(repositoryName=REPO, imageManifest=manifest["imageManifest"], imageTag="release-2",
                  imageDigest=pushed["rc-2"])  # rc-2 is also release-2
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [
        _rule(1, "tagged", count=1, tagPatternList=["rc-*", "release*"]),  # only rc-2/release-2 has both
        _rule(2, "tagged", count=1, tagPrefixList=["build-", "ok"]),  # no build image is also "ok..."
    ]})
    assert apply_lifecycle_policies(aws.sandbox) == []
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [_rule(1, "tagged", count=1, tagPatternList=["rc-*"])]})
    assert apply_lifecycle_policies(aws.sandbox) == [(REPO, pushed["rc-1"])]


def test_untagged_expiry_spares_tagged_images_and_index_children(aws: Scenario) -> None:
    aws.repository(REPO)
    first = aws.push_image(REPO, "v1")
    second = aws.push_image(REPO, "v1", oci=True)  # moves the tag: the first image stays, untagged
    tagged = aws.push_image(REPO, "v1", arch="arm64")  # and again: the second is untagged too
    index = aws.push_index(REPO, "multi")  # two platform manifests and two attestations, all untagged
    children = [d for d, tags in _tags(aws).items() if not tags and d not in (first, second)]
    assert len(children) == 4
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [_rule(1, "untagged", count=1)]})
    assert apply_lifecycle_policies(aws.sandbox) == [(REPO, first)]
    left = _tags(aws)
    assert set(left) == {second, tagged, index, *children}
    assert left[tagged] == ("v1",) and left[index] == ("multi",)


def test_since_image_pushed_with_now_in_the_future(aws: Scenario) -> None:
    pushed = _push(aws, "pr-41", "pr-42", "main-9")
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [
        _rule(1, "tagged", "sinceImagePushed", count=14, tagPrefixList=["pr-"])]})
    now = datetime.now(UTC)
    assert apply_lifecycle_policies(aws.sandbox, now=now + timedelta(days=13)) == []
    assert len(_tags(aws)) == 3
    assert apply_lifecycle_policies(aws.sandbox, now=now + timedelta(days=15)) == [
        (REPO, pushed["pr-41"]), (REPO, pushed["pr-42"])]
    assert list(_tags(aws).values()) == [("main-9",)]


def test_priority_order_as_in_the_ecr_guide(aws: Scenario) -> None:
    """ECR's Example A: A [beta-1, prod-1], B [beta-2, prod-2], C [beta-3]; keep 1 prod, then keep 1 beta."""
    ecr = aws.client("ecr")
    pushed = _push(aws, "beta-1", "beta-2", "beta-3")
    for beta, prod in (("beta-1", "prod-1"), ("beta-2", "prod-2")):
        manifest = ecr.batch_get_image(repositoryName=REPO, imageIds=[{"imageTag": beta}])["images"][0]
        ecr.put_image(repositoryName=REPO, imageManifest=manifest["imageManifest"], imageTag=prod,
                      imageDigest=pushed[beta])
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [
        _rule(2, "tagged", count=1, tagPrefixList=["beta"]),
        _rule(1, "tagged", count=1, tagPrefixList=["prod"]),
    ]})
    # Rule 2 would expire A and B, but B matches rule 1's selection, so only A (rule 1's choice) expires.
    assert apply_lifecycle_policies(aws.sandbox) == [(REPO, pushed["beta-1"])]
    assert set(_tags(aws)) == {pushed["beta-2"], pushed["beta-3"]}


def test_higher_priority_selection_protects_but_still_counts(aws: Scenario) -> None:
    pushed = _push(aws, "release-1", "x1", "release-2", "x2", "x3")
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [
        _rule(1, "tagged", count=10, tagPrefixList=["release"]),
        _rule(2, "any", count=3),
    ]})
    # Newest first: x3, x2, release-2 are kept; of x1 and release-1 only x1 may go (release-1 is rule 1's).
    assert apply_lifecycle_policies(aws.sandbox) == [(REPO, pushed["x1"])]
    assert sorted(t for tags in _tags(aws).values() for t in tags) == ["release-1", "release-2", "x2", "x3"]


def test_repositories_without_a_policy_are_untouched(aws: Scenario) -> None:
    _push(aws, "v1", "v2", "v3")
    _push(aws, "v1", "v2", "v3", repo="shop/worker")
    before = _tags(aws, "shop/worker")
    put_lifecycle_policy(aws.sandbox, REPO, {"rules": [_rule(1, "any", count=1)]})
    expired = apply_lifecycle_policies(aws.sandbox)
    assert {repo for repo, _ in expired} == {REPO} and len(expired) == 2
    assert _tags(aws, "shop/worker") == before
    with pytest.raises(ClientError, match="LifecyclePolicyNotFoundException"):
        aws.client("ecr").get_lifecycle_policy(repositoryName="shop/worker")


@pytest.mark.parametrize("rules, reason", [
    ([_rule(1, "tagged")], "exactly one of tagPrefixList and tagPatternList"),
    ([_rule(1, "tagged", tagPrefixList=["a"], tagPatternList=["b*"])], "exactly one of"),
    ([_rule(1, "untagged", tagPrefixList=["a"])], "need tagStatus tagged"),
    ([_rule(1, "untagged"), _rule(1, "tagged", tagPrefixList=["a"])], "unique"),
    ([_rule(1, "untagged"), _rule(2, "untagged", "sinceImagePushed")], "only one rule may select untagged"),
    ([_rule(1, "any"), _rule(2, "untagged")], "tagStatus any must have the highest rulePriority"),
    ([_rule(1, "tagged", tagPatternList=["*a*b*c*d*e"])], "more than 4 wildcards"),
    ([{**_rule(1, "any"), "selection": {**_rule(1, "any")["selection"], "countUnit": "days"}}],
     "countUnit is only for sinceImagePushed"),
    ([{**_rule(1, "any", "sinceImagePushed"),
       "selection": {k: v for k, v in _rule(1, "any", "sinceImagePushed")["selection"].items() if k != "countUnit"}}],
     "sinceImagePushed needs countUnit days"),
])
def test_policies_ecr_refuses_are_refused_and_not_stored(aws: Scenario, rules: list[dict[str, Any]],
                                                         reason: str) -> None:
    aws.repository(REPO)
    ecr = aws.client("ecr")
    with pytest.raises(ClientError, match=reason) as err:
        ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=json.dumps({"rules": rules}))
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError, match="LifecyclePolicyNotFoundException"):
        ecr.get_lifecycle_policy(repositoryName=REPO)


def test_a_valid_policy_is_stored_as_given(aws: Scenario) -> None:
    aws.repository(REPO)
    text = json.dumps({"rules": [_rule(1, "tagged", tagPatternList=["prod*"]), _rule(2, "untagged"),
                                 _rule(3, "any", count=50)]})
    assert put_lifecycle_policy(aws.sandbox, REPO, text) == text
    assert aws.client("ecr").get_lifecycle_policy(repositoryName=REPO)["lifecyclePolicyText"] == text
