"""Lambda read port: one GetFunction per function, image-package functions listed 50 per page."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call, error_code


class Boto3Lambda:
    """Lambda adapter: one GetFunction per function."""

    def __init__(self, aws: AwsSession) -> None:
        self.aws = aws

    def function(self, name: str, region: str | None = None) -> dict[str, Any] | None:
        """GetFunction output, or None when the function does not exist."""
        try:
            return call(self.aws.client("lambda", region), "GetFunction", FunctionName=name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise GatewayError("Lambda", "GetFunction", str(exc), error_code(exc)) from exc

    def list_image_functions(self, region: str | None = None) -> list[str]:
        """Names of every image-package function (ListFunctions, 50 per page)."""
        client = self.aws.client("lambda", region)
        names: list[str] = []
        marker: str | None = None
        while True:
            resp = call(client, "ListFunctions", MaxItems=50, **({"Marker": marker} if marker else {}))
            names += [f["FunctionName"] for f in resp.get("Functions", []) if f.get("PackageType") == "Image"]
            marker = resp.get("NextMarker")
            if not marker:
                return names
