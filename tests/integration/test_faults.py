"""Throttling, 5xx, TCP resets and delays between the product and AWS (a fault proxy in front of moto).

The product's clients reach moto through `FaultProxy` (AWS_ENDPOINT_URL) with AWS_MAX_ATTEMPTS=3, so a
persistent fault costs exactly three attempts; the scenario's own setup calls go to moto directly.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from guard.gateways.aws import AwsSession, AwsSettings
from guard.journal import EntryKind, Journal
from guard.sandbox.aws import DUMMY_KEY, AwsSandbox
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.faults import FaultProxy, operation
from guard.sandbox.scenarios import Scenario
from guard.state import LocalStore
from guard.watch import Watchdog, WatchReport, WatchScope
from tests.support.guardrun import GuardRun, export_task_definition
from tests.support.remedyrun import World, deploy
from tests.support.watchrun import steady_service

ATTEMPTS = 3
BATCH_GET_IMAGE = "AmazonEC2ContainerRegistry_V20150921.BatchGetImage"
DESCRIBE_SERVICES = "AmazonEC2ContainerServiceV20141113.DescribeServices"
UPDATE_SERVICE = "AmazonEC2ContainerServiceV20141113.UpdateService"
BGI = operation("BatchGetImage")
Fault = Callable[[FaultProxy], None]


@pytest.fixture
def proxy(aws_sandbox: AwsSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy in front of the session's moto server; product clients reach AWS through it."""
    with FaultProxy(aws_sandbox.endpoint_url) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", str(ATTEMPTS))
        yield p


def _taskdef(aws: Scenario, tmp_path: Path, *tags: str) -> str:
    """An exported task definition with one container per `shop/api:<tag>`."""
    repo = aws.repository("shop/api")
    arn = aws.task_definition("api", [(f"c{i}", f"{repo}:{tag}") for i, tag in enumerate(tags)])
    return export_task_definition(aws, arn, tmp_path / "api.json")


# -- the proxy itself ---------------------------------------------------------------------------------


def test_proxy_forwards_byte_exact_and_answers_faults_in_the_request_protocol(proxy: FaultProxy,
                                                                                aws: Scenario) -> None:
    aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    manifest = json.loads(aws.client("ecr").batch_get_image(
        repositoryName="shop/api", imageIds=[{"imageTag": "v1"}])["images"][0]["imageManifest"])
    url = aws.client("ecr").get_download_url_for_layer(
        repositoryName="shop/api", layerDigest=manifest["layers"][0]["digest"])["downloadUrl"]
    with urllib.request.urlopen(url) as direct, \
            urllib.request.urlopen(url.replace(aws.sandbox.endpoint_url, proxy.url)) as proxied:
        assert proxied.read() == direct.read() and proxied.headers["Content-Type"] == direct.headers["Content-Type"]
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    session = boto3.Session(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name=aws.region)
    proxy.throttle(1, status=429)
    with pytest.raises(ClientError) as ecr_error:
        session.client("ecr", endpoint_url=proxy.url, config=config).describe_repositories()
    assert ecr_error.value.response["Error"]["Code"] == "ThrottlingException"
    assert ecr_error.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    proxy.throttle(1)
    with pytest.raises(ClientError) as sts_error:
        session.client("sts", endpoint_url=proxy.url, config=config).get_caller_identity()
    assert sts_error.value.response["Error"]["Code"] == "Throttling"
    assert proxy.received["GetCallerIdentity"] == 1 and proxy.forwarded["GetCallerIdentity"] == 0


# -- guard check --------------------------------------------------------------------------------------

TRANSIENT = [
    pytest.param(lambda p: p.throttle(2, match=BGI), id="throttle-400"),
    pytest.param(lambda p: p.server_error(2, status=503, match=BGI), id="503"),
    pytest.param(lambda p: p.reset(2, match=BGI), id="reset"),
]


@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_fault_is_retried_to_the_right_answer(proxy: FaultProxy, aws: Scenario, guard: GuardRun,
                                                        tmp_path: Path, fault: Fault) -> None:
    td = _taskdef(aws, tmp_path, "v1")
    aws.push_index("shop/api", "v1")  # platforms from the index: every remote call is a counted AWS call
    fault(proxy)
    out = guard("--task-def", td)
    assert out.code == 0, out.stdout
    assert out.findings("IMG001") == out.findings("IMG002") == [] and out.doc["unverified"] == []
    assert out.doc["stats"]["api_calls"]["retries"] == 2
    assert out.doc["stats"]["api_calls"]["by_api"]["ecr:BatchGetImage"] == 1
    assert (proxy.received[BATCH_GET_IMAGE], proxy.forwarded[BATCH_GET_IMAGE]) == (3, 1)


def test_missing_image_under_transient_faults_is_still_missing(proxy: FaultProxy, aws: Scenario, guard: GuardRun,
                                                               tmp_path: Path) -> None:
    td = _taskdef(aws, tmp_path, "v1", "never-pushed")
    aws.push_image("shop/api", "v1")  # single-arch: IMG002 reads its config blob through the proxy too
    proxy.throttle(1, match=BGI)
    proxy.server_error(1, status=503, match=BGI)
    proxy.reset(1, match=operation("GetDownloadUrlForLayer"))
    proxy.server_error(1, status=503, match=lambda key: key.startswith("GET /_sandbox/blobs/"))
    out = guard("--task-def", td)
    assert out.code == 1, out.stdout
    [missing] = out.findings("IMG001")
    assert missing["evidence"]["container"] == "c1" and missing["evidence"]["reference"] == "never-pushed"
    assert out.findings("IMG002") == [] and out.doc["unverified"] == []
    assert proxy.received[BATCH_GET_IMAGE] == 3 and sum((proxy.received - proxy.forwarded).values()) == 4


PERSISTENT = [
    pytest.param(lambda p: p.throttle(match=BGI), "throttled after retries", id="throttle-400"),
    pytest.param(lambda p: p.throttle(status=429, match=BGI), "throttled after retries", id="throttle-429"),
    pytest.param(lambda p: p.server_error(status=503, match=BGI), "server error 503", id="503"),
    pytest.param(lambda p: p.reset(match=BGI), "endpoint unreachable", id="reset"),
]


@pytest.mark.parametrize(("fault", "reason"), PERSISTENT)
def test_persistent_fault_fails_closed_after_aws_max_attempts(proxy: FaultProxy, aws: Scenario, guard: GuardRun,
                                                              tmp_path: Path, fault: Fault, reason: str) -> None:
    td = _taskdef(aws, tmp_path, "v1", "never-pushed")
    aws.push_image("shop/api", "v1")
    fault(proxy)
    out = guard("--task-def", td)
    assert out.code == 3, out.stdout
    assert out.findings("IMG001") == out.findings("IMG002") == []  # neither a pass nor "not found"
    unverified = out.unverified("IMG001")
    assert sorted(u["reason"].split(":")[0] for u in unverified) == ["container c0", "container c1"]
    assert all(reason in u["reason"] for u in unverified), unverified
    assert proxy.received[BATCH_GET_IMAGE] == ATTEMPTS and proxy.forwarded[BATCH_GET_IMAGE] == 0


@pytest.mark.parametrize(("fault", "kind"), [
    pytest.param(lambda p: p.throttle(match=BGI), "Throttled", id="throttle"),
    pytest.param(lambda p: p.server_error(status=503, match=BGI), "Unreachable", id="503"),
])
def test_unverified_error_code_is_the_documented_kind(proxy: FaultProxy, aws: Scenario, guard: GuardRun,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Fault,
                                                      kind: str) -> None:
    td = _taskdef(aws, tmp_path, "v1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no backoff: persistence is not the point here
    fault(proxy)
    out = guard("--task-def", td)
    assert out.code == 3 and [u["error_code"] for u in out.unverified("IMG001")] == [kind]


def test_retries_are_reported_when_a_config_blob_is_read(proxy: FaultProxy, aws: Scenario, guard: GuardRun,
                                                         tmp_path: Path) -> None:
    td = _taskdef(aws, tmp_path, "v1")
    aws.push_image("shop/api", "v1")  # single-arch: IMG002 downloads its config blob
    proxy.server_error(2, match=BGI)
    out = guard("--task-def", td)
    assert out.code == 0 and out.doc["stats"]["api_calls"]["retries"] == 2


def test_a_delay_is_waited_out(proxy: FaultProxy, aws: Scenario, guard: GuardRun, tmp_path: Path) -> None:
    td = _taskdef(aws, tmp_path, "v1")
    aws.push_index("shop/api", "v1")
    proxy.delay(0.5, 1, match=BGI)
    out = guard("--task-def", td)
    assert out.code == 0 and out.doc["stats"]["duration_s"] >= 0.5
    assert out.doc["stats"]["api_calls"]["retries"] == 0 and proxy.forwarded[BATCH_GET_IMAGE] == 1


def test_batch_get_image_carries_at_most_100_ids(proxy: FaultProxy, aws: Scenario, guard: GuardRun,
                                                 tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    tags = [f"build-{i:03d}" for i in range(250)]
    args: list[str] = []
    for n in range(25):  # 10 containers per task definition, as ECS allows
        arn = aws.task_definition(f"svc{n}", [(f"c{i}", f"{repo}:{tag}")
                                              for i, tag in enumerate(tags[10 * n: 10 * n + 10])])
        args += ["--task-def", export_task_definition(aws, arn, tmp_path / f"svc{n}.json")]
    out = guard(*args)
    assert out.code == 1 and len(out.findings("IMG001")) == 250
    assert sorted(proxy.batch_sizes) == [50, 100, 100]
    assert out.doc["stats"]["api_calls"]["by_api"]["ecr:BatchGetImage"] == 3


# -- guard watch --------------------------------------------------------------------------------------


def _sweep(sim: EcsSimulator, state: Path) -> WatchReport:
    """One sweep as a fresh invocation would make it, with the proxy's retry budget."""
    dog = Watchdog(AwsSession(AwsSettings(max_attempts=ATTEMPTS)), LocalStore(state), heartbeat=False,
                   clock=sim.now)
    return dog.sweep(WatchScope())


def _latent_hazard(aws: Scenario, sim: EcsSimulator) -> None:
    """prod/api steady on an image that is then deleted (ECS105), prod/worker healthy."""
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    aws.push_image("shop/api", "v2")
    steady_service(aws, sim, "api", f"{repo}:v1")
    steady_service(aws, sim, "worker", f"{repo}:v2")
    aws.delete_image("shop/api", tag="v1")


def _shape(report: WatchReport) -> list[tuple[str, tuple[str, ...], bool, str]]:
    return [(i.id, i.resources, i.latent, i.severity.value) for i in report.incidents]


def test_watch_persistent_throttling_keeps_incidents_open(proxy: FaultProxy, aws: Scenario, sim: EcsSimulator,
                                                          tmp_path: Path) -> None:
    _latent_hazard(aws, sim)
    [incident] = _sweep(sim, tmp_path / "state").incidents
    proxy.throttle(match=operation("DescribeServices"))
    report = _sweep(sim, tmp_path / "state")
    assert int(report.exit_code) == 3
    [unverified] = report.unverified
    assert unverified.check_id == "GRD001" and unverified.target == "ecs:prod/*"
    assert "throttled after retries" in unverified.reason
    assert report.triage.resolved == () and [i.id for i in report.incidents] == [incident.id]
    assert proxy.received[DESCRIBE_SERVICES] - proxy.forwarded[DESCRIBE_SERVICES] == ATTEMPTS
    proxy.clear()
    after = _sweep(sim, tmp_path / "state")  # the incident was kept in the state, not re-opened
    assert after.triage.opened == () and [i.id for i in after.incidents] == [incident.id]


def test_watch_failed_image_lookup_keeps_incidents_open(proxy: FaultProxy, aws: Scenario, sim: EcsSimulator,
                                                        tmp_path: Path) -> None:
    _latent_hazard(aws, sim)
    [incident] = _sweep(sim, tmp_path / "state").incidents
    proxy.server_error(match=BGI)
    report = _sweep(sim, tmp_path / "state")
    assert int(report.exit_code) == 3 and report.unverified
    assert report.triage.resolved == () and [i.id for i in report.incidents] == [incident.id]


def test_watch_transient_faults_find_the_same_incidents(proxy: FaultProxy, aws: Scenario, sim: EcsSimulator,
                                                        tmp_path: Path) -> None:
    _latent_hazard(aws, sim)
    clean = _sweep(sim, tmp_path / "clean")
    proxy.reset(1, match=operation("ListServices"))
    proxy.throttle(1, match=operation("DescribeServices"))
    proxy.throttle(1, status=429, match=operation("DescribeTaskDefinition"))
    proxy.server_error(2, status=503, match=BGI)
    faulted = _sweep(sim, tmp_path / "faulted")
    assert faulted.unverified == () and faulted.exit_code == clean.exit_code
    assert _shape(faulted) == _shape(clean) and len(clean.incidents) == 1
    assert faulted.known_good == clean.known_good == ("ecs:prod/worker",)
    assert sum((proxy.received - proxy.forwarded).values()) == 5


# -- guard remediate ----------------------------------------------------------------------------------


def test_remediation_fails_on_a_persistent_503_and_repairs_once_it_clears(proxy: FaultProxy, world: World) -> None:
    bad = deploy(world, "broken")
    [incident] = world.sweep().incidents
    proxy.server_error(status=503, match=operation("UpdateService"))
    first = world.remediate(incident)
    assert first.status == "escalated", first.to_json()  # the rollback failed; a human was told
    [rollback, escalate] = first.results
    assert rollback.action["kind"] == "ecs_rollback" and rollback.status == "failed"
    assert "Unreachable" in rollback.reason and "server error 503" in rollback.reason
    assert escalate.action["kind"] == "escalate" and escalate.status == "verified"
    entries = Journal(world.store, incident.id).entries()
    aid = rollback.action["action_id"]
    steps = [e.kind for e in entries if e.data.get("action_id") == aid]
    assert steps == [EntryKind.DECISION, EntryKind.ACTION_STARTED, EntryKind.ACTION_FAILED]
    assert world.service()["taskDefinition"] == bad
    assert (proxy.received[UPDATE_SERVICE], proxy.forwarded[UPDATE_SERVICE]) == (1, 0)
    proxy.clear()
    second = world.remediate(incident)
    assert second.status == "repaired", second.to_json()
    assert world.service()["taskDefinition"].endswith("api:1")
    assert (proxy.received[UPDATE_SERVICE], proxy.forwarded[UPDATE_SERVICE]) == (2, 1)
