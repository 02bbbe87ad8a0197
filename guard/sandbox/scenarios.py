"""Scenario builders: real AWS state in the sandbox, created over HTTP through boto3.

Content is fixed, so digests are reproducible. A Scenario caches clients (and assumed-role credentials):
build a new one after `AwsSandbox.reset()`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from typing import Any

from botocore.config import Config

from guard.sandbox.aws import DEFAULT_ACCOUNT, DEFAULT_REGION, AwsSandbox

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
_CREATED = "2024-01-01T00:00:00Z"
EXIT_CODE_LABEL = "sandbox.exit-code"
"""Image config label: the image's program exits with this code right after starting (see ecs_sim)."""


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(content: str) -> tuple[bytes, str]:
    """A gzipped tar holding one file with `content`, and its diff ID (digest of the plain tar)."""
    data = content.encode()
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("app/build-info")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(plain.getvalue(), mtime=0), _digest(plain.getvalue())


class Scenario:
    """Builds ECR, IAM, Logs, Secrets Manager, SSM, ECS and Lambda state in an AwsSandbox."""

    def __init__(self, sandbox: AwsSandbox, region: str = DEFAULT_REGION) -> None:
        self.sandbox = sandbox
        self.region = region
        self._sessions: dict[str, Any] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._network: tuple[str, str] | None = None

    def client(self, service: str, account: str | None = None, region: str | None = None) -> Any:
        """A cached boto3 client acting in `account` (default 123456789012) and `region`."""
        account, region = account or DEFAULT_ACCOUNT, region or self.region
        key = (service, account, region)
        if key not in self._clients:
            if account not in self._sessions:
                self._sessions[account] = self.sandbox.account_session(account)
            self._clients[key] = self._sessions[account].client(
                service, region_name=region, endpoint_url=self.sandbox.endpoint_url,
                config=Config(retries={"total_max_attempts": 1}),
            )
        return self._clients[key]

    # ECR

    def repository(self, name: str, account: str | None = None, region: str | None = None,
                   immutable: bool = False) -> str:
        """Create the repository if missing and return its URI."""
        ecr = self.client("ecr", account, region)
        try:
            repo = ecr.create_repository(
                repositoryName=name, imageTagMutability="IMMUTABLE" if immutable else "MUTABLE",
            )["repository"]
        except ecr.exceptions.RepositoryAlreadyExistsException:
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        return str(repo["repositoryUri"])

    def push_image(self, repo: str, tag: str | None, arch: str = "amd64", os: str = "linux",
                   account: str | None = None, region: str | None = None, oci: bool = False,
                   exits: bool = False) -> str:
        """Push a single-platform image (Docker v2 schema 2, or OCI) and return its digest.

        `exits=True` labels the config so the program exits with code 1 right after it starts.
        """
        manifest = self._image_manifest(repo, f"{repo}:{tag or ''} {os}/{arch}", arch, os, account, region,
                                        oci, exit_code=1 if exits else None)
        return self._put(repo, manifest, OCI_MANIFEST if oci else DOCKER_MANIFEST, tag, account, region)

    def push_index(self, repo: str, tag: str | None, archs: Sequence[str] = ("amd64", "arm64"),
                   account: str | None = None, region: str | None = None,
                   attestations: bool = True) -> str:
        """Push a buildx-style OCI image index (children by digest) and return the index digest."""
        platforms: list[dict[str, Any]] = []
        for arch in archs:
            manifest = self._image_manifest(repo, f"{repo}:{tag or ''} linux/{arch}", arch, "linux",
                                            account, region, oci=True)
            platforms.append({
                "mediaType": OCI_MANIFEST,
                "digest": self._put(repo, manifest, OCI_MANIFEST, None, account, region),
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            })
        proofs: list[dict[str, Any]] = []
        for child in platforms if attestations else ():
            manifest = self._attestation_manifest(repo, child["digest"], account, region)
            proofs.append({
                "mediaType": OCI_MANIFEST,
                "digest": self._put(repo, manifest, OCI_MANIFEST, None, account, region),
                "size": len(manifest),
                "annotations": {
                    "vnd.docker.reference.digest": child["digest"],
                    "vnd.docker.reference.type": "attestation-manifest",
                },
                "platform": {"architecture": "unknown", "os": "unknown"},
            })
        index = _encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": platforms + proofs})
        return self._put(repo, index, OCI_INDEX, tag, account, region)

    def delete_image(self, repo: str, tag: str | None = None, digest: str | None = None,
                     account: str | None = None, region: str | None = None) -> None:
        """Delete one image by tag and/or digest; raise LookupError if ECR reports a failure."""
        image_id = {k: v for k, v in (("imageTag", tag), ("imageDigest", digest)) if v is not None}
        if not image_id:
            raise ValueError("delete_image needs a tag or a digest")
        failures = self.client("ecr", account, region).batch_delete_image(
            repositoryName=repo, imageIds=[image_id])["failures"]
        if failures:
            raise LookupError(f"could not delete {repo} {image_id}: {failures}")

    def _blob(self, repo: str, data: bytes, account: str | None, region: str | None) -> str:
        return self.sandbox.put_blob(account or DEFAULT_ACCOUNT, region or self.region, repo, data)

    def _image_manifest(self, repo: str, content: str, arch: str, os: str, account: str | None,
                        region: str | None, oci: bool, exit_code: int | None = None) -> bytes:
        """Store the config and layer blobs of a single-platform image and return its manifest."""
        layer, diff_id = _layer(content + "\n")
        runtime: dict[str, Any] = {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/app/server"],
            "ExposedPorts": {"8080/tcp": {}},
            "WorkingDir": "/app",
        }
        if exit_code is not None:
            runtime["Labels"] = {EXIT_CODE_LABEL: str(exit_code)}
        config = _encode({
            "architecture": arch,
            "os": os,
            "created": _CREATED,
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": _CREATED, "created_by": "COPY build-info /app/ # buildkit"}],
        })
        return _encode({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
            "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                       "digest": self._blob(repo, config, account, region), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                        "digest": self._blob(repo, layer, account, region), "size": len(layer)}],
        })

    def _attestation_manifest(self, repo: str, subject: str, account: str | None,
                              region: str | None) -> bytes:
        """Store a provenance statement about `subject` and return buildx's attestation manifest."""
        statement = _encode({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "_", "digest": {"sha256": subject.removeprefix("sha256:")}}],
            "predicate": {"builder": {"id": ""}, "buildType": "https://mobyproject.org/buildkit@v1"},
        })
        statement_digest = self._blob(repo, statement, account, region)
        config = _encode({"architecture": "unknown", "os": "unknown", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [statement_digest]}})
        return _encode({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self._blob(repo, config, account, region),
                       "size": len(config)},
            "layers": [{"mediaType": IN_TOTO, "digest": statement_digest, "size": len(statement),
                        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}],
        })

    def _put(self, repo: str, manifest: bytes, media_type: str, tag: str | None, account: str | None,
             region: str | None) -> str:
        """put_image with the true digest (moto's own is wrong) and return it; a re-push is a no-op."""
        digest = _digest(manifest)
        extra = {} if tag is None else {"imageTag": tag}
        ecr = self.client("ecr", account, region)
        try:
            ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(),
                          imageManifestMediaType=media_type, imageDigest=digest, **extra)
        except ecr.exceptions.ImageAlreadyExistsException:
            found = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": digest, **extra}])
            if not found["images"]:
                raise
        return digest

    # IAM, Logs, Secrets Manager, SSM

    def role(self, name: str, trust_service: str = "ecs-tasks.amazonaws.com") -> str:
        """Create the role (trusting `trust_service`) if missing and return its ARN."""
        iam = self.client("iam")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": trust_service}, "Action": "sts:AssumeRole"}]}
        try:
            return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
                       ["Role"]["Arn"])
        except iam.exceptions.EntityAlreadyExistsException:
            return str(iam.get_role(RoleName=name)["Role"]["Arn"])

    def delete_role(self, name: str) -> None:
        """Delete the role."""
        self.client("iam").delete_role(RoleName=name)

    def log_group(self, name: str) -> None:
        """Create the CloudWatch Logs group if missing."""
        logs = self.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=name)

    def secret(self, name: str) -> str:
        """Create the Secrets Manager secret if missing and return its ARN."""
        sm = self.client("secretsmanager")
        try:
            return str(sm.create_secret(Name=name, SecretString=f"sandbox-value-of-{name}")["ARN"])
        except sm.exceptions.ResourceExistsException:
            return str(sm.describe_secret(SecretId=name)["ARN"])

    def parameter(self, name: str) -> str:
        """Put the SSM SecureString parameter and return its ARN."""
        ssm = self.client("ssm")
        ssm.put_parameter(Name=name, Value=f"sandbox-value-of-{name}", Type="SecureString", Overwrite=True)
        return str(ssm.get_parameter(Name=name)["Parameter"]["ARN"])

    # ECS

    def task_definition(self, family: str, containers: Sequence[tuple[str, str]], arch: str = "X86_64",
                        execution_role: str | None = None, task_role: str | None = None,
                        secrets: Sequence[tuple[str, str]] = (),
                        environment: Sequence[tuple[str, str]] = (), log_group: str | None = None,
                        ports: Sequence[int] = (8080,), cpu: str = "256", memory: str = "512") -> str:
        """Register a Fargate task definition of (name, image URI) containers; return its ARN.

        Roles are ARNs; secrets are (name, valueFrom ARN); ports map on the first container.
        """
        definitions: list[dict[str, Any]] = []
        for position, (name, image) in enumerate(containers):
            definition: dict[str, Any] = {
                "name": name,
                "image": image,
                "essential": True,
                "memory": int(memory) // len(containers),
                "environment": [{"name": k, "value": v} for k, v in environment],
                "secrets": [{"name": k, "valueFrom": v} for k, v in secrets],
                "portMappings": [{"containerPort": p, "protocol": "tcp"} for p in ports] if position == 0
                else [],
            }
            if log_group is not None:
                definition["logConfiguration"] = {"logDriver": "awslogs", "options": {
                    "awslogs-group": log_group, "awslogs-region": self.region,
                    "awslogs-stream-prefix": family}}
            definitions.append(definition)
        roles = {k: v for k, v in (("executionRoleArn", execution_role), ("taskRoleArn", task_role)) if v}
        return str(self.client("ecs").register_task_definition(
            family=family, containerDefinitions=definitions, networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"], cpu=cpu, memory=memory,
            runtimePlatform={"cpuArchitecture": arch, "operatingSystemFamily": "LINUX"}, **roles,
        )["taskDefinition"]["taskDefinitionArn"])

    def cluster(self, name: str) -> str:
        """Create the ECS cluster and return its ARN."""
        return str(self.client("ecs").create_cluster(clusterName=name)["cluster"]["clusterArn"])

    def service(self, cluster: str, name: str, task_definition_arn: str, desired: int = 2) -> str:
        """Create a Fargate service (awsvpc, in the scenario's VPC) and return its ARN."""
        subnet, group = self._vpc()
        return str(self.client("ecs").create_service(
            cluster=cluster, serviceName=name, taskDefinition=task_definition_arn, desiredCount=desired,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}},
        )["service"]["serviceArn"])

    def _vpc(self) -> tuple[str, str]:
        """(subnet ID, security group ID) of one VPC with DNS hostnames, created on first use."""
        if self._network is None:
            ec2 = self.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
            group = ec2.create_security_group(GroupName="sandbox-tasks", Description="sandbox tasks",
                                              VpcId=vpc)["GroupId"]
            self._network = (str(subnet), str(group))
        return self._network

    # Lambda

    def lambda_function(self, name: str, image_uri: str, arch: str = "x86_64",
                        role_arn: str | None = None) -> str:
        """Create an Image-package function (version 1 published) and return its ARN."""
        role_arn = role_arn or self.role(f"{name}-role", trust_service="lambda.amazonaws.com")
        return str(self.client("lambda").create_function(
            FunctionName=name, PackageType="Image", Code={"ImageUri": image_uri}, Role=role_arn,
            Architectures=[arch], Publish=True,
        )["FunctionArn"])

    def alias(self, function: str, name: str, version: str) -> str:
        """Point alias `name` of `function` at `version` and return the alias ARN."""
        return str(self.client("lambda").create_alias(
            FunctionName=function, Name=name, FunctionVersion=version)["AliasArn"])
