"""Run a composite action.yml the way a GitHub runner does, step by step, on this machine.

Each `run:` step is written to a file and executed as `bash --noprofile --norc -eo pipefail {0}` (what a
runner does for `shell: bash`), with `${{ inputs.* }}`, `${{ github.* }}`, `${{ runner.* }}` and
`${{ steps.*.outputs.* }}` substituted, the step's `env:`, and fresh GITHUB_OUTPUT, GITHUB_ENV and
GITHUB_PATH files, a shared GITHUB_STEP_SUMMARY, RUNNER_TEMP, GITHUB_WORKSPACE, GITHUB_ACTION_PATH and
GITHUB_ACTIONS=true. `if:` conditions are evaluated; `uses:` steps (other actions) cannot run here and
are recorded as skipped. A step that fails ends the job, as on a runner. Expressions the harness does not
understand raise, so a change to action.yml can never be silently half-evaluated.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHELL = ("bash", "--noprofile", "--norc", "-eo", "pipefail")
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_REF = re.compile(r"(inputs|github|runner|steps)\.([A-Za-z0-9_-]+)(?:\.outputs\.([A-Za-z0-9_-]+))?")
_COMPARE = re.compile(r"^(\S+)\s*(==|!=)\s*'([^']*)'$")
_ANNOTATION = re.compile(r"^::(error|warning|notice)(?: (.*?))?::(.*)$")
_ESCAPES = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}


def _unescape(text: str) -> str:
    """Undo a workflow command's escaping (properties also escape `:` and `,`)."""
    return re.sub("%25|%0D|%0A|%3A|%2C", lambda m: _ESCAPES[m.group(0)], text)


@dataclass(frozen=True)
class StepResult:
    """One step: its id or name, whether it ran, its exit code, its outputs and what it printed."""

    name: str
    ran: bool
    code: int = 0
    outputs: Mapping[str, str] = field(default_factory=dict)
    log: str = ""


@dataclass(frozen=True)
class ActionRun:
    """What the job saw: the action's outputs, each step, the log, the job summary and the env files."""

    code: int
    outputs: Mapping[str, str]
    steps: tuple[StepResult, ...]
    summary: str
    env_file: str
    path_file: str

    @property
    def log(self) -> str:
        """Every step's output, in order."""
        return "".join(s.log for s in self.steps)

    @property
    def annotations(self) -> list[tuple[str, str, str]]:
        """(level, properties, message) of each workflow command annotation in the log."""
        return [(m[1], _unescape(m[2] or ""), _unescape(m[3])) for line in self.log.splitlines()
                if (m := _ANNOTATION.match(line))]


def _parse_output_file(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's `name=value` lines and `name<<DELIMITER` blocks."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            out[name] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"malformed GITHUB_OUTPUT line: {line!r}")
        out[name] = value
        i += 1
    return out


class CompositeRunner:
    """Executes one composite action against a workspace, with the contexts a runner would provide."""

    def __init__(self, action_dir: Path, workspace: Path, runner_temp: Path, github: Mapping[str, str],
                 environ: Mapping[str, str]) -> None:
        self.action_dir = action_dir
        self.workspace = workspace
        self.runner_temp = runner_temp
        self.github = {**github, "action_path": str(action_dir), "workspace": str(workspace)}
        self.environ = dict(environ)
        self.spec: dict[str, Any] = yaml.safe_load((action_dir / "action.yml").read_text(encoding="utf-8"))

    def run(self, inputs: Mapping[str, str]) -> ActionRun:
        """Run every step with `inputs` (the `with:` of the calling step); unknown inputs raise."""
        declared: dict[str, Any] = self.spec.get("inputs") or {}
        unknown = sorted(set(inputs) - set(declared))
        if unknown:
            raise ValueError(f"unexpected inputs {unknown}; action.yml declares {sorted(declared)}")
        values = {name: str(inputs[name]) if name in inputs else self._default(spec) for name, spec in declared.items()}
        self.runner_temp.mkdir(parents=True, exist_ok=True)
        summary, env_file, path_file = (self.runner_temp / f"_{n}" for n in ("summary.md", "env", "path"))
        for f in (summary, env_file, path_file):
            f.write_text("")
        runs = self.spec["runs"]
        if runs.get("using") != "composite":
            raise ValueError(f"runs.using is {runs.get('using')!r}, not composite")
        step_outputs: dict[str, dict[str, str]] = {}
        results: list[StepResult] = []
        failed = 0
        for index, step in enumerate(runs["steps"]):
            name = str(step.get("id") or step.get("name") or f"step{index}")
            context = {"inputs": values, "steps": step_outputs}
            condition = str(step.get("if", "success()"))
            if failed or not self._condition(condition, context):
                results.append(StepResult(name, False))
                continue
            if "uses" in step:
                results.append(StepResult(name, False, log=f"(skipped: uses {step['uses']})\n"))
                continue
            result = self._run_step(name, step, context, summary, env_file, path_file)
            results.append(result)
            if "id" in step:
                step_outputs[str(step["id"])] = dict(result.outputs)
            failed = result.code
        context = {"inputs": values, "steps": step_outputs}
        outputs = {name: self._substitute(str(spec.get("value", "")), context)
                   for name, spec in (self.spec.get("outputs") or {}).items()}
        return ActionRun(failed, outputs, tuple(results), summary.read_text(encoding="utf-8"),
                         env_file.read_text(encoding="utf-8"), path_file.read_text(encoding="utf-8"))

    def _default(self, spec: Mapping[str, Any] | None) -> str:
        default = (spec or {}).get("default", "")
        return self._substitute(str(default), {"inputs": {}, "steps": {}})

    def _value(self, ref: str, context: Mapping[str, Any]) -> str:
        match = _REF.fullmatch(ref)
        if match is None:
            raise ValueError(f"expression the harness cannot evaluate: {ref!r}")
        kind, name, output = match.groups()
        if kind == "inputs":
            if name not in context["inputs"]:
                raise ValueError(f"inputs.{name} is not declared")
            return str(context["inputs"][name])
        if kind == "github":
            if name not in self.github:
                raise ValueError(f"github.{name} is not provided by the harness")
            return self.github[name]
        if kind == "runner":
            return {"temp": str(self.runner_temp), "os": "Linux"}[name]
        if output is None:
            raise ValueError(f"steps.{name} needs .outputs.NAME")
        return str(context["steps"].get(name, {}).get(output, ""))

    def _substitute(self, text: str, context: Mapping[str, Any]) -> str:
        return _EXPR.sub(lambda m: self._value(m.group(1), context), text)

    def _condition(self, condition: str, context: Mapping[str, Any]) -> bool:
        expr = _EXPR.fullmatch(condition.strip())
        expr_text = expr.group(1) if expr else condition.strip()
        if expr_text == "success()":
            return True
        match = _COMPARE.match(expr_text)
        if match is None:
            raise ValueError(f"if: the harness cannot evaluate {condition!r}")
        left, op, literal = match.groups()
        return (self._value(left, context) == literal) == (op == "==")

    def _run_step(self, name: str, step: Mapping[str, Any], context: Mapping[str, Any], summary: Path,
                  env_file: Path, path_file: Path) -> StepResult:
        if step.get("shell") != "bash":
            raise ValueError(f"step {name}: shell {step.get('shell')!r}; the harness runs bash steps")
        script = self.runner_temp / f"{uuid.uuid4()}.sh"
        script.write_text(self._substitute(str(step["run"]), context), encoding="utf-8")
        output = self.runner_temp / f"_output_{uuid.uuid4().hex}"
        output.write_text("")
        env = {**self.environ,
               "GITHUB_ACTIONS": "true", "CI": "true", "RUNNER_TEMP": str(self.runner_temp), "RUNNER_OS": "Linux",
               "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_ACTION_PATH": str(self.action_dir),
               "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ENV": str(env_file),
               "GITHUB_PATH": str(path_file),
               **{f"GITHUB_{k.upper()}": v for k, v in self.github.items() if k not in ("token", "action_path")},
               **{str(k): self._substitute(str(v), context) for k, v in (step.get("env") or {}).items()}}
        proc = subprocess.run([*SHELL, str(script)], cwd=self.workspace, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
        return StepResult(name, True, proc.returncode, _parse_output_file(output), proc.stdout)


def base_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """A runner-like environment: PATH and HOME from this process, plus `extra` (the sandbox's endpoints)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8", **extra}
