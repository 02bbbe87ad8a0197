"""ECS read port: services in batches of 10, task definitions cached."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code

SERVICES_PER_CALL = 10
TASKS_PER_CALL = 100


class Boto3Ecs:
    """ECS adapter with a task-definition cache shared by every caller in the run."""

    def __init__(self, aws: AwsSession) -> None:
        self.aws = aws
        self._lock = threading.Lock()
        self._task_defs: dict[str, dict[str, Any] | None] = {}

    def services(self, cluster: str, names: list[str], region: str | None = None
                 ) -> dict[str, dict[str, Any] | None]:
        """Describe services by name (None for MISSING); 10 per call."""
        client = self.aws.client("ecs", region)
        out: dict[str, dict[str, Any] | None] = {}
        for i in range(0, len(names), SERVICES_PER_CALL):
            chunk = names[i : i + SERVICES_PER_CALL]
            self.aws.stats.batch("ecs:DescribeServices", len(chunk))
            try:
                resp = call(client, "DescribeServices", cluster=cluster, services=chunk)
            except ClientError as exc:
                if error_code(exc) == "ClusterNotFoundException":
                    return dict.fromkeys(names)
                raise GatewayError("ECS", "DescribeServices", str(exc), error_code(exc)) from exc
            for svc in resp.get("services", []):
                out[svc["serviceName"]] = svc
        return {n: out.get(n) for n in names}

    def list_clusters(self, region: str | None = None) -> list[str]:
        """Every cluster ARN (paginated, 100 per page)."""
        return self._paged(region, "ListClusters", "clusterArns", {})

    def list_services(self, cluster: str, region: str | None = None) -> list[str]:
        """Every service ARN of a cluster (paginated, 100 per page)."""
        return self._paged(region, "ListServices", "serviceArns", {"cluster": cluster, "maxResults": 100})

    def list_stopped_tasks(self, cluster: str, region: str | None = None) -> list[str]:
        """ARNs of the cluster's STOPPED tasks (ECS keeps them about an hour), 100 per page."""
        return self._paged(region, "ListTasks", "taskArns",
                           {"cluster": cluster, "desiredStatus": "STOPPED", "maxResults": 100})

    def describe_tasks(self, cluster: str, arns: list[str], region: str | None = None) -> list[dict[str, Any]]:
        """Describe tasks, 100 per call."""
        client = self.aws.client("ecs", region)
        out: list[dict[str, Any]] = []
        for i in range(0, len(arns), TASKS_PER_CALL):
            chunk = arns[i : i + TASKS_PER_CALL]
            self.aws.stats.batch("ecs:DescribeTasks", len(chunk))
            out.extend(call(client, "DescribeTasks", cluster=cluster, tasks=chunk).get("tasks", []))
        return out

    def _paged(self, region: str | None, operation: str, key: str, params: dict[str, Any]) -> list[str]:
        client = self.aws.client("ecs", region)
        out: list[str] = []
        token: str | None = None
        while True:
            resp = call(client, operation, **params, **({"nextToken": token} if token else {}))
            out.extend(resp.get(key, []))
            token = resp.get("nextToken")
            if not token:
                return out

    def task_definition(self, arn: str, region: str | None = None) -> dict[str, Any] | None:
        """The registered task definition (None when it does not exist); cached per ARN."""
        with self._lock:
            if arn in self._task_defs:
                return self._task_defs[arn]
        try:
            td: dict[str, Any] | None = call(self.aws.client("ecs", region), "DescribeTaskDefinition",
                                             taskDefinition=arn)["taskDefinition"]
        except ClientError as exc:
            if error_code(exc) not in ("ClientException", "InvalidParameterException"):
                raise GatewayError("ECS", "DescribeTaskDefinition", str(exc), error_code(exc)) from exc
            td = None
        with self._lock:
            self._task_defs[arn] = td
        return td

