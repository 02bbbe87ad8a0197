"""Push images whose config carries OCI labels, as `docker buildx build --label` / docker/metadata-action do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from guard.sandbox.scenarios import DEFAULT_ACCOUNT, Scenario

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_labelled_image(aws: Scenario, repo: str, tag: str, labels: Mapping[str, str], arch: str = "amd64") -> str:
    """Push a single-platform OCI image whose config has `labels` into the sandbox's ECR; return its digest.

    The config and layer blobs go to the sandbox's blob store (what GetDownloadUrlForLayer serves); the
    manifest goes through ECR PutImage with its true digest, as a registry client pushes it.
    """
    layer = f"{repo}:{tag} {json.dumps(dict(labels), sort_keys=True)}\n".encode()
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/app/server"], "Labels": dict(labels)},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
    }, sort_keys=True).encode()
    blobs = [aws.sandbox.put_blob(DEFAULT_ACCOUNT, aws.region, repo, data) for data in (config, layer)]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blobs[0], "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blobs[1], "size": len(layer)}],
    }, sort_keys=True).encode()
    digest = _digest(manifest)
    aws.client("ecr").put_image(repositoryName=repo, imageManifest=manifest.decode(),
                                imageManifestMediaType=OCI_MANIFEST, imageDigest=digest, imageTag=tag)
    return digest
