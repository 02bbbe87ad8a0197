"""A `guard check --format json` process loads only what a check uses: no rich, boto3 resources or sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from guard.sandbox.scenarios import Scenario

# Runs `guard ARGS` in this interpreter, then prints the top-level packages it loaded that a JSON check needs not.
_PROBE = """
import atexit, json, sys
from guard.cli import main
UNNEEDED = ("rich", "boto3", "s3transfer", "github", "anthropic", "moto", "guard.sandbox")
atexit.register(lambda: print(json.dumps(sorted({u for u in UNNEEDED for m in sys.modules
                                                 if m == u or m.startswith(u + ".")})), file=sys.stderr))
sys.argv = ["guard", *sys.argv[1:]]
main()
"""


def _task_definition(aws: Scenario, path: Path) -> str:
    """One container whose image tag is missing, with a secret and an awslogs group: every gateway is used."""
    uri = aws.repository("api")
    aws.push_image("api", "v1")
    aws.log_group("/api/web")
    path.write_text(json.dumps({
        "family": "api", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
        "memory": "512", "executionRoleArn": aws.role("api-exec"), "taskRoleArn": aws.role("api-task"),
        "containerDefinitions": [{
            "name": "web", "image": f"{uri}:gone", "essential": True,
            "secrets": [{"name": "TOKEN", "valueFrom": aws.secret("api/token")}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/api/web", "awslogs-region": aws.sandbox.region,
                "awslogs-stream-prefix": "web"}},
        }],
    }))
    return str(path)


def _loaded(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


def test_json_check_loads_neither_rich_nor_boto3_nor_the_sandbox(aws: Scenario, tmp_path: Path) -> None:
    td = _task_definition(aws, tmp_path / "td.json")
    proc, loaded = _loaded(["check", "--task-def", td, "--format", "json"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert "IMG001" in {f["check_id"] for f in doc["findings"]}
    assert {"secretsmanager:DescribeSecret", "logs:DescribeLogGroups", "iam:GetRole"} <= set(
        doc["stats"]["api_calls"]["by_api"])
    assert loaded == []


def test_table_check_loads_rich(aws: Scenario, tmp_path: Path) -> None:
    td = _task_definition(aws, tmp_path / "td.json")
    proc, loaded = _loaded(["check", "--task-def", td, "--format", "table"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "BLOCKED" in proc.stdout
    assert loaded == ["rich"]
