"""The watchdog end to end: coalescing, notifications through real routes, known-good, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.notify.routes import SlackRoute
from guard.records import known_good_service
from guard.sandbox.ecs_sim import EcsSimulator
from guard.sandbox.scenarios import Scenario
from guard.sandbox.webhook_server import WebhookSandbox
from guard.state import LocalStore
from guard.watch import WatchScope
from tests.support.watchrun import Sweep, cli_on_steady_api, steady_service


@pytest.fixture
def webhook() -> WebhookSandbox:
    with WebhookSandbox() as hook:
        yield hook


def _five_on_one_image(aws: Scenario, sim: EcsSimulator) -> str:
    repo = aws.repository("shop/mono")
    aws.push_image("shop/mono", "v1")
    for i in range(5):
        steady_service(aws, sim, f"svc{i}", f"{repo}:v1", cluster="prod" if i < 3 else "edge", desired=1)
    aws.delete_image("shop/mono", tag="v1")
    for i in range(5):
        sim.restart_tasks("prod" if i < 3 else "edge", f"svc{i}")
    sim.tick()
    return f"{repo}:v1"


def test_five_services_one_image_is_one_incident_notified_once(aws: Scenario, sim: EcsSimulator, sweep: Sweep,
                                                                 webhook: WebhookSandbox) -> None:
    image = _five_on_one_image(aws, sim)
    route = SlackRoute(webhook.url, backoff=0)
    report = sweep(routes=[route])
    [inc] = report.incidents
    assert inc.cause_key == image and len(inc.resources) == 5 and not inc.latent
    assert [r.ok for r in report.notifications] == [True]
    [message] = webhook.received
    assert inc.id in message["text"] and "acknowledged" not in json.dumps(message).lower()
    sim.tick()
    assert sweep(routes=[route]).notifications == ()  # still open: not re-raised
    assert len(webhook.received) == 1


def test_resolution_after_the_image_is_rebuilt(aws: Scenario, sim: EcsSimulator, sweep: Sweep,
                                               webhook: WebhookSandbox) -> None:
    _five_on_one_image(aws, sim)
    route = SlackRoute(webhook.url, backoff=0)
    [inc] = sweep(routes=[route]).incidents
    aws.push_image("shop/mono", "v1")
    sim.advance(31 * 60)  # the failed starts age out of the lookback window
    sim.tick(3)
    report = sweep(routes=[route])
    assert report.incidents == () and [i.id for i in report.triage.resolved] == [inc.id]
    assert "resolved" in webhook.received[-1]["text"]


def test_partial_scope_never_resolves_what_it_did_not_see(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    _five_on_one_image(aws, sim)
    [inc] = sweep().incidents
    report = sweep(WatchScope(clusters=("edge",), functions=()))
    assert inc.id in {i.id for i in report.incidents} and report.triage.resolved == ()


def test_failed_notification_route_is_reported_and_fails_closed(aws: Scenario, sim: EcsSimulator, sweep: Sweep,
                                                                 webhook: WebhookSandbox) -> None:
    _five_on_one_image(aws, sim)
    webhook.fail_with(404)
    report = sweep(routes=[SlackRoute(webhook.url, backoff=0)])
    assert report.exit_code == 3
    assert [u.check_id for u in report.unverified] == ["GRD002"]


def test_known_good_is_recorded_only_for_healthy_services(aws: Scenario, sim: EcsSimulator, sweep: Sweep,
                                                          tmp_path: Path) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    good = steady_service(aws, sim, "api", f"{repo}:v1")
    report = sweep()
    assert report.known_good == ("ecs:prod/api",)
    store = LocalStore(tmp_path / "state")
    record = known_good_service(store, "prod", "api")
    assert record is not None and record.task_definition == good
    assert sweep().known_good == ()  # unchanged: no write
    bad = aws.task_definition("api", [("app", f"{repo}:broken")])
    aws.client("ecs").update_service(cluster="prod", service="api", taskDefinition=bad)
    sim.tick()
    sweep()
    record = known_good_service(store, "prod", "api")
    assert record is not None and record.task_definition == good


def test_heartbeat_metric(aws: Scenario, sim: EcsSimulator, sweep: Sweep) -> None:
    sweep(heartbeat=True)
    metrics = aws.client("cloudwatch").list_metrics(Namespace="DeployGuard")["Metrics"]
    assert "Heartbeat" in {m["MetricName"] for m in metrics}


def test_cli_watch_once_json(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    cli_on_steady_api(aws, sim, tmp_path, monkeypatch)
    aws.delete_image("shop/api", tag="v1")
    result = CliRunner().invoke(main, ["watch", "--once", "--format", "json", "--state", str(tmp_path / "s")])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and len(doc["incidents"]) == 1 and doc["incidents"][0]["latent"] is True
    assert doc["stats"]["api_calls"]["by_api"]["ecs:DescribeServices"] == 1
    result = CliRunner().invoke(main, ["watch", "--once", "--state", str(tmp_path / "s")])
    assert result.exit_code == 1 and "latent" in result.stdout
    bad = CliRunner().invoke(main, ["watch", "--once", "--state", "ftp://nowhere"])
    assert bad.exit_code == 2 and "s3://" in bad.stderr


def test_cli_region_after_the_verb_sweeps_that_region(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cli_on_steady_api(aws, sim, tmp_path, monkeypatch)
    args = ["watch", "--once", "--format", "json", "--no-lambda", "--state", str(tmp_path / "s")]
    home = json.loads(CliRunner().invoke(main, args).stdout)
    elsewhere = CliRunner().invoke(main, [*args, "--region", "eu-west-3"])
    assert home["stats"]["api_calls"]["by_api"]["ecs:DescribeServices"] == 1
    assert elsewhere.exit_code == 0, elsewhere.output
    assert "ecs:DescribeServices" not in json.loads(elsewhere.stdout)["stats"]["api_calls"]["by_api"]


def test_notify_test_fails_on_a_broken_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             webhook: WebhookSandbox) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook.url)
    (tmp_path / "guard.toml").write_text('[[notify.routes]]\ntype = "slack"\nurl_env = "SLACK_WEBHOOK_URL"\n')
    ok = CliRunner().invoke(main, ["notify", "--test"])
    assert ok.exit_code == 0, ok.output
    assert "route test" in webhook.received[0]["text"]
    webhook.fail_with(404)
    broken = CliRunner().invoke(main, ["notify", "--test"])
    assert broken.exit_code == 1 and "FAILED slack" in broken.stdout
    assert webhook.url not in broken.output


def test_an_alert_that_failed_is_sent_again_by_the_next_sweep(aws: Scenario, sim: EcsSimulator, sweep: Sweep,
                                                               webhook: WebhookSandbox) -> None:
    repo = aws.repository("shop/api")
    aws.push_image("shop/api", "v1")
    steady_service(aws, sim, "api", f"{repo}:v1")
    aws.delete_image("shop/api", tag="v1")
    route = SlackRoute(webhook.url, backoff=0)
    webhook.fail_with(404, times=1)
    first = sweep(routes=[route])
    assert first.exit_code == 3 and webhook.received == []
    second = sweep(routes=[route])
    assert second.exit_code == 1 and [r.ok for r in second.notifications] == [True]
    [message] = webhook.received
    assert first.incidents[0].id in message["text"]
    assert sweep(routes=[route]).notifications == ()  # delivered once: not again


def test_cli_watch_loops_at_the_interval(aws: Scenario, sim: EcsSimulator, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cli_on_steady_api(aws, sim, tmp_path, monkeypatch)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", sleep)
    result = CliRunner().invoke(main, ["watch", "--interval", "30", "--state", str(tmp_path / "s")])
    # start to start (this sleeper passes no time, so the second sweep is due 60 s after the first began)
    assert len(slept) == 2 and 0 < slept[0] < 30 < slept[1] < 60
    summaries = [line for line in result.stdout.splitlines() if "swept 1 service(s)" in line]
    assert len(summaries) == 2 and all(line.startswith("[20") for line in summaries)  # stamped in loop mode
    calls = re.findall(r"(\d+) API call\(s\)", result.stdout)
    # each sweep counts only its own calls (the second reads cached task definitions: fewer, never a running sum)
    assert len(calls) == 2 and 0 < int(calls[1]) <= int(calls[0])
