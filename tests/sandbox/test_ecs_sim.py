"""The ECS/Lambda simulator: causes set up in AWS, effects observed through boto3 over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from guard.sandbox.ecs_sim import (
    BREAKER_FAILED,
    LAMBDA_IMAGE_DELETED,
    PULL_NOT_FOUND,
    PULL_WRONG_PLATFORM,
    TASK_ROLE_UNASSUMABLE,
    EcsSimulator,
    breaker_threshold,
)
from guard.sandbox.scenarios import Scenario

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REPO = "shop/api"
REQUEST_ID = r"[0-9a-f-]{36}"


@pytest.fixture
def sim(aws: Scenario) -> EcsSimulator:
    """A simulator on the fresh sandbox, its clock frozen at T0."""
    return EcsSimulator(aws.sandbox, clock=lambda: T0)


def _service(aws: Scenario, name: str = "api") -> dict[str, Any]:
    return dict(aws.client("ecs").describe_services(cluster="prod", services=[name])["services"][0])


def _tasks(aws: Scenario, status: str | None = None) -> list[dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster="prod")["taskArns"]
    tasks = ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if status is None or t["lastStatus"] == status]


def _messages(service: dict[str, Any]) -> list[str]:
    return [e["message"] for e in service["events"]]


def _steady(aws: Scenario, sim: EcsSimulator, image: str, desired: int = 2, **td: Any) -> str:
    """A cluster "prod" with service "api" of `image`, steady after two rounds; return the task definition."""
    arn = aws.task_definition("api", [("app", image)], **td)
    aws.cluster("prod")
    aws.service("prod", "api", arn, desired=desired)
    sim.tick(2)
    return arn


def test_healthy_service_starts_its_tasks_then_completes(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    digest = aws.push_image(REPO, "v1")
    arn = aws.task_definition("api", [("app", f"{uri}:v1")])
    aws.cluster("prod")
    aws.service("prod", "api", arn, desired=2)

    sim.tick()
    first = _service(aws)
    assert [d["rolloutState"] for d in first["deployments"]] == ["IN_PROGRESS"]
    assert first["deployments"][0]["runningCount"] == 2
    sim.tick()

    service = _service(aws)
    (deployment,) = service["deployments"]
    assert re.fullmatch(r"ecs-svc/\d{19}", deployment["id"])
    assert deployment["status"] == "PRIMARY" and deployment["taskDefinition"] == arn
    assert deployment["rolloutState"] == "COMPLETED"
    assert deployment["rolloutStateReason"] == f"ECS deployment {deployment['id']} completed."
    assert (deployment["runningCount"], deployment["failedTasks"], deployment["createdAt"]) == (2, 0, T0)
    assert (service["runningCount"], service["pendingCount"]) == (2, 0)
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    messages = _messages(service)
    assert messages[0] == "(service api) has reached a steady state."
    assert messages[1] == f"(service api) (deployment {deployment['id']}) deployment completed."
    assert re.fullmatch(r"\(service api\) has started 2 tasks: \(task [0-9a-f]{32}\) \(task [0-9a-f]{32}\)\.",
                        messages[2])
    tasks = _tasks(aws)
    assert len(tasks) == 2
    for task in tasks:
        assert task["lastStatus"] == task["desiredStatus"] == "RUNNING"
        assert (task["group"], task["startedBy"], task["taskDefinitionArn"]) == ("service:api", deployment["id"], arn)
        assert task["startedAt"] == T0 and "stopCode" not in task
        (container,) = task["containers"]
        assert (container["lastStatus"], container["imageDigest"]) == ("RUNNING", digest)
    assert [t["lastStatus"] for t in _tasks(aws)] == ["RUNNING", "RUNNING"]  # polling moves nothing


def test_missing_image_fails_the_deployment_and_rolls_back(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    good = _steady(aws, sim, f"{uri}:v1")
    previous = _service(aws)["deployments"][0]["id"]
    bad = aws.task_definition("api", [("app", f"{uri}:e4f0a31")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)

    sim.tick()
    service = _service(aws)
    new, old = service["deployments"]
    assert (new["status"], new["taskDefinition"], new["failedTasks"]) == ("PRIMARY", bad, 2)
    assert (old["status"], old["id"], old["runningCount"]) == ("ACTIVE", previous, 2)
    assert service["runningCount"] == 2  # the old tasks keep serving
    failed = _tasks(aws, "STOPPED")
    assert len(failed) == 2
    ref = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/api:e4f0a31"
    reason = ("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
              f"{ref}: {ref}: not found")
    for task in failed:
        assert (task["stopCode"], task["stoppedReason"], task["desiredStatus"]) == ("TaskFailedToStart", reason,
                                                                                   "STOPPED")
        assert task["startedBy"] == new["id"] and task["stoppedAt"] == T0
        assert task["containers"][0]["reason"] == reason and task["containers"][0]["lastStatus"] == "STOPPED"

    sim.tick()  # 4 failures >= threshold 3
    service = _service(aws)
    assert breaker_threshold(2) == 3
    rollback, failed_deployment, _ = service["deployments"]
    assert (failed_deployment["id"], failed_deployment["rolloutState"]) == (new["id"], "FAILED")
    assert (failed_deployment["failedTasks"], failed_deployment["rolloutStateReason"]) == (4, BREAKER_FAILED)
    assert (rollback["status"], rollback["taskDefinition"], service["taskDefinition"]) == ("PRIMARY", good, good)
    assert rollback["rolloutStateReason"] == f"ECS deployment circuit breaker: rolling back to deploymentId {previous}."
    assert _messages(service)[:2] == [
        f"(service api) rolling back to deployment {previous}.",
        f"(service api) (deployment {new['id']}) deployment failed: tasks failed to start.",
    ]

    sim.tick(2)
    service = _service(aws)
    (deployment,) = service["deployments"]
    assert (deployment["id"], deployment["rolloutState"], deployment["runningCount"]) == (rollback["id"],
                                                                                         "COMPLETED", 2)
    running = _tasks(aws, "RUNNING")
    assert {t["startedBy"] for t in running} == {rollback["id"]} and len(running) == 2
    retired = [t for t in _tasks(aws, "STOPPED") if t["startedBy"] == previous]
    assert {t["stoppedReason"] for t in retired} == {f"Scaling activity initiated by (deployment {rollback['id']})"}


def test_a_failed_rollback_is_not_rolled_back(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    _steady(aws, sim, f"{uri}:v1")
    aws.delete_image(REPO, tag="v1")  # the rollback target's image is gone too
    aws.client("ecs").update_service(cluster="prod", service="api",
                                     taskDefinition=aws.task_definition("api", [("app", f"{uri}:v2")]))

    sim.tick(4)
    rollback, failed, completed = _service(aws)["deployments"]
    assert [d["rolloutState"] for d in (rollback, failed, completed)] == ["FAILED", "FAILED", "COMPLETED"]
    sim.tick(4)
    service = _service(aws)
    assert [d["id"] for d in service["deployments"]] == [rollback["id"], failed["id"], completed["id"]]
    assert service["runningCount"] == 2  # the old tasks never stopped: they need no pull
    assert sum("rolling back" in m for m in _messages(service)) == 1


@pytest.mark.parametrize(("push", "arch", "platform"), [
    (lambda aws: aws.push_image(REPO, "v2", arch="arm64"), "X86_64", "linux/amd64"),
    (lambda aws: aws.push_index(REPO, "v2", archs=("arm64",)), "X86_64", "linux/amd64"),
    (lambda aws: aws.push_image(REPO, "v2", arch="amd64"), "ARM64", "linux/arm64"),
])
def test_image_without_the_task_architecture_cannot_be_pulled(aws: Scenario, sim: EcsSimulator, push: Any,
                                                              arch: str, platform: str) -> None:
    uri = aws.repository(REPO)
    push(aws)
    _steady(aws, sim, f"{uri}:v2", arch=arch)

    service = _service(aws)
    assert service["runningCount"] == 0 and service["deployments"][0]["rolloutState"] == "FAILED"
    reasons = {t["stoppedReason"] for t in _tasks(aws)}
    assert reasons == {PULL_WRONG_PLATFORM.format(platform=platform)}
    assert reasons == {"CannotPullContainerError: pull image manifest has been retried 1 time(s): image Manifest "
                       f"does not contain descriptor matching platform '{platform}'"}


def test_multi_arch_index_runs_on_either_architecture(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    index = aws.push_index(REPO, "v3")
    _steady(aws, sim, f"{uri}:v3", arch="ARM64")
    assert {c["imageDigest"] for t in _tasks(aws, "RUNNING") for c in t["containers"]} == {index}
    assert _service(aws)["deployments"][0]["rolloutState"] == "COMPLETED"


def test_missing_secrets_fail_task_initialisation(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    secret = aws.secret("shop/db")
    aws.client("secretsmanager").delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    role = aws.role("shop-exec")
    _steady(aws, sim, f"{uri}:v1", execution_role=role, secrets=[("DB", secret)])

    reasons = [t["stoppedReason"] for t in _tasks(aws)]
    assert len(reasons) == 4 and len({r.rsplit(" request id: ", 1)[0] for r in reasons}) == 1
    assert re.fullmatch(
        re.escape("ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                  "retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): "
                  f"failed to fetch secret {secret} from secrets manager: ResourceNotFoundException: Secrets "
                  "Manager can't find the specified secret. status code: 400, request id: ") + REQUEST_ID,
        reasons[0])

    aws.parameter("/shop/present")
    missing = "arn:aws:ssm:us-east-1:123456789012:parameter/shop/absent"
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=aws.task_definition(
        "api", [("app", f"{uri}:v1")], execution_role=role,
        secrets=[("A", "/shop/present"), ("B", missing)]))
    sim.tick()
    newest = _service(aws)["deployments"][0]["id"]
    assert {t["stoppedReason"] for t in _tasks(aws) if t["startedBy"] == newest} == {
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        f"failed: unable to retrieve secrets from ssm: service call has been retried 1 time(s): invalid ssm "
        f"parameters: {missing}"}

    doomed = aws.secret("shop/doomed")
    aws.client("secretsmanager").delete_secret(SecretId=doomed, RecoveryWindowInDays=7)
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=aws.task_definition(
        "api", [("app", f"{uri}:v1")], execution_role=role, secrets=[("C", doomed)]))
    sim.tick()
    newest = _service(aws)["deployments"][0]["id"]
    assert {t["stoppedReason"].split(" status code: ")[0] for t in _tasks(aws) if t["startedBy"] == newest} == {
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch "
        f"secret {doomed} from secrets manager: InvalidRequestException: You can't perform this operation on the "
        "secret because it was marked for deletion."}


def test_deleted_execution_role_denies_registry_auth(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    role = aws.role("shop-exec")
    aws.delete_role("shop-exec")
    _steady(aws, sim, f"{uri}:v1", execution_role=role)

    for task in _tasks(aws):
        task_id = task["taskArn"].rsplit("/", 1)[-1]
        assert task["stopCode"] == "TaskFailedToStart"
        assert re.fullmatch(re.escape(
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
            "failed: unable to retrieve ecr registry auth: service call has been retried 3 time(s): "
            f"AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/shop-exec/{task_id} is not "
            "authorized to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy "
            "allows the ecr:GetAuthorizationToken action status code: 400, request id: ") + REQUEST_ID,
            task["stoppedReason"])


def test_secret_under_a_kms_key_pending_deletion_or_disabled_fails_only_new_tasks(aws: Scenario,
                                                                                   sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    kms, sm = aws.client("kms"), aws.client("secretsmanager")
    key = kms.create_key(Description="shop secrets")["KeyMetadata"]
    kms.create_alias(AliasName="alias/shop", TargetKeyId=key["KeyId"])
    secret = str(sm.create_secret(Name="shop/db", SecretString="s3cr3t", KmsKeyId="alias/shop")["ARN"])
    plain = aws.secret("shop/plain")  # the AWS managed key: never disabled nor deleted
    _steady(aws, sim, f"{uri}:v1", secrets=[("DB", secret), ("PLAIN", plain)])
    running = {t["taskArn"] for t in _tasks(aws, "RUNNING")}
    assert len(running) == 2

    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    sim.tick(2)
    assert {t["taskArn"] for t in _tasks(aws, "RUNNING")} == running  # running tasks keep what they read
    sim.restart_tasks("prod", "api")
    sim.tick()
    failed = [t for t in _tasks(aws, "STOPPED") if t["stopCode"] == "TaskFailedToStart"]
    assert len(failed) == 2 and _service(aws)["runningCount"] == 0
    for task in failed:
        assert re.fullmatch(re.escape(
            "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
            "failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch "
            f"secret {secret} from secrets manager: InvalidRequestException: {key['Arn']} is pending deletion. "
            "status code: 400, request id: ") + REQUEST_ID, task["stoppedReason"])
        assert task["containers"][0]["reason"] == task["stoppedReason"]

    kms.cancel_key_deletion(KeyId=key["KeyId"])  # leaves the key Disabled, as KMS does
    sim.tick()
    newest = [t for t in _tasks(aws, "STOPPED") if t["taskArn"] not in {f["taskArn"] for f in failed}
              and t["stopCode"] == "TaskFailedToStart"]
    assert {t["stoppedReason"].split(" status code: ")[0].rsplit(": ", 1)[-1] for t in newest} == {
        f"{key['Arn']} is disabled."}
    kms.enable_key(KeyId=key["KeyId"])
    sim.tick()
    assert len(_tasks(aws, "RUNNING")) == 2


def test_missing_task_role_launches_no_task_and_says_so_in_service_events(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    role = aws.role("shop-task")
    _steady(aws, sim, f"{uri}:v1", task_role=role)
    assert len(_tasks(aws, "RUNNING")) == 2 and _service(aws)["deployments"][0]["rolloutState"] == "COMPLETED"

    aws.delete_role("shop-task")
    sim.tick()
    assert len(_tasks(aws, "RUNNING")) == 2  # running tasks keep their credentials
    before = {t["taskArn"] for t in _tasks(aws)}
    sim.restart_tasks("prod", "api")
    sim.tick(2)
    service = _service(aws)
    assert {t["taskArn"] for t in _tasks(aws)} == before  # no task launched at all, not even a stopped one
    assert service["runningCount"] == 0 and service["deployments"][0]["failedTasks"] == 0
    message = f"(service api) {TASK_ROLE_UNASSUMABLE.format(role=role)}"
    assert _messages(service)[:2] == [message, message]
    assert message == (
        f"(service api) failed to launch a task with (error ECS was unable to assume the role '{role}' that was "
        "provided for this task. Please verify that the role being passed has the proper trust relationship and "
        "permissions and that your IAM user has permissions to pass this role.).")

    aws.role("shop-task")
    sim.tick()
    assert len(_tasks(aws, "RUNNING")) == 2


def test_crashing_image_loops_and_the_breaker_stops_it(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1", exits=True)
    arn = aws.task_definition("api", [("app", f"{uri}:v1")])
    aws.cluster("prod")
    aws.service("prod", "api", arn, desired=1)
    sim.enable_circuit_breaker("prod", "api", enable=False)

    sim.tick()
    assert [t["lastStatus"] for t in _tasks(aws)] == ["RUNNING"]
    sim.tick(3)
    stopped = _tasks(aws, "STOPPED")
    assert len(stopped) == 3 and len(_tasks(aws, "RUNNING")) == 1
    for task in stopped:
        assert (task["stopCode"], task["stoppedReason"]) == ("EssentialContainerExited",
                                                             "Essential container in task exited")
        assert task["containers"][0]["exitCode"] == 1
    service = _service(aws)
    assert (service["deployments"][0]["failedTasks"], service["deployments"][0]["rolloutState"]) == (3,
                                                                                                   "IN_PROGRESS")
    sim.tick(120)
    assert len(_service(aws)["events"]) == 100

    sim.enable_circuit_breaker("prod", "api")
    sim.tick()
    service = _service(aws)
    assert service["deployments"][0]["rolloutState"] == "FAILED"  # no earlier deployment to roll back to
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_deleted_image_is_latent_until_tasks_restart(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    digest = aws.push_image(REPO, "v1")
    _steady(aws, sim, f"{uri}:v1")
    before = {t["taskArn"] for t in _tasks(aws, "RUNNING")}
    events = _messages(_service(aws))

    aws.delete_image(REPO, tag="v1")
    sim.tick(3)
    assert {t["taskArn"] for t in _tasks(aws, "RUNNING")} == before
    assert _messages(_service(aws)) == events

    assert sim.restart_tasks("prod", "api") == 2
    assert {(t["stopCode"], t["stoppedReason"]) for t in _tasks(aws, "STOPPED")} == {("UserInitiated",
                                                                                      "Task stopped by user")}
    sim.tick()
    service = _service(aws)
    pinned = f"{uri}@{digest}"
    failed = [t for t in _tasks(aws, "STOPPED") if t["taskArn"] not in before]
    assert {t["stoppedReason"] for t in failed} == {PULL_NOT_FOUND.format(ref=pinned)}
    assert len(failed) == 2 and service["runningCount"] == 0
    assert service["deployments"][0]["rolloutState"] == "COMPLETED"  # the breaker watches rollouts only
    assert service["deployments"][0]["failedTasks"] == 2


def test_replacements_pull_the_deployment_digest_not_the_moved_tag(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    digest = aws.push_image(REPO, "v1")
    _steady(aws, sim, f"{uri}:v1")
    aws.push_image(REPO, "v1", arch="arm64")  # the tag now names an image that cannot run here

    task = _tasks(aws, "RUNNING")[0]
    aws.client("ecs").stop_task(cluster="prod", task=task["taskArn"], reason="ops: recycle")
    sim.tick()
    stopped = _tasks(aws, "STOPPED")
    assert [(t["stopCode"], t["stoppedReason"]) for t in stopped] == [("UserInitiated", "ops: recycle")]
    running = _tasks(aws, "RUNNING")
    assert len(running) == 2 and {t["containers"][0]["imageDigest"] for t in running} == {digest}


def test_new_task_definition_rolls_out_and_retires_the_old_deployment(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    v2 = aws.push_image(REPO, "v2")
    _steady(aws, sim, f"{uri}:v1")
    old = _service(aws)["deployments"][0]
    old_tasks = {t["taskArn"] for t in _tasks(aws, "RUNNING")}
    arn = aws.task_definition("api", [("app", f"{uri}:v2")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition="api")  # family: latest

    sim.advance(60)
    sim.tick()
    new, active = _service(aws)["deployments"]
    assert (new["status"], new["taskDefinition"], new["rolloutState"], new["runningCount"]) == (
        "PRIMARY", arn, "IN_PROGRESS", 2)
    assert new["rolloutStateReason"] == f"ECS deployment {new['id']} in progress."
    assert new["createdAt"] == T0 + timedelta(seconds=60)
    assert (active["status"], active["id"], active["createdAt"]) == ("ACTIVE", old["id"], old["createdAt"])

    sim.tick()
    service = _service(aws)
    assert [(d["id"], d["rolloutState"]) for d in service["deployments"]] == [(new["id"], "COMPLETED")]
    assert {t["taskArn"] for t in _tasks(aws, "RUNNING")}.isdisjoint(old_tasks)
    assert {t["containers"][0]["imageDigest"] for t in _tasks(aws, "RUNNING")} == {v2}
    assert re.fullmatch(r"\(service api\) has stopped 2 running tasks: .*\.", _messages(service)[2])


def test_forced_new_deployment_replaces_tasks_with_the_same_definition(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    arn = _steady(aws, sim, f"{uri}:v1")
    old = _service(aws)["deployments"][0]
    aws.client("ecs").update_service(cluster="prod", service="api", forceNewDeployment=True)

    sim.tick()
    new, active = _service(aws)["deployments"]
    assert new["id"] != old["id"] and new["taskDefinition"] == arn
    assert (active["id"], active["createdAt"], active["status"]) == (old["id"], old["createdAt"], "ACTIVE")
    sim.tick()
    assert [d["id"] for d in _service(aws)["deployments"]] == [new["id"]]
    assert {t["startedBy"] for t in _tasks(aws, "RUNNING")} == {new["id"]}


def test_desired_count_and_breaker_settings_follow_update_service(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    aws.push_image(REPO, "v1")
    _steady(aws, sim, f"{uri}:v1")
    ecs = aws.client("ecs")
    ecs.update_service(cluster="prod", service="api", desiredCount=3)
    sim.tick()
    assert (_service(aws)["runningCount"], len(_tasks(aws, "RUNNING"))) == (3, 3)
    ecs.update_service(cluster="prod", service="api", desiredCount=1)
    sim.tick()
    service = _service(aws)
    assert (service["runningCount"], service["deployments"][0]["desiredCount"]) == (1, 1)
    assert re.fullmatch(r"\(service api\) has stopped 2 running tasks: .*\.", _messages(service)[0])

    ecs.update_service(cluster="prod", service="api", taskDefinition=aws.task_definition("api", [("app", uri)]),
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": False, "rollback": False}})
    sim.tick(5)  # `latest` was never pushed: failures pile up past the threshold, nothing trips
    (deployment, _) = _service(aws)["deployments"]
    assert (deployment["rolloutState"], deployment["failedTasks"]) == ("IN_PROGRESS", 5)
    assert {t["stoppedReason"] for t in _tasks(aws) if t["startedBy"] == deployment["id"]} == {
        PULL_NOT_FOUND.format(ref=f"{uri}:latest")}


def test_stalled_deployment_keeps_its_creation_time(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository(REPO)
    arn = aws.task_definition("api", [("app", f"{uri}:never-pushed")])
    aws.cluster("prod")
    aws.service("prod", "api", arn, desired=1)
    sim.enable_circuit_breaker("prod", "api", enable=False, rollback=False)
    sim.tick()
    sim.advance(3600)
    sim.tick()

    (deployment,) = _service(aws)["deployments"]
    assert (deployment["rolloutState"], deployment["failedTasks"]) == ("IN_PROGRESS", 2)
    assert (deployment["createdAt"], deployment["updatedAt"]) == (T0, T0 + timedelta(hours=1))


def test_lambda_fails_when_its_image_is_deleted(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository("shop/fn")
    aws.push_image("shop/fn", "v1")
    aws.lambda_function("shop-fn", f"{uri}:v1")
    sim.tick()
    lam = aws.client("lambda")
    assert lam.get_function_configuration(FunctionName="shop-fn")["State"] == "Active"

    aws.delete_image("shop/fn", tag="v1")
    sim.tick()
    for config in (lam.get_function_configuration(FunctionName="shop-fn"),
                   lam.get_function(FunctionName="shop-fn")["Configuration"]):
        assert (config["State"], config["StateReasonCode"]) == ("Failed", "ImageDeleted")
        assert config["StateReason"] == LAMBDA_IMAGE_DELETED
        assert config["LastUpdateStatus"] == "Successful"


def test_lambda_code_update_is_asynchronous_and_checks_the_image(aws: Scenario, sim: EcsSimulator) -> None:
    uri = aws.repository("shop/fn")
    aws.push_image("shop/fn", "v1")
    aws.push_image("shop/fn", "v2-arm", arch="arm64")
    aws.lambda_function("shop-fn", f"{uri}:v1")
    lam = aws.client("lambda")

    assert sim.update_function_code_async("shop-fn", f"{uri}:e4f0a31")["LastUpdateStatus"] == "InProgress"
    assert lam.get_function_configuration(FunctionName="shop-fn")["LastUpdateStatus"] == "InProgress"
    sim.tick()
    config = lam.get_function_configuration(FunctionName="shop-fn")
    assert (config["State"], config["LastUpdateStatus"], config["LastUpdateStatusReasonCode"]) == (
        "Active", "Failed", "InvalidImage")
    assert config["LastUpdateStatusReason"] == (f"Source image {uri}:e4f0a31 does not exist. "
                                                "Provide a valid source image.")

    sim.update_function_code_async("shop-fn", f"{uri}:v2-arm")
    sim.tick()
    config = lam.get_function(FunctionName="shop-fn")["Configuration"]
    assert config["LastUpdateStatus"] == "Failed"
    assert config["LastUpdateStatusReason"] == (f"The image manifest, config or layer media type for the source "
                                                f"image {uri}:v2-arm is not supported.")

    lam.update_function_code(FunctionName="shop-fn", ImageUri=f"{uri}:v1")  # the product's own call
    assert lam.get_function_configuration(FunctionName="shop-fn")["LastUpdateStatus"] == "InProgress"
    sim.tick()
    config = lam.get_function_configuration(FunctionName="shop-fn")
    assert config["LastUpdateStatus"] == "Successful" and "LastUpdateStatusReason" not in config
