"""PyGithubGateway against the GitHub sandbox: runs of a commit, paging, counted calls, mapped errors."""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable, Iterator

import pytest
from github import Auth, Github

from guard.errors import AccessDenied, GatewayError, NoCredentials, Throttled, Unreachable
from guard.gateways.github import GitHubReader, PyGithubGateway, WorkflowRun, provenance
from guard.gateways.stats import ApiStats
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox

REPO = "acme/web"
SHA = "c" * 40
SECRET = "ghs_s3cr3tT0kenValue"
LIST = "github:ListWorkflowRuns"
RETRIES = 2

Gateway = Callable[..., PyGithubGateway]


@pytest.fixture(scope="module")
def server() -> Iterator[GitHubSandbox]:
    """One sandbox for the module."""
    with GitHubSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(server: GitHubSandbox) -> GitHubSandbox:
    """The module's sandbox, reset, with one repository and a secret all-permission token."""
    server.reset()
    server.add_repo(REPO)
    server.add_token(SECRET, {"actions": "write", "statuses": "write"})
    return server


@pytest.fixture
def stats() -> ApiStats:
    """Fresh call counters."""
    return ApiStats()


@pytest.fixture
def gateway(sandbox: GitHubSandbox, stats: ApiStats) -> Gateway:
    """Build gateways on the sandbox with tiny timeouts and no backoff."""
    def build(token: str = SECRET, url: str | None = None) -> PyGithubGateway:
        return PyGithubGateway(url or sandbox.api_url, token, stats, timeout=5, retries=RETRIES, backoff=0.0)
    return build


def api_requests(sandbox: GitHubSandbox) -> list[str]:
    """`METHOD path` of each request the sandbox answered."""
    return [f"{r.method} {r.path}" for r in sandbox.requests]


def assert_no_secret(error: BaseException) -> None:
    """The token appears nowhere in the error, its cause or its traceback."""
    text = str(error) + repr(error) + "".join(traceback.format_exception(error))
    assert SECRET not in text


def test_runs_for_commit_returns_every_state_newest_first(sandbox: GitHubSandbox, gateway: Gateway,
                                                          stats: ApiStats) -> None:
    ok = sandbox.add_run(REPO, head_sha=SHA)
    cancelled = sandbox.add_run(REPO, head_sha=SHA, workflow="deploy.yml", name="deploy", conclusion="cancelled")
    running = sandbox.add_run(REPO, head_sha=SHA, status="in_progress", head_branch="release",
                              event="workflow_dispatch")
    sandbox.add_run(REPO, head_sha="d" * 40)
    reader: GitHubReader = gateway()

    runs = reader.runs_for_commit(REPO, SHA)

    assert [(r.id, r.status, r.conclusion) for r in runs] == [
        (running, "in_progress", None), (cancelled, "completed", "cancelled"), (ok, "completed", "success")]
    served = sandbox.run(REPO, cancelled)
    assert runs[1] == WorkflowRun(
        id=cancelled, name="deploy", path=".github/workflows/deploy.yml", head_sha=SHA, head_branch="main",
        status="completed", conclusion="cancelled", html_url=served["html_url"], run_attempt=1, event="push",
        created_at=served["created_at"], workflow_id=served["workflow_id"])
    assert (runs[0].head_branch, runs[0].event) == ("release", "workflow_dispatch")
    assert api_requests(sandbox) == [f"GET /repos/{REPO}/actions/runs"]  # lazy repo: no GET /repos/o/r
    assert sandbox.requests[0].token == SECRET and f"head_sha={SHA}" in sandbox.requests[0].query
    assert stats.calls == {LIST: 1} and stats.retries == 0


def test_no_runs_is_an_empty_list_in_one_call(gateway: Gateway, stats: ApiStats) -> None:
    assert gateway().runs_for_commit(REPO, SHA) == []
    assert stats.calls == {LIST: 1}


@pytest.mark.parametrize(("count", "calls"), [(100, 1), (101, 2), (230, 3)])
def test_all_pages_are_read_and_each_page_is_counted(sandbox: GitHubSandbox, gateway: Gateway, stats: ApiStats,
                                                     count: int, calls: int) -> None:
    ids = [sandbox.add_run(REPO, head_sha=SHA) for _ in range(count)]
    sandbox.add_run(REPO, head_sha="e" * 40)

    runs = gateway().runs_for_commit(REPO, SHA)

    assert [r.id for r in runs] == ids[::-1]
    assert stats.calls == {LIST: calls} and stats.attempts == {LIST: calls}
    assert len(sandbox.requests) == calls
    assert all("per_page=100" in r.query for r in sandbox.requests)


def test_a_rerun_shows_up_as_a_queued_attempt_then_its_outcome(sandbox: GitHubSandbox, gateway: Gateway) -> None:
    run_id = sandbox.add_run(REPO, head_sha=SHA, conclusion="cancelled")
    sandbox.on_rerun = lambda repo, rid: "success"
    reader = gateway()
    pygithub = Github(base_url=sandbox.api_url, auth=Auth.Token(DEFAULT_TOKEN), retry=None,
                      seconds_between_requests=0, seconds_between_writes=0)
    assert pygithub.get_repo(REPO).get_workflow_run(run_id).rerun() is True

    [queued] = reader.runs_for_commit(REPO, SHA)
    assert (queued.status, queued.conclusion, queued.run_attempt) == ("queued", None, 2)
    sandbox.advance()
    [done] = reader.runs_for_commit(REPO, SHA)
    assert (done.status, done.conclusion, done.run_attempt) == ("completed", "success", 2)


def test_an_unknown_token_is_access_denied(sandbox: GitHubSandbox, gateway: Gateway) -> None:
    with pytest.raises(AccessDenied) as denied:
        gateway("ghs_not_registered").runs_for_commit(REPO, SHA)
    assert denied.value.code == "401" and "bad credentials" in str(denied.value)
    assert denied.value.request_id.startswith("SANDBOX:")
    assert len(sandbox.requests) == 1


def test_a_missing_permission_is_named(sandbox: GitHubSandbox, gateway: Gateway) -> None:
    sandbox.add_token(SECRET, {"issues": "write"})
    with pytest.raises(AccessDenied) as denied:
        gateway().runs_for_commit(REPO, SHA)
    assert denied.value.code == "403"
    assert "Resource not accessible by integration" in str(denied.value) and "actions=read" in str(denied.value)
    assert_no_secret(denied.value)


@pytest.mark.parametrize("repo", ["acme/missing", "acme/hidden"])
def test_an_invisible_repository_is_access_denied(sandbox: GitHubSandbox, gateway: Gateway, repo: str) -> None:
    sandbox.add_repo("acme/hidden")
    sandbox.add_token(SECRET, {"actions": "read"}, repos=[REPO])
    with pytest.raises(AccessDenied) as denied:
        gateway().runs_for_commit(repo, SHA)
    assert str(denied.value) == (f"github:ListWorkflowRuns: repository {repo} not found or the token cannot "
                                 "see it (404, request " + denied.value.request_id + ")")


def test_a_primary_rate_limit_is_throttled_without_waiting(sandbox: GitHubSandbox, gateway: Gateway,
                                                           stats: ApiStats) -> None:
    sandbox.rate_limit_next(10)
    with pytest.raises(Throttled) as throttled:
        gateway().runs_for_commit(REPO, SHA)
    assert "resets at epoch" in str(throttled.value)
    assert len(sandbox.requests) == 1 and stats.retries == 0
    assert_no_secret(throttled.value)


def test_a_secondary_rate_limit_with_retry_after_is_retried(sandbox: GitHubSandbox, gateway: Gateway,
                                                            stats: ApiStats) -> None:
    sandbox.add_run(REPO, head_sha=SHA)
    sandbox.rate_limit_next(1, retry_after=0)
    assert len(gateway().runs_for_commit(REPO, SHA)) == 1
    assert [r.status for r in sandbox.requests] == [403, 200]
    assert stats.calls == {LIST: 1} and stats.attempts == {LIST: 2} and stats.retries == 1


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limits_that_outlast_the_retries_are_throttled(sandbox: GitHubSandbox, gateway: Gateway,
                                                            stats: ApiStats, status: int) -> None:
    sandbox.rate_limit_next(10, status=status, retry_after=0)
    with pytest.raises(Throttled) as throttled:
        gateway().runs_for_commit(REPO, SHA)
    assert throttled.value.code == str(status)
    assert len(sandbox.requests) == RETRIES + 1 and stats.attempts == {LIST: RETRIES + 1}


def test_transient_5xx_are_retried(sandbox: GitHubSandbox, gateway: Gateway, stats: ApiStats) -> None:
    sandbox.add_run(REPO, head_sha=SHA)
    sandbox.fail_next(RETRIES, status=502)
    assert len(gateway().runs_for_commit(REPO, SHA)) == 1
    assert [r.status for r in sandbox.requests] == [502] * RETRIES + [200]
    assert stats.retries == RETRIES


def test_persistent_5xx_are_unreachable_after_bounded_retries(sandbox: GitHubSandbox, gateway: Gateway,
                                                              stats: ApiStats) -> None:
    sandbox.fail_next(50, status=502)
    with pytest.raises(Unreachable) as unreachable:
        gateway().runs_for_commit(REPO, SHA)
    assert unreachable.value.code == "502" and "after retries" in str(unreachable.value)
    assert len(sandbox.requests) == RETRIES + 1 and stats.attempts == {LIST: RETRIES + 1}
    assert_no_secret(unreachable.value)


def test_a_closed_port_is_unreachable(gateway: Gateway, stats: ApiStats) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unreachable) as unreachable:
        gateway(url=f"http://127.0.0.1:{port}/api/v3").runs_for_commit(REPO, SHA)
    assert f"127.0.0.1:{port}" in str(unreachable.value)
    assert stats.calls == {LIST: 1} and stats.attempts == {LIST: RETRIES + 1}
    assert_no_secret(unreachable.value)


def test_from_env_reads_url_and_token(sandbox: GitHubSandbox, stats: ApiStats,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.add_run(REPO, head_sha=SHA)
    monkeypatch.setenv("GITHUB_API_URL", sandbox.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    assert len(PyGithubGateway.from_env(stats).runs_for_commit(REPO, SHA)) == 1
    assert sandbox.requests[-1].token == SECRET


def test_from_env_without_a_token_is_no_credentials(stats: ApiStats, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(NoCredentials) as missing:
        PyGithubGateway.from_env(stats)
    assert str(missing.value) == "github:auth: GITHUB_TOKEN is not set (NoCredentials)"


def test_every_failure_is_a_gateway_error(sandbox: GitHubSandbox, gateway: Gateway) -> None:
    sandbox.fail_next(1, status=418)
    with pytest.raises(GatewayError) as odd:
        gateway().runs_for_commit(REPO, SHA)
    assert type(odd.value) is GatewayError and odd.value.code == "418"
    assert_no_secret(odd.value)


def test_legacy_runs_without_name_or_path_keep_their_workflow_id(sandbox: GitHubSandbox, gateway: Gateway,
                                                                 stats: ApiStats) -> None:
    build = sandbox.add_run(REPO, head_sha=SHA, workflow="build.yml", name="build", legacy=True)
    assert "name" not in sandbox.run(REPO, build) and "path" not in sandbox.run(REPO, build)
    reader = gateway()
    [run] = reader.runs_for_commit(REPO, SHA)
    assert (run.name, run.path, run.workflow_id) == ("", "", sandbox.run(REPO, build)["workflow_id"])
    wf = reader.workflow(REPO, run.workflow_id)
    assert (wf.name, wf.path) == ("build", ".github/workflows/build.yml")
    assert stats.to_json()["by_api"]["github:GetWorkflow"] == 1  # type: ignore[index]
    assert api_requests(sandbox) == [f"GET /repos/{REPO}/actions/runs",
                                     f"GET /repos/{REPO}/actions/workflows/{run.workflow_id}"]


def test_jobs_of_a_run_with_their_own_states(sandbox: GitHubSandbox, gateway: Gateway) -> None:
    run = sandbox.add_run(REPO, head_sha=SHA, workflow="ci.yml", name="ci", status="in_progress", conclusion=None,
                          jobs=("build (amd64)", "build (arm64)", "deploy"))
    sandbox.set_job(REPO, run, "build (amd64)", "completed", "success")
    sandbox.set_job(REPO, run, "build (arm64)", "completed", "cancelled")
    jobs = gateway().jobs(REPO, run)
    assert [(j.name, j.status, j.conclusion) for j in jobs] == [
        ("build (amd64)", "completed", "success"), ("build (arm64)", "completed", "cancelled"),
        ("deploy", "in_progress", None)]
    assert all(j.html_url.endswith(f"/job/{j.id}") for j in jobs)


def test_attestations_for_a_digest(sandbox: GitHubSandbox, gateway: Gateway) -> None:
    digest = "sha256:" + "d" * 64
    reader = gateway(DEFAULT_TOKEN)
    assert reader.attestations(REPO, digest) == []  # GitHub answers 404 when there is none
    sandbox.add_attestation(REPO, digest, sha=SHA, workflow="build.yml")
    [prov] = reader.attestations(REPO, digest)
    assert prov.subjects == (digest,) and prov.repository == REPO and prov.commit == SHA
    assert prov.workflow_path == ".github/workflows/build.yml"
    assert prov.predicate_type == "https://slsa.dev/provenance/v1"


@pytest.mark.parametrize("bundle", [
    {}, {"dsseEnvelope": {"payload": "not base64!"}}, {"dsseEnvelope": {"payload": "bm90IGpzb24="}},
    {"dsseEnvelope": {"payload": "WzFd"}},  # a JSON list
    {"dsseEnvelope": {"payload": "eyJwcmVkaWNhdGVUeXBlIjogImh0dHBzOi8vc3BkeC5kZXYvRG9jdW1lbnQifQ=="}},  # an SBOM
])
def test_bundles_that_carry_no_provenance_are_skipped(bundle: dict[str, object]) -> None:
    assert provenance(bundle) is None
