"""The watchdog's own metrics: a heartbeat and the sweep's counts in CloudWatch, so silence can alarm."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from guard.errors import GatewayError
from guard.gateways.aws import AwsSession, call
from guard.gateways.stats import ApiStats
from guard.notify.routes import NotifyError

HEARTBEAT_NAMESPACE = "DeployGuard"
SHARD_DIMENSION = "Shard"


def _metric_name(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", key) if part)


def send_heartbeat(aws: AwsSession, stats: ApiStats, sweep_summary: Mapping[str, int], *,
                   shard: str | None = None, verified: bool = True) -> None:
    """Put the sweep's counts and, only when it verified everything, DeployGuard/Heartbeat=1.

    `shard` adds a `Shard` dimension (one alarm per account-region); a sweep that could not verify
    everything sends no heartbeat, so the missing-heartbeat alarm fires, and its `Unverified` count alarms sooner.
    """
    values = {"OpenIncidents": 0, "ApiCalls": stats.total_calls}
    values.update({_metric_name(k): int(v) for k, v in sweep_summary.items() if _metric_name(k)})
    values.pop("Heartbeat", None)
    if verified:
        values["Heartbeat"] = 1  # a sweep summary can never turn the heartbeat on or off
    stamp = datetime.now(UTC)
    dimensions = [{"Name": SHARD_DIMENSION, "Value": shard}] if shard else []
    data: list[dict[str, Any]] = [{"MetricName": name, "Value": float(value), "Unit": "Count", "Timestamp": stamp,
                                   **({"Dimensions": dimensions} if dimensions else {})}
                                  for name, value in values.items()]
    try:
        call(aws.client("cloudwatch"), "PutMetricData", Namespace=HEARTBEAT_NAMESPACE, MetricData=data)
    except (GatewayError, ClientError) as exc:
        raise NotifyError("heartbeat", f"PutMetricData failed: {exc}") from None
