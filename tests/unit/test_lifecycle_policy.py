"""The lifecycle evaluator: the AWS documentation's examples, bad policies, and agreement with a reference."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.lifecycle_policy import EcrImage, Rule, expired, forecast, parse_policy
from guard.models import InputError

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _rule(priority: int, status: str, count_type: str, count: int, *, prefixes: list[str] | None = None,
          patterns: list[str] | None = None, description: str = "") -> dict[str, Any]:
    selection: dict[str, Any] = {"tagStatus": status, "countType": count_type, "countNumber": count}
    if count_type == "sinceImagePushed":
        selection["countUnit"] = "days"
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    return {"rulePriority": priority, "description": description or f"Rule {priority}", "selection": selection,
            "action": {"type": "expire"}}


def _policy(*rules: dict[str, Any]) -> tuple[Rule, ...]:
    return parse_policy(json.dumps({"rules": list(rules)}))


def _image(name: str, tags: list[str], days_ago: float) -> EcrImage:
    return EcrImage(name, tuple(tags), NOW - timedelta(days=days_ago))


# --- The AWS documentation's examples ("Examples of lifecycle policies in Amazon ECR") -----------------------

DOC_IMAGES = [_image("A", ["beta-1", "prod-1"], 10), _image("B", ["beta-2", "prod-2"], 9),
              _image("C", ["beta-3"], 8)]


@pytest.mark.parametrize("key", ["prefixes", "patterns"])
def test_doc_example_a_a_rule_never_expires_what_a_higher_rule_selected(key: str) -> None:
    """Example A: keep 1 prod then keep 1 beta marks only A; B is kept by rule 1 and rule 2 cannot expire it."""
    prod, beta = (["prod"], ["beta"]) if key == "prefixes" else (["prod*"], ["beta*"])
    rules = _policy(_rule(1, "tagged", "imageCountMoreThan", 1, **{key: prod}),
                    _rule(2, "tagged", "imageCountMoreThan", 1, **{key: beta}))
    assert {d: r.priority for d, r in expired(rules, DOC_IMAGES, NOW).items()} == {"A": 1}


def test_doc_example_b_one_rule_two_prefixes_selects_images_with_both() -> None:
    """Example B: keep 1 of images tagged both beta* and prod* marks A only (C has no prod tag)."""
    rules = _policy(_rule(1, "tagged", "imageCountMoreThan", 1, patterns=["beta*", "prod*"]))
    assert set(expired(rules, DOC_IMAGES, NOW)) == {"A"}


def test_doc_multiple_tags_in_one_rule() -> None:
    """Filtering on multiple tags: alpha* AND beta* selects C and F only; keep 1 expires C."""
    images = [_image("A", ["alpha-1"], 12), _image("B", ["beta-1"], 11), _image("C", ["alpha-2", "beta-2"], 10),
              _image("D", ["alpha-3"], 4), _image("E", ["beta-3"], 3), _image("F", ["alpha-4", "beta-4"], 2)]
    rules = _policy(_rule(1, "tagged", "imageCountMoreThan", 1, patterns=["alpha*", "beta*"]))
    assert set(expired(rules, images, NOW)) == {"C"}


def test_doc_image_age_prod_older_than_14_days() -> None:
    """Filtering on image age: tagged prod* older than 14 days."""
    images = [_image("old", ["prod-1"], 15), _image("young", ["prod-2"], 13), _image("other", ["dev-1"], 30),
              _image("untagged", [], 40)]
    rules = _policy(_rule(1, "tagged", "sinceImagePushed", 14, patterns=["prod*"]))
    assert set(expired(rules, images, NOW)) == {"old"}


def test_doc_image_count_keep_one_untagged() -> None:
    """Filtering on image count: keep only one untagged image."""
    images = [_image("u1", [], 3), _image("u2", [], 2), _image("u3", [], 1), _image("t", ["v1"], 5)]
    rules = _policy(_rule(1, "untagged", "imageCountMoreThan", 1))
    assert set(expired(rules, images, NOW)) == {"u1", "u2"}


def test_any_rule_counts_images_higher_rules_kept_but_cannot_expire_them() -> None:
    """An `any` rule last: images rule 1 selected are counted but only unselected ones expire."""
    images = [_image("p1", ["prod-1"], 5), _image("p2", ["prod-2"], 4), _image("x", ["dev"], 3),
              _image("u", [], 2)]
    rules = _policy(_rule(1, "tagged", "imageCountMoreThan", 5, prefixes=["prod"]),
                    _rule(2, "any", "imageCountMoreThan", 1))
    assert set(expired(rules, images, NOW)) == {"x"}


def test_equal_push_times_break_by_listing_order() -> None:
    """Same second: the image listed later is the newer."""
    images = [EcrImage("first", (), NOW), EcrImage("second", (), NOW)]
    assert set(expired(_policy(_rule(1, "untagged", "imageCountMoreThan", 1)), images, NOW)) == {"first"}


# --- Bad policies: an InputError naming the rule and the key --------------------------------------------------

@pytest.mark.parametrize(("policy", "words"), [
    ("not json", "not JSON"),
    ({"rules": []}, "rules must be a non-empty list"),
    ({"rules": [{"rulePriority": 0}]}, "rules[0]: rulePriority"),
    ({"rules": [{**_rule(1, "untagged", "imageCountMoreThan", 1), "action": {"type": "delete"}}]},
     "rule 1: action.type"),
    ({"rules": [_rule(3, "tagged", "imageCountMoreThan", 1)]}, "rule 3: tagStatus tagged needs exactly one"),
    ({"rules": [_rule(2, "untagged", "imageCountMoreThan", 1, prefixes=["v"])]}, "rule 2: selection.tagPrefixList"),
    ({"rules": [_rule(1, "tagged", "imageCountMoreThan", 1, patterns=["*a*b*c*d*e"])]}, "more than 4 wildcards"),
    ({"rules": [_rule(1, "tagged", "imageCountMoreThan", 0, prefixes=["v"])]}, "rule 1: selection.countNumber"),
    ({"rules": [_rule(1, "tagged", "sinceImagePulled", 1, prefixes=["v"])]}, "rule 1: selection.countType"),
    ({"rules": [_rule(1, "any", "imageCountMoreThan", 1), _rule(2, "untagged", "imageCountMoreThan", 1)]},
     "rule 1: a rule with tagStatus any"),
    ({"rules": [_rule(1, "untagged", "imageCountMoreThan", 1), _rule(1, "any", "imageCountMoreThan", 1)]},
     "rule 1: rulePriority must be unique"),
    ({"rules": [_rule(1, "untagged", "imageCountMoreThan", 1), _rule(2, "untagged", "sinceImagePushed", 1)]},
     "only one rule may select untagged"),
])
def test_bad_policy_is_an_input_error_naming_rule_and_key(policy: Any, words: str) -> None:
    text = policy if isinstance(policy, str) else json.dumps(policy)
    with pytest.raises(InputError, match="lifecycle policy") as caught:
        parse_policy(text)
    assert words in str(caught.value)


# --- Forecasts --------------------------------------------------------------------------------------------------

def test_forecast_digest_pinned_image_becomes_untagged_when_latest_moves() -> None:
    """The classic case: prod runs the digest `latest` points to; the next push makes it untagged and expired."""
    images = [_image("old", [], 3), _image("running", ["latest"], 1)]
    rules = _policy(_rule(1, "untagged", "imageCountMoreThan", 1, description="keep one untagged"))
    result = forecast(rules, images, {"running"}, NOW)["running"]
    assert (result.rule.priority, result.expired_now, result.pushes_left, result.expires_at) == (1, False, 2, None)
    assert result.source == "evaluator"
    assert "after 2 more pushes" in result.describe()


def test_forecast_untagged_age_rule_after_the_tag_moves() -> None:
    """Untagged-older-than-7-days: pinned image pushed 10 days ago expires on the run after the next push."""
    images = [_image("running", ["latest"], 10)]
    rules = _policy(_rule(1, "untagged", "sinceImagePushed", 7))
    result = forecast(rules, images, {"running"}, NOW)["running"]
    assert (result.pushes_left, result.expires_at, result.expired_now) == (1, NOW - timedelta(days=3), False)


def test_forecast_release_cadence_hits_a_count_rule() -> None:
    """Keep 3 v* images; the running v1 of three becomes fourth after one more release."""
    images = [_image("v1", ["v1"], 3), _image("v2", ["v2"], 2), _image("v3", ["v3"], 1)]
    rules = _policy(_rule(1, "tagged", "imageCountMoreThan", 3, prefixes=["v"]))
    assert forecast(rules, images, {"v1"}, NOW)["v1"].pushes_left == 1
    assert forecast(rules, images, {"v3"}, NOW)["v3"].pushes_left == 3


def test_forecast_age_rule_gives_the_date_and_expired_now() -> None:
    images = [_image("a", ["prod-1"], 20), _image("b", ["prod-2"], 5)]
    rules = _policy(_rule(1, "tagged", "sinceImagePushed", 14, patterns=["prod*"]))
    result = forecast(rules, images, {"a", "b"}, NOW)
    assert result["a"].expired_now and result["a"].pushes_left is None
    assert not result["b"].expired_now and result["b"].expires_at == NOW + timedelta(days=9)


def test_forecast_leaves_out_what_no_rule_will_take() -> None:
    """A keep rule that selects the image first protects it from the `any` rule below."""
    images = [_image("keep", ["release-1"], 100), _image("x", ["dev"], 1)]
    rules = _policy(_rule(1, "tagged", "imageCountMoreThan", 999, prefixes=["release"]),
                    _rule(2, "any", "sinceImagePushed", 30))
    assert forecast(rules, images, {"keep", "unknown"}, NOW) == {}


def test_forecast_expired_now_agrees_with_expired() -> None:
    images = [_image("u1", [], 3), _image("u2", [], 2)]
    rules = _policy(_rule(1, "untagged", "imageCountMoreThan", 1))
    result = forecast(rules, images, {"u1", "u2"}, NOW)
    assert result["u1"].expired_now and result["u1"].pushes_left == 0
    assert not result["u2"].expired_now and result["u2"].pushes_left == 1


# --- Agreement with a reference written from the documentation ---------------------------------------------------

def reference_expired(policy: dict[str, Any], images: list[tuple[str, list[str], datetime]],
                      now: datetime) -> dict[str, int]:
    """ECR's documented procedure, step by step: each rule marks images; marked-by-higher is never re-marked."""
    selected_before: set[str] = set()
    marked: dict[str, int] = {}
    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        sel = rule["selection"]

        def matches(tags: list[str], sel: dict[str, Any] = sel) -> bool:
            if sel["tagStatus"] == "any":
                return True
            if sel["tagStatus"] == "untagged":
                return len(tags) == 0
            if len(tags) == 0:
                return False
            if "tagPrefixList" in sel:
                return all(any(tag.startswith(p) for tag in tags) for p in sel["tagPrefixList"])
            return all(any(fnmatch.fnmatchcase(tag, p) for tag in tags) for p in sel["tagPatternList"])

        matching = [(i, image) for i, image in enumerate(images) if matches(image[1])]
        if sel["countType"] == "imageCountMoreThan":
            # mark images, starting with the oldest, until countNumber or fewer remain
            oldest_first = sorted(matching, key=lambda pair: (pair[1][2], pair[0]))
            to_mark = oldest_first[:max(0, len(oldest_first) - sel["countNumber"])]
        else:
            to_mark = [(i, image) for i, image in matching if now - image[2] > timedelta(days=sel["countNumber"])]
        for _, image in to_mark:
            if image[0] not in selected_before and image[0] not in marked:
                marked[image[0]] = rule["rulePriority"]
        selected_before.update(image[0] for _, image in matching)
    return marked


TAGS = st.sampled_from(["latest", "prod", "prod-1", "prod-2", "v1", "v10", "v2", "beta-1", "rc1", "main"])
DAY = st.integers(min_value=0, max_value=40)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=4))
    priorities = sorted(draw(st.lists(st.integers(1, 50), min_size=count, max_size=count, unique=True)))
    rules, untagged_used = [], False
    for position, priority in enumerate(priorities):
        options = ["tagged"] + ([] if untagged_used else ["untagged"]) + (["any"] if position == count - 1 else [])
        status = draw(st.sampled_from(options))
        untagged_used |= status == "untagged"
        count_type = draw(st.sampled_from(["imageCountMoreThan", "sinceImagePushed"]))
        number = draw(st.integers(1, 6) if count_type == "imageCountMoreThan" else st.integers(1, 30))
        kwargs: dict[str, list[str]] = {}
        if status == "tagged":
            key = draw(st.sampled_from(["prefixes", "patterns"]))
            words = st.sampled_from(["p", "prod", "v", "v1", "beta", "l", "rc"] if key == "prefixes"
                                    else ["prod*", "v*", "*1", "*-*", "latest", "v1*0", "*"])
            kwargs[key] = draw(st.lists(words, min_size=1, max_size=2, unique=True))
        rules.append(_rule(priority, status, count_type, number, **kwargs))
    return {"rules": rules}


@st.composite
def repositories(draw: st.DrawFn) -> list[tuple[str, list[str], datetime]]:
    n = draw(st.integers(min_value=0, max_value=12))
    used: set[str] = set()
    images = []
    for i in range(n):
        tags = [t for t in draw(st.lists(TAGS, max_size=3, unique=True)) if t not in used]
        used.update(tags)
        images.append((f"sha256:{i:064x}", tags, NOW - timedelta(days=draw(DAY), hours=draw(st.integers(0, 23)))))
    return images


@settings(max_examples=400, deadline=None)
@given(policies(), repositories())
def test_expired_agrees_with_the_reference(policy: dict[str, Any], images: list[tuple[str, list[str], datetime]]
                                           ) -> None:
    rules = parse_policy(json.dumps(policy))
    ours = expired(rules, [EcrImage(d, tuple(t), at) for d, t, at in images], NOW)
    assert {d: r.priority for d, r in ours.items()} == reference_expired(policy, images, NOW)


@settings(max_examples=200, deadline=None)
@given(policies(), repositories(), st.data())
def test_forecast_pushes_are_when_the_reference_first_expires_it(
        policy: dict[str, Any], images: list[tuple[str, list[str], datetime]], data: st.DataObject) -> None:
    """Replaying the forecast's pushes through the reference: expired after `pushes_left`, not before."""
    if not images:
        return
    digest = data.draw(st.sampled_from([d for d, _, _ in images]))
    rules = parse_policy(json.dumps(policy))
    result = forecast(rules, [EcrImage(d, tuple(t), at) for d, t, at in images], {digest}, NOW, limit=8)
    if digest in reference_expired(policy, images, NOW):
        assert result[digest].expired_now and result[digest].pushes_left in (0, None)
        return
    if digest not in result or result[digest].expires_at is not None:
        return
    pushes = result[digest].pushes_left
    assert pushes is not None and pushes > 0
    newest = sorted(enumerate(images), key=lambda pair: (pair[1][2], pair[0]))[-1][1][1]
    fates = []
    for moving in (True, False):
        state = [(d, list(t), at) for d, t, at in images]
        first = None
        for n in range(1, pushes + 1):
            tags = list(newest) if moving else [f"{t}-future{n}" for t in newest]
            if moving:
                state = [(d, [t for t in ts if t not in tags], at) for d, ts, at in state]
            state.append((f"future{n}", tags, NOW + timedelta(microseconds=n)))
            if first is None and digest in reference_expired(policy, state, NOW):
                first = n
        fates.append(first)
    assert pushes == min(f for f in fates if f is not None)


def test_forecast_same_second_pushes_take_the_last_listed_as_newest() -> None:
    """moto and ECR stamp whole seconds: the image listed last carries the tag the next push moves."""
    images = [EcrImage("old", (), NOW), EcrImage("running", ("latest",), NOW)]
    rules = _policy(_rule(1, "untagged", "imageCountMoreThan", 1))
    assert forecast(rules, images, {"running"}, NOW)["running"].pushes_left == 2
