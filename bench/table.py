"""The README's performance table, generated from bench/results/*.json: `python -m bench.table`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DASH = "\u2013"  # the README's ranges: min\u2013max
HEADER = ("| benchmark | size | added latency per call | API calls (computed minimum) | guard: median "
          f"(min{DASH}max) | baseline in the same run | speedup | peak RSS, guard process |\n"
          "|---|---|---|---|---|---|---|---|")


def _s(spread: Mapping[str, float], unit: str = "s", digits: int = 2) -> str:
    return f"{spread['median']:.{digits}f} {unit} ({spread['min']:.{digits}f}{DASH}{spread['max']:.{digits}f})"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _gate(doc: dict[str, Any]) -> Iterator[str]:
    for f in doc["sizes"]:
        path = f.get("critical_path") or {}
        trips = f"; critical path {path['round_trips']:g} round trips" if path else ""
        sampled = " (sampled)" if f["naive_measured_on"] != "every container" else ""
        yield (f"| `guard check`, every check on (cold process) | {f['containers']} containers, each with a secret "
               f"and a log group | {f['added_latency_ms']} ms | {f['api_calls_total']} ({f['api_calls_minimum']}) | "
               f"{_s(f['wall_s_cold_process'])} process, {f['gate_s_in_process']['median']:.2f} s gate{trips} | "
               f"naive per-reference loop: {f['naive_api_calls']} calls, {f['naive_wall_s']['median']:.1f} s"
               f"{sampled} | {f['speedup_median']:.2f}x | {f['peak_rss_mib_guard_process']['median']:.0f} MiB |")


def _watch(doc: dict[str, Any]) -> Iterator[str]:
    for f in doc["shapes"]:
        yield (f"| `guard watch --once` sweep (cold process) | {f['services']} services, {f['clusters']} "
               f"cluster(s) | {f['added_latency_ms']} ms | {f['api_calls_total']} ({f['api_calls_minimum']}) | "
               f"{_s(f['sweep_s'])} sweep, {f['wall_s_cold_process']['median']:.1f} s process | per-service loop: "
               f"{f['naive_api_calls']} calls, {f['naive_wall_s']:.1f} s (sampled) | {f['speedup_median']:.2f}x | "
               f"{f['peak_rss_mib_guard_process']['median']:.0f} MiB |")


def _rollback(doc: dict[str, Any]) -> Iterator[str]:
    for f in doc["latencies"]:
        ecs = f.get("ecs_deploy_wall_s")
        base = f"ecs-deploy `ecs deploy --task` (cold process): {_s(ecs)}; " if ecs else ""
        ratio = f"{f['guard_over_ecs_deploy_median']:.2f}x ecs-deploy's time" if ecs else ""
        yield (f"| rollback until verified steady | ECS service, 2 tasks, simulated rollout (1 s per round) | "
               f"{f['added_latency_ms']} ms | | {_s(f['guard_wall_s'])} | {base}fixed 15 s poll: "
               f"{f['naive_fixed_15s_poll_wall_s']['median']:.1f} s | {ratio} | |")


def _remediate(doc: dict[str, Any]) -> Iterator[str]:
    for f in doc["latencies"]:
        c, k = f["containment"], f["kill_switch"]
        yield (f"| `guard remediate` containment | incident -> verified rollback | {f['added_latency_ms']} ms | "
               f"{c['api_calls_median']:g} | {_s(c['wall_s'])} wall, {c['simulated_s']['median']:g} s simulated "
               "polls | | | |")
        yield (f"| kill switch | switch set in SSM -> next action refused | {f['added_latency_ms']} ms | "
               f"1 GetParameter | {k['switch_to_refusal_s']['median'] * 1000:.0f} ms | | | |")


def _throttled(doc: dict[str, Any]) -> Iterator[str]:
    for f in doc["latencies"]:
        yield (f"| `guard watch --once` under {doc['throttled_requests_injected']} injected throttles (cold process) "
               f"| {doc['services']} services, {doc['clusters']} clusters | {f['added_latency_ms']} ms | "
               f"{f['api_calls_total']} ({doc['api_calls_minimum']}) + {f['retries']} retries, {f['unverified']} "
               f"unverified | {f['sweep_s']:.1f} s sweep, {f['wall_s_cold_process']:.1f} s process | | | "
               f"{f['peak_rss_mib_guard_process']:.0f} MiB |")


def rows() -> list[str]:
    """The table's header and one row per figure, in the README's order."""
    out = [HEADER]
    for name, render in (("gate", _gate), ("watch", _watch), ("rollback", _rollback), ("remediate", _remediate),
                         ("load", _throttled)):
        doc = _load(name)
        if doc is not None:
            out += list(render(doc))
    return out


def measured_at() -> list[str]:
    """Per results file: the commit, whether the tree had changes, and the load when it was measured."""
    out = []
    for path in sorted(RESULTS.glob("*.json")):
        env = json.loads(path.read_text()).get("environment") or {}
        commit = (env.get("commit") or "?")[:7] + (" with uncommitted changes" if env.get("uncommitted_changes")
                                                     else "")
        out.append(f"{path.stem}: {commit}, load average {env.get('load_average_1m')} on {env.get('cores')} cores")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
    print()
    print("\n".join(measured_at()))
