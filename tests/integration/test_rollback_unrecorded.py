"""`guard rollback --to REV` naming a revision never recorded healthy: a person's explicit choice, journaled."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.journal import EntryKind, Journal, incidents_with_journals
from tests.support.remedyrun import GOOD, World, deploy


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.chdir(world.root)
    monkeypatch.setattr("guard.actions.time.sleep", lambda s: world.sim.tick())
    (world.root / "guard.toml").write_text(
        f'[watch]\nstate = "{world.root / "state"}"\n[notify]\nheartbeat = false\n'
        '[remediate]\npoll_seconds = 1\nwait_timeout_seconds = 10\n')
    return world


def test_an_unrecorded_revision_needs_an_explicit_choice(cli: World) -> None:
    bad = deploy(cli, "broken")
    repo = cli.aws.repository("shop/api")
    never = cli.aws.task_definition("api", [("app", f"{repo}:{GOOD[:7]}")])  # api:3: its image exists

    scripted = CliRunner().invoke(main, ["rollback", "--service", "prod/api", "--to", never, "--yes"])
    assert scripted.exit_code == 2 and "--force-unrecorded" in scripted.stderr
    assert "api:3 was never recorded healthy for ecs:prod/api (recorded: api:1)" in scripted.stdout
    declined = CliRunner().invoke(main, ["rollback", "--service", "prod/api", "--to", never], input="n\n")
    assert declined.exit_code == 1 and "never recorded healthy" in declined.stdout
    assert cli.service()["taskDefinition"] == bad and incidents_with_journals(cli.store) == []

    forced = CliRunner().invoke(main, ["rollback", "--service", "prod/api", "--to", never, "--yes",
                                       "--force-unrecorded"])
    assert forced.exit_code == 0, forced.output
    assert cli.service()["taskDefinition"] == never
    [journal] = incidents_with_journals(cli.store)
    [choice] = [e for e in Journal(cli.store, journal).entries() if e.kind is EntryKind.DECISION]
    assert choice.data["rule"] == "human_choice" and "--force-unrecorded" in choice.data["reason"]


def test_a_recorded_revision_needs_no_extra_confirmation(cli: World) -> None:
    deploy(cli, "broken")
    good = CliRunner().invoke(main, ["rollback", "--service", "prod/api", "--to", "api:1", "--yes"])
    assert good.exit_code == 0, good.output
    assert cli.service()["taskDefinition"].endswith("api:1") and "warning" not in good.stdout
