"""rerun_build + redeploy: the cancelled build is rerun, its image appears, the services redeploy onto it."""

from __future__ import annotations

from guard.journal import EntryKind, Journal
from guard.models import Cause
from tests.support.remedyrun import BAD, REPO, World, deploy


def test_cancelled_build_is_rerun_and_services_redeployed(world: World) -> None:
    run_id = world.github.add_run(REPO, head_sha=BAD, conclusion="cancelled")
    world.github.on_rerun = lambda repo, rid: (world.aws.push_image("shop/api", BAD[:7]), "success")[1]
    deploy(world, BAD[:7], ("api", "worker"))
    [inc] = world.sweep().incidents
    assert inc.cause is Cause.MISSING_IMAGE and inc.resources == ("ecs:prod/api", "ecs:prod/worker")
    report = world.remediate(inc)
    assert report.status == "repaired", report.to_json()
    assert [r.action["kind"] for r in report.results] == ["rerun_build", "redeploy", "redeploy"]
    run = world.github.run(REPO, run_id)
    assert run["status"] == "completed" and run["conclusion"] == "success" and run["run_attempt"] == 2
    for name in ("api", "worker"):
        svc = world.service(name)
        assert svc["taskDefinition"].endswith(f"task-definition/{name}:2")  # the new revision, now runnable
        assert svc["runningCount"] == svc["desiredCount"] == 2 and len(svc["deployments"]) == 1
    kinds = [e.kind for e in Journal(world.store, inc.id).entries()]
    assert kinds.count(EntryKind.ACTION_SUCCEEDED) == 3 and EntryKind.PLAN in kinds
    after = world.sweep()
    assert after.incidents == () and [i.id for i in after.triage.resolved] == [inc.id]


def test_failed_rerun_falls_back_to_rollback(world: World) -> None:
    world.github.add_run(REPO, head_sha=BAD, conclusion="cancelled")
    world.github.on_rerun = lambda repo, rid: "failure"
    deploy(world, BAD[:7])
    [inc] = world.sweep().incidents
    report = world.remediate(inc)
    assert report.status == "repaired"
    assert [(r.action["kind"], r.status) for r in report.results] == [("rerun_build", "failed"),
                                                                       ("ecs_rollback", "verified")]
    svc = world.service()
    assert svc["taskDefinition"].endswith("api:1") and svc["runningCount"] == 2


def test_read_only_token_is_refused_cleanly(world: World) -> None:
    world.github.add_run(REPO, head_sha=BAD, conclusion="cancelled")
    world.github.add_token("ghs_readonly", {"actions": "read", "contents": "read"})
    deploy(world, BAD[:7])
    [inc] = world.sweep().incidents
    from guard.gateways.github import PyGithubGateway

    rem = world.remediator()
    rem.ctx.github_factory = lambda aws: PyGithubGateway(world.github.api_url, "ghs_readonly", aws.stats, backoff=0)
    rem.ctx._github = None
    report = rem.run(inc.id, mode=rem.gate.config.mode)
    [rerun] = [r for r in report.results if r.action["kind"] == "rerun_build"]
    assert rerun.status == "failed" and "actions=write" in rerun.reason
