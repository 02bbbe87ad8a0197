"""judge(): the evaluator's forecast, with ECR's preview settling the policy's next run (AWS's answer wins)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from guard.lifecycle_policy import EcrImage, PolicyPreview, RepositoryLifecycle, judge, preview_targets
from guard.models import InputError

NOW = datetime(2026, 11, 30, tzinfo=UTC)
KEY = ("123456789012", "us-east-1", "api")
RULES = [{"rulePriority": 1, "description": "keep one untagged",
          "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
          "action": {"type": "expire"}},
         {"rulePriority": 2, "description": "keep the newest 2",
          "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2},
          "action": {"type": "expire"}}]
IMAGES = (EcrImage("sha256:old", (), NOW - timedelta(days=3)), EcrImage("sha256:new", (), NOW - timedelta(days=2)),
          EcrImage("sha256:v1", ("v1",), NOW - timedelta(days=1)))


def _repo(rules: list[dict[str, object]] = RULES) -> RepositoryLifecycle:
    return RepositoryLifecycle(KEY, json.dumps({"rules": rules}), IMAGES, {"sha256:child": "sha256:old"})


def test_only_expiries_now_are_asked_and_a_child_is_asked_as_its_index() -> None:
    assert preview_targets(_repo(), {"sha256:child", "sha256:new", "sha256:v1"}, NOW) == {"sha256:old"}
    assert preview_targets(RepositoryLifecycle(KEY, None), {"sha256:old"}, NOW) == frozenset()


def test_an_agreeing_preview_marks_the_source() -> None:
    [(digest, f)] = judge(_repo(), {"sha256:child"}, NOW, preview=PolicyPreview({"sha256:old": ("EXPIRE", 1)})).items()
    assert digest == "sha256:child" and f.expired_now and f.source == "preview" and f.note == ""
    assert f.rule.description == "keep one untagged" and not f.later_unknown


def test_a_preview_naming_another_rule_wins_and_says_so() -> None:
    f = judge(_repo(), {"sha256:old"}, NOW, preview=PolicyPreview({"sha256:old": ("EXPIRE", 2)}))["sha256:old"]
    assert f.source == "preview" and f.expired_now and f.rule.priority == 2
    assert "the evaluator expected rule 1" in f.note and "rule 2" in f.note and "AWS's answer wins" in f.note


def test_a_preview_that_keeps_the_image_wins() -> None:
    f = judge(_repo(), {"sha256:old"}, NOW, preview=PolicyPreview({}))["sha256:old"]
    assert f.source == "preview" and not f.expired_now and f.later_unknown
    assert f.evidence()["rule_priority"] is None and "the next run keeps it" in f.note


def test_an_unavailable_preview_leaves_the_forecast_with_the_reason() -> None:
    f = judge(_repo(), {"sha256:old"}, NOW, preview=PolicyPreview(unavailable="timed out"))["sha256:old"]
    assert f.source == "evaluator" and f.expired_now and f.evidence()["preview"] == "timed out"


def test_an_unreadable_policy_needs_the_preview() -> None:
    pulled = [{**RULES[0], "selection": {"tagStatus": "untagged", "countType": "sinceImagePulled",
                                         "countUnit": "days", "countNumber": 1}}]
    assert preview_targets(_repo(pulled), {"sha256:old", "sha256:gone"}, NOW) == {"sha256:old"}
    with pytest.raises(InputError, match="ECR's lifecycle policy preview: denied"):
        judge(_repo(pulled), {"sha256:old"}, NOW, preview=PolicyPreview(unavailable="denied"))
    found = judge(_repo(pulled), {"sha256:old", "sha256:v1"}, NOW, preview=PolicyPreview({"sha256:old": ("EXPIRE", 1)}))
    assert found["sha256:old"].expired_now and found["sha256:old"].rule.description == "keep one untagged"
    assert found["sha256:old"].rule.count_type == "sinceImagePulled" and found["sha256:old"].later_unknown
    assert not found["sha256:v1"].expired_now and found["sha256:v1"].later_unknown
