"""CFG001: prod matches staging except for declared differences."""

from __future__ import annotations

from pathlib import Path

from guard.sandbox.scenarios import Scenario
from tests.support.guardrun import GuardRun, export_task_definition


def _pair(aws: Scenario, tmp_path: Path, prod_env: list[tuple[str, str]]) -> tuple[str, str]:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    base = [("LOG_LEVEL", "info"), ("REGION", "us-east-1")]
    staging = aws.task_definition("api-staging", [("web", f"{repo}:v1")], environment=base,
                                  execution_role="arn:aws:iam::123456789012:role/api-staging-exec")
    prod = aws.task_definition("api-prod", [("web", f"{repo}:v1")], environment=base + prod_env,
                               execution_role="arn:aws:iam::123456789012:role/api-prod-exec")
    return (export_task_definition(aws, staging, tmp_path / "staging.json"),
            export_task_definition(aws, prod, tmp_path / "prod.json"))


def test_declared_differences_pass(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    staging, prod = _pair(aws, tmp_path, [])
    (tmp_path / "guard.toml").write_text('[parity]\nreplace = [["staging", "prod"]]\n')
    out = guard("--parity", staging, prod)
    assert out.code == 0 and out.findings("CFG001") == []


def test_undeclared_variable_and_role_drift(aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    staging, prod = _pair(aws, tmp_path, [("FEATURE_FLAG_X", "on")])
    out = guard("--parity", staging, prod)
    assert out.code == 1
    facets = sorted(f["evidence"]["facet"] for f in out.findings("CFG001"))
    assert facets == ["env:web.FEATURE_FLAG_X", "role:execution"]
    (tmp_path / "guard.toml").write_text('[parity]\nreplace = [["staging", "prod"]]\nignore = ["env:*.FEATURE_*"]\n')
    assert guard("--parity", staging, prod).code == 0


def test_live_services_compared(aws: Scenario, guard: GuardRun) -> None:
    repo = aws.repository("api")
    aws.push_image("api", "v1")
    aws.cluster("staging")
    aws.cluster("prod")
    aws.service("staging", "api", aws.task_definition("a-s", [("web", f"{repo}:v1")], ports=(8080,)))
    aws.service("prod", "api", aws.task_definition("a-p", [("web", f"{repo}:v1")], ports=(8081,)))
    out = guard("--parity", "ecs:staging/api", "ecs:prod/api")
    assert out.code == 1
    assert sorted(f["evidence"]["facet"] for f in out.findings("CFG001")) == ["port:web.8080/tcp",
                                                                               "port:web.8081/tcp"]
