"""PRV001: the build for the commit being deployed concluded `success` (build jobs and build workflows)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from guard.check import Check, Result
from guard.context import CheckContext
from guard.errors import GatewayError
from guard.gateways.github import GitHubReader, Job, WorkflowRun
from guard.models import DeployPlan, Severity

RUNNING = frozenset({"queued", "in_progress", "waiting", "requested", "pending"})
FAILED = frozenset({"failure", "cancelled", "timed_out", "startup_failure", "action_required"})
NO_BUILD = frozenset({"skipped", "neutral"})  # finished without building anything


@dataclass(frozen=True)
class _Workflow:
    """The runs of one workflow (grouped by workflow_id) for the commit, with its resolved name and path."""

    name: str
    path: str
    runs: tuple[WorkflowRun, ...]

    @property
    def label(self) -> str:
        return self.path or self.name or f"workflow {self.runs[0].workflow_id}"

    def matches(self, wanted: Sequence[str]) -> bool:
        return any(w in (self.name, self.path) or self.path.endswith(f"/{w}") for w in wanted)


def _job_matches(job: Job, name: str) -> bool:
    """A configured job name matches the job and its matrix instances (`build (amd64)`)."""
    return job.name == name or job.name.startswith(f"{name} (")


def _workflows(github: GitHubReader, repo: str, runs: Sequence[WorkflowRun]) -> list[_Workflow]:
    """Group runs by workflow_id; name and path come from the workflow itself when the payload lacks them."""
    groups: dict[int | str, list[WorkflowRun]] = {}
    for r in runs:
        groups.setdefault(r.workflow_id or r.path or r.name, []).append(r)
    out = []
    for key, members in groups.items():
        name = next((r.name for r in members if r.name), "")
        path = next((r.path for r in members if r.path), "")
        if not (name and path) and isinstance(key, int):
            wf = github.workflow(repo, key)
            name, path = name or wf.name, path or wf.path
        out.append(_Workflow(name, path, tuple(members)))
    return sorted(out, key=lambda w: w.label)


class BuildSucceeded(Check):
    """Proves the build for the deployed commit finished with `success`: its jobs in this run, its workflows.

    Build and deploy in one run: with `build_jobs`, each named job (matrix instances included) of the
    current run (GITHUB_RUN_ID) must have concluded success; without it, every job of the current run that
    finished before the gate ran (which includes all the deploy job `needs`) must not have failed, been
    cancelled or timed out. Separate build workflows: runs are grouped by `workflow_id` (name and path
    are looked up when the payload lacks them) and the newest run of each judged; a rerun or a later run
    that succeeded clears it. With `build_workflows`, each named workflow must have succeeded: running,
    stale, skipped or neutral is an error. Without it, every other workflow for the commit is judged:
    failed or cancelled is an error; running or stale is a warning (it may be unrelated); skipped and
    neutral are ignored. Cannot prove that the image in the plan is the one that build pushed: PRV002
    binds the digest to the commit.
    """

    id = "PRV001"
    title = "Build for the commit succeeded"
    severity = Severity.ERROR
    proves = "the build job(s) and build workflow run(s) for the deployed commit concluded success (not " \
        "cancelled, failed, skipped or still running)"
    cannot_prove = "that the images in the plan were pushed by that build (see PRV002)"

    def run(self, plan: DeployPlan, ctx: CheckContext) -> Iterator[Result]:
        """Fetch the runs for the commit; judge the current run's jobs and every (or each named) workflow."""
        repo, sha = ctx.commit.repository, ctx.commit.sha
        if not repo or not sha:
            yield self.finding("build", "build provenance not checked: no commit given (set GITHUB_SHA and "
                               "GITHUB_REPOSITORY, or pass --sha and --repository)", severity=Severity.INFO)
            return
        target = f"{repo}@{sha[:12]}"
        try:
            runs = ctx.github.runs_for_commit(repo, sha)
            current = next((r for r in runs if r.id == ctx.commit.current_run_id), None)
            others = _workflows(ctx.github, repo, [r for r in runs if r is not current])
            job_runs = [current] if current else [max(w.runs, key=lambda r: (r.created_at, r.id)) for w in others]
            jobs = {r.id: ctx.github.jobs(repo, r.id) for r in job_runs} if current or ctx.config.build_jobs else {}
            wanted = ctx.config.build_workflows
            current_wf = _workflows(ctx.github, repo, [current])[0] if current and wanted else None
        except GatewayError as exc:
            yield self.unverified(target, exc, exc.code)
            return
        runs_by_id = {r.id: r for r in job_runs}
        yield from self._judge_jobs(target, sha, jobs, runs_by_id, ctx.config.build_jobs, current)
        for w in wanted:
            if not any(wf.matches([w]) for wf in others) and not (current_wf and current_wf.matches([w])):
                yield self.finding(target, f"no run of workflow {w} for commit {sha[:12]}: the image was not "
                                   "built from this commit", workflow=w, sha=sha,
                                   remediation="run the build for this commit before deploying")
        if not others and current is None and not wanted:
            yield self.finding(target, f"no workflow run found for commit {sha[:12]}", sha=sha,
                               remediation="run the build for this commit before deploying")
        for wf in others:
            if wanted and not wf.matches(wanted):
                continue
            yield from self._judge_workflow(target, sha, wf, named=bool(wanted))

    def _judge_jobs(self, target: str, sha: str, jobs: dict[int, list[Job]], runs: dict[int, WorkflowRun],
                    names: Sequence[str], current: WorkflowRun | None) -> Iterator[Result]:
        """Named build jobs must have succeeded; without names, finished jobs of this run must not have failed."""
        everywhere = [(runs[run_id], j) for run_id, js in jobs.items() for j in js]
        for name in names:
            found = [(r, j) for r, j in everywhere if _job_matches(j, name)]
            if not found:
                where = f"the current run {current.id}" if current else f"any run for commit {sha[:12]}"
                yield self.finding(target, f"no job {name} in {where}: the image was not built here", job=name,
                                   sha=sha, remediation="name the job that builds the image in build_jobs")
            for r, j in found:
                if j.status == "completed" and j.conclusion == "success":
                    continue
                state = j.conclusion if j.status == "completed" else j.status
                verb = f"concluded {state}" if j.status == "completed" else "has not finished (the deploy " \
                    "job must `needs:` it)"
                yield self.finding(target, f"build job {j.name} of run {r.id} (attempt {j.run_attempt}) {verb}: "
                                   f"{j.html_url}", run_id=r.id, job=j.name, state=state, url=j.html_url, sha=sha,
                                   remediation="rerun the build job and deploy after it succeeds")
        if names:
            return
        for r, j in everywhere:
            if j.status == "completed" and j.conclusion in FAILED:
                yield self.finding(target, f"job {j.name} of the current run {r.id} concluded {j.conclusion}: "
                                   f"{j.html_url}", run_id=r.id, job=j.name, state=j.conclusion, url=j.html_url,
                                   sha=sha, remediation="deploy only after every job it needs succeeded")

    def _judge_workflow(self, target: str, sha: str, wf: _Workflow, *, named: bool) -> Iterator[Result]:
        """The newest run decides, unless any run of the workflow succeeded (a rerun or retrigger)."""
        if any(r.status == "completed" and r.conclusion == "success" for r in wf.runs):
            return
        latest = max(wf.runs, key=lambda r: (r.created_at, r.id))
        running = latest.status in RUNNING
        state = latest.status if running else (latest.conclusion or latest.status)
        if state in NO_BUILD and not named:
            return
        severity = None
        if not named and (running or state == "stale"):
            severity = Severity.WARNING
        if running:
            verb = "is still running"
        elif state == "stale":
            verb = "is stale (GitHub gave up on it before it finished)"
        elif state in NO_BUILD:
            verb = f"concluded {state}: it built nothing"
        else:
            verb = f"concluded {state}"
        hint = "; configure build_workflows to require or ignore it" if severity else ""
        yield self.finding(
            target, f"build run {latest.id} ({wf.label}, attempt {latest.run_attempt}) for commit {sha[:12]} "
            f"{verb}: {latest.html_url}{hint}", severity=severity, run_id=latest.id, workflow=wf.label,
            workflow_id=latest.workflow_id, state=state, url=latest.html_url, sha=sha,
            remediation="wait for the build to finish" if running
            else "rerun the build and deploy after it succeeds")
