"""PRV002: the image digest is bound to the deployed commit (OCI revision label or build-provenance attestation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.sandbox.github_server import GitHubSandbox
from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, Outcome, export_task_definition
from tests.support.images import push_labelled_image

SHA = "5d0c7e2" + "1" * 33
OTHER_SHA = "a11ce00" + "2" * 33
REPO = "acme/shop"
REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"


def _gate(aws: Scenario, guard: GuardRun, github: GitHubSandbox, tmp_path: Path, image: str,
          config: str = "") -> Outcome:
    github.add_run(REPO, head_sha=SHA, conclusion="success")
    (tmp_path / "guard.toml").write_text(config)
    td = export_task_definition(aws, aws.task_definition("api", [("web", image)]), tmp_path / "td.json")
    return guard("--task-def", td, "--sha", SHA, "--repository", REPO)


def test_revision_label_naming_the_commit_binds_it(aws: Scenario, guard: GuardRun, github: GitHubSandbox,
                                                   tmp_path: Path) -> None:
    repo = aws.repository("api")
    push_labelled_image(aws, "api", "v1", {REVISION: SHA, SOURCE: f"https://github.com/{REPO}"})
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1")
    assert out.code == 0 and out.findings("PRV002") == [], out.stdout
    calls = out.doc["stats"]["api_calls"]["by_api"]
    assert calls["ecr:LayerDownload"] == 1 and "github:ListAttestations" not in calls


def test_revision_label_naming_another_commit_is_an_error(aws: Scenario, guard: GuardRun, github: GitHubSandbox,
                                                          tmp_path: Path) -> None:
    repo = aws.repository("api")
    digest = push_labelled_image(aws, "api", "v1", {REVISION: OTHER_SHA})
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1", config='[severity]\nPRV002 = "info"\n')
    assert out.code == 1  # a mismatch stays an error whatever the configured severity
    [f] = out.findings("PRV002")
    assert f["severity"] == "error" and f["evidence"]["label_revision"] == OTHER_SHA
    assert f["evidence"]["digest"] == digest
    assert f"built from commit {OTHER_SHA[:12]}, not the deployed {SHA[:12]}" in f["message"]


def test_image_without_binding_is_a_warning_with_configurable_severity(
        aws: Scenario, guard: GuardRun, github: GitHubSandbox, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1")
    assert out.code == 0
    [f] = out.findings("PRV002")
    assert f["severity"] == "warning" and "is not bound to commit" in f["message"]
    assert out.doc["stats"]["api_calls"]["by_api"]["github:ListAttestations"] == 1
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1", config='[severity]\nPRV002 = "error"\n')
    assert out.code == 1 and out.findings("PRV002")[0]["severity"] == "error"


def test_attestation_for_the_digest_binds_it(aws: Scenario, guard: GuardRun, github: GitHubSandbox,
                                             tmp_path: Path) -> None:
    repo = aws.repository("api")
    digest = aws.push_image("api", "v1")
    github.add_attestation(REPO, digest, sha=SHA, workflow="build.yml")
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1")
    assert out.findings("PRV002") == [] and out.code == 0
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1", config='build_workflows = ["release.yml"]\n')
    [f] = out.findings("PRV002")  # attested by a workflow that is not a configured build workflow
    assert f["severity"] == "error" and "release.yml" not in f["message"] and "build.yml" in f["message"]


@pytest.mark.parametrize(("sha", "source_repo"), [(OTHER_SHA, REPO), (SHA, "mallory/fork")])
def test_attestation_for_another_commit_or_repository_is_an_error(
        aws: Scenario, guard: GuardRun, github: GitHubSandbox, tmp_path: Path, sha: str, source_repo: str) -> None:
    repo = aws.repository("api")
    digest = aws.push_image("api", "v1")
    github.add_attestation(REPO, digest, sha=sha, source_repo=source_repo)
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1")
    assert out.code == 1
    [f] = out.findings("PRV002")
    assert f["evidence"]["attested"] == f"{source_repo}@{sha[:12]} (.github/workflows/build.yml)"
    assert f"not {REPO}@{SHA[:12]}" in f["message"]


def test_sidecar_from_another_repository_is_not_judged(aws: Scenario, guard: GuardRun, github: GitHubSandbox,
                                                       tmp_path: Path) -> None:
    repo = aws.repository("fluent-bit")
    push_labelled_image(aws, "fluent-bit", "2.32", {REVISION: OTHER_SHA,
                                                    SOURCE: "https://github.com/aws/aws-for-fluent-bit"})
    out = _gate(aws, guard, github, tmp_path, f"{repo}:2.32")
    assert out.findings("PRV002") == []


def test_attestations_unreadable_is_unverified(aws: Scenario, guard: GuardRun, github: GitHubSandbox,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    github.add_token("ghs_actions_only", {"actions": "read"})  # no attestations:read
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_actions_only")
    out = _gate(aws, guard, github, tmp_path, f"{repo}:v1")
    assert out.code == 3 and out.findings("PRV002") == []
    [u] = out.unverified("PRV002")
    assert u["error_code"] == "403" and "attestations" in u["reason"]
