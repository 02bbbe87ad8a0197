"""`guard verify` on the ECS simulator: success, a pull failure named, a role ECS cannot assume named from the
service's events, a circuit-breaker rollback that fails, a deadline that says what it saw, and a rollback through
the policy gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.config import Allow
from guard.exitcodes import ExitCode
from guard.journal import EntryKind, Journal
from guard.sandbox.ecs_sim import TASK_ROLE_UNASSUMABLE
from guard.verify import LAUNCH_FAILURE_GRACE_S, Status, VerifyOptions, VerifyReport, parse_targets, run_verify
from tests.support.remedyrun import GOOD, World, deploy

OPTIONS = VerifyOptions(timeout_s=600, poll_s=15)


def _verify(world: World, *services: str, rollback: bool = False, ticking: bool = True,
            **config: object) -> VerifyReport:
    runtime = world.runtime(wait=None if ticking else world.sim.advance, **config)
    return run_verify(runtime, parse_targets(services or ("prod/api",), ()), OPTIONS, rollback=rollback)


def test_a_deploy_that_completes_passes(world: World) -> None:
    world.aws.push_image("shop/api", "v2")
    arn = deploy(world, "v2")
    report = _verify(world)
    [v] = report.verdicts
    assert (v.status, report.exit_code) == (Status.OK, ExitCode.CLEAN)
    assert v.revision == arn and "2/2 tasks running" in v.message
    svc = world.service()
    assert svc["taskDefinition"] == arn and svc["deployments"][0]["rolloutState"] == "COMPLETED"


def test_tasks_that_cannot_pull_fail_with_the_stopped_reason(world: World) -> None:
    deploy(world, "nope")
    report = _verify(world)
    [v] = report.verdicts
    assert (v.status, v.cause, report.exit_code) == (Status.FAILED, "missing_image", ExitCode.FINDINGS)
    assert "shop/api:nope" in v.message and "CannotPullContainerError" in v.message
    assert v.rollback is None
    assert world.service()["taskDefinition"].endswith("api:2")  # nothing written without --rollback


def test_a_circuit_breaker_rollback_is_a_failure_that_names_the_rollback(world: World) -> None:
    world.sim.enable_circuit_breaker("prod", "api")
    arn = deploy(world, "nope")
    report = _verify(world)
    [v] = report.verdicts
    assert (v.status, report.exit_code) == (Status.ROLLED_BACK, ExitCode.FINDINGS)
    assert "circuit breaker rolled back" in v.message and v.cause == "missing_image"
    svc = world.service()
    assert svc["taskDefinition"] != arn and "rolling back" in svc["deployments"][0]["rolloutStateReason"]


def test_verifying_after_the_rollback_landed_still_fails_when_the_revision_is_named(world: World) -> None:
    world.sim.enable_circuit_breaker("prod", "api")
    arn = deploy(world, "nope")
    world.sim.tick(4)
    assert world.service()["deployments"][0]["rolloutState"] == "COMPLETED"
    [v] = _verify(world, f"prod/api={arn}").verdicts
    assert v.status is Status.ROLLED_BACK and "rolled back" in v.message


def test_a_deadline_exits_3_and_says_what_it_saw(world: World) -> None:
    world.aws.push_image("shop/api", "v2")
    deploy(world, "v2")
    waits: list[float] = []

    def frozen(seconds: float) -> None:  # time passes, ECS makes no progress
        waits.append(seconds)
        world.sim.advance(seconds)

    runtime = world.runtime(wait=frozen)
    progress: list[str] = []
    runtime.progress = progress.append
    report = run_verify(runtime, parse_targets(("prod/api",), ()), OPTIONS)
    [v] = report.verdicts
    assert (v.status, report.exit_code) == (Status.TIMED_OUT, ExitCode.UNVERIFIED)
    assert "deadline of 600s passed" in v.message and "IN_PROGRESS: 2/2 running, 0 failed" in v.message
    assert waits[:7] == [1, 1, 1, 1, 1, 1.25, 1.5625] and max(waits) == 15  # about 1 s, backing off to 15 s
    assert round(sum(waits), 3) == 600 and len(waits) == 53  # the last poll at the deadline
    assert progress[0].startswith("waiting for ecs:prod/api (0s of 600s): deployment ") and len(progress) == 53


def test_rollback_on_failure_goes_through_the_gate_to_the_recorded_revision(world: World) -> None:
    good = world.service()["taskDefinition"]
    deploy(world, "nope")
    report = _verify(world, rollback=True)
    [v] = report.verdicts
    assert (v.status, report.exit_code) == (Status.FAILED, ExitCode.FINDINGS)  # the deploy still did not land
    assert v.rollback is not None and v.rollback["status"] == "verified"
    assert world.service()["taskDefinition"] == good
    assert world.calls("ecs:UpdateService") == 1
    journal = Journal(world.store, v.rollback["journal"])
    kinds = [e.kind for e in journal.entries()]
    assert EntryKind.DECISION in kinds and EntryKind.ACTION_SUCCEEDED in kinds


def test_rollback_outside_the_allowlist_is_refused_and_changes_nothing(world: World) -> None:
    deploy(world, "nope")
    broken = world.service()["taskDefinition"]
    report = _verify(world, rollback=True, allow=(Allow("ecs:staging/*", ("ecs_rollback",)),))
    [v] = report.verdicts
    assert v.rollback is not None and v.rollback["status"] == "refused" and "allow" in v.rollback["reason"]
    assert world.service()["taskDefinition"] == broken
    assert world.calls("ecs:UpdateService") == 0


def test_cli_reports_json_and_a_job_summary(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["verify", "--service", "prod/api", "--service", "prod/worker",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and [t["status"] for t in doc["targets"]] == ["ok", "ok"]
    assert doc["stats"]["api_calls"]["by_api"] == {"ecs:DescribeServices": 1}  # both services, one call
    assert "deploy-guard verify: VERIFIED" in summary.read_text()


@pytest.mark.parametrize("args", [[], ["--service", "api"], ["--service", "prod/api", "--service", "prod/api"],
                                  ["--lambda", "a/b"]])
def test_cli_bad_input_exits_2_before_any_call(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["verify", *args])
    assert result.exit_code == 2 and "guard:" in result.stderr


def test_cli_unreachable_endpoint_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = CliRunner().invoke(main, ["verify", "--service", "prod/api", "--timeout", "1"])
    assert result.exit_code == 3 and "could not verify" in result.stderr


def test_a_function_update_is_waited_for_and_a_failed_one_names_the_image(world: World) -> None:
    repo = world.aws.repository("shop/api")
    world.aws.push_image("shop/api", "v2")
    world.aws.lambda_function("thumbs", f"{repo}:{GOOD[:7]}")
    world.sim.tick()
    world.sim.update_function_code_async("thumbs", f"{repo}:v2")
    targets = parse_targets((), ("thumbs",))
    [ok] = run_verify(world.runtime(), targets, OPTIONS).verdicts
    assert ok.status is Status.OK and ok.revision == f"{repo}:v2"
    world.sim.update_function_code_async("thumbs", f"{repo}:gone")
    report = run_verify(world.runtime(), targets, OPTIONS)
    [v] = report.verdicts
    assert (v.status, v.cause, report.exit_code) == (Status.FAILED, "missing_image", ExitCode.FINDINGS)
    assert f"{repo}:gone" in v.message


def test_a_role_iam_is_still_propagating_does_not_fail_the_rollout(world: World) -> None:
    repo = world.aws.repository("shop/api")
    world.aws.push_image("shop/api", "v2")
    role = world.aws.role("api-task-v2")
    arn = world.aws.task_definition("api", [("app", f"{repo}:v2")], task_role=role)
    world.aws.delete_role("api-task-v2")  # as IAM answers ECS until a new role has propagated
    world.aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=arn)
    world.sim.tick()
    waited: list[float] = []

    def wait(seconds: float) -> None:  # the role becomes assumable half-way through the grace
        waited.append(seconds)
        if sum(waited) >= LAUNCH_FAILURE_GRACE_S / 2:
            world.aws.role("api-task-v2")
        world.tick(seconds)

    report = run_verify(world.runtime(wait=wait), parse_targets(("prod/api",), ()), OPTIONS)
    [v] = report.verdicts
    assert (v.status, report.exit_code) == (Status.OK, ExitCode.CLEAN), v.message
    assert len(waited) >= OPTIONS.failure_threshold  # the failure was seen on more polls than the threshold
    [deployment] = world.service()["deployments"]
    assert (deployment["taskDefinition"], deployment["runningCount"]) == (arn, 2)


def test_a_crash_loop_fails_with_the_exit_code(world: World) -> None:
    world.aws.push_image("shop/api", "crashy", exits=True)
    deploy(world, "crashy")
    [v] = _verify(world).verdicts
    assert (v.status, v.cause) == (Status.FAILED, "crash")
    assert v.message.startswith("crash loop:") and "exited with code" in v.message


def test_a_task_role_ecs_cannot_assume_fails_with_the_role_well_before_the_deadline(world: World) -> None:
    repo = world.aws.repository("shop/api")
    world.aws.push_image("shop/api", "v2")
    role = world.aws.role("api-task-v2")
    arn = world.aws.task_definition("api", [("app", f"{repo}:v2")], task_role=role)
    world.aws.delete_role("api-task-v2")
    world.aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=arn)
    world.sim.tick()
    report = _verify(world)
    [v] = report.verdicts
    assert (v.status, v.cause, report.exit_code) == (Status.FAILED, "execution_role", ExitCode.FINDINGS)
    assert v.message.startswith("tasks cannot be launched: deployment ") and "0/2 running, 0 failed" in v.message
    assert "ECS launched no task: ECS cannot assume a role" in v.message and role in v.message
    assert v.evidence["cause_key"] == role and report.to_json()["exit_code"] == 1
    assert LAUNCH_FAILURE_GRACE_S <= report.duration_s < 120  # past the grace for IAM, not the 600 s deadline
    svc = world.service()
    new, old = svc["deployments"]
    assert (new["taskDefinition"], new["runningCount"], new["failedTasks"]) == (arn, 0, 0)
    assert old["runningCount"] == 2  # the old revision keeps serving; nothing was written
    assert svc["events"][0]["message"] == f"(service api) {TASK_ROLE_UNASSUMABLE.format(role=role)}"
    ecs = world.aws.client("ecs")
    tasks = ecs.describe_tasks(cluster="prod", tasks=ecs.list_tasks(cluster="prod")["taskArns"])["tasks"]
    assert not [t for t in tasks if t["taskDefinitionArn"] == arn]  # ECS launched no task of the revision
    assert world.calls("ecs:UpdateService") == 0
