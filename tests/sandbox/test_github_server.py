"""The GitHub sandbox driven through PyGithub and raw HTTP: payload shapes, state changes, auth and faults."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import requests
from github import Auth, Github
from github.GithubException import BadCredentialsException, GithubException, RateLimitExceededException

from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox

REPO = "acme/web"
SHA = "a" * 40
OTHER_SHA = "b" * 40
RUN_FIELDS = {
    "id", "name", "node_id", "path", "head_branch", "head_sha", "run_number", "run_attempt", "event", "status",
    "conclusion", "workflow_id", "url", "html_url", "jobs_url", "logs_url", "rerun_url", "cancel_url",
    "check_suite_url", "artifacts_url", "workflow_url", "created_at", "updated_at", "run_started_at",
    "actor", "triggering_actor", "head_commit", "repository", "head_repository", "pull_requests",
    "previous_attempt_url", "display_title",
}


@pytest.fixture(scope="module")
def server() -> Iterator[GitHubSandbox]:
    """One sandbox for the module."""
    with GitHubSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(server: GitHubSandbox) -> GitHubSandbox:
    """The module's sandbox, reset, with one repository."""
    server.reset()
    server.add_repo(REPO)
    return server


def client(sandbox: GitHubSandbox, token: str | None = DEFAULT_TOKEN) -> Github:
    """A PyGithub client without throttling or retries."""
    auth = Auth.Token(token) if token else None
    return Github(base_url=sandbox.api_url, auth=auth, retry=None, seconds_between_requests=0,
                  seconds_between_writes=0)


def get(sandbox: GitHubSandbox, path: str, token: str | None = DEFAULT_TOKEN, **params: str | int) -> requests.Response:
    """A raw GET under the API root."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(sandbox.api_url + path, headers=headers, params=params, timeout=5)


def post(sandbox: GitHubSandbox, path: str, data: bytes, token: str = DEFAULT_TOKEN) -> requests.Response:
    """A raw POST under the API root."""
    return requests.post(sandbox.api_url + path, headers={"Authorization": f"token {token}"}, data=data, timeout=5)


def test_runs_for_a_sha_have_github_shapes_and_local_urls(sandbox: GitHubSandbox) -> None:
    ok = sandbox.add_run(REPO, head_sha=SHA)
    cancelled = sandbox.add_run(REPO, head_sha=SHA, workflow="deploy.yml", name="deploy", conclusion="cancelled")
    running = sandbox.add_run(REPO, head_sha=SHA, status="in_progress")
    sandbox.add_run(REPO, head_sha=OTHER_SHA)

    runs = list(client(sandbox).get_repo(REPO).get_workflow_runs(head_sha=SHA))

    assert [(r.id, r.status, r.conclusion) for r in runs] == [
        (running, "in_progress", None), (cancelled, "completed", "cancelled"), (ok, "completed", "success")]
    assert [r.run_number for r in runs] == [2, 1, 1]
    body = get(sandbox, f"/repos/{REPO}/actions/runs", head_sha=SHA).json()
    assert body["total_count"] == 3
    run = body["workflow_runs"][1]
    assert run.keys() >= RUN_FIELDS
    assert run["path"] == ".github/workflows/deploy.yml" and run["name"] == "deploy"
    assert run["repository"]["full_name"] == REPO
    assert isinstance(run["workflow_id"], int) and isinstance(run["run_attempt"], int)
    for key in ("url", "jobs_url", "logs_url", "rerun_url", "cancel_url"):
        assert run[key].startswith(f"{sandbox.api_url}/repos/{REPO}/actions/runs/{cancelled}")
    assert run["created_at"].endswith("Z")


def test_run_filters_and_workflow_runs(sandbox: GitHubSandbox) -> None:
    sandbox.add_run(REPO, head_sha=SHA, conclusion="failure")
    sandbox.add_run(REPO, head_sha=SHA, status="queued", head_branch="dev", event="pull_request")
    deploy = sandbox.add_run(REPO, head_sha=SHA, workflow="deploy.yml", name="deploy")
    repo = client(sandbox).get_repo(REPO)

    assert repo.get_workflow_runs(status="failure").totalCount == 1
    assert repo.get_workflow_runs(status="queued").totalCount == 1
    assert repo.get_workflow_runs(branch="dev").totalCount == 1  # type: ignore[arg-type]  # PyGithub takes str
    assert repo.get_workflow_runs(event="push").totalCount == 2
    assert sorted(w.path for w in repo.get_workflows()) == [".github/workflows/build.yml",
                                                             ".github/workflows/deploy.yml"]
    workflow = repo.get_workflow("deploy.yml")
    assert workflow.path == ".github/workflows/deploy.yml"
    assert [r.id for r in workflow.get_runs()] == [deploy]
    assert get(sandbox, f"/repos/{REPO}/actions/workflows/{workflow.id}/runs").json()["total_count"] == 1


def test_pagination_follows_link_headers(sandbox: GitHubSandbox) -> None:
    ids = [sandbox.add_run(REPO, head_sha=SHA) for _ in range(250)]

    first = get(sandbox, f"/repos/{REPO}/actions/runs", head_sha=SHA, per_page=100)
    assert first.json()["total_count"] == 250 and len(first.json()["workflow_runs"]) == 100
    links = first.headers["Link"]
    assert f'<{sandbox.api_url}/repos/{REPO}/actions/runs?head_sha={SHA}&per_page=100&page=2>; rel="next"' in links
    assert 'page=3>; rel="last"' in links
    mark = len(sandbox.requests)
    gh = Github(base_url=sandbox.api_url, auth=Auth.Token(DEFAULT_TOKEN), retry=None, per_page=100,
                seconds_between_requests=0, seconds_between_writes=0)
    runs = list(gh.get_repo(REPO).get_workflow_runs(head_sha=SHA))

    assert [r.id for r in runs] == ids[::-1]
    pages = [parse_qs(r.query).get("page", ["1"])[0] for r in sandbox.requests[mark:] if r.path.endswith("/runs")]
    assert pages == ["1", "2", "3"]
    last = get(sandbox, f"/repos/{REPO}/actions/runs", head_sha=SHA, per_page=100, page=3)
    assert len(last.json()["workflow_runs"]) == 50
    assert 'rel="prev"' in last.headers["Link"] and 'rel="next"' not in last.headers["Link"]


def test_rerun_of_a_cancelled_run_queues_a_new_attempt_that_advance_completes(sandbox: GitHubSandbox) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA, conclusion="cancelled")
    asked: list[tuple[str, int]] = []

    def hook(repo: str, rid: int) -> str:
        asked.append((repo, rid))
        return "success"

    sandbox.on_rerun = hook
    run = client(sandbox).get_repo(REPO).get_workflow_run(run_id)

    assert run.rerun() is True
    queued = sandbox.run(REPO, run_id)
    assert (queued["status"], queued["conclusion"], queued["run_attempt"]) == ("queued", None, 2)
    assert queued["previous_attempt_url"].endswith(f"/actions/runs/{run_id}/attempts/1")
    assert asked == [(REPO, run_id)]
    assert [j["status"] for j in sandbox.jobs(REPO, run_id)] == ["queued"]

    assert sandbox.advance() == [run_id]
    run.update()
    assert (run.status, run.conclusion, run.run_attempt) == ("completed", "success", 2)
    assert [(j.status, j.conclusion) for j in run.jobs()] == [("completed", "success")]
    assert sandbox.advance() == []


def test_rerun_without_hook_stays_queued_until_completed(sandbox: GitHubSandbox) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA, conclusion="failure")
    assert client(sandbox).get_repo(REPO).get_workflow_run(run_id).rerun() is True
    assert sandbox.advance() == []
    sandbox.complete_run(REPO, run_id, "failure")
    assert (sandbox.run(REPO, run_id)["conclusion"], sandbox.run(REPO, run_id)["run_attempt"]) == ("failure", 2)


def test_rerun_of_an_in_progress_run_is_refused(sandbox: GitHubSandbox) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA, status="in_progress")
    run = client(sandbox).get_repo(REPO).get_workflow_run(run_id)

    assert run.rerun() is False
    assert run.rerun_failed_jobs() is False
    refused = post(sandbox, f"/repos/{REPO}/actions/runs/{run_id}/rerun", b"")
    assert refused.status_code == 403 and refused.json()["message"] == "This workflow is already running"
    assert sandbox.run(REPO, run_id)["run_attempt"] == 1 and sandbox.run(REPO, run_id)["status"] == "in_progress"


def test_rerun_failed_jobs_requeues_only_the_failed_job(sandbox: GitHubSandbox) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA, conclusion="failure", jobs=("lint", "test"))
    before = sandbox.jobs(REPO, run_id)
    assert [(j["name"], j["conclusion"]) for j in before] == [("lint", "success"), ("test", "failure")]

    assert client(sandbox).get_repo(REPO).get_workflow_run(run_id).rerun_failed_jobs() is True
    after = sandbox.jobs(REPO, run_id)
    assert [(j["name"], j["status"], j["run_attempt"]) for j in after] == [
        ("lint", "completed", 2), ("test", "queued", 2)]
    assert {j["id"] for j in after}.isdisjoint(j["id"] for j in before)
    sandbox.complete_run(REPO, run_id, "success")
    assert [j["conclusion"] for j in sandbox.jobs(REPO, run_id)] == ["success", "success"]
    assert client(sandbox).get_repo(REPO).get_workflow_run(run_id).rerun_failed_jobs() is False


def test_cancel_finishes_a_running_run_once(sandbox: GitHubSandbox) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA, status="queued")
    sandbox.set_run_status(REPO, run_id, "in_progress")
    run = client(sandbox).get_repo(REPO).get_workflow_run(run_id)
    assert run.status == "in_progress"

    assert run.cancel() is True
    assert (sandbox.run(REPO, run_id)["status"], sandbox.run(REPO, run_id)["conclusion"]) == (
        "completed", "cancelled")
    assert run.cancel() is False
    assert sandbox.requests[-1].status == 409


def test_commit_statuses_are_created_and_listed(sandbox: GitHubSandbox) -> None:
    commit = client(sandbox).get_repo(REPO).get_commit(SHA)
    commit.create_status("pending", context="deploy-guard")
    created = commit.create_status("failure", target_url="http://ci/1", description="image missing",
                                   context="deploy-guard")

    assert created.state == "failure" and created.creator.login == "deploy-guard[bot]"
    assert [s["state"] for s in sandbox.statuses(REPO, SHA)] == ["pending", "failure"]
    assert [s.state for s in commit.get_statuses()] == ["failure", "pending"]
    with pytest.raises(GithubException) as bad:
        commit.create_status("broken")
    assert bad.value.status == 422


def test_issues_and_comments_change_sandbox_state(sandbox: GitHubSandbox) -> None:
    repo = client(sandbox).get_repo(REPO)
    issue = repo.create_issue("Deploy blocked", body="image missing", labels=["deploy-guard"])
    comment = issue.create_comment("rolled back")

    assert issue.number == 1 and [lb.name for lb in issue.labels] == ["deploy-guard"]
    assert comment.html_url.endswith(f"/{REPO}/issues/1#issuecomment-{comment.id}")
    assert [c["body"] for c in sandbox.comments(REPO, 1)] == ["rolled back"]
    assert [i.number for i in repo.get_issues(labels=["deploy-guard"])] == [1]
    issue.edit(state="closed")
    assert sandbox.issues(REPO)[0]["state"] == "closed" and sandbox.issues(REPO)[0]["comments"] == 1
    assert repo.get_issues().totalCount == 0 and repo.get_issues(state="closed").totalCount == 1
    assert [c.body for c in repo.get_issue(1).get_comments()] == ["rolled back"]


def test_deployments_and_statuses_with_auto_inactive(sandbox: GitHubSandbox) -> None:
    repo = client(sandbox).get_repo(REPO)
    old = repo.create_deployment(SHA, environment="prod", required_contexts=[])
    old.create_status("success")
    new = repo.create_deployment(SHA, environment="prod", description="guarded", required_contexts=[])
    new.create_status("in_progress")
    new.create_status("success", environment_url="https://prod.example.com")

    assert new.sha == SHA and new.environment == "prod"
    assert [d["id"] for d in sandbox.deployments(REPO)] == [old.id, new.id]
    assert [s["state"] for s in sandbox.deployment_statuses(REPO, old.id)] == ["success", "inactive"]
    assert [s.state for s in new.get_statuses()] == ["success", "in_progress"]
    assert [d.id for d in repo.get_deployments(environment="prod")] == [new.id, old.id]
    assert repo.get_deployment(new.id).description == "guarded"
    staging = repo.create_deployment("main", environment="staging", required_contexts=[])
    assert len(staging.sha) == 40 and not staging.production_environment
    assert new.production_environment is False and new.transient_environment is False


def test_missing_and_unknown_tokens_get_bad_credentials(sandbox: GitHubSandbox) -> None:
    for token in (None, "ghs_unknown"):
        with pytest.raises(BadCredentialsException):
            client(sandbox, token).get_repo(REPO)
    answer = get(sandbox, f"/repos/{REPO}", token=None)
    assert answer.status_code == 401 and answer.json()["message"] == "Bad credentials"
    assert sandbox.requests[-1].token is None


def test_a_write_without_permission_names_the_permission(sandbox: GitHubSandbox) -> None:
    sandbox.add_token("ghs_read", {"actions": "read", "issues": "read"})
    run_id = sandbox.add_run(REPO, head_sha=SHA, conclusion="failure")
    repo = client(sandbox, "ghs_read").get_repo(REPO)

    assert repo.get_workflow_run(run_id).rerun() is False
    with pytest.raises(GithubException) as denied:
        repo.create_issue("x")
    assert denied.value.status == 403
    assert denied.value.data["message"] == "Resource not accessible by integration"
    assert denied.value.headers is not None
    assert denied.value.headers["x-accepted-github-permissions"] == "issues=write"
    assert sandbox.run(REPO, run_id)["run_attempt"] == 1 and sandbox.issues(REPO) == []


def test_reads_need_read_permission_and_repos_can_be_hidden(sandbox: GitHubSandbox) -> None:
    sandbox.add_token("ghs_issues", {"issues": "write"}, repos=[REPO])
    sandbox.add_repo("acme/secret")
    denied = get(sandbox, f"/repos/{REPO}/actions/runs", token="ghs_issues")
    assert denied.status_code == 403 and denied.headers["X-Accepted-GitHub-Permissions"] == "actions=read"
    assert get(sandbox, "/repos/acme/secret", token="ghs_issues").status_code == 404
    assert get(sandbox, f"/repos/{REPO}", token="ghs_issues").json()["full_name"] == REPO


def test_unknown_routes_and_bad_json(sandbox: GitHubSandbox) -> None:
    for path in ("/repos/acme/nope", f"/repos/{REPO}/actions/runs/1", f"/repos/{REPO}/teleport", "/zen"):
        answer = get(sandbox, path)
        assert answer.status_code == 404 and answer.json()["message"] == "Not Found"
        assert answer.json()["documentation_url"].startswith("https://docs.github.com/")
    assert requests.get(sandbox.api_url.removesuffix("/api/v3") + "/x", timeout=5).status_code == 404
    bad = post(sandbox, f"/repos/{REPO}/issues", b"{not json")
    assert bad.status_code == 400 and bad.json()["message"] == "Problems parsing JSON"
    assert post(sandbox, f"/repos/{REPO}/issues", b'{"body": "no title"}').status_code == 422


def test_rate_limit_headers_and_injected_faults(sandbox: GitHubSandbox) -> None:
    first = get(sandbox, f"/repos/{REPO}")
    second = get(sandbox, f"/repos/{REPO}")
    assert int(first.headers["X-RateLimit-Remaining"]) - int(second.headers["X-RateLimit-Remaining"]) == 1
    assert second.headers["X-RateLimit-Limit"] == "5000" and second.headers["X-RateLimit-Resource"] == "core"

    sandbox.rate_limit_next(1)
    sandbox.fail_next(1, status=503)
    limited = get(sandbox, f"/repos/{REPO}")
    assert limited.status_code == 403 and limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.json()["message"].startswith("API rate limit exceeded")
    assert get(sandbox, f"/repos/{REPO}").status_code == 503
    assert get(sandbox, f"/repos/{REPO}").status_code == 200

    sandbox.rate_limit_next(1)
    with pytest.raises(RateLimitExceededException):
        client(sandbox).get_repo(REPO)


def test_reset_forgets_state_but_keeps_the_port(sandbox: GitHubSandbox) -> None:
    url = sandbox.api_url
    sandbox.add_token("ghs_x", {"actions": "read"})
    sandbox.add_run(REPO, head_sha=SHA)
    sandbox.fail_next(3)
    sandbox.reset()

    assert sandbox.api_url == url and sandbox.requests == []
    assert get(sandbox, f"/repos/{REPO}").status_code == 404
    assert get(sandbox, "/repos/acme/web", token="ghs_x").status_code == 401


def test_scenario_builders_reject_impossible_states(sandbox: GitHubSandbox) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA)
    with pytest.raises(ValueError):
        sandbox.add_run(REPO, head_sha=SHA, status="done")
    with pytest.raises(ValueError):
        sandbox.complete_run(REPO, run_id, "great")
    with pytest.raises(ValueError):
        sandbox.set_run_status(REPO, run_id, "completed")
    with pytest.raises(ValueError):
        sandbox.add_token("t", {"actions": "admin"})
    with pytest.raises(KeyError):
        sandbox.run(REPO, 1)
