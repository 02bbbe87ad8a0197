"""Shared fixtures: one AWS sandbox (moto over HTTP) per session, reset for each test that asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guard.sandbox.aws import AwsSandbox
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox
from guard.sandbox.scenarios import Scenario

pytest_plugins = ["tests.support.guardrun", "tests.support.watchrun", "tests.support.remedyrun",
                  "tests.support.terraform"]


@pytest.fixture(scope="session")
def aws_sandbox() -> Iterator[AwsSandbox]:
    """The session's sandbox; meanwhile os.environ points standard AWS clients at it."""
    with AwsSandbox() as sandbox, pytest.MonkeyPatch.context() as env:
        env.delenv("AWS_PROFILE", raising=False)
        for name, value in sandbox.environ().items():
            env.setenv(name, value)
        yield sandbox


@pytest.fixture
def aws(aws_sandbox: AwsSandbox) -> Scenario:
    """A Scenario on a freshly reset sandbox."""
    aws_sandbox.reset()
    return Scenario(aws_sandbox)


@pytest.fixture(scope="session")
def github_sandbox() -> Iterator[GitHubSandbox]:
    """The session's local GitHub REST server; GITHUB_API_URL / GITHUB_TOKEN point at it."""
    with GitHubSandbox() as sandbox, pytest.MonkeyPatch.context() as env:
        env.setenv("GITHUB_API_URL", sandbox.api_url)
        env.setenv("GITHUB_TOKEN", DEFAULT_TOKEN)
        yield sandbox


@pytest.fixture
def github(github_sandbox: GitHubSandbox) -> GitHubSandbox:
    """The GitHub sandbox, emptied for this test."""
    github_sandbox.reset()
    return github_sandbox

