"""ECS and Lambda physics for the sandbox: moto answers the APIs, this module makes things happen.

moto stores ECS services but runs no tasks and models no deployments, and its Lambda functions never
change state. `EcsSimulator.tick()` plays one scheduling round on moto's own objects (in process), so
everything it does comes back over HTTP through the ordinary API calls:

- Deployments. Each service has a PRIMARY deployment (older ones ACTIVE). A new one starts when the
  service's task definition changed since the last round (UpdateService by anyone) or when
  UpdateService(forceNewDeployment=True) was called: moto rewrites the PRIMARY deployment's id in place
  when forced, which the simulator detects (and undoes, keeping the old deployment intact).
- Tasks. The PRIMARY deployment launches tasks until desiredCount run. A task starts only if the
  execution role exists in IAM, every secret exists (Secrets Manager or SSM; a Secrets Manager secret not
  scheduled for deletion and its customer-managed KMS key neither pending deletion nor disabled), and every
  image exists in ECR and has a manifest for the task definition's CPU architecture (images outside ECR are
  pullable). Otherwise it stops at once with ECS's stopCode and stoppedReason. A task role that does not
  exist launches no task at all: each round leaves ECS's "unable to assume the role" service event instead
  (no task, so failedTasks and the circuit breaker do not count it). Like ECS's software version consistency,
  a deployment pins each container's image digest at its first successful start, so later replacements pull
  the digest (a moved tag does not matter; a deleted image does).
- Crash loops. An image whose config carries the label `EXIT_CODE_LABEL` (Scenario.push_image(exits=True))
  runs for one round, then stops with EssentialContainerExited and is replaced.
- Circuit breaker. failedTasks counts failed starts and crash exits of the deployment; at
  max(3, min(200, ceil(desiredCount / 2))) an IN_PROGRESS deployment is FAILED and, with rollback, the
  service rolls back to its last COMPLETED deployment (a failed rollback is not rolled back). moto drops
  deploymentConfiguration on CreateService, so a service without one gets the breaker enabled with
  rollback (written back to the service, visible in DescribeServices); `enable_circuit_breaker` or
  UpdateService(deploymentConfiguration=...) can change it.
- Steady services never pull again while their tasks run: an image deleted under them breaks nothing
  until `restart_tasks` (or StopTask over HTTP) makes the scheduler launch replacements.
- Lambda. The $LATEST version of each Image function is watched: an image that no longer exists in ECR
  (by the digest it resolved to) makes the function Failed (ImageDeleted); UpdateFunctionCode is
  asynchronous (LastUpdateStatus InProgress until the next round, then Successful or Failed).

Rounds: a launched task is RUNNING or STOPPED at once; a deployment retires older ones and completes in
the round after its tasks run. Between rounds moto answers alone (after UpdateService(desiredCount) its
runningCount equals the new desiredCount until the next round). Lambda functions are watched from the
first round that sees them (or `update_function_code_async`). Times come from the injected clock (plus
`advance`). moto's automatic ECS task transitions are frozen, process-wide, with its state-manager API so
that polling DescribeTasks never moves a task. Rounds mutate moto's objects without a lock: tick from one
thread.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from guard.sandbox.aws import DEFAULT_ACCOUNT, AwsSandbox
from guard.sandbox.scenarios import EXIT_CODE_LABEL

_EVENT_CAP = 100
_ECR_IMAGE = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                        r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?")
_ECS_ARCH = {"X86_64": "amd64", "ARM64": "arm64"}
_LAMBDA_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
_UPDATE_REASON_KEYS = ("LastUpdateStatusReason", "LastUpdateStatusReasonCode")
_KEY_STATES = {"PendingDeletion": "pending deletion", "Disabled": "disabled"}  # KMS refuses Decrypt in these

PULL_NOT_FOUND = ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                  "failed to resolve ref {ref}: {ref}: not found")
PULL_WRONG_PLATFORM = ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                       "image Manifest does not contain descriptor matching platform '{platform}'")
_EXECUTION = ("ResourceInitializationError: unable to pull secrets or registry auth: "
              "execution resource retrieval failed: ")
ROLE_DENIED = (_EXECUTION + "unable to retrieve ecr registry auth: service call has been retried 3 time(s): "
               "AccessDeniedException: User: arn:aws:sts::{account}:assumed-role/{role}/{task} is not authorized "
               "to perform: ecr:GetAuthorizationToken on resource: * because no identity-based policy allows the "
               "ecr:GetAuthorizationToken action status code: 400, request id: {request}")
SECRET_NOT_FOUND = (_EXECUTION + "unable to retrieve secret from asm: service call has been retried 1 time(s): "
                    "failed to fetch secret {arn} from secrets manager: ResourceNotFoundException: Secrets Manager "
                    "can't find the specified secret. status code: 400, request id: {request}")
SECRET_DELETED = (_EXECUTION + "unable to retrieve secret from asm: service call has been retried 1 time(s): "
                  "failed to fetch secret {arn} from secrets manager: InvalidRequestException: You can't perform "
                  "this operation on the secret because it was marked for deletion. status code: 400, "
                  "request id: {request}")
SECRET_KEY_UNUSABLE = (_EXECUTION + "unable to retrieve secret from asm: service call has been retried 1 time(s): "
                       "failed to fetch secret {arn} from secrets manager: InvalidRequestException: {key} is {state}. "
                       "status code: 400, request id: {request}")
PARAMETER_NOT_FOUND = (_EXECUTION + "unable to retrieve secrets from ssm: service call has been retried 1 time(s): "
                       "invalid ssm parameters: {name}")
TASK_ROLE_UNASSUMABLE = ("failed to launch a task with (error ECS was unable to assume the role '{role}' that was "
                         "provided for this task. Please verify that the role being passed has the proper trust "
                         "relationship and permissions and that your IAM user has permissions to pass this role.).")
CONTAINER_EXITED = "Essential container in task exited"
USER_STOPPED = "Task stopped by user"
SCALING = "Scaling activity initiated by (deployment {deployment})"
BREAKER_FAILED = "ECS deployment circuit breaker: tasks failed to start."
BREAKER_ROLLBACK = "ECS deployment circuit breaker: rolling back to deploymentId {deployment}."
LAMBDA_IMAGE_DELETED = "The function is trying to use a deleted image."
LAMBDA_IMAGE_MISSING = "Source image {uri} does not exist. Provide a valid source image."
LAMBDA_IMAGE_UNSUPPORTED = "The image manifest, config or layer media type for the source image {uri} is not supported."


@dataclass(frozen=True)
class _Pull:
    """The outcome of pulling one image reference for one architecture."""

    problem: str | None  # None, "missing" or "platform"
    ref: str
    digest: str | None = None
    exit_code: int | None = None


@dataclass
class _ServiceState:
    """What the scheduler remembers about a service between rounds (kept on moto's Service object)."""

    task_definition: str
    primary_id: str = ""
    primary_created: datetime | None = None
    pins: dict[str, dict[str, str]] = field(default_factory=dict)  # deployment id -> container -> digest
    crashing: dict[str, int] = field(default_factory=dict)  # task ARN -> exit code at the next round


def _moto(module: str) -> Any:
    """A moto module, imported on first use (moto is slow to import) and typed as Any."""
    return importlib.import_module(f"moto.{module}")


def _backend(service: str, account: str, region: str) -> Any:
    return _moto("backends").get_backend(service)[account][region]


def _repository_part(image: str) -> str:
    """The image reference without its tag and digest."""
    name = image.split("@", 1)[0]
    return name[:name.rfind(":")] if name.rfind(":") > name.rfind("/") else name


def _find_image(repository: Any, tag: str | None, digest: str | None) -> Any:
    for image in list(repository.images) if repository is not None else ():
        if (digest is None or image.image_digest == digest) and (tag is None or tag in image.image_tags):
            return image
    return None


def _deployment_id() -> str:
    return f"ecs-svc/{random.randrange(10**18, 10**19)}"


def breaker_threshold(desired_count: int) -> int:
    """ECS's circuit-breaker failure threshold for a deployment of `desired_count` tasks."""
    return max(3, min(200, math.ceil(0.5 * desired_count)))


@functools.cache
def _observed_function_class() -> type:
    """moto's LambdaFunction, reporting the state and update status the simulator gives its $LATEST."""
    base = _moto("awslambda.models").LambdaFunction

    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config: dict[str, Any] = base.get_configuration(self, on_create)
        if self.version == "$LATEST":
            config.update(self.sandbox_status)
            if self.code.get("ImageUri") != self.sandbox_uri:
                config["LastUpdateStatus"] = "InProgress"
                for key in _UPDATE_REASON_KEYS:
                    config.pop(key, None)
        return config

    return type("ObservedLambdaFunction", (base,), {"get_configuration": get_configuration})


class EcsSimulator:
    """Gives moto's ECS services and Lambda functions causes and effects, one round per tick."""

    def __init__(self, sandbox: AwsSandbox, clock: Callable[[], datetime] | None = None,
                 region: str | None = None, account: str = DEFAULT_ACCOUNT) -> None:
        self.sandbox = sandbox
        self.region = region or sandbox.region
        self.account = account
        self._clock = clock or (lambda: datetime.now(UTC))
        self._offset = timedelta()

    def now(self) -> datetime:
        """The simulator's time: the clock's, moved on by `advance`, in UTC."""
        return (self._clock() + self._offset).astimezone(UTC)

    def advance(self, seconds: float) -> None:
        """Move the simulator's time on by `seconds` (no sleeping)."""
        self._offset += timedelta(seconds=seconds)

    def tick(self, n: int = 1) -> None:
        """Play `n` scheduling rounds over every ECS service and Image-package Lambda function."""
        for _ in range(n):
            _moto("moto_api").state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
            now = self.now()
            for service in list(self._ecs().services.values()):
                if service.status == "ACTIVE" and service.scheduling_strategy == "REPLICA" \
                        and service.deployment_controller.get("type", "ECS") == "ECS":
                    self._schedule(service, now)
            self._lambda_round()

    def restart_tasks(self, cluster: str, service: str) -> int:
        """Stop the service's running tasks (as StopTask would) and return how many were stopped."""
        svc, now = self._ecs()._get_service(cluster, service), self.now()
        state = self._state(svc, now)
        running = [t for t in self._tasks(svc) if t.last_status == "RUNNING"]
        for task in running:
            self._stop(task, now, "UserInitiated", USER_STOPPED)
            state.crashing.pop(task.task_arn, None)
        return len(running)

    def enable_circuit_breaker(self, cluster: str, service: str, enable: bool = True,
                               rollback: bool = True) -> None:
        """Set the service's deployment circuit breaker (moto drops it on CreateService)."""
        svc = self._ecs()._get_service(cluster, service)
        config = dict(getattr(svc, "deployment_configuration", None) or {})
        config["deploymentCircuitBreaker"] = {"enable": enable, "rollback": rollback}
        svc.deployment_configuration = config

    def update_function_code_async(self, function: str, image_uri: str) -> dict[str, Any]:
        """UpdateFunctionCode over HTTP; the update stays InProgress until the next tick decides it."""
        latest = self._lambda()._lambdas.get_function_by_name_forbid_qualifier(function)
        self._adopt_function(latest)
        return dict(self.sandbox.client("lambda", region=self.region).update_function_code(
            FunctionName=function, ImageUri=image_uri))

    # ECS: one scheduling round for one service

    def _schedule(self, svc: Any, now: datetime) -> None:
        state = self._state(svc, now)
        self._notice_changes(svc, state, now)
        self._reap(svc, state, self._tasks(svc), now)
        self._count(svc)
        self._drain(svc, now)
        primary = svc.deployments[0]
        if primary["rolloutState"] != "FAILED":
            self._launch(svc, state, primary, self._tasks(svc), now)
        self._count(svc)
        self._trip_breaker(svc, state, now)

    def _state(self, svc: Any, now: datetime) -> _ServiceState:
        """The service's scheduler state, adopting the service (fresh deployment) on first sight."""
        state: _ServiceState | None = getattr(svc, "_sandbox_state", None)
        if state is None:
            svc.task_definition = self._ecs().describe_task_definition(svc.task_definition).arn
            state = _ServiceState(task_definition=svc.task_definition)
            svc._sandbox_state = state
            if getattr(svc, "deployment_configuration", None) is None:
                svc.deployment_configuration = {
                    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                    "maximumPercent": 200, "minimumHealthyPercent": 100}
            svc.deployments = []
            self._deploy(svc, state, svc.task_definition, now)
        return state

    def _notice_changes(self, svc: Any, state: _ServiceState, now: datetime) -> None:
        """Start a deployment for a new task definition or a forced new deployment."""
        svc.task_definition = self._ecs().describe_task_definition(svc.task_definition).arn
        primary = svc.deployments[0]
        forced = primary["id"] != state.primary_id
        if forced:  # moto's forceNewDeployment rewrote our PRIMARY deployment in place: undo it
            primary["id"], primary["createdAt"] = state.primary_id, state.primary_created
        if forced or svc.task_definition != state.task_definition:
            self._deploy(svc, state, svc.task_definition, now)
        elif primary["desiredCount"] != svc.desired_count:
            primary["desiredCount"], primary["updatedAt"] = svc.desired_count, now

    def _deploy(self, svc: Any, state: _ServiceState, task_definition: str, now: datetime,
                reason: str | None = None) -> None:
        """Make a new PRIMARY deployment of `task_definition`; the previous PRIMARY becomes ACTIVE."""
        for old in svc.deployments:
            old["status"] = "ACTIVE"
        deployment_id = _deployment_id()
        deployment: dict[str, Any] = {
            "id": deployment_id, "status": "PRIMARY", "taskDefinition": task_definition,
            "desiredCount": svc.desired_count, "pendingCount": 0, "runningCount": 0, "failedTasks": 0,
            "createdAt": now, "updatedAt": now, "launchType": svc.launch_type,
            "platformVersion": "1.4.0" if svc.launch_type == "FARGATE" else None,
            "platformFamily": "Linux" if svc.launch_type == "FARGATE" else None,
            "networkConfiguration": svc.network_configuration or None,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": reason or f"ECS deployment {deployment_id} in progress.",
        }
        svc.deployments.insert(0, deployment)
        svc.task_definition = task_definition
        state.task_definition, state.primary_id, state.primary_created = task_definition, deployment_id, now

    def _tasks(self, svc: Any) -> list[Any]:
        group = f"service:{svc.name}"
        return [t for t in list(self._ecs().tasks.get(svc.cluster_name, {}).values()) if t.group == group]

    def _reap(self, svc: Any, state: _ServiceState, tasks: list[Any], now: datetime) -> None:
        """Finish tasks stopped over HTTP, and stop crash-looping tasks that have run for one round."""
        for task in tasks:
            if task.last_status == "STOPPED" and getattr(task, "stop_code", None) is None:
                self._stop(task, getattr(task, "stopped_at", None) or now, "UserInitiated",
                           task.stopped_reason or USER_STOPPED)
            exit_code = state.crashing.pop(task.task_arn, None)
            if exit_code is not None and task.last_status == "RUNNING":
                self._stop(task, now, "EssentialContainerExited", CONTAINER_EXITED, exit_code=exit_code)
                for deployment in svc.deployments:
                    if deployment["id"] == task.started_by:
                        deployment["failedTasks"] += 1
                        deployment["updatedAt"] = now

    def _launch(self, svc: Any, state: _ServiceState, primary: dict[str, Any], tasks: list[Any],
                now: datetime) -> None:
        """Launch the PRIMARY deployment's missing tasks; each starts or stops at once."""
        running = [t for t in tasks if t.started_by == primary["id"] and t.last_status == "RUNNING"]
        excess = len(running) - primary["desiredCount"]
        stopped = running[:excess] if excess > 0 else []
        for task in stopped:
            self._stop(task, now, "ServiceSchedulerInitiated", SCALING.format(deployment=primary["id"]))
        if stopped:
            self._event(svc, now, f"has stopped {len(stopped)} running tasks: {_task_list(stopped)}.")
        ecs = self._ecs()
        definition = ecs.describe_task_definition(primary["taskDefinition"])
        task_role = getattr(definition, "task_role_arn", None)
        if task_role and primary["desiredCount"] > len(running) and not self._role_exists(task_role):
            self._event(svc, now, TASK_ROLE_UNASSUMABLE.format(role=task_role))  # ECS launches no task at all
            return
        pins = state.pins.setdefault(primary["id"], {})
        launched = [self._start(svc, definition, primary, pins, state, now)
                    for _ in range(primary["desiredCount"] - len(running))]
        if launched:
            primary["updatedAt"] = now
            self._event(svc, now, f"has started {len(launched)} tasks: {_task_list(launched)}.")

    def _start(self, svc: Any, definition: Any, deployment: dict[str, Any], pins: dict[str, str],
               state: _ServiceState, now: datetime) -> Any:
        """Create one task of `deployment`: RUNNING if everything it needs is there, else STOPPED."""
        task = self._new_task(svc, definition, deployment, now)
        reason, digests, exit_code = self._admit(definition, pins, task.id)
        if reason is not None:
            deployment["failedTasks"] += 1
            self._stop(task, now, "TaskFailedToStart", reason, container_reason=reason)
            return task
        for name, digest in digests.items():
            pins.setdefault(name, digest)
        task.last_status = task.desired_status = "RUNNING"
        task.pull_started_at = task.pull_stopped_at = task.started_at = task.connectivity_at = now
        task.connectivity = "CONNECTED"
        for container in task.containers:
            container.last_status = "RUNNING"
            container.image_digest = digests.get(container.name)
            container.runtime_id = f"{task.id}-{random.randrange(10**9, 10**10)}"
        if exit_code is not None:
            state.crashing[task.task_arn] = exit_code
        return task

    def _new_task(self, svc: Any, definition: Any, deployment: dict[str, Any], now: datetime) -> Any:
        """A new task of the service in moto's store, with one container per container definition."""
        models = _moto("ecs.models")
        ecs = self._ecs()
        task = models.Task(
            ecs.clusters[svc.cluster_name], definition, None, None, backend=ecs, group=f"service:{svc.name}",
            launch_type=svc.launch_type or "", started_by=deployment["id"],
            networking_configuration=svc.network_configuration or None,
            platform_version=deployment["platformVersion"])
        task.id = uuid.uuid4().hex
        task.created_at, task.cpu, task.memory = now, definition.cpu, definition.memory
        task.availability_zone, task.health_status, task.version = f"{self.region}a", "UNKNOWN", 1
        task.platform_family, task.stopped_reason = deployment["platformFamily"], None
        containers = []
        for spec in definition.container_definitions:
            container = models.Container(definition)
            container.name, container.image = spec.get("name"), spec.get("image")
            container.cpu, container.memory = spec.get("cpu", 0), spec.get("memory")
            container.environment, container.command = spec.get("environment"), spec.get("command")
            container.exitCode, container.health_status = None, "UNKNOWN"
            container.task_arn = task.task_arn
            container.container_arn = (f"arn:aws:ecs:{self.region}:{self.account}:container/{svc.cluster_name}/"
                                       f"{task.id}/{uuid.uuid4()}")
            containers.append(container)
        task.containers = containers
        ecs.tasks.setdefault(svc.cluster_name, {})[task.task_arn] = task
        return task

    def _admit(self, definition: Any, pins: dict[str, str], task_id: str) -> tuple[str | None, dict[str, str],
                                                                                    int | None]:
        """(stoppedReason or None, container -> pulled digest, exit code of an exiting essential image)."""
        account, region = definition.arn.split(":")[4], definition.arn.split(":")[3]
        role = getattr(definition, "execution_role_arn", None)
        if role and not self._role_exists(role):
            return ROLE_DENIED.format(account=role.split(":")[4], role=role.rsplit("/", 1)[-1], task=task_id,
                                      request=uuid.uuid4()), {}, None
        for spec in definition.container_definitions:
            for secret in spec.get("secrets") or ():
                problem = self._secret_problem(secret["valueFrom"], account, region)
                if problem is not None:
                    return problem, {}, None
        runtime = getattr(definition, "runtime_platform", None) or {}
        platform = _ECS_ARCH.get(runtime.get("cpuArchitecture", "X86_64"), "amd64")
        digests: dict[str, str] = {}
        exit_code = None
        for spec in definition.container_definitions:
            name, image = spec["name"], spec["image"]
            pull = self._pull(f"{_repository_part(image)}@{pins[name]}" if name in pins else image, platform)
            if pull.problem == "missing":
                return PULL_NOT_FOUND.format(ref=pull.ref), {}, None
            if pull.problem == "platform":
                return PULL_WRONG_PLATFORM.format(platform=f"linux/{platform}"), {}, None
            if pull.digest is not None:
                digests[name] = pull.digest
            if pull.exit_code is not None and spec.get("essential", True):
                exit_code = pull.exit_code
        return None, digests, exit_code

    def _trip_breaker(self, svc: Any, state: _ServiceState, now: datetime) -> None:
        """Fail the PRIMARY deployment at the breaker's threshold and roll back if configured."""
        primary = svc.deployments[0]
        breaker = (getattr(svc, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
        if not breaker.get("enable") or primary["rolloutState"] != "IN_PROGRESS" \
                or primary["failedTasks"] < breaker_threshold(primary["desiredCount"]):
            return
        was_rollback = primary["rolloutStateReason"].startswith(BREAKER_ROLLBACK.split("{", 1)[0])
        primary["rolloutState"], primary["rolloutStateReason"], primary["updatedAt"] = "FAILED", BREAKER_FAILED, now
        self._event(svc, now, f"(deployment {primary['id']}) deployment failed: tasks failed to start.")
        target = next((d for d in svc.deployments[1:] if d["rolloutState"] == "COMPLETED"), None)
        if breaker.get("rollback") and target is not None and not was_rollback:  # a failed rollback stays failed
            self._deploy(svc, state, target["taskDefinition"], now,
                         reason=BREAKER_ROLLBACK.format(deployment=target["id"]))
            self._event(svc, now, f"rolling back to deployment {target['id']}.")

    def _drain(self, svc: Any, now: datetime) -> None:
        """Once the PRIMARY deployment ran all its tasks last round, retire older deployments and complete it."""
        primary = svc.deployments[0]
        if primary["rolloutState"] == "FAILED" or primary["runningCount"] < primary["desiredCount"]:
            return
        old_ids = {d["id"] for d in svc.deployments[1:]}
        stopped = [t for t in self._tasks(svc) if t.started_by in old_ids and t.last_status == "RUNNING"]
        for task in stopped:
            self._stop(task, now, "ServiceSchedulerInitiated", SCALING.format(deployment=primary["id"]))
        if stopped:
            self._event(svc, now, f"has stopped {len(stopped)} running tasks: {_task_list(stopped)}.")
        del svc.deployments[1:]
        if primary["rolloutState"] == "IN_PROGRESS":
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
            primary["updatedAt"] = now
            self._event(svc, now, f"(deployment {primary['id']}) deployment completed.")
            self._event(svc, now, "has reached a steady state.")

    def _count(self, svc: Any) -> None:
        """Running and pending counts of each deployment and of the service, from its tasks."""
        running: dict[str, int] = {}
        for task in self._tasks(svc):
            if task.last_status == "RUNNING":
                running[task.started_by] = running.get(task.started_by, 0) + 1
        for deployment in svc.deployments:
            deployment["runningCount"], deployment["pendingCount"] = running.get(deployment["id"], 0), 0
        svc.running_count = sum(d["runningCount"] for d in svc.deployments)
        svc.pending_count = 0

    def _stop(self, task: Any, now: datetime, code: str, reason: str, exit_code: int | None = None,
              container_reason: str | None = None) -> None:
        """Stop `task` the way ECS reports it, and release its network interface."""
        task.last_status = task.desired_status = "STOPPED"
        task.stop_code, task.stopped_reason = code, reason
        task.stopping_at = task.execution_stopped_at = task.stopped_at = now
        for container in task.containers:
            container.last_status = "STOPPED"
            if container_reason is not None:
                container.reason = container_reason
            if exit_code is not None:
                container.exitCode = exit_code
        enis = _backend("ec2", self.account, task.region_name).enis
        for attachment in task.attachments:
            for detail in attachment.get("details", ()):
                if detail["name"] == "networkInterfaceId":
                    enis.pop(detail["value"], None)
            attachment["status"] = "DELETED"

    def _event(self, svc: Any, now: datetime, text: str) -> None:
        svc.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": now, "message": f"(service {svc.name}) {text}"})
        del svc.events[_EVENT_CAP:]

    # What a task (or a function) needs from IAM, Secrets Manager, SSM and ECR

    def _role_exists(self, role_arn: str) -> bool:
        iam = _backend("iam", role_arn.split(":")[4], "aws")
        return any(role.arn == role_arn for role in iam.get_roles())

    def _secret_problem(self, value_from: str, account: str, region: str) -> str | None:
        """The stoppedReason for a secret the task cannot fetch, or None."""
        parts = value_from.split(":")
        if value_from.startswith("arn:") and parts[2] == "secretsmanager":
            arn = ":".join(parts[:7])
            secret = _backend("secretsmanager", parts[4], parts[3]).secrets.get(arn)
            if secret is None:
                return SECRET_NOT_FOUND.format(arn=arn, request=uuid.uuid4())
            if secret.is_deleted():
                return SECRET_DELETED.format(arn=arn, request=uuid.uuid4())
            key = self._unusable_key(secret.kms_key_id, parts[4], parts[3]) if secret.kms_key_id else None
            return SECRET_KEY_UNUSABLE.format(arn=arn, key=key[0], state=key[1], request=uuid.uuid4()) if key else None
        name = value_from
        if value_from.startswith("arn:"):  # ...:parameter/a/b names "/a/b"; ...:parameter/a names "a"
            account, region, name = parts[4], parts[3], value_from.split(":parameter", 1)[1]
        ssm = _backend("ssm", account, region)
        found = ssm.get_parameter(name) or ssm.get_parameter(name.lstrip("/"))
        return PARAMETER_NOT_FOUND.format(name=value_from) if found is None else None

    def _unusable_key(self, key_id: str, account: str, region: str) -> tuple[str, str] | None:
        """(key ARN, "pending deletion" or "disabled") when KMS would refuse Decrypt with the key, else None."""
        if key_id.startswith("arn:"):
            account, region = key_id.split(":")[4], key_id.split(":")[3]
        kms = _backend("kms", account, region)
        alias = kms.get_alias_name(key_id)
        if alias.startswith("alias/aws/"):  # an AWS managed key is never disabled nor deleted
            return None
        raw = kms.get_key_id_from_alias(alias) if alias.startswith("alias/") else kms.get_key_id(key_id)
        key = kms.keys.get(raw) if raw else None
        return (key.arn, _KEY_STATES[key.key_state]) if key is not None and key.key_state in _KEY_STATES else None

    def _pull(self, ref: str, platform: str) -> _Pull:
        """Resolve `ref` in moto's ECR for linux/`platform`, reading configs from the sandbox's blobs."""
        match = _ECR_IMAGE.fullmatch(ref)
        if match is None:
            return _Pull(None, ref)
        account, region, name = match["account"], match["region"], match["repo"]
        repository = _backend("ecr", account, region).repositories.get(name)
        tag = match["tag"] or (None if match["digest"] else "latest")
        ref = ref if match["tag"] or match["digest"] else f"{ref}:latest"  # as the runtime normalises it
        image = _find_image(repository, tag, match["digest"])
        if image is None:
            return _Pull("missing", ref)
        manifest = json.loads(image.image_manifest)
        if "manifests" in manifest:
            child = next((m["digest"] for m in manifest["manifests"]
                          if m.get("platform", {}).get("architecture") == platform
                          and m.get("platform", {}).get("os") == "linux"), None)
            if child is None:
                return _Pull("platform", ref)
            child_image = _find_image(repository, None, child)
            if child_image is None:
                return _Pull("missing", f"{_repository_part(ref)}@{child}")
            manifest = json.loads(child_image.image_manifest)
        config_digest = (manifest.get("config") or {}).get("digest")
        blob = self.sandbox.blobs.get((account, region, name, config_digest)) if config_digest else None
        config = json.loads(blob) if blob else {}
        if config and config.get("architecture") != platform:
            return _Pull("platform", ref)
        labels = (config.get("config") or {}).get("Labels") or {}
        exit_code = int(labels[EXIT_CODE_LABEL]) if EXIT_CODE_LABEL in labels else None
        return _Pull(None, ref, image.image_digest, exit_code)

    # Lambda

    def _lambda_round(self) -> None:
        """Decide pending code updates and fail functions whose image was deleted."""
        for group in list(self._lambda()._lambdas._functions.values()):
            function = group["latest"]
            if function is None or function.package_type != "Image":
                continue
            self._adopt_function(function)
            uri = function.code.get("ImageUri")
            platform = _LAMBDA_ARCH.get(function.architectures[0], "amd64")
            status = dict(function.sandbox_status)
            if uri != function.sandbox_uri:
                pull = self._pull(uri, platform)
                function.sandbox_uri = uri
                if pull.problem is None:
                    function.sandbox_digest, status = pull.digest, {"LastUpdateStatus": "Successful"}
                else:
                    template = LAMBDA_IMAGE_MISSING if pull.problem == "missing" else LAMBDA_IMAGE_UNSUPPORTED
                    status.update(LastUpdateStatus="Failed", LastUpdateStatusReasonCode="InvalidImage",
                                  LastUpdateStatusReason=template.format(uri=uri))
            elif status.get("State") != "Failed":
                digest = function.sandbox_digest
                if self._pull(f"{_repository_part(uri)}@{digest}" if digest else uri, platform).problem == "missing":
                    status.update(State="Failed", StateReasonCode="ImageDeleted", StateReason=LAMBDA_IMAGE_DELETED)
            function.sandbox_status = status

    def _adopt_function(self, function: Any) -> None:
        """Watch a function from now on: remember the image digest its current code resolves to."""
        if isinstance(function, _observed_function_class()):
            return
        function.__class__ = _observed_function_class()
        function.sandbox_uri = function.code.get("ImageUri")
        platform = _LAMBDA_ARCH.get(function.architectures[0], "amd64")
        function.sandbox_digest = self._pull(function.sandbox_uri, platform).digest
        function.sandbox_status = {}

    def _ecs(self) -> Any:
        return _backend("ecs", self.account, self.region)

    def _lambda(self) -> Any:
        return _backend("lambda", self.account, self.region)


def _task_list(tasks: Iterable[Any]) -> str:
    return " ".join(f"(task {t.id})" for t in tasks)
