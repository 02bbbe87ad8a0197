"""The Action as a runner runs it: action.yml's steps under `bash --noprofile --norc -eo pipefail`, on the sandbox.

`guard` is given as an input (the already installed one), so no step reaches the network: the install
step itself is exercised offline up to pip, by `test_the_install_step_keeps_the_jobs_python`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.github_server import DEFAULT_TOKEN, GitHubSandbox
from guard.sandbox.plans import PlannedTaskDefinition, plan_document, task_definition_change
from guard.sandbox.scenarios import Scenario
from tests.support import actionlint
from tests.support.guardrun import export_task_definition
from tests.support.runner import ActionRun, CompositeRunner, base_environ
from tests.support.watchrun import steady_service

ROOT = Path(__file__).parents[2]
GUARD = str(Path(sys.executable).with_name("guard"))
SHA = "3f2c1a9" + "0" * 33
REPO = "acme/shop"
RunAction = Callable[..., ActionRun]


def _readme_steps() -> list[dict[str, Any]]:
    """The README's steps that use this action, in order."""
    steps = []
    for text in actionlint.readme_workflows((ROOT / "README.md").read_text(encoding="utf-8")).values():
        for job in yaml.safe_load(text)["jobs"].values():
            steps += [s for s in job["steps"] if "deploy-guard@" in str(s.get("uses", ""))]
    return steps


@pytest.fixture(name="world")
def world_fixture(aws: Scenario, github: GitHubSandbox, tmp_path: Path) -> Path:
    """A workspace with a plan, a task definition and parity files on an image built by a green run."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", SHA[:7])
    github.add_run(REPO, head_sha=SHA, conclusion="success")
    image = f"{repo}:{SHA[:7]}"
    plan = plan_document([task_definition_change(PlannedTaskDefinition("api", [("web", image)]))])
    (workspace / "plan.json").write_text(json.dumps(plan))
    (workspace / "broken.json").write_text(json.dumps(plan_document([task_definition_change(
        PlannedTaskDefinition("api", [("web", f"{repo}:nope")]))])))
    arn = aws.task_definition("api", [("web", image)])
    for name in ("td.json", "staging.json", "prod.json"):
        export_task_definition(aws, arn, workspace / name)
    (workspace / "guard.toml").write_text('fail_on = "error"\n')
    return workspace


@pytest.fixture(name="run_action")
def run_action_fixture(world: Path, aws: Scenario, github: GitHubSandbox, tmp_path: Path) -> RunAction:
    """Run this checkout's action.yml with `with:` inputs; `temp` names the run's RUNNER_TEMP."""

    def run(inputs: Mapping[str, str], *, environ: Mapping[str, str] | None = None,
            temp: str = "runner-temp") -> ActionRun:
        context = {"sha": SHA, "repository": REPO, "token": DEFAULT_TOKEN, "api_url": github.api_url,
                   "run_id": "4242", "server_url": "https://github.com", "event_name": "push"}
        env = base_environ({**aws.sandbox.environ(), "AWS_MAX_ATTEMPTS": "1", **(environ or {})})
        runner = CompositeRunner(ROOT, world, tmp_path / temp, context, env)
        return runner.run({"guard": GUARD, **inputs})

    return run


def _report(run: ActionRun) -> dict[str, Any]:
    path = Path(run.outputs["report"])
    assert path.parent.name.startswith("runner-temp")
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["version"] == 1
    return doc


def _finished(run: ActionRun, code: int) -> dict[str, Any]:
    """The contract every run keeps: the job's code, the exit-code output, a JSON report; no PATH/ENV changes."""
    assert run.code == code, run.log
    assert run.outputs["exit-code"] == str(code), run.log
    assert (run.env_file, run.path_file) == ("", "")
    return _report(run)


def test_the_readme_example_runs_clean(run_action: RunAction) -> None:
    check = _readme_steps()[0]
    assert check.get("with") == {"plan": "plan.json"}
    run = run_action(check["with"])
    doc = _finished(run, 0)
    assert [f for f in doc["findings"] if f["severity"] == "error"] == []
    assert [t["kind"] for t in doc["targets"]] == ["ecs_task_definition"]
    assert "## deploy-guard: PASS" in run.summary
    assert re.search(r"deploy-guard: PASS \(exit 0\); JSON report: .*deploy-guard-check\.json", run.log)
    assert doc["stats"]["api_calls"]["by_api"]["github:ListWorkflowRuns"] == 1  # sha, repository, token defaults


def test_the_readme_verify_example_passes_on_steady_services(aws: Scenario, sim: EcsSimulator,
                                                             run_action: RunAction) -> None:
    verify = _readme_steps()[1]
    repo = aws.repository("shop/api")
    for name in ("api", "worker"):
        steady_service(aws, sim, name, f"{repo}:{SHA[:7]}")
    aws.lambda_function("thumbnailer", f"{repo}:{SHA[:7]}")
    run = run_action(verify["with"])
    doc = _finished(run, 0)
    assert [(t["target"], t["status"]) for t in doc["targets"]] == [
        ("ecs:prod/api", "ok"), ("ecs:prod/worker", "ok"), ("lambda:thumbnailer", "ok")]
    assert "deploy-guard verify: VERIFIED" in run.summary
    assert re.search(r"ok +ecs:prod/worker", run.log)


# Each input alone: the code it must give (2 where it needs a partner or names nothing to check).
ALONE = {
    "mode": ("verify", 2), "plan": ("plan.json", 0), "task-definition": ("td.json", 0),
    "service": ("prod/api", 0), "image": ("web=x", 2), "lambda": ("thumbnailer", 0), "image-uri": ("x", 2),
    "parity": ("staging.json prod.json", 0), "fail-on": ("warning", 2), "allow-unverified": ("true", 2),
    "timeout": ("60", 2), "rollback": ("true", 2), "state": ("state", 2), "config": ("guard.toml", 2),
    "github-token": (DEFAULT_TOKEN, 2), "sha": (SHA, 2), "repository": (REPO, 2), "python": ("python3", 2),
}


def test_every_input_is_covered() -> None:
    declared = set(yaml.safe_load((ROOT / "action.yml").read_text())["inputs"])
    assert declared == {*ALONE, "guard"}


def test_each_input_alone(aws: Scenario, sim: EcsSimulator, run_action: RunAction) -> None:
    """One job per input (run side by side: each is its own processes and RUNNER_TEMP)."""
    repo = aws.repository("shop/api")
    steady_service(aws, sim, "api", f"{repo}:{SHA[:7]}")
    aws.lambda_function("thumbnailer", f"{repo}:{SHA[:7]}")
    with ThreadPoolExecutor(4) as pool:
        runs = dict(zip(ALONE, pool.map(lambda n: run_action({n: ALONE[n][0]}, temp=f"runner-temp-{n}"), ALONE),
                        strict=True))
    for name, run in runs.items():
        code = ALONE[name][1]
        doc = _finished(run, code)
        if code == 2:
            assert doc["error"] and any(level == "error" for level, _, _ in run.annotations), (name, run.log)
        else:
            assert doc["exit_code"] == 0 and all(f["severity"] != "error" for f in doc["findings"]), name


def test_all_inputs_together(aws: Scenario, sim: EcsSimulator, run_action: RunAction) -> None:
    repo = aws.repository("shop/api")
    steady_service(aws, sim, "api", f"{repo}:{SHA[:7]}")
    aws.lambda_function("thumbnailer", f"{repo}:{SHA[:7]}")
    image = f"{repo}:{SHA[:7]}"
    run = run_action({
        "mode": "check", "plan": "plan.json\n\n", "task-definition": "  td.json  ", "service": "prod/api",
        "image": f"app={image}", "lambda": "thumbnailer", "image-uri": image, "parity": "staging.json prod.json",
        "fail-on": "warning", "allow-unverified": "false", "timeout": "60", "rollback": "false", "state": "",
        "config": "guard.toml", "github-token": DEFAULT_TOKEN, "sha": SHA, "repository": REPO, "python": "python3"})
    doc = _finished(run, 1)  # fail-on warning: the mutable tag warnings count
    assert {t["kind"] for t in doc["targets"]} >= {"ecs_task_definition", "ecs_service", "lambda_function"}
    assert {f["severity"] for f in doc["findings"]} <= {"warning", "info"}
    assert sum(1 for level, _, _ in run.annotations if level == "warning") == len(doc["findings"])


def test_findings_fail_the_step_with_annotations_a_summary_and_a_table(run_action: RunAction) -> None:
    run = run_action({"plan": "broken.json"})
    doc = _finished(run, 1)
    [finding] = [f for f in doc["findings"] if f["check_id"] == "IMG001"]
    assert ("error", f"title=IMG001 {finding['target']}", finding["message"]) in run.annotations
    assert "## deploy-guard: BLOCKED" in run.summary and "IMG001" in run.summary
    assert re.search(r"error +IMG001 +", run.log) and "deploy-guard: FAILED (exit 1)" in run.log


@pytest.mark.parametrize(("inputs", "needle"), [
    ({"plan": "missing.json"}, "no such file"),
    ({"mode": "deploy"}, "input mode must be 'check' or 'verify'"),
    ({"plan": "plan.json", "allow-unverified": "yes"}, "input allow-unverified must be 'true' or 'false'"),
    ({"mode": "verify", "service": "api"}, "expected CLUSTER/SERVICE"),
])
def test_bad_input_exits_2_with_the_reason(inputs: dict[str, str], needle: str, run_action: RunAction) -> None:
    run = run_action(inputs)
    doc = _finished(run, 2)
    assert needle in doc["error"]
    assert any(level == "error" and needle in message for level, _, message in run.annotations), run.log


def test_an_unreachable_endpoint_exits_3(run_action: RunAction) -> None:
    run = run_action({"task-definition": "td.json"}, environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    doc = _finished(run, 3)
    assert doc["unverified"] and "## deploy-guard: UNVERIFIED" in run.summary
    assert any(level == "error" and "could not verify" in props for level, props, _ in run.annotations)


def test_verify_mode_fails_a_circuit_breaker_rollback(aws: Scenario, sim: EcsSimulator,
                                                      run_action: RunAction) -> None:
    repo = aws.repository("shop/api")
    steady_service(aws, sim, "api", f"{repo}:{SHA[:7]}")
    arn = aws.task_definition("api", [("app", f"{repo}:nope")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=arn)
    sim.tick(4)  # the breaker trips and the old revision is steady again
    run = run_action({"mode": "verify", "service": f"prod/api={arn}", "timeout": "30"})
    doc = _finished(run, 1)
    [target] = doc["targets"]
    assert target["status"] == "rolled_back" and "rolled back" in target["message"]
    assert "deploy-guard verify: FAILED" in run.summary
    assert ("error", "title=guard verify ecs:prod/api", target["status"] + ": " + target["message"]) in run.annotations


@pytest.mark.slow
def test_the_install_step_keeps_the_jobs_python(run_action: RunAction, tmp_path: Path) -> None:
    """Without `guard`, the action builds a venv under RUNNER_TEMP keyed on the constraints (offline: pip stops)."""
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "no-wheels")}
    run = run_action({"plan": "plan.json", "guard": ""}, environ=offline)
    setup, cache, install, guard = run.steps
    assert setup.ran and setup.outputs["install"] == "true"
    assert setup.outputs["guard"] == str(tmp_path / "runner-temp" / "deploy-guard-venv" / "bin" / "guard")
    assert re.fullmatch(r"deploy-guard-pip-Linux-py3\.\d+-[0-9a-f]{16}", setup.outputs["key"])
    assert "(skipped: uses actions/cache@v4)" in cache.log
    assert install.ran and install.code != 0 and not guard.ran  # no network in tests: pip cannot fetch
    assert (tmp_path / "runner-temp" / "deploy-guard-venv" / "bin" / "python").exists()
    assert (run.env_file, run.path_file) == ("", "")  # nothing added to the job's PATH or environment


def test_the_constraints_pin_every_runtime_dependency() -> None:
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    pins = dict(line.split("==") for line in (ROOT / "action" / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    pinned = {name.lower().replace("_", "-") for name in pins}
    needed: set[str] = set()
    todo = [Requirement(r).name for r in distribution("deploy-guard").requires or []
            if not Requirement(r).marker]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in needed:
            continue
        needed.add(name)
        todo += [Requirement(r).name for r in distribution(name).requires or []
                 if (marker := Requirement(r).marker) is None or marker.evaluate({"extra": ""})]
    assert needed - pinned == set()


def test_actionlint_passes_on_action_yml_and_the_readme() -> None:
    workflows = {"action.yml": actionlint.action_as_workflow((ROOT / "action.yml").read_text()),
                 **actionlint.readme_workflows((ROOT / "README.md").read_text())}
    assert len(workflows) >= 2
    assert actionlint.lint(workflows) == []


def test_actionlint_catches_a_broken_expression() -> None:
    text = (ROOT / "action.yml").read_text().replace("${{ inputs.plan }}", "${{ inputs.plans }}")
    [problem] = actionlint.lint({"action.yml": actionlint.action_as_workflow(text)})
    assert '"plans" is not defined' in problem["message"]

