"""The sandbox's ECR lifecycle policy preview fill: AWS's request and response shapes, computed by its own engine."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from guard.sandbox.lifecycle import apply_lifecycle_policies, put_lifecycle_policy
from guard.sandbox.scenarios import Scenario

KEEP_TWO_UNTAGGED = {"rules": [{"rulePriority": 3, "description": "keep two untagged",
                                "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                                              "countNumber": 2}, "action": {"type": "expire"}},
                               {"rulePriority": 9, "description": "keep one release",
                                "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                                              "countType": "imageCountMoreThan", "countNumber": 1},
                                "action": {"type": "expire"}}]}


def _images(aws: Scenario) -> tuple[list[str], list[str]]:
    """Four untagged builds and three releases, oldest first."""
    aws.repository("api")
    platforms = [("amd64", False), ("arm64", False), ("amd64", True), ("arm64", True)]
    untagged = [aws.push_image("api", None, arch=a, oci=o) for a, o in platforms]
    tagged = [aws.push_image("api", f"v{i}", arch=platforms[i][0], oci=True, os="windows") for i in range(3)]
    return untagged, tagged


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _completed(ecr: Any, **kw: Any) -> dict[str, Any]:
    ecr.start_lifecycle_policy_preview(repositoryName="api", **kw)
    first = ecr.get_lifecycle_policy_preview(repositoryName="api")
    assert first["status"] == "IN_PROGRESS" and first["previewResults"] == []
    return first


def test_a_preview_runs_then_completes_with_ecr_shapes(aws: Scenario) -> None:
    untagged, tagged = _images(aws)
    put_lifecycle_policy(aws.sandbox, "api", KEEP_TWO_UNTAGGED)
    ecr = aws.client("ecr")
    started = ecr.start_lifecycle_policy_preview(repositoryName="api")
    assert started["status"] == "IN_PROGRESS" and json.loads(started["lifecyclePolicyText"]) == KEEP_TWO_UNTAGGED
    with pytest.raises(ClientError) as busy:
        ecr.start_lifecycle_policy_preview(repositoryName="api")
    assert _code(busy) == "LifecyclePolicyPreviewInProgressException"
    assert ecr.get_lifecycle_policy_preview(repositoryName="api")["status"] == "IN_PROGRESS"
    done = ecr.get_lifecycle_policy_preview(repositoryName="api")
    assert done["status"] == "COMPLETE" and done["summary"] == {"expiringImageTotalCount": 4}
    assert done["registryId"] == "123456789012" and done["repositoryName"] == "api"
    by_digest = {r["imageDigest"]: r for r in done["previewResults"]}
    assert list(by_digest) == [untagged[0], untagged[1], tagged[0], tagged[1]]  # oldest first
    first = by_digest[untagged[0]]
    assert first["action"] == {"type": "EXPIRE"} and first["appliedRulePriority"] == 3 and first["imageTags"] == []
    assert by_digest[tagged[1]]["imageTags"] == ["v1"] and by_digest[tagged[1]]["appliedRulePriority"] == 9
    assert first["imagePushedAt"].tzinfo is not None
    # The preview is what the policy's run then does.
    assert sorted(d for _, d in apply_lifecycle_policies(aws.sandbox)) == sorted(by_digest)


def test_filters_and_pages(aws: Scenario) -> None:
    untagged, tagged = _images(aws)
    put_lifecycle_policy(aws.sandbox, "api", KEEP_TWO_UNTAGGED)
    ecr = aws.client("ecr")
    _completed(ecr)
    picked = ecr.get_lifecycle_policy_preview(repositoryName="api", imageIds=[
        {"imageDigest": untagged[1]}, {"imageDigest": untagged[3]}, {"imageTag": "v0"}])
    assert [r["imageDigest"] for r in picked["previewResults"]] == [untagged[1], tagged[0]]  # untagged[3] is kept
    assert "nextToken" not in picked
    only = ecr.get_lifecycle_policy_preview(repositoryName="api", filter={"tagStatus": "tagged"})
    assert [r["imageDigest"] for r in only["previewResults"]] == tagged[:2]
    page = ecr.get_lifecycle_policy_preview(repositoryName="api", maxResults=3)
    rest = ecr.get_lifecycle_policy_preview(repositoryName="api", maxResults=3, nextToken=page["nextToken"])
    assert len(page["previewResults"]) == 3 and len(rest["previewResults"]) == 1 and "nextToken" not in rest
    with pytest.raises(ClientError) as both:
        ecr.get_lifecycle_policy_preview(repositoryName="api", maxResults=3, imageIds=[{"imageTag": "v0"}])
    assert _code(both) == "InvalidParameterException"


def test_a_given_policy_text_is_previewed_instead_of_the_stored_one(aws: Scenario) -> None:
    untagged, _ = _images(aws)
    ecr = aws.client("ecr")
    with pytest.raises(ClientError) as none:
        ecr.start_lifecycle_policy_preview(repositoryName="api")
    assert _code(none) == "LifecyclePolicyNotFoundException"
    with pytest.raises(ClientError) as never:
        ecr.get_lifecycle_policy_preview(repositoryName="api")
    assert _code(never) == "LifecyclePolicyPreviewNotFoundException"
    text = json.dumps({"rules": [KEEP_TWO_UNTAGGED["rules"][0]]})
    _completed(ecr, lifecyclePolicyText=text)
    done = ecr.get_lifecycle_policy_preview(repositoryName="api")
    assert done["lifecyclePolicyText"] == text and [r["imageDigest"] for r in done["previewResults"]] == untagged[:2]
    with pytest.raises(ClientError) as missing:
        ecr.start_lifecycle_policy_preview(repositoryName="nope")
    assert _code(missing) == "RepositoryNotFoundException"
    with pytest.raises(ClientError) as refused:
        ecr.start_lifecycle_policy_preview(repositoryName="api", lifecyclePolicyText=json.dumps({"rules": [{
            "rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days",
                                             "countNumber": 5}, "action": {"type": "expire"}}]}))
    assert _code(refused) == "InvalidParameterException"  # moto records no pull time: not modelled, refused


def test_transitions_are_stored_and_previewed_but_never_applied(aws: Scenario) -> None:
    untagged, _ = _images(aws)
    archive = {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                                                           "countNumber": 3},
                          "action": {"type": "transition", "targetStorageClass": "archive"}}]}
    put_lifecycle_policy(aws.sandbox, "api", archive)
    ecr = aws.client("ecr")
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="api")["lifecyclePolicyText"]) == archive
    _completed(ecr)
    done = ecr.get_lifecycle_policy_preview(repositoryName="api")
    assert [(r["imageDigest"], r["action"]) for r in done["previewResults"]] == [
        (untagged[0], {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"})]
    assert done["summary"]["expiringImageTotalCount"] == 0
    assert apply_lifecycle_policies(aws.sandbox) == []


def test_the_preview_clock_ages_images(aws: Scenario) -> None:
    aws.repository("api")
    release = aws.push_image("api", "v1")
    put_lifecycle_policy(aws.sandbox, "api", {"rules": [{
        "rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days",
                                         "countNumber": 30}, "action": {"type": "expire"}}]})
    ecr = aws.client("ecr")
    pushed = ecr.describe_images(repositoryName="api")["imageDetails"][0]["imagePushedAt"]
    aws.sandbox.fills.now = lambda: pushed + timedelta(days=31)
    _completed(ecr)
    assert [r["imageDigest"] for r in ecr.get_lifecycle_policy_preview(repositoryName="api")["previewResults"]] \
        == [release]


def test_the_fill_turned_off_answers_as_moto_does(aws: Scenario) -> None:
    _images(aws)
    put_lifecycle_policy(aws.sandbox, "api", KEEP_TWO_UNTAGGED)
    aws.sandbox.fills.lifecycle_preview = False
    with pytest.raises(ClientError) as off:
        aws.client("ecr").start_lifecycle_policy_preview(repositoryName="api")
    assert off.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
