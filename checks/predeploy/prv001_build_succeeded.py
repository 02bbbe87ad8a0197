"""PRV001: the build workflow for the commit being deployed concluded `success`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.models import DeployPlan, Severity

_RUNNING = {"queued", "in_progress", "waiting", "requested", "pending"}


def _matches(run_name: str, run_path: str, wanted: Sequence[str]) -> bool:
    return any(w in (run_name, run_path) or run_path.endswith(f"/{w}") for w in wanted)


class BuildSucceeded(Check):
    """Proves a GitHub Actions build for the deployed commit finished with `success`.

    With `build_workflows` configured, each named workflow must have a successful run for the commit;
    otherwise every workflow that ran for the commit must have (the run doing the deploy, GITHUB_RUN_ID,
    is ignored). Cannot prove that the image in the plan is the one that build pushed: pin images to the
    commit (tag = SHA) or to a digest to close that gap.
    """

    id = "PRV001"
    title = "Build for the commit succeeded"
    severity = Severity.ERROR
    proves = "the build workflow run(s) for the deployed commit concluded success (not cancelled, failed "\
        "or still running)"
    cannot_prove = "that the images in the plan were pushed by that run"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Fetch the runs for the commit and judge the latest attempt of each workflow."""
        repo, sha = ctx.commit.repository, ctx.commit.sha
        if not repo or not sha:
            yield self.finding("build", "build provenance not checked: no commit given (set GITHUB_SHA and "
                               "GITHUB_REPOSITORY, or pass --sha and --repository)", severity=Severity.INFO)
            return
        target = f"{repo}@{sha[:12]}"
        try:
            runs = ctx.github.runs_for_commit(repo, sha)
        except GatewayError as exc:
            yield self.unverified(target, exc, exc.code)
            return
        wanted = ctx.config.build_workflows
        runs = [r for r in runs if r.id != ctx.commit.current_run_id
                and (not wanted or _matches(r.name, r.path, wanted))]
        missing = [w for w in wanted if not any(_matches(r.name, r.path, [w]) for r in runs)]
        for w in missing:
            yield self.finding(target, f"no run of workflow {w} for commit {sha[:12]}: the image was not built "
                               "from this commit", workflow=w, sha=sha,
                               remediation="run the build for this commit before deploying")
        if not runs and not wanted:
            yield self.finding(target, f"no workflow run found for commit {sha[:12]}", sha=sha,
                               remediation="run the build for this commit before deploying")
        for workflow in sorted({r.path or r.name for r in runs}):
            attempts = [r for r in runs if (r.path or r.name) == workflow]
            if any(r.status == "completed" and r.conclusion == "success" for r in attempts):
                continue
            latest = max(attempts, key=lambda r: (r.created_at, r.id))
            state = latest.status if latest.status in _RUNNING else (latest.conclusion or latest.status)
            verb = "is still running" if latest.status in _RUNNING else f"concluded {state}"
            yield self.finding(
                target, f"build run {latest.id} ({latest.name}, attempt {latest.run_attempt}) for commit "
                f"{sha[:12]} {verb}: {latest.html_url}", run_id=latest.id, workflow=workflow, state=state,
                url=latest.html_url, sha=sha,
                remediation="wait for the build to finish" if latest.status in _RUNNING
                else "rerun the build and deploy after it succeeds")
