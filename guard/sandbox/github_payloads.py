"""GitHub REST JSON shapes (field names and types as in GitHub's REST reference), on the sandbox's own base."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

DOCS = "https://docs.github.com/rest"


@dataclass(frozen=True)
class Bases:
    """Where the sandbox lives: `api` is `http://127.0.0.1:PORT/api/v3`, `web` the same host without the prefix."""

    api: str
    web: str


def now() -> str:
    """The current UTC time as GitHub writes it (`2024-01-22T19:33:08Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    """A GraphQL global ID in GitHub's legacy format (`MDEwOlJlcG9zaXRvcnkx...`)."""
    raw = f"0{len(kind)}:{kind}{ident}"
    return base64.b64encode(raw.encode()).decode()


def fake_sha(text: str) -> str:
    """A stable 40-hex commit SHA for a ref name the sandbox has no git history for."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def error(message: str, doc: str = DOCS, **extra: Any) -> JSON:
    """GitHub's error envelope."""
    return {"message": message, **extra, "documentation_url": doc}


def user(b: Bases, login: str, uid: int, kind: str = "Bot") -> JSON:
    """A `simple-user` object."""
    api = f"{b.api}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": node_id(kind, uid),
        "avatar_url": f"{b.web}/avatars/u/{uid}?v=4", "gravatar_id": "",
        "url": api, "html_url": f"{b.web}/{login}",
        "followers_url": f"{api}/followers", "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}", "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events", "type": kind, "site_admin": False,
    }


def repository(b: Bases, full_name: str, repo_id: int, default_branch: str) -> JSON:
    """A `full-repository` object (the fields a client reads; no network, stats or template fields)."""
    owner, name = full_name.split("/", 1)
    api = f"{b.api}/repos/{full_name}"
    stamp = now()
    return {
        "id": repo_id, "node_id": node_id("Repository", repo_id), "name": name, "full_name": full_name,
        "private": True, "owner": user(b, owner, repo_id + 1_000_000, "Organization"),
        "html_url": f"{b.web}/{full_name}", "description": None, "fork": False, "url": api,
        "archive_url": f"{api}/{{archive_format}}{{/ref}}", "branches_url": f"{api}/branches{{/branch}}",
        "commits_url": f"{api}/commits{{/sha}}", "deployments_url": f"{api}/deployments",
        "issues_url": f"{api}/issues{{/number}}", "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}", "statuses_url": f"{api}/statuses/{{sha}}",
        "git_url": f"git://127.0.0.1/{full_name}.git", "clone_url": f"{b.web}/{full_name}.git",
        "homepage": None, "language": "Python", "size": 0, "stargazers_count": 0, "watchers_count": 0,
        "forks_count": 0, "open_issues_count": 0, "has_issues": True, "has_projects": False,
        "has_wiki": False, "has_pages": False, "has_downloads": True, "archived": False,
        "disabled": False, "visibility": "private", "default_branch": default_branch,
        "topics": [], "pushed_at": stamp, "created_at": stamp, "updated_at": stamp,
        "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
    }


def workflow(b: Bases, full_name: str, wf_id: int, file: str, name: str) -> JSON:
    """A `workflow` object for `.github/workflows/<file>`."""
    stamp = now()
    path = f".github/workflows/{file}"
    return {
        "id": wf_id, "node_id": node_id("Workflow", wf_id), "name": name, "path": path,
        "state": "active", "created_at": stamp, "updated_at": stamp,
        "url": f"{b.api}/repos/{full_name}/actions/workflows/{wf_id}",
        "html_url": f"{b.web}/{full_name}/blob/main/{path}",
        "badge_url": f"{b.web}/{full_name}/workflows/{name}/badge.svg",
    }


def workflow_run(repo: JSON, wf: JSON, *, run_id: int, run_number: int, head_sha: str, head_branch: str,
                 event: str, status: str, conclusion: str | None, actor: JSON) -> JSON:
    """A `workflow-run` object (attempt 1)."""
    api = f"{repo['url']}/actions/runs/{run_id}"
    stamp = now()
    commit = {"name": "Sandbox", "email": "sandbox@example.com"}
    return {
        "id": run_id, "name": wf["name"], "node_id": node_id("WorkflowRun", run_id),
        "check_suite_id": run_id + 1, "check_suite_node_id": node_id("CheckSuite", run_id + 1),
        "head_branch": head_branch, "head_sha": head_sha, "path": wf["path"], "display_title": wf["name"],
        "run_number": run_number, "event": event, "status": status, "conclusion": conclusion,
        "workflow_id": wf["id"], "url": api, "html_url": f"{repo['html_url']}/actions/runs/{run_id}",
        "pull_requests": [], "created_at": stamp, "updated_at": stamp, "actor": actor,
        "triggering_actor": actor, "run_attempt": 1, "referenced_workflows": [],
        "run_started_at": stamp, "jobs_url": f"{api}/jobs", "logs_url": f"{api}/logs",
        "check_suite_url": f"{repo['url']}/check-suites/{run_id + 1}",
        "artifacts_url": f"{api}/artifacts", "cancel_url": f"{api}/cancel", "rerun_url": f"{api}/rerun",
        "previous_attempt_url": None, "workflow_url": wf["url"],
        "head_commit": {
            "id": head_sha, "tree_id": fake_sha(f"tree:{head_sha}"), "message": f"Commit {head_sha[:7]}",
            "timestamp": stamp, "author": commit, "committer": commit,
        },
        "repository": repo, "head_repository": repo,
    }


def job(run: JSON, *, job_id: int, name: str, status: str, conclusion: str | None) -> JSON:
    """A `job` object of `run`'s current attempt."""
    stamp = now()
    done = status == "completed"
    step = {"name": "Set up job", "status": status, "conclusion": conclusion, "number": 1,
            "started_at": stamp, "completed_at": stamp if done else None}
    repo_url = run["repository"]["url"]
    return {
        "id": job_id, "run_id": run["id"], "run_url": run["url"], "run_attempt": run["run_attempt"],
        "node_id": node_id("CheckRun", job_id), "head_sha": run["head_sha"],
        "head_branch": run["head_branch"], "url": f"{repo_url}/actions/jobs/{job_id}",
        "html_url": f"{run['html_url']}/job/{job_id}", "status": status, "conclusion": conclusion,
        "created_at": stamp, "started_at": stamp, "completed_at": stamp if done else None,
        "name": name, "steps": [step], "check_run_url": f"{repo_url}/check-runs/{job_id}",
        "labels": ["ubuntu-latest"], "runner_id": 1, "runner_name": "GitHub Actions 1",
        "runner_group_id": 1, "runner_group_name": "GitHub Actions", "workflow_name": run["name"],
    }


def commit(repo: JSON, sha: str) -> JSON:
    """A `commit` object (no files or stats: the sandbox keeps no git history)."""
    person = {"name": "Sandbox", "email": "sandbox@example.com", "date": now()}
    return {
        "sha": sha, "node_id": node_id("Commit", int(sha[:8], 16)), "url": f"{repo['url']}/commits/{sha}",
        "html_url": f"{repo['html_url']}/commit/{sha}", "comments_url": f"{repo['url']}/commits/{sha}/comments",
        "commit": {
            "url": f"{repo['url']}/git/commits/{sha}", "author": person, "committer": person,
            "message": f"Commit {sha[:7]}", "comment_count": 0,
            "tree": {"sha": fake_sha(f"tree:{sha}"), "url": f"{repo['url']}/git/trees/{fake_sha(f'tree:{sha}')}"},
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
        },
        "author": None, "committer": None, "parents": [], "files": [],
        "stats": {"additions": 0, "deletions": 0, "total": 0},
    }


def commit_status(repo: JSON, *, status_id: int, sha: str, state: str, target_url: str | None,
                  description: str | None, context: str, creator: JSON) -> JSON:
    """A `status` object."""
    stamp = now()
    return {
        "url": f"{repo['url']}/statuses/{sha}", "avatar_url": creator["avatar_url"], "id": status_id,
        "node_id": node_id("StatusContext", status_id), "state": state, "description": description,
        "target_url": target_url, "context": context, "created_at": stamp, "updated_at": stamp,
        "creator": creator,
    }


def label(repo: JSON, name: str, label_id: int) -> JSON:
    """A `label` object."""
    return {
        "id": label_id, "node_id": node_id("Label", label_id), "url": f"{repo['url']}/labels/{name}",
        "name": name, "color": "ededed", "default": False, "description": None,
    }


def issue(repo: JSON, *, issue_id: int, number: int, title: str, body: str | None,
          labels: list[JSON], assignees: list[JSON], creator: JSON) -> JSON:
    """An open `issue` object."""
    api = f"{repo['url']}/issues/{number}"
    stamp = now()
    return {
        "id": issue_id, "node_id": node_id("Issue", issue_id), "url": api,
        "repository_url": repo["url"], "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments", "events_url": f"{api}/events",
        "html_url": f"{repo['html_url']}/issues/{number}", "number": number, "state": "open",
        "state_reason": None, "title": title, "body": body, "user": creator, "labels": labels,
        "assignee": assignees[0] if assignees else None, "assignees": assignees, "milestone": None,
        "locked": False, "active_lock_reason": None, "comments": 0, "closed_at": None,
        "created_at": stamp, "updated_at": stamp, "closed_by": None, "author_association": "NONE",
    }


def issue_comment(issue_json: JSON, *, comment_id: int, body: str, creator: JSON) -> JSON:
    """An `issue-comment` object."""
    repo_url = issue_json["repository_url"]
    stamp = now()
    return {
        "id": comment_id, "node_id": node_id("IssueComment", comment_id),
        "url": f"{repo_url}/issues/comments/{comment_id}",
        "html_url": f"{issue_json['html_url']}#issuecomment-{comment_id}", "body": body, "user": creator,
        "created_at": stamp, "updated_at": stamp, "issue_url": issue_json["url"],
        "author_association": "NONE",
    }


def deployment(repo: JSON, *, deployment_id: int, sha: str, ref: str, task: str, payload: Any,
               environment: str, description: str | None, transient: bool, production: bool,
               creator: JSON) -> JSON:
    """A `deployment` object."""
    api = f"{repo['url']}/deployments/{deployment_id}"
    stamp = now()
    return {
        "url": api, "id": deployment_id, "node_id": node_id("Deployment", deployment_id), "sha": sha,
        "ref": ref, "task": task, "payload": payload, "original_environment": environment,
        "environment": environment, "description": description, "creator": creator,
        "created_at": stamp, "updated_at": stamp, "statuses_url": f"{api}/statuses",
        "repository_url": repo["url"], "transient_environment": transient,
        "production_environment": production,
    }


def deployment_status(dep: JSON, *, status_id: int, state: str, description: str, environment: str,
                      target_url: str, log_url: str, environment_url: str, creator: JSON) -> JSON:
    """A `deployment-status` object."""
    stamp = now()
    return {
        "url": f"{dep['url']}/statuses/{status_id}", "id": status_id,
        "node_id": node_id("DeploymentStatus", status_id), "state": state, "creator": creator,
        "description": description, "environment": environment, "target_url": target_url,
        "created_at": stamp, "updated_at": stamp, "deployment_url": dep["url"],
        "repository_url": dep["repository_url"], "environment_url": environment_url, "log_url": log_url,
    }


def provenance_bundle(*, digest: str, repository: str, workflow_path: str, sha: str, run_id: int) -> JSON:
    """A Sigstore bundle (v0.3) whose DSSE envelope carries GitHub's SLSA v1 build provenance for `digest`.

    Shaped as actions/attest-build-provenance writes it; the signature and certificate are not real.
    """
    ref = "refs/heads/main"
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": ref, "repository": repository, "path": workflow_path}},
                "internalParameters": {"github": {"event_name": "push", "runner_environment": "github-hosted"}},
                "resolvedDependencies": [{"uri": f"git+{repository}@{ref}", "digest": {"gitCommit": sha}}],
            },
            "runDetails": {
                "builder": {"id": f"{repository}/{workflow_path}@{ref}"},
                "metadata": {"invocationId": f"{repository}/actions/runs/{run_id}/attempts/1"},
            },
        },
    }
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": base64.b64encode(b"unsigned sandbox").decode()},
                                 "tlogEntries": [], "timestampVerificationData": {}},
        "dsseEnvelope": {"payload": payload, "payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": base64.b64encode(hashlib.sha256(payload.encode()).digest()).decode()}]},
    }
