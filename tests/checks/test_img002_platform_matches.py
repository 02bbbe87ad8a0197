"""IMG002: image platform matches the runtime architecture."""

from __future__ import annotations

from pathlib import Path

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition


def _td(aws: Scenario, tmp_path: Path, image: str, arch: str = "X86_64") -> str:
    return export_task_definition(aws, aws.task_definition("api", [("web", image)], arch=arch), tmp_path / "td.json")


def test_single_arch_match_passes(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1", arch="arm64")
    out = guard("--task-def", _td(aws, tmp_path, f"{repo}:v1", arch="ARM64"))
    assert out.code == 0 and out.findings("IMG002") == []
    calls = out.doc["stats"]["api_calls"]["by_api"]
    assert calls["ecr:GetDownloadUrlForLayer"] == 1 and calls["ecr:LayerDownload"] == 1


def test_arm64_image_on_x86_tasks_blocks(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1", arch="arm64")
    out = guard("--task-def", _td(aws, tmp_path, f"{repo}:v1"))
    assert out.code == 1
    [f] = out.findings("IMG002")
    assert f["evidence"]["image_platforms"] == ["linux/arm64"] and f["evidence"]["runtime"] == "linux/amd64"
    assert "built for linux/arm64 but runs on linux/amd64" in f["message"]


def test_multi_arch_index_passes_without_blob_reads(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_index("api", "v2", archs=("amd64", "arm64"))
    out = guard("--task-def", _td(aws, tmp_path, f"{repo}:v2", arch="ARM64"))
    assert out.code == 0, out.stdout
    assert "ecr:GetDownloadUrlForLayer" not in out.doc["stats"]["api_calls"]["by_api"]


def test_index_without_the_needed_arch_blocks(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_index("api", "v3", archs=("amd64",))
    out = guard("--task-def", _td(aws, tmp_path, f"{repo}:v3", arch="ARM64"))
    assert out.code == 1
    [f] = out.findings("IMG002")
    assert f["evidence"]["image_platforms"] == ["linux/amd64"]  # the attestation entry is not a platform


def test_lambda_architecture(aws: Scenario, guard: GuardRun) -> None:
    repo = aws.repository("fn")
    aws.push_image("fn", "v1", arch="amd64")
    aws.push_image("fn", "v2", arch="arm64")
    aws.lambda_function("worker", f"{repo}:v1", arch="x86_64")
    assert guard("--lambda", "worker", "--image-uri", f"{repo}:v1").code == 0
    out = guard("--lambda", "worker", "--image-uri", f"{repo}:v2")
    assert out.code == 1 and out.findings("IMG002")[0]["target"] == "worker"


def test_blob_unreadable_is_unverified(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    aws.sandbox.blobs.clear()
    out = guard("--task-def", _td(aws, tmp_path, f"{repo}:v1"))
    assert out.code == 3
    [u] = out.unverified("IMG002")
    assert "v1" in u["reason"]
