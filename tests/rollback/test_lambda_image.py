"""lambda_image_rollback: a function without an alias goes back to its known-good image, pinned by digest."""

from __future__ import annotations

from guard.models import Cause
from tests.support.remedyrun import World


def test_function_code_rolled_back_to_the_known_good_digest(world: World) -> None:
    aws = world.aws
    repo = aws.repository("shop/thumbs")
    good_digest = aws.push_image("shop/thumbs", "v1")
    aws.push_image("shop/thumbs", "v2")
    aws.lambda_function("thumbs", f"{repo}:v1")
    world.sim.tick()
    assert "lambda:thumbs" in world.sweep().known_good
    world.sim.update_function_code_async("thumbs", f"{repo}:v2")
    world.sim.tick()
    aws.delete_image("shop/thumbs", tag="v2")
    world.sim.tick()
    [inc] = [i for i in world.sweep().incidents if i.resources == ("lambda:thumbs",)]
    assert inc.cause is Cause.MISSING_IMAGE
    report = world.remediate(inc, allow=(*world.config.allow,
                                         type(world.config.allow[0])("lambda:thumbs", ("lambda_image_rollback",))))
    assert report.status == "repaired", report.to_json()
    [result] = report.results
    assert result.action["kind"] == "lambda_image_rollback"
    assert result.action["params"]["image_uri"] == f"{repo}@{good_digest}"
    fn = aws.client("lambda").get_function(FunctionName="thumbs")
    assert fn["Code"]["ImageUri"] == f"{repo}@{good_digest}"
    assert fn["Configuration"]["LastUpdateStatus"] == "Successful" and fn["Configuration"]["State"] == "Active"
