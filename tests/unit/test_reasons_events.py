"""ECS service events that say a task could not be launched at all, parsed into the causes stopped tasks use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guard.models import Cause
from guard.reasons import diagnose_event, launch_failures

ROLE = "arn:aws:iam::123456789012:role/api-task"
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
TASKDEF = {"taskRoleArn": ROLE, "executionRoleArn": "arn:aws:iam::123456789012:role/api-exec"}
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)

# Wordings as ECS writes them into DescribeServices' events (older services write "service NAME" unbracketed).
ASSUME = ("(service api) failed to launch a task with (error ECS was unable to assume the role '{role}' that was "
          "provided for this task. Please verify that the role being passed has the proper trust relationship and "
          "permissions and that your IAM user has permissions to pass this role.).")
ASSUME_BY_NAME = ("service api failed to launch a task with (error ECS was unable to assume the role api-task that "
                  "was provided for this task. Please verify that the role being passed has the proper trust "
                  "relationship and permissions and that your IAM user has permissions to pass this role.).")
NO_ENI = ("service appmesh-dev-ecs-colorapp-TcpEchoService-14M0PCTB9QFKJ was unable to place a task because no "
          "container instance met all of its requirements. The closest matching container-instance "
          "acf43593-6b86-4838-86e5-46d896fdc8b3 encountered error \"RESOURCE:ENI\". For more information, see the "
          "Troubleshooting section.")
NO_MEMORY = ("(service api) was unable to place a task because no container instance met all of its requirements. "
             "The closest matching (container-instance 2dc2f1e2-1f0b-4e4e-9f0e-3c8a5d1f0a11) has insufficient memory "
             "available. For more information, see the Troubleshooting section.")
NO_CAPACITY = ("(service api) was unable to place a task. Reason: Capacity is unavailable at this time. Please try "
               "again later or in a different availability zone. For more information, see the Troubleshooting "
               "section.")
VCPU_LIMIT = ("(service production) was unable to place a task. Reason: You've reached the limit on the number of "
              "vCPUs you can run concurrently. For more information, see the Troubleshooting section of the Amazon "
              "ECS Developer Guide.")
SERVICE_LINKED = ("(service api) failed to launch a task with (error Unable to assume the service linked role. "
                  "Please verify that the ECS service linked role exists.).")


def test_a_role_ecs_cannot_assume_keys_on_the_role_so_it_joins_the_role_incident() -> None:
    d = diagnose_event(ASSUME.format(role=ROLE), TASKDEF, CLUSTER)
    assert d is not None and (d.cause, d.key) == (Cause.EXECUTION_ROLE, ROLE)
    assert "cannot assume" in d.explanation and "launches no task" in d.explanation


def test_a_role_named_without_its_arn_is_resolved_through_the_task_definition() -> None:
    d = diagnose_event(ASSUME_BY_NAME, TASKDEF, CLUSTER)
    assert d is not None and (d.cause, d.key) == (Cause.EXECUTION_ROLE, ROLE)
    bare = diagnose_event(ASSUME_BY_NAME)
    assert bare is not None and bare.key == "api-task"  # nothing to resolve it against: the name ECS gave


def test_no_free_network_interface_is_a_network_cause_of_the_cluster() -> None:
    d = diagnose_event(NO_ENI, None, CLUSTER)
    assert d is not None and (d.cause, d.key) == (Cause.NETWORK, f"network:{CLUSTER}")


@pytest.mark.parametrize(("message", "words"), [
    (NO_MEMORY, "has insufficient memory available"),
    (NO_CAPACITY, "Capacity is unavailable at this time. Please try again later or in a different availability zone"),
    (VCPU_LIMIT, "You've reached the limit on the number of vCPUs you can run concurrently"),
])
def test_placement_failures_are_unknown_keyed_on_the_cluster_in_ecs_words(message: str, words: str) -> None:
    d = diagnose_event(message, TASKDEF, CLUSTER)
    assert d is not None and (d.cause, d.key) == (Cause.UNKNOWN, f"placement:{CLUSTER}")
    assert words in d.explanation and "Troubleshooting" not in d.explanation


def test_another_launch_error_is_unknown_and_quotes_ecs() -> None:
    d = diagnose_event(SERVICE_LINKED, TASKDEF, CLUSTER)
    assert d is not None and (d.cause, d.key) == (Cause.UNKNOWN, f"launch:{CLUSTER}")
    assert d.explanation.endswith("Please verify that the ECS service linked role exists.")


@pytest.mark.parametrize("message", [
    "(service api) has reached a steady state.",
    "(service api) has started 2 tasks: (task 0f3a) (task 9c1d).",
    "(service api) is unable to consistently start tasks successfully.",
    "(service api) (deployment ecs-svc/123) deployment completed.",
])
def test_events_that_are_not_launch_failures_say_nothing(message: str) -> None:
    assert diagnose_event(message, TASKDEF, CLUSTER) is None


def _event(minutes: int, message: str) -> dict[str, object]:
    return {"id": str(minutes), "createdAt": T0 + timedelta(minutes=minutes), "message": message}


def test_launch_failures_count_only_since_the_deployment_and_the_last_steady_state() -> None:
    events = [  # newest first, as DescribeServices lists them
        _event(30, ASSUME.format(role=ROLE)),
        _event(20, NO_CAPACITY),
        _event(10, "(service api) has reached a steady state."),
        _event(5, NO_MEMORY),
    ]
    found = launch_failures(events, T0, TASKDEF, CLUSTER)
    assert [(when, d.cause) for when, d in found] == [(T0 + timedelta(minutes=30), Cause.EXECUTION_ROLE),
                                                       (T0 + timedelta(minutes=20), Cause.UNKNOWN)]
    assert [d.cause for _, d in launch_failures(events, T0 + timedelta(minutes=25), TASKDEF)] == [Cause.EXECUTION_ROLE]
    assert launch_failures(events[2:], T0, TASKDEF) == []  # the failure before the steady state is history


def test_a_role_another_revision_names_is_not_this_revisions_failure() -> None:
    other = "arn:aws:iam::123456789012:role/old-task"
    events = [_event(1, ASSUME.format(role=other))]
    assert launch_failures(events, T0, TASKDEF, CLUSTER) == []
    [(_, d)] = launch_failures(events, T0, None, CLUSTER)
    assert d.key == other
