"""The AWS sandbox and its scenario builders, observed through plain boto3 over HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from guard.sandbox.aws import AwsSandbox
from guard.sandbox.scenarios import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Scenario

OTHER_ACCOUNT = "222222222222"
UNKNOWN_DIGEST = "sha256:" + "0" * 64


def _client(service: str, **kw: Any) -> Any:
    """A client configured only by the environment the sandbox fixture exported."""
    return boto3.client(service, config=Config(retries={"total_max_attempts": 1}), **kw)


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _fetch(request: str | urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def _manifest(ecr: Any, repo: str, image_id: dict[str, str]) -> dict[str, Any]:
    images = ecr.batch_get_image(repositoryName=repo, imageIds=[image_id])["images"]
    assert len(images) == 1
    return dict(images[0])


def test_environ_points_standard_clients_at_the_sandbox(aws: Scenario, aws_sandbox: AwsSandbox) -> None:
    aws.repository("web")
    assert aws_sandbox.environ()["AWS_ENDPOINT_URL"] == aws_sandbox.endpoint_url
    assert aws_sandbox.endpoint_url.startswith("http://127.0.0.1:")
    names = [r["repositoryName"] for r in _client("ecr").describe_repositories()["repositories"]]
    assert names == ["web"]
    assert _client("sts").get_caller_identity()["Account"] == "123456789012"


def test_pushed_image_is_found_by_tag_and_by_digest_with_exact_manifest_bytes(aws: Scenario) -> None:
    uri = aws.repository("web")
    digest = aws.push_image("web", "v1")
    ecr = _client("ecr")

    by_tag = _manifest(ecr, "web", {"imageTag": "v1"})
    by_digest = _manifest(ecr, "web", {"imageDigest": digest})

    assert uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"
    assert by_tag["imageId"]["imageDigest"] == digest
    assert by_tag["imageManifest"] == by_digest["imageManifest"]
    raw = by_tag["imageManifest"].encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert by_tag["imageManifestMediaType"] == DOCKER_MANIFEST
    assert json.loads(raw)["schemaVersion"] == 2


def test_builders_are_idempotent_and_deterministic(aws: Scenario) -> None:
    assert aws.repository("web") == aws.repository("web")
    first = aws.push_image("web", "v1")
    assert aws.push_image("web", "v1") == first
    assert aws.push_image("web", "v2") != first
    assert aws.push_image("web", "v1", arch="arm64") != first
    untagged = aws.push_image("web", None, oci=True)
    assert aws.push_image("web", None, oci=True) == untagged
    details = _client("ecr").describe_images(repositoryName="web")["imageDetails"]
    assert sorted(tuple(d.get("imageTags", ())) for d in details) == [(), (), ("v1",), ("v2",)]


def test_moving_a_tag_leaves_the_previous_image_untagged(aws: Scenario) -> None:
    aws.repository("web")
    old = aws.push_image("web", "latest")
    aws.push_image("web", "keep")
    new = aws.push_image("web", "latest", arch="arm64")
    ecr = _client("ecr")

    tags = {d["imageDigest"]: d.get("imageTags", []) for d in ecr.describe_images(
        repositoryName="web")["imageDetails"]}

    assert tags[old] == [] and tags[new] == ["latest"] and len(tags) == 3
    previous = _manifest(ecr, "web", {"imageDigest": old})
    config_digest = json.loads(previous["imageManifest"])["config"]["digest"]
    url = ecr.get_download_url_for_layer(repositoryName="web", layerDigest=config_digest)["downloadUrl"]
    assert json.loads(_fetch(url))["architecture"] == "amd64"
    assert _manifest(ecr, "web", {"imageTag": "latest"})["imageId"]["imageDigest"] == new


def test_immutable_repository_refuses_to_move_a_tag(aws: Scenario) -> None:
    aws.repository("pinned", immutable=True)
    digest = aws.push_image("pinned", "v1")

    with pytest.raises(ClientError) as exc:
        aws.push_image("pinned", "v1", arch="arm64")

    assert _error(exc) == ("ImageTagAlreadyExistsException", 400)
    assert _manifest(_client("ecr"), "pinned", {"imageTag": "v1"})["imageId"]["imageDigest"] == digest


def test_missing_tag_and_digest_are_image_not_found_failures(aws: Scenario) -> None:
    aws.repository("web")
    aws.push_image("web", "v1")

    answer = _client("ecr").batch_get_image(
        repositoryName="web", imageIds=[{"imageTag": "v1"}, {"imageTag": "nope"},
                                        {"imageDigest": UNKNOWN_DIGEST}])

    assert [i["imageId"]["imageTag"] for i in answer["images"]] == ["v1"]
    assert {f["failureCode"] for f in answer["failures"]} == {"ImageNotFound"}
    assert {"imageTag": "nope"} in [f["imageId"] for f in answer["failures"]]
    assert len(answer["failures"]) == 2


def test_download_url_serves_the_config_blob(aws: Scenario) -> None:
    aws.repository("web")
    digest = aws.push_image("web", "v1", arch="arm64")
    ecr = _client("ecr")
    manifest = json.loads(_manifest(ecr, "web", {"imageDigest": digest})["imageManifest"])
    config_digest = manifest["config"]["digest"]

    answer = ecr.get_download_url_for_layer(repositoryName="web", layerDigest=config_digest)

    assert answer["layerDigest"] == config_digest
    assert "X-Amz-Signature=" in answer["downloadUrl"]
    blob = _fetch(answer["downloadUrl"])
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == config_digest
    config = json.loads(blob)
    assert (config["architecture"], config["os"]) == ("arm64", "linux")
    layer_digest = manifest["layers"][0]["digest"]
    layer = _fetch(ecr.get_download_url_for_layer(repositoryName="web", layerDigest=layer_digest)
                   ["downloadUrl"])
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == layer_digest


def test_download_url_with_a_forged_signature_is_refused(aws: Scenario) -> None:
    aws.repository("web")
    manifest = json.loads(_manifest(_client("ecr"), "web", {"imageDigest": aws.push_image("web", "v1")})
                          ["imageManifest"])
    url = _client("ecr").get_download_url_for_layer(
        repositoryName="web", layerDigest=manifest["config"]["digest"])["downloadUrl"]

    with pytest.raises(urllib.error.HTTPError) as exc:
        _fetch(url[:-4] + "0000")
    assert exc.value.code == 403


@pytest.mark.parametrize(("repo", "digest", "registry", "code"), [
    ("web", UNKNOWN_DIGEST, None, "LayersNotFoundException"),
    ("nope", UNKNOWN_DIGEST, None, "RepositoryNotFoundException"),
    ("web", UNKNOWN_DIGEST, OTHER_ACCOUNT, "RepositoryNotFoundException"),
])
def test_download_url_errors_follow_aws(aws: Scenario, repo: str, digest: str, registry: str | None,
                                        code: str) -> None:
    aws.repository("web")
    aws.push_image("web", "v1")
    extra = {} if registry is None else {"registryId": registry}

    with pytest.raises(ClientError) as exc:
        _client("ecr").get_download_url_for_layer(repositoryName=repo, layerDigest=digest, **extra)

    assert _error(exc) == (code, 400)


def test_download_url_of_a_bad_digest_is_invalid_parameter(aws: Scenario, aws_sandbox: AwsSandbox) -> None:
    aws.repository("web")
    request = urllib.request.Request(
        aws_sandbox.endpoint_url + "/", method="POST",
        data=json.dumps({"repositoryName": "web", "layerDigest": "not-a-digest"}).encode(),
        headers={"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetDownloadUrlForLayer",
                 "Content-Type": "application/x-amz-json-1.1"})

    with pytest.raises(urllib.error.HTTPError) as exc:
        _fetch(request)

    assert exc.value.code == 400
    assert json.loads(exc.value.read())["__type"] == "InvalidParameterException"


def test_blob_of_a_deleted_image_is_inaccessible(aws: Scenario) -> None:
    aws.repository("web")
    digest = aws.push_image("web", "v1")
    ecr = _client("ecr")
    config_digest = json.loads(_manifest(ecr, "web", {"imageTag": "v1"})["imageManifest"])["config"]["digest"]

    aws.delete_image("web", digest=digest)

    assert ecr.batch_get_image(repositoryName="web", imageIds=[{"imageTag": "v1"}])["images"] == []
    with pytest.raises(ClientError) as exc:
        ecr.get_download_url_for_layer(repositoryName="web", layerDigest=config_digest)
    assert _error(exc) == ("LayerInaccessibleException", 400)
    with pytest.raises(LookupError):
        aws.delete_image("web", tag="v1")


def test_index_lists_platforms_and_attestations(aws: Scenario) -> None:
    aws.repository("multi")
    digest = aws.push_index("multi", "v1", archs=("amd64", "arm64"))
    ecr = _client("ecr")

    found = _manifest(ecr, "multi", {"imageTag": "v1"})

    assert found["imageId"]["imageDigest"] == digest
    assert found["imageManifestMediaType"] == OCI_INDEX
    index = json.loads(found["imageManifest"])
    assert index["mediaType"] == OCI_INDEX
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]]
    assert platforms == [("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown"), ("unknown", "unknown")]
    images, proofs = index["manifests"][:2], index["manifests"][2:]
    assert [p["annotations"]["vnd.docker.reference.digest"] for p in proofs] == [i["digest"] for i in images]
    assert {p["annotations"]["vnd.docker.reference.type"] for p in proofs} == {"attestation-manifest"}
    child = _manifest(ecr, "multi", {"imageDigest": images[1]["digest"]})
    assert child["imageManifestMediaType"] == OCI_MANIFEST
    assert len(child["imageManifest"].encode()) == images[1]["size"]
    config_digest = json.loads(child["imageManifest"])["config"]["digest"]
    url = ecr.get_download_url_for_layer(repositoryName="multi", layerDigest=config_digest)["downloadUrl"]
    assert json.loads(_fetch(url))["architecture"] == "arm64"


def test_index_without_attestations(aws: Scenario) -> None:
    aws.repository("multi")
    aws.push_index("multi", "v1", archs=("amd64",), attestations=False)

    index = json.loads(_manifest(_client("ecr"), "multi", {"imageTag": "v1"})["imageManifest"])

    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64"]


def test_cross_account_image_lives_only_in_its_account(aws: Scenario, aws_sandbox: AwsSandbox) -> None:
    uri = aws.repository("shared", account=OTHER_ACCOUNT)
    digest = aws.push_image("shared", "v1", account=OTHER_ACCOUNT)
    other = aws_sandbox.account_session(OTHER_ACCOUNT).client(
        "ecr", endpoint_url=aws_sandbox.endpoint_url, config=Config(retries={"total_max_attempts": 1}))

    assert uri == f"{OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/shared"
    assert _manifest(other, "shared", {"imageTag": "v1"})["imageId"]["imageDigest"] == digest
    config_digest = json.loads(_manifest(other, "shared", {"imageTag": "v1"})["imageManifest"])["config"]["digest"]
    assert other.get_download_url_for_layer(repositoryName="shared", layerDigest=config_digest)["layerDigest"]
    with pytest.raises(ClientError) as exc:
        _client("ecr").batch_get_image(repositoryName="shared", imageIds=[{"imageTag": "v1"}])
    assert _error(exc)[0] == "RepositoryNotFoundException"
    assert _client("ecr").describe_repositories()["repositories"] == []


def test_reset_clears_aws_state_and_blobs(aws: Scenario, aws_sandbox: AwsSandbox) -> None:
    aws.repository("web")
    digest = aws.push_image("web", "v1")
    aws.cluster("prod")
    ecr = _client("ecr")
    config_digest = json.loads(_manifest(ecr, "web", {"imageDigest": digest})["imageManifest"])["config"]["digest"]
    url = ecr.get_download_url_for_layer(repositoryName="web", layerDigest=config_digest)["downloadUrl"]

    aws_sandbox.reset()

    assert ecr.describe_repositories()["repositories"] == []
    assert _client("ecs").list_clusters()["clusterArns"] == []
    with pytest.raises(urllib.error.HTTPError) as exc:
        _fetch(url)
    assert exc.value.code == 404


def test_task_definition_and_service_builders(aws: Scenario) -> None:
    uri = aws.repository("web")
    aws.push_image("web", "v1")
    execution = aws.role("web-exec")
    secret, parameter = aws.secret("db-password"), aws.parameter("/web/api-key")
    aws.log_group("/ecs/web")

    arn = aws.task_definition(
        "web", [("app", f"{uri}:v1"), ("sidecar", f"{uri}:v1")], arch="ARM64", execution_role=execution,
        secrets=[("DB_PASSWORD", secret), ("API_KEY", parameter)], environment=[("MODE", "prod")],
        log_group="/ecs/web")
    aws.cluster("prod")
    service_arn = aws.service("prod", "web", arn, desired=3)

    ecs = _client("ecs")
    task_def = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert task_def["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    assert task_def["requiresCompatibilities"] == ["FARGATE"]
    assert task_def["executionRoleArn"] == execution
    app, sidecar = task_def["containerDefinitions"]
    assert (app["image"], app["memory"], sidecar["memory"]) == (f"{uri}:v1", 256, 256)
    assert {s["valueFrom"] for s in app["secrets"]} == {secret, parameter}
    assert app["portMappings"][0]["containerPort"] == 8080 and not sidecar.get("portMappings")
    assert app["logConfiguration"]["options"]["awslogs-group"] == "/ecs/web"
    service = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert (service["serviceArn"], service["taskDefinition"], service["desiredCount"]) == (service_arn, arn, 3)
    assert service["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"]
    assert _client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    assert _client("ssm").get_parameter(Name="/web/api-key")["Parameter"]["Type"] == "SecureString"
    assert _client("logs").describe_log_groups(logGroupNamePrefix="/ecs/web")["logGroups"]
    iam = _client("iam")
    trust = iam.get_role(RoleName="web-exec")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"]["Service"] == "ecs-tasks.amazonaws.com"
    aws.delete_role("web-exec")
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName="web-exec")
    assert _error(exc)[0] == "NoSuchEntity"


def test_log_group_identifiers_answer_only_the_named_groups(aws: Scenario) -> None:
    for name in ("/ecs/a", "/ecs/b", "/ecs/c"):
        aws.log_group(name)
    logs = _client("logs")
    arn = f"arn:aws:logs:{aws.sandbox.region}:123456789012:log-group:/ecs/c"

    got = logs.describe_log_groups(logGroupIdentifiers=["/ecs/b", arn, "/ecs/gone", "/ecs/a"])["logGroups"]

    assert [g["logGroupName"] for g in got] == ["/ecs/a", "/ecs/b", "/ecs/c"]
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupIdentifiers=["/ecs/b"])["logGroups"]] \
        == ["/ecs/b"]
    with pytest.raises(ClientError) as exc:
        logs.describe_log_groups(logGroupIdentifiers=[f"/ecs/{i}" for i in range(51)])
    assert _error(exc) == ("InvalidParameterException", 400)
    with pytest.raises(ClientError) as exc:
        logs.describe_log_groups(logGroupIdentifiers=["/ecs/a"], logGroupNamePrefix="/ecs")
    assert _error(exc) == ("InvalidParameterException", 400)


def test_lambda_builder(aws: Scenario) -> None:
    uri = aws.repository("fn")
    aws.push_image("fn", "v1", arch="arm64")

    arn = aws.lambda_function("worker", f"{uri}:v1", arch="arm64")
    alias_arn = aws.alias("worker", "live", "1")

    function = _client("lambda").get_function(FunctionName="worker")
    assert function["Configuration"]["FunctionArn"] == arn
    assert function["Configuration"]["PackageType"] == "Image"
    assert function["Configuration"]["Architectures"] == ["arm64"]
    assert function["Code"]["ImageUri"] == f"{uri}:v1"
    alias = _client("lambda").get_alias(FunctionName="worker", Name="live")
    assert (alias["AliasArn"], alias["FunctionVersion"]) == (alias_arn, "1")
    assert function["Configuration"]["Role"].endswith(":role/worker-role")


def test_latency_holds_every_request_once_in_its_own_thread(aws: Scenario, aws_sandbox: AwsSandbox) -> None:
    aws.repository("web")
    digest = aws.push_image("web", "v1")
    ecr = _client("ecr")
    config_digest = json.loads(_manifest(ecr, "web", {"imageDigest": digest})["imageManifest"])["config"]["digest"]
    held: list[tuple[float, str]] = []
    aws_sandbox.fills.sleep = lambda seconds: held.append((seconds, threading.current_thread().name))
    aws_sandbox.fills.latency_s = 0.02
    try:
        _client("sts").get_caller_identity()
        url = ecr.get_download_url_for_layer(repositoryName="web", layerDigest=config_digest)["downloadUrl"]
        _fetch(url)
    finally:
        aws_sandbox.fills.latency_s, aws_sandbox.fills.sleep = 0.0, time.sleep

    assert [seconds for seconds, _ in held] == [0.02, 0.02, 0.02]  # STS, ECR, the blob download
    assert all(name != "aws-sandbox" for _, name in held)  # not the accepting thread: requests in flight overlap
    _client("sts").get_caller_identity()
    assert len(held) == 3
