"""A local GitHub REST server (stdlib only) that `guard demo` and the tests reach through PyGithub's base_url."""

from __future__ import annotations

import copy
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from guard.sandbox import github_payloads as p
from guard.sandbox.github_payloads import JSON
from guard.sandbox.local_server import LocalHandler, LocalHTTPServer, LocalServer

API_PREFIX = "/api/v3"
DEFAULT_TOKEN = "sandbox-token"
ALL_PERMISSIONS: Mapping[str, str] = {
    "actions": "write", "attestations": "read", "contents": "write", "deployments": "write", "issues": "write",
    "statuses": "write",
}
RATE_LIMIT = 5000
PENDING_STATUSES = frozenset({"queued", "in_progress", "waiting", "requested", "pending"})
CONCLUSIONS = frozenset({
    "success", "failure", "cancelled", "skipped", "neutral", "timed_out", "action_required",
    "startup_failure", "stale",
})
_RERUNNABLE = frozenset({"failure", "cancelled", "timed_out", "startup_failure"})
_BLAMED = frozenset({"failure", "timed_out", "startup_failure"})  # lands on one job, the others succeeded
_STATUS_STATES = frozenset({"error", "failure", "pending", "success"})
_DEPLOY_STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})
_LEVELS = {"read": 1, "write": 2}
_SHA = re.compile(r"[0-9a-f]{40}")
_ID_BASES = {
    "repo": 700_000_000, "user": 41_000_000, "workflow": 90_000_000, "run": 9_100_000_000,
    "job": 25_000_000_000, "status": 30_000_000_000, "label": 6_000_000_000, "issue": 2_400_000_000,
    "comment": 2_100_000_000, "deployment": 1_800_000_000, "deployment_status": 3_900_000_000,
}
_DOC_RUNS = "https://docs.github.com/rest/actions/workflow-runs"
_DOC_RATE = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"


@dataclass(frozen=True)
class LoggedRequest:
    """One request the sandbox answered; `path` is relative to the API root, `token` is None when absent."""

    method: str
    path: str
    query: str
    token: str | None
    status: int


@dataclass
class _Token:
    permissions: dict[str, str]
    actor: JSON
    repos: frozenset[str] | None
    used: int = 0
    reset: int = 0


@dataclass
class _Run:
    data: JSON
    jobs: list[JSON]
    scheduled: str | None = None  # conclusion the current attempt ends with on advance()


@dataclass
class _Issue:
    data: JSON
    comments: list[JSON] = field(default_factory=list)


@dataclass
class _Deployment:
    data: JSON
    statuses: list[JSON] = field(default_factory=list)


@dataclass
class _Repo:
    data: JSON
    workflows: dict[str, JSON] = field(default_factory=dict)
    runs: dict[int, _Run] = field(default_factory=dict)
    statuses: list[tuple[str, JSON]] = field(default_factory=list)
    labels: dict[str, JSON] = field(default_factory=dict)
    issues: dict[int, _Issue] = field(default_factory=dict)
    deployments: dict[int, _Deployment] = field(default_factory=dict)
    attestations: list[tuple[str, JSON]] = field(default_factory=list)  # (subject digest, attestation)


@dataclass(frozen=True)
class _Fault:
    status: int
    rate_limited: bool
    retry_after: int | None


@dataclass
class _Reply:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ctx:
    repo: _Repo
    args: dict[str, str]
    query: dict[str, str]
    body: JSON
    token: _Token
    path: str


class _Problem(Exception):
    """An error answer raised from inside a route handler."""

    def __init__(self, status: int, message: str, doc: str = p.DOCS, **extra: Any) -> None:
        super().__init__(message)
        self.reply = _Reply(status, p.error(message, doc, **extra))


def _not_found(doc: str = p.DOCS) -> _Problem:
    return _Problem(404, "Not Found", doc)


def _invalid(resource: str, field_name: str, code: str = "missing_field") -> _Problem:
    return _Problem(422, "Validation Failed", errors=[{"resource": resource, "code": code, "field": field_name}])


def _token_of(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        return None
    return value.strip()


class GitHubSandbox(LocalServer):
    """GitHub's REST API for workflow runs, jobs, reruns, statuses, issues and deployments, on 127.0.0.1."""

    thread_name = "github-sandbox"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        super().__init__()
        self._init_state()

    def _init_state(self) -> None:
        self._repos: dict[str, _Repo] = {}
        self._tokens: dict[str, _Token] = {}
        self._faults: list[_Fault] = []
        self._log: list[LoggedRequest] = []
        self._ids = dict(_ID_BASES)
        # Called on each rerun with ("owner/name", run id); the conclusion it returns is applied by advance().
        self.on_rerun: Callable[[str, int], str | None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def _make_server(self) -> LocalHTTPServer:
        return LocalHTTPServer(self, _Handler)

    def _on_start(self) -> None:
        self.reset()

    @property
    def api_url(self) -> str:
        """`http://127.0.0.1:PORT/api/v3`, the value for PyGithub's base_url and GITHUB_API_URL."""
        return self._bases.api

    @property
    def _bases(self) -> p.Bases:
        web = f"http://127.0.0.1:{self.port}"
        return p.Bases(api=web + API_PREFIX, web=web)

    def reset(self) -> None:
        """Forget every repository, run, token, fault and logged request; keep serving on the same port."""
        with self._lock:
            self._init_state()
            self.add_token(DEFAULT_TOKEN, ALL_PERMISSIONS)

    # ---- scenario builders -----------------------------------------------------------------------------

    def add_token(self, token: str, permissions: Mapping[str, str], *, login: str = "deploy-guard[bot]",
                  repos: Iterable[str] | None = None) -> None:
        """Accept `token` with GitHub App permissions such as {"actions": "write"}; `repos` limits what it sees."""
        for scope, level in permissions.items():
            if level not in _LEVELS:
                raise ValueError(f"permission {scope}={level}: use read or write")
        with self._lock:
            actor = p.user(self._bases, login, self._next("user"))
            seen = None if repos is None else frozenset(r.lower() for r in repos)
            self._tokens[token] = _Token(dict(permissions), actor, seen)

    def add_repo(self, full_name: str, *, default_branch: str = "main") -> None:
        """Create repository `owner/name` (idempotent)."""
        with self._lock:
            if full_name.lower() not in self._repos:
                data = p.repository(self._bases, full_name, self._next("repo"), default_branch)
                self._repos[full_name.lower()] = _Repo(data)

    def add_run(self, repo: str, *, head_sha: str, workflow: str = "build.yml", name: str = "build",
                status: str = "completed", conclusion: str | None = "success", head_branch: str = "main",
                event: str = "push", jobs: Iterable[str] = ("build",), legacy: bool = False) -> int:
        """Record a workflow run (and its jobs) on `head_sha`; `conclusion` applies to completed runs only.

        `legacy` serves the run without `name`, `path` and `display_title`, as api.github.com did in 2020 and
        older GitHub Enterprise Server versions still do (`workflow_id` is always there).
        """
        if status != "completed" and status not in PENDING_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if status == "completed" and conclusion not in CONCLUSIONS:
            raise ValueError(f"unknown conclusion {conclusion!r}")
        with self._lock:
            self.add_repo(repo)
            box = self._repos[repo.lower()]
            wf = box.workflows.get(workflow)
            if wf is None:
                wf = box.workflows[workflow] = p.workflow(self._bases, box.data["full_name"],
                                                          self._next("workflow"), workflow, name)
            number = 1 + sum(r.data["workflow_id"] == wf["id"] for r in box.runs.values())
            run_id = self._next("run")
            data = p.workflow_run(box.data, wf, run_id=run_id, run_number=number, head_sha=head_sha,
                                  head_branch=head_branch, event=event, status=status,
                                  conclusion=conclusion if status == "completed" else None,
                                  actor=p.user(self._bases, "sandbox-dev", _ID_BASES["user"], "User"))
            data["name"] = data["display_title"] = name
            run = box.runs[run_id] = _Run(data, [])
            job_status = "in_progress" if status == "completed" else status
            self._new_attempt_jobs(run, [(job, job_status, None) for job in jobs])
            if status == "completed":
                self._finish(run, str(conclusion))
            if legacy:
                for key in ("name", "path", "display_title"):
                    data.pop(key, None)
            return run_id

    def set_job(self, repo: str, run_id: int, name: str, status: str, conclusion: str | None = None) -> None:
        """Move one job of the run's current attempt (e.g. the build job done while the deploy job runs)."""
        if status != "completed" and status not in PENDING_STATUSES:
            raise ValueError(f"unknown job status {status!r}")
        with self._lock:
            found = [job for job in self._run(repo, run_id).jobs if job["name"] == name]
            if not found:
                raise KeyError(f"no job {name!r} in run {run_id}")
            for job in found:
                _set_job(job, status, conclusion if status == "completed" else None)

    def add_attestation(self, repo: str, digest: str, *, sha: str, workflow: str = "build.yml",
                        source_repo: str | None = None, run_id: int | None = None) -> None:
        """Store a build-provenance attestation for `digest` in `repo`, as actions/attest-build-provenance does.

        `source_repo` is the repository the provenance names (default `repo`). The sandbox's bundle is
        shaped like a Sigstore bundle but not signed.
        """
        with self._lock:
            self.add_repo(repo)
            box = self._repos[repo.lower()]
            named = source_repo or box.data["full_name"]
            bundle = p.provenance_bundle(digest=digest, repository=f"https://github.com/{named}",
                                         workflow_path=f".github/workflows/{workflow}", sha=sha,
                                         run_id=run_id or self._ids["run"])
            box.attestations.append((digest, {"bundle": bundle, "repository_id": box.data["id"],
                                              "bundle_url": None}))

    def complete_run(self, repo: str, run_id: int, conclusion: str) -> None:
        """Finish the run's current attempt with `conclusion` (one job carries a failure)."""
        if conclusion not in CONCLUSIONS:
            raise ValueError(f"unknown conclusion {conclusion!r}")
        with self._lock:
            self._finish(self._run(repo, run_id), conclusion)

    def set_run_status(self, repo: str, run_id: int, status: str) -> None:
        """Move a run to a not-yet-completed status (queued, in_progress, waiting, requested, pending)."""
        if status not in PENDING_STATUSES:
            raise ValueError(f"{status!r} is not a pending status; use complete_run to finish a run")
        with self._lock:
            run = self._run(repo, run_id)
            run.data.update(status=status, conclusion=None, updated_at=p.now())
            for job in run.jobs:
                _set_job(job, status, None)

    def advance(self) -> list[int]:
        """Finish every rerun whose `on_rerun` hook chose a conclusion; return their run ids."""
        with self._lock:
            done = []
            for box in self._repos.values():
                for run_id, run in box.runs.items():
                    if run.scheduled is not None:
                        self._finish(run, run.scheduled)
                        done.append(run_id)
            return done

    def fail_next(self, n: int, status: int = 502) -> None:
        """Answer the next `n` requests with HTTP `status` (any route, before authentication)."""
        with self._lock:
            self._faults += [_Fault(status, False, None)] * n

    def rate_limit_next(self, n: int, *, status: int = 403, retry_after: int | None = None) -> None:
        """Answer the next `n` requests as rate limited (x-ratelimit-remaining: 0, optional Retry-After)."""
        with self._lock:
            self._faults += [_Fault(status, True, retry_after)] * n

    # ---- state for assertions --------------------------------------------------------------------------

    def run(self, repo: str, run_id: int) -> JSON:
        """The run's `workflow-run` JSON as the API serves it."""
        with self._lock:
            return copy.deepcopy(self._run(repo, run_id).data)

    def jobs(self, repo: str, run_id: int) -> list[JSON]:
        """The jobs of the run's current attempt."""
        with self._lock:
            return copy.deepcopy(self._run(repo, run_id).jobs)

    def statuses(self, repo: str, sha: str | None = None) -> list[JSON]:
        """Commit statuses created in `repo` (for `sha` if given), oldest first."""
        with self._lock:
            return copy.deepcopy([s for at, s in self._repo(repo).statuses if sha in (None, at)])

    def issues(self, repo: str) -> list[JSON]:
        """Issues of `repo`, oldest first."""
        with self._lock:
            return copy.deepcopy([i.data for i in self._repo(repo).issues.values()])

    def comments(self, repo: str, number: int) -> list[JSON]:
        """Comments on issue `number`, oldest first."""
        with self._lock:
            issue = self._repo(repo).issues.get(number)
            if issue is None:
                raise KeyError(f"{repo}#{number}")
            return copy.deepcopy(issue.comments)

    def deployments(self, repo: str) -> list[JSON]:
        """Deployments of `repo`, oldest first."""
        with self._lock:
            return copy.deepcopy([d.data for d in self._repo(repo).deployments.values()])

    def deployment_statuses(self, repo: str, deployment_id: int) -> list[JSON]:
        """Statuses of one deployment, oldest first."""
        with self._lock:
            dep = self._repo(repo).deployments.get(deployment_id)
            if dep is None:
                raise KeyError(f"{repo} deployment {deployment_id}")
            return copy.deepcopy(dep.statuses)

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request answered since the last reset, in order."""
        with self._lock:
            return list(self._log)

    # ---- internals -------------------------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _repo(self, repo: str) -> _Repo:
        box = self._repos.get(repo.lower())
        if box is None:
            raise KeyError(f"no repository {repo} in the sandbox")
        return box

    def _run(self, repo: str, run_id: int) -> _Run:
        run = self._repo(repo).runs.get(run_id)
        if run is None:
            raise KeyError(f"no run {run_id} in {repo}")
        return run

    def _new_attempt_jobs(self, run: _Run, specs: list[tuple[str, str, str | None]]) -> None:
        run.jobs = [p.job(run.data, job_id=self._next("job"), name=name, status=status, conclusion=concl)
                    for name, status, concl in specs]

    def _finish(self, run: _Run, conclusion: str) -> None:
        run.data.update(status="completed", conclusion=conclusion, updated_at=p.now())
        run.scheduled = None
        pending = [job for job in run.jobs if job["status"] != "completed"]
        for i, job in enumerate(pending):
            blamed = conclusion not in _BLAMED or i == len(pending) - 1
            _set_job(job, "completed", conclusion if blamed else "success")

    def _restart(self, box: _Repo, run: _Run, failed_only: bool) -> None:
        d = run.data
        stamp = p.now()
        d["previous_attempt_url"] = f"{d['url']}/attempts/{d['run_attempt']}"
        d.update(status="queued", conclusion=None, run_attempt=d["run_attempt"] + 1, updated_at=stamp,
                 run_started_at=stamp)
        again = [not failed_only or job["conclusion"] in _RERUNNABLE for job in run.jobs]
        self._new_attempt_jobs(run, [(job["name"], "queued", None) if rerun
                                     else (job["name"], "completed", job["conclusion"])
                                     for job, rerun in zip(run.jobs, again, strict=True)])
        run.scheduled = self.on_rerun(box.data["full_name"], d["id"]) if self.on_rerun else None

    # ---- HTTP ------------------------------------------------------------------------------------------

    def _answer(self, method: str, target: str, authorization: str | None, raw: bytes) -> _Reply:
        with self._lock:
            url = urlsplit(target)
            path = url.path[len(API_PREFIX):] if url.path.startswith(API_PREFIX + "/") else None
            token = _token_of(authorization)
            try:
                reply = self._dispatch(method, path, dict(parse_qsl(url.query)), token, raw)
            except _Problem as problem:
                reply = problem.reply
            self._log.append(LoggedRequest(method, url.path if path is None else path, url.query, token,
                                           reply.status))
            reply.headers["X-GitHub-Request-Id"] = f"SANDBOX:{len(self._log):08X}"
            return reply

    def _dispatch(self, method: str, path: str | None, query: dict[str, str], token_value: str | None,
                  raw: bytes) -> _Reply:
        if self._faults:
            return self._fault_reply(self._faults.pop(0))
        if path is None:
            raise _not_found()
        token = self._tokens.get(token_value or "")
        if token is None:
            return _Reply(401, p.error("Bad credentials"))
        limits = self._charge(token)
        try:
            reply = self._route(method, path, query, token, raw)
        except _Problem as problem:
            reply = problem.reply
        reply.headers.update(limits)
        return reply

    def _charge(self, token: _Token) -> dict[str, str]:
        clock = int(time.time())
        if clock >= token.reset:
            token.used, token.reset = 0, clock + 3600
        exhausted = token.used >= RATE_LIMIT
        token.used = min(RATE_LIMIT, token.used + 1)
        headers = {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": str(RATE_LIMIT - token.used),
                   "X-RateLimit-Reset": str(token.reset), "X-RateLimit-Used": str(token.used),
                   "X-RateLimit-Resource": "core"}
        if exhausted:
            problem = _Problem(403, "API rate limit exceeded for installation ID 1.", _DOC_RATE)
            problem.reply.headers.update(headers)
            raise problem
        return headers

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if not fault.rate_limited:
            return _Reply(fault.status, p.error(HTTPStatus(fault.status).phrase))
        headers = {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Used": str(RATE_LIMIT), "X-RateLimit-Reset": str(int(time.time()) + 60),
                   "X-RateLimit-Resource": "core"}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return _Reply(fault.status, p.error("API rate limit exceeded for installation ID 1.", _DOC_RATE),
                      headers)

    def _route(self, method: str, path: str, query: dict[str, str], token: _Token, raw: bytes) -> _Reply:
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None or route.method != method:
                continue
            args = match.groupdict()
            box = self._repos.get(f"{args['owner']}/{args['name']}".lower())
            if box is None or (token.repos is not None and box.data["full_name"].lower() not in token.repos):
                raise _not_found()
            if route.scope and _LEVELS.get(token.permissions.get(route.scope, ""), 0) < _LEVELS[route.level]:
                return _Reply(403, p.error("Resource not accessible by integration"),
                              {"X-Accepted-GitHub-Permissions": f"{route.scope}={route.level}"})
            body = _parse_body(raw) if method != "GET" else {}
            return route.handler(self, _Ctx(box, args, query, body, token, path))
        raise _not_found()

    def _paged(self, ctx: _Ctx, items: list[JSON], key: str | None = None) -> _Reply:
        per_page = min(100, max(1, _int(ctx.query.get("per_page"), 30)))
        page = max(1, _int(ctx.query.get("page"), 1))
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = {"prev": page - 1, "next": page + 1, "last": last, "first": 1}
        wanted = (["next", "last"] if page < last else []) + (["prev", "first"] if page > 1 else [])
        base = f"{self._bases.api}{ctx.path}"
        link = ", ".join(
            f'<{base}?{urlencode({**ctx.query, "per_page": per_page, "page": links[rel]})}>; rel="{rel}"'
            for rel in wanted)
        body: object = {"total_count": len(items), key: chunk} if key else chunk
        return _Reply(200, body, {"Link": link} if link else {})

    # ---- route handlers ----------------------------------------------------------------------------------

    def _get_repo(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, ctx.repo.data)

    def _list_runs(self, ctx: _Ctx) -> _Reply:
        return self._paged(ctx, _filter_runs(ctx.repo.runs.values(), ctx.query), "workflow_runs")

    def _list_workflows(self, ctx: _Ctx) -> _Reply:
        return self._paged(ctx, list(ctx.repo.workflows.values()), "workflows")

    def _workflow(self, ctx: _Ctx) -> JSON:
        ref = ctx.args["workflow"]
        for file, wf in ctx.repo.workflows.items():
            if ref in (file, str(wf["id"])):
                return wf
        raise _not_found("https://docs.github.com/rest/actions/workflows")

    def _get_workflow(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._workflow(ctx))

    def _list_workflow_runs(self, ctx: _Ctx) -> _Reply:
        wf_id = self._workflow(ctx)["id"]
        runs = [r for r in ctx.repo.runs.values() if r.data["workflow_id"] == wf_id]
        return self._paged(ctx, _filter_runs(runs, ctx.query), "workflow_runs")

    def _find_run(self, ctx: _Ctx) -> _Run:
        run = ctx.repo.runs.get(int(ctx.args["run"]))
        if run is None:
            raise _not_found(_DOC_RUNS)
        return run

    def _get_run(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._find_run(ctx).data)

    def _list_jobs(self, ctx: _Ctx) -> _Reply:
        return self._paged(ctx, self._find_run(ctx).jobs, "jobs")

    def _rerun(self, ctx: _Ctx) -> _Reply:
        return self._rerun_jobs(ctx, failed_only=False)

    def _rerun_failed(self, ctx: _Ctx) -> _Reply:
        return self._rerun_jobs(ctx, failed_only=True)

    def _rerun_jobs(self, ctx: _Ctx, failed_only: bool) -> _Reply:
        run = self._find_run(ctx)
        if run.data["status"] != "completed":
            raise _Problem(403, "This workflow is already running", f"{_DOC_RUNS}#re-run-a-workflow")
        if failed_only and not any(job["conclusion"] in _RERUNNABLE for job in run.jobs):
            raise _Problem(403, "This workflow run has no failed jobs to re-run",
                           f"{_DOC_RUNS}#re-run-failed-jobs-from-a-workflow-run")
        self._restart(ctx.repo, run, failed_only)
        return _Reply(201, {})

    def _cancel(self, ctx: _Ctx) -> _Reply:
        run = self._find_run(ctx)
        if run.data["status"] == "completed":
            raise _Problem(409, "Cannot cancel a workflow run that is completed.",
                           f"{_DOC_RUNS}#cancel-a-workflow-run")
        self._finish(run, "cancelled")
        return _Reply(202, {})

    def _list_attestations(self, ctx: _Ctx) -> _Reply:
        found = [a for digest, a in ctx.repo.attestations if digest == ctx.args["digest"]]
        if not found:
            raise _not_found("https://docs.github.com/rest/repos/attestations")
        return _Reply(200, {"attestations": found})

    def _get_commit(self, ctx: _Ctx) -> _Reply:
        sha = _commit_sha(ctx.args["sha"])
        return _Reply(200, p.commit(ctx.repo.data, sha))

    def _list_statuses(self, ctx: _Ctx) -> _Reply:
        sha = ctx.args["sha"]
        return self._paged(ctx, [s for at, s in reversed(ctx.repo.statuses) if at == sha])

    def _create_status(self, ctx: _Ctx) -> _Reply:
        sha = _commit_sha(ctx.args["sha"])
        state = ctx.body.get("state")
        if state not in _STATUS_STATES:
            raise _invalid("Status", "state", "missing_field" if state is None else "invalid")
        status = p.commit_status(ctx.repo.data, status_id=self._next("status"), sha=sha, state=state,
                                 target_url=ctx.body.get("target_url"),
                                 description=ctx.body.get("description"),
                                 context=ctx.body.get("context") or "default", creator=ctx.token.actor)
        ctx.repo.statuses.append((sha, status))
        return _Reply(201, status)

    def _labels(self, box: _Repo, names: object) -> list[JSON]:
        if not isinstance(names, list):
            raise _invalid("Issue", "labels", "invalid")
        out = []
        for item in names:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str):
                raise _invalid("Issue", "labels", "invalid")
            if name not in box.labels:
                box.labels[name] = p.label(box.data, name, self._next("label"))
            out.append(box.labels[name])
        return out

    def _assignees(self, body: JSON) -> list[JSON]:
        logins = body.get("assignees") or ([body["assignee"]] if body.get("assignee") else [])
        if not isinstance(logins, list) or not all(isinstance(x, str) for x in logins):
            raise _invalid("Issue", "assignees", "invalid")
        return [p.user(self._bases, login, self._next("user"), "User") for login in logins]

    def _find_issue(self, ctx: _Ctx) -> _Issue:
        issue = ctx.repo.issues.get(int(ctx.args["number"]))
        if issue is None:
            raise _not_found("https://docs.github.com/rest/issues/issues#get-an-issue")
        return issue

    def _list_issues(self, ctx: _Ctx) -> _Reply:
        state = ctx.query.get("state", "open")
        wanted = {n for n in ctx.query.get("labels", "").split(",") if n}
        items = [i.data for i in reversed(ctx.repo.issues.values())
                 if state in ("all", i.data["state"]) and wanted <= {lb["name"] for lb in i.data["labels"]}]
        return self._paged(ctx, items)

    def _create_issue(self, ctx: _Ctx) -> _Reply:
        title = ctx.body.get("title")
        if not isinstance(title, str) or not title:
            raise _invalid("Issue", "title")
        number = 1 + len(ctx.repo.issues)
        data = p.issue(ctx.repo.data, issue_id=self._next("issue"), number=number, title=title,
                       body=ctx.body.get("body"), labels=self._labels(ctx.repo, ctx.body.get("labels", [])),
                       assignees=self._assignees(ctx.body), creator=ctx.token.actor)
        ctx.repo.issues[number] = _Issue(data)
        ctx.repo.data["open_issues_count"] += 1
        return _Reply(201, data)

    def _get_issue(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._find_issue(ctx).data)

    def _update_issue(self, ctx: _Ctx) -> _Reply:
        data = self._find_issue(ctx).data
        body = ctx.body
        state = body.get("state", data["state"])
        if state not in ("open", "closed"):
            raise _invalid("Issue", "state", "invalid")
        if state != data["state"]:
            closing = state == "closed"
            data.update(state=state, closed_at=p.now() if closing else None,
                        closed_by=ctx.token.actor if closing else None,
                        state_reason=body.get("state_reason") or ("completed" if closing else "reopened"))
            ctx.repo.data["open_issues_count"] += -1 if closing else 1
        for key in ("title", "body"):
            if key in body:
                data[key] = body[key]
        if "labels" in body:
            data["labels"] = self._labels(ctx.repo, body["labels"])
        if "assignees" in body or "assignee" in body:
            data["assignees"] = self._assignees(body)
            data["assignee"] = data["assignees"][0] if data["assignees"] else None
        data["updated_at"] = p.now()
        return _Reply(200, data)

    def _list_comments(self, ctx: _Ctx) -> _Reply:
        return self._paged(ctx, self._find_issue(ctx).comments)

    def _create_comment(self, ctx: _Ctx) -> _Reply:
        issue = self._find_issue(ctx)
        text = ctx.body.get("body")
        if not isinstance(text, str) or not text:
            raise _invalid("IssueComment", "body")
        comment = p.issue_comment(issue.data, comment_id=self._next("comment"), body=text,
                                  creator=ctx.token.actor)
        issue.comments.append(comment)
        issue.data["comments"] = len(issue.comments)
        issue.data["updated_at"] = comment["created_at"]
        return _Reply(201, comment)

    def _find_deployment(self, ctx: _Ctx) -> _Deployment:
        dep = ctx.repo.deployments.get(int(ctx.args["deployment"]))
        if dep is None:
            raise _not_found("https://docs.github.com/rest/deployments/deployments#get-a-deployment")
        return dep

    def _list_deployments(self, ctx: _Ctx) -> _Reply:
        keys = [k for k in ("sha", "ref", "task", "environment") if k in ctx.query]
        items = [d.data for d in reversed(ctx.repo.deployments.values())
                 if all(d.data[k] == ctx.query[k] for k in keys)]
        return self._paged(ctx, items)

    def _get_deployment(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._find_deployment(ctx).data)

    def _create_deployment(self, ctx: _Ctx) -> _Reply:
        body = ctx.body
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise _invalid("Deployment", "ref")
        environment = str(body.get("environment") or "production")
        data = p.deployment(
            ctx.repo.data, deployment_id=self._next("deployment"), sha=self._resolve(ctx.repo, ref), ref=ref,
            task=str(body.get("task") or "deploy"), payload=body.get("payload", {}), environment=environment,
            description=body.get("description", ""),
            transient=bool(body.get("transient_environment", False)),
            production=bool(body.get("production_environment", environment == "production")),
            creator=ctx.token.actor)
        ctx.repo.deployments[data["id"]] = _Deployment(data)
        return _Reply(201, data)

    def _resolve(self, box: _Repo, ref: str) -> str:
        if _SHA.fullmatch(ref):
            return ref
        on_branch = [r.data for r in box.runs.values() if r.data["head_branch"] == ref]
        return on_branch[-1]["head_sha"] if on_branch else p.fake_sha(f"{box.data['full_name']}:{ref}")

    def _list_deployment_statuses(self, ctx: _Ctx) -> _Reply:
        return self._paged(ctx, list(reversed(self._find_deployment(ctx).statuses)))

    def _create_deployment_status(self, ctx: _Ctx) -> _Reply:
        dep = self._find_deployment(ctx)
        body = ctx.body
        state = body.get("state")
        if state not in _DEPLOY_STATES:
            raise _invalid("DeploymentStatus", "state", "missing_field" if state is None else "invalid")
        environment = str(body.get("environment") or dep.data["environment"])
        status = self._deployment_status(dep, ctx.token, state, body, environment)
        if state == "success" and body.get("auto_inactive", True):
            for other in ctx.repo.deployments.values():
                if (other is not dep and other.data["environment"] == environment and other.statuses
                        and other.statuses[-1]["state"] == "success"):
                    self._deployment_status(other, ctx.token, "inactive", {}, environment)
        return _Reply(201, status)

    def _deployment_status(self, dep: _Deployment, token: _Token, state: str, body: JSON,
                           environment: str) -> JSON:
        target = str(body.get("target_url") or "")
        status = p.deployment_status(
            dep.data, status_id=self._next("deployment_status"), state=state,
            description=str(body.get("description") or ""), environment=environment, target_url=target,
            log_url=str(body.get("log_url") or target), environment_url=str(body.get("environment_url") or ""),
            creator=token.actor)
        dep.statuses.append(status)
        dep.data["updated_at"] = status["created_at"]
        return status


def _set_job(job: JSON, status: str, conclusion: str | None) -> None:
    stamp = p.now() if status == "completed" else None
    job.update(status=status, conclusion=conclusion, completed_at=stamp)
    for step in job["steps"]:
        step.update(status=status, conclusion=conclusion, completed_at=stamp)


def _filter_runs(runs: Iterable[_Run], query: Mapping[str, str]) -> list[JSON]:
    fields = [(q, f) for q, f in (("head_sha", "head_sha"), ("branch", "head_branch"), ("event", "event"))
              if q in query]
    wanted = query.get("status")
    return [r.data for r in sorted(runs, key=lambda r: r.data["id"], reverse=True)
            if all(r.data[f] == query[q] for q, f in fields)
            and wanted in (None, r.data["status"], r.data["conclusion"])]


def _commit_sha(ref: str) -> str:
    if not _SHA.fullmatch(ref):
        raise _Problem(422, f"No commit found for SHA: {ref}", "https://docs.github.com/rest/commits/statuses")
    return ref


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _parse_body(raw: bytes) -> JSON:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Problem(400, "Problems parsing JSON")
    return body


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[GitHubSandbox, _Ctx], _Reply]
    scope: str | None
    level: str


def _routes() -> list[_Route]:
    repo = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
    run = "/actions/runs/(?P<run>[0-9]+)"
    s = GitHubSandbox
    table: list[tuple[str, str, Callable[[GitHubSandbox, _Ctx], _Reply], str | None, str]] = [
        ("GET", "", s._get_repo, None, "read"),
        ("GET", "/actions/runs", s._list_runs, "actions", "read"),
        ("GET", "/actions/workflows", s._list_workflows, "actions", "read"),
        ("GET", "/actions/workflows/(?P<workflow>[^/]+)", s._get_workflow, "actions", "read"),
        ("GET", "/actions/workflows/(?P<workflow>[^/]+)/runs", s._list_workflow_runs, "actions", "read"),
        ("GET", run, s._get_run, "actions", "read"),
        ("GET", f"{run}/jobs", s._list_jobs, "actions", "read"),
        ("POST", f"{run}/rerun", s._rerun, "actions", "write"),
        ("POST", f"{run}/rerun-failed-jobs", s._rerun_failed, "actions", "write"),
        ("POST", f"{run}/cancel", s._cancel, "actions", "write"),
        ("GET", "/attestations/(?P<digest>[^/]+)", s._list_attestations, "attestations", "read"),
        ("GET", "/commits/(?P<sha>[^/]+)", s._get_commit, "contents", "read"),
        ("GET", "/commits/(?P<sha>[^/]+)/statuses", s._list_statuses, "statuses", "read"),
        ("GET", "/statuses/(?P<sha>[^/]+)", s._list_statuses, "statuses", "read"),  # legacy alias PyGithub uses
        ("POST", "/statuses/(?P<sha>[^/]+)", s._create_status, "statuses", "write"),
        ("GET", "/issues", s._list_issues, "issues", "read"),
        ("POST", "/issues", s._create_issue, "issues", "write"),
        ("GET", "/issues/(?P<number>[0-9]+)", s._get_issue, "issues", "read"),
        ("PATCH", "/issues/(?P<number>[0-9]+)", s._update_issue, "issues", "write"),
        ("GET", "/issues/(?P<number>[0-9]+)/comments", s._list_comments, "issues", "read"),
        ("POST", "/issues/(?P<number>[0-9]+)/comments", s._create_comment, "issues", "write"),
        ("GET", "/deployments", s._list_deployments, "deployments", "read"),
        ("POST", "/deployments", s._create_deployment, "deployments", "write"),
        ("GET", "/deployments/(?P<deployment>[0-9]+)", s._get_deployment, "deployments", "read"),
        ("GET", "/deployments/(?P<deployment>[0-9]+)/statuses", s._list_deployment_statuses,
         "deployments", "read"),
        ("POST", "/deployments/(?P<deployment>[0-9]+)/statuses", s._create_deployment_status,
         "deployments", "write"),
    ]
    return [_Route(m, re.compile(repo + suffix), h, scope, level) for m, suffix, h, scope, level in table]


_ROUTES = _routes()


class _Handler(LocalHandler):
    def _serve(self) -> None:
        reply = self.server.owner._answer(self.command, self.path, self.headers.get("Authorization"),
                                          self.read_body())
        self.send(reply.status, json.dumps(reply.body).encode(), [
            ("Content-Type", "application/json; charset=utf-8"), ("X-GitHub-Media-Type", "github.v3; format=json"),
            ("X-GitHub-Api-Version-Selected", "2022-11-28"), *reply.headers.items()])

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve
