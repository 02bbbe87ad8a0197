"""PRV002: each image's own record binds its digest to the commit being deployed."""

from __future__ import annotations

from collections.abc import Iterator

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.ecr import ImageInfo, ImageStatus
from guard.gateways.github import Provenance
from guard.models import DeployPlan, ImageRef, Severity

REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"


def _repository_of(url: str) -> str:
    """`owner/name` of a repository URL (`https://github.com/owner/name.git`), lower-cased."""
    tail = url.split("://", 1)[-1]
    parts = tail.removesuffix(".git").strip("/").split("/")
    return "/".join(parts[-2:]).lower() if len(parts) >= 2 else tail.lower()


def _workflow_ok(prov: Provenance, wanted: tuple[str, ...]) -> bool:
    return not wanted or any(prov.workflow_path == w or prov.workflow_path.endswith(f"/{w}") for w in wanted)


class DigestBoundToCommit(Check):
    """Proves each ECR image digest names the deployed commit in its own record: the OCI config label
    `org.opencontainers.image.revision` (docker/metadata-action, most build actions), or a GitHub artifact
    attestation (actions/attest-build-provenance) for that digest whose provenance names this repository,
    a build workflow (`build_workflows` when set) and this commit.

    A label or attestation naming another commit is an error, whatever the configured severity; no binding
    at all is reported at this check's severity (warning by default; set it in `[severity]`). An image whose
    `org.opencontainers.image.source` label names another repository (a sidecar built elsewhere) is not
    judged. Cannot prove the label is honest: it is unsigned, and anyone who can push to the repository can
    write any revision. The attestation's Sigstore signature is not verified here (`gh attestation verify`
    does that): its provenance is read as GitHub serves it.
    """

    id = "PRV002"
    title = "Image digest bound to the commit"
    severity = Severity.WARNING
    proves = "the image's revision label or build-provenance attestation names the commit being deployed"
    cannot_prove = "that an unsigned label is honest; attestation signatures are not verified offline"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Read each present image's labels, then, where they name no revision, its attestations (once each)."""
        repo, sha = ctx.commit.repository, ctx.commit.sha
        refs = [r for r in plan.images() if r.is_ecr]
        if not refs or not repo or not sha:  # without a commit PRV001 reports that provenance was not checked
            return
        answers = ctx.ecr.lookup(refs)
        attested: dict[str, list[Provenance] | GatewayError] = {}
        for target in plan.targets:
            for c in target.containers:
                ref = c.image
                if ref is None or not ref.is_ecr:
                    continue
                info = answers[ref.uri]
                where = f"container {c.name}: image {ref.display}"
                if isinstance(info, GatewayError):
                    yield self.unverified(target.name, f"{where}: {info}", info.code)
                elif info.status is ImageStatus.PRESENT and info.digest:
                    yield from self._judge(target.name, where, ref, info, repo, sha, ctx, attested)

    def _judge(self, target: str, where: str, ref: ImageRef, info: ImageInfo, repo: str, sha: str,
               ctx: CheckContext, attested: dict[str, list[Provenance] | GatewayError]) -> Iterator[Result]:
        """Label first (no GitHub call when it names the commit), then attestations."""
        digest = str(info.digest)
        labels = ctx.ecr.labels(info)
        if isinstance(labels, GatewayError):
            yield self.unverified(target, f"{where}: image labels: {labels}", labels.code)
            return
        source = labels.get(SOURCE, "")
        if source and _repository_of(source) != repo.lower():
            return
        revision = labels.get(REVISION, "").strip().lower()
        if revision == sha.lower():
            return
        if revision:
            yield self.finding(
                target, f"{where} ({digest[:19]}) was built from commit {revision[:12]}, not the deployed "
                f"{sha[:12]} (label {REVISION})", severity=Severity.ERROR, label_revision=revision,
                image=ref.uri, digest=digest, sha=sha,
                remediation="deploy the image the build of this commit pushed (pin its digest)")
            return
        if digest not in attested:
            try:
                attested[digest] = [p for p in ctx.github.attestations(repo, digest) if digest in p.subjects]
            except GatewayError as exc:
                attested[digest] = exc
        provenances = attested[digest]
        if isinstance(provenances, GatewayError):
            yield self.unverified(target, f"{where}: attestations: {provenances}", provenances.code)
            return
        wanted = ctx.config.build_workflows
        ours = [p for p in provenances if p.repository.lower() == repo.lower() and _workflow_ok(p, wanted)]
        if any(p.commit.lower() == sha.lower() for p in ours):
            return
        if provenances:
            named = ", ".join(sorted({f"{p.repository}@{p.commit[:12]} ({p.workflow_path})" for p in provenances}))
            yield self.finding(
                target, f"{where} ({digest[:19]}) has build provenance for {named}, not {repo}@{sha[:12]}",
                severity=Severity.ERROR, attested=named, image=ref.uri, digest=digest, sha=sha,
                remediation="deploy the image the build of this commit pushed (pin its digest)")
            return
        yield self.finding(
            target, f"{where} ({digest[:19]}) is not bound to commit {sha[:12]}: no {REVISION} label and no "
            "build-provenance attestation", image=ref.uri, digest=digest, sha=sha,
            remediation="label images with the commit (docker/metadata-action) or attest them "
            "(actions/attest-build-provenance)")
