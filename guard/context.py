"""What a check may read: configuration, read-only gateways and the commit being deployed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from guard.config import GuardConfig
from guard.gateways.aws import AwsSession
from guard.gateways.ecr import Boto3Ecr, EcrReader
from guard.gateways.refs import Boto3Refs
from guard.gateways.stats import ApiStats
from guard.models import Target

if TYPE_CHECKING:
    from guard.gateways.github import GitHubReader


@dataclass(frozen=True)
class Commit:
    """The commit being deployed and where its builds run."""

    repository: str | None
    sha: str | None
    current_run_id: int | None = None

    @classmethod
    def from_env(cls, repository: str | None = None, sha: str | None = None) -> Commit:
        """Arguments win over GITHUB_REPOSITORY / GITHUB_SHA; GITHUB_RUN_ID names the run to ignore."""
        run_id = os.environ.get("GITHUB_RUN_ID", "")
        return cls(repository or os.environ.get("GITHUB_REPOSITORY") or None,
                   sha or os.environ.get("GITHUB_SHA") or None,
                   int(run_id) if run_id.isdigit() else None)


def _github_from_env(stats: ApiStats) -> GitHubReader:
    from guard.gateways.github import PyGithubGateway

    return PyGithubGateway.from_env(stats)


@dataclass
class CheckContext:
    """Read ports only: a check cannot write to AWS or GitHub."""

    aws: AwsSession
    config: GuardConfig = field(default_factory=GuardConfig)
    commit: Commit = field(default_factory=lambda: Commit(None, None))
    parity: tuple[tuple[Target, Target], ...] = ()
    github_factory: Callable[[ApiStats], GitHubReader] = _github_from_env
    wait: Callable[[float], None] | None = None  # between lifecycle preview polls (default: time.sleep)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def stats(self) -> ApiStats:
        """Call counters shared by every gateway of the run."""
        return self.aws.stats

    _github: GitHubReader | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.ecr: EcrReader = Boto3Ecr(self.aws, self.config.workers, sleep=self.wait)
        self.refs = Boto3Refs(self.aws, self.config.workers)

    @property
    def github(self) -> GitHubReader:
        """The GitHub reader, created once on first use (PyGithub is slow to import)."""
        with self._lock:
            if self._github is None:
                self._github = self.github_factory(self.stats)
            return self._github
