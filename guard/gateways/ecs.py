"""ECS read port: services in batches of 10 (concurrent), task definitions cached."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code

SERVICES_PER_CALL = 10
TASKS_PER_CALL = 100
WORKERS = 16

T = TypeVar("T")


class _ClusterGone(Exception):
    """DescribeServices answered ClusterNotFoundException."""


class Boto3Ecs:
    """ECS adapter with a task-definition cache and a bounded pool for batch calls, shared by the run's callers.

    Only leaf calls (one request each) go on the pool, so callers on other pools may wait on it safely.
    """

    def __init__(self, aws: AwsSession, workers: int = WORKERS) -> None:
        self.aws = aws
        self.workers = workers
        self._lock = threading.Lock()
        self._task_defs: dict[str, dict[str, Any] | None] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(1, self.workers), thread_name_prefix="ecs")
            return self._pool.submit(fn, *args)

    def services(self, cluster: str, names: list[str], region: str | None = None
                 ) -> dict[str, dict[str, Any] | None]:
        """Describe services by name (None for MISSING); 10 per call, the calls concurrent."""
        return self._described(cluster, [names], region)

    def listed_services(self, cluster: str, region: str | None = None,
                        keep: Callable[[str], bool] = lambda name: True) -> dict[str, dict[str, Any] | None]:
        """Describe every service of a cluster whose name `keep` accepts, each ListServices page's services
        described while the next page is read."""
        pages = ([n for n in (a.rsplit("/", 1)[-1] for a in page) if keep(n)]
                 for page in self._pages(region, "ListServices", "serviceArns",
                                         {"cluster": cluster, "maxResults": 100}))
        return self._described(cluster, pages, region)

    def _described(self, cluster: str, pages: Iterable[list[str]], region: str | None
                   ) -> dict[str, dict[str, Any] | None]:
        client = self.aws.client("ecs", region)
        names: list[str] = []
        futures: list[Future[list[dict[str, Any]]]] = []
        for page in pages:
            names += page
            for i in range(0, len(page), SERVICES_PER_CALL):
                futures.append(self._submit(self._describe_chunk, client, cluster, page[i : i + SERVICES_PER_CALL]))
        out: dict[str, dict[str, Any] | None] = {}
        try:
            for fut in futures:
                out.update((svc["serviceName"], svc) for svc in fut.result())
        except _ClusterGone:
            return dict.fromkeys(names)
        return {n: out.get(n) for n in names}

    def _describe_chunk(self, client: Any, cluster: str, chunk: list[str]) -> list[dict[str, Any]]:
        self.aws.stats.batch("ecs:DescribeServices", len(chunk))
        try:
            return list(call(client, "DescribeServices", cluster=cluster, services=chunk).get("services", []))
        except ClientError as exc:
            if error_code(exc) == "ClusterNotFoundException":
                raise _ClusterGone from exc
            raise GatewayError("ECS", "DescribeServices", str(exc), error_code(exc)) from exc

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

    def list_running_tasks(self, cluster: str, region: str | None = None) -> list[str]:
        """ARNs of the cluster's RUNNING tasks, 100 per page."""
        return self._paged(region, "ListTasks", "taskArns",
                           {"cluster": cluster, "desiredStatus": "RUNNING", "maxResults": 100})

    def describe_tasks(self, cluster: str, arns: list[str], region: str | None = None) -> list[dict[str, Any]]:
        """Describe tasks, 100 per call, the calls concurrent (results in request order)."""
        client = self.aws.client("ecs", region)
        futures = [self._submit(self._describe_tasks, client, cluster, arns[i : i + TASKS_PER_CALL])
                   for i in range(0, len(arns), TASKS_PER_CALL)]
        return [task for fut in futures for task in fut.result()]

    def _describe_tasks(self, client: Any, cluster: str, chunk: list[str]) -> list[dict[str, Any]]:
        self.aws.stats.batch("ecs:DescribeTasks", len(chunk))
        return list(call(client, "DescribeTasks", cluster=cluster, tasks=chunk).get("tasks", []))

    def _paged(self, region: str | None, operation: str, key: str, params: dict[str, Any]) -> list[str]:
        return [item for page in self._pages(region, operation, key, params) for item in page]

    def _pages(self, region: str | None, operation: str, key: str, params: dict[str, Any]) -> Iterator[list[str]]:
        client = self.aws.client("ecs", region)
        token: str | None = None
        while True:
            resp = call(client, operation, **params, **({"nextToken": token} if token else {}))
            yield list(resp.get(key, []))
            token = resp.get("nextToken")
            if not token:
                return

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

