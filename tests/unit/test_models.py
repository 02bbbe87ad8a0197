"""ImageRef parsing and finding identity."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.models import Architecture, Finding, ImageRef, InputError, Severity

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("uri", "registry", "repo", "tag", "digest", "account", "region"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/api:abc123", "123456789012.dkr.ecr.us-east-1.amazonaws.com",
         "api", "abc123", None, "123456789012", "us-east-1"),
        (f"222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/api@{DIGEST}",
         "222222222222.dkr.ecr.eu-west-1.amazonaws.com", "team/api", None, DIGEST, "222222222222", "eu-west-1"),
        (f"123456789012.dkr.ecr.us-east-1.amazonaws.com/api:v1@{DIGEST}",
         "123456789012.dkr.ecr.us-east-1.amazonaws.com", "api", "v1", DIGEST, "123456789012", "us-east-1"),
        ("nginx", "docker.io", "nginx", "latest", None, None, None),
        ("public.ecr.aws/datadog/agent:7", "public.ecr.aws", "datadog/agent", "7", None, None, None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None, None, None),
    ],
)
def test_parse(uri: str, registry: str, repo: str, tag: str | None, digest: str | None, account: str | None,
               region: str | None) -> None:
    ref = ImageRef.parse(uri)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.account, ref.region) == (
        registry, repo, tag, digest, account, region)
    assert ref.is_ecr == (account is not None)


@pytest.mark.parametrize("uri", ["", " ", "api:", "@sha256:00", "a b", "repo@sha256:short", "UPPER/case:tag",
                                 "/leading", "repo:bad tag"])
def test_parse_rejects(uri: str) -> None:
    with pytest.raises(InputError):
        ImageRef.parse(uri)


@given(st.text(max_size=200))
def test_parse_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        ImageRef.parse(text)


def test_mutable_tags() -> None:
    assert ImageRef.parse("nginx").mutable_tag
    assert ImageRef.parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/api:main").mutable_tag
    assert not ImageRef.parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/api:3f2c1a9").mutable_tag
    assert not ImageRef.parse(f"nginx:latest@{DIGEST}").mutable_tag


def test_architecture_names() -> None:
    assert Architecture.parse("X86_64") is Architecture.AMD64
    assert Architecture.parse("arm64") is Architecture.ARM64
    assert Architecture.parse("aarch64") is Architecture.ARM64
    assert Architecture.parse("sparc") is None


def test_fingerprint_is_stable_and_ignores_message() -> None:
    a = Finding("IMG001", Severity.ERROR, "t", "one wording", {"image": "x"})
    b = Finding("IMG001", Severity.ERROR, "t", "another wording", {"image": "x"})
    c = Finding("IMG001", Severity.ERROR, "t", "one wording", {"image": "y"})
    assert a.fingerprint == b.fingerprint != c.fingerprint
