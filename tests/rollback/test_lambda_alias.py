"""lambda_rollback: the alias goes back to the published version that runs the known-good code."""

from __future__ import annotations

from guard.models import Cause
from tests.support.remedyrun import World


def test_alias_rolled_back_to_the_known_good_version(world: World) -> None:
    aws = world.aws
    repo = aws.repository("shop/thumbs")
    aws.push_image("shop/thumbs", "v1")
    aws.push_image("shop/thumbs", "v2")
    aws.lambda_function("thumbs", f"{repo}:v1")
    aws.alias("thumbs", "live", "1")
    world.sim.tick()
    assert "lambda:thumbs" in world.sweep().known_good
    lam = aws.client("lambda")
    lam.update_function_code(FunctionName="thumbs", ImageUri=f"{repo}:v2")
    v2 = lam.publish_version(FunctionName="thumbs")["Version"]
    lam.update_alias(FunctionName="thumbs", Name="live", FunctionVersion=v2)
    aws.delete_image("shop/thumbs", tag="v2")
    world.sim.tick()
    [inc] = [i for i in world.sweep().incidents if i.resources == ("lambda:thumbs",)]
    assert inc.cause is Cause.MISSING_IMAGE
    report = world.remediate(inc)
    assert report.status == "repaired", report.to_json()
    [result] = report.results
    assert result.action["kind"] == "lambda_rollback" and result.action["params"]["version"] == "1"
    assert lam.get_alias(FunctionName="thumbs", Name="live")["FunctionVersion"] == "1"
