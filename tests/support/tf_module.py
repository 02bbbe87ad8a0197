"""The watchdog's Terraform module applied by the real terraform binary and AWS provider to the sandbox.

Terraform runs offline, the provider from the mirror `guard.sandbox.terraform` finds (`tests.support.terraform`
skips these tests, saying why, where terraform or the mirror is absent). One root module calling deploy/terraform per
session, initialised once; each `apply` starts from empty state (the sandbox was reset), so tests never see
each other's resources.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from guard.sandbox.aws import AwsSandbox
from guard.sandbox.terraform import cli_config, find_mirror

ROOT = Path(__file__).parents[2]
MODULE = ROOT / "deploy" / "terraform"
_ENDPOINTS = ("cloudwatch", "events", "iam", "lambda", "logs", "s3", "sns", "ssm", "sts")
_INPUTS = {"package_zip": "string", "remediation_package_zip": "string", "clusters": "list(string)",
           "shards": "list(object({account = string, region = string, role_arn = string}))",
           "sweep_home": "bool", "remediation_enabled": "bool", "remediation_mode": "string",
           "remediation_allow": "list(object({resource = string, actions = list(string)}))"}
_PROVIDER = """
provider "aws" {{
  region                      = "{region}"
  access_key                  = "{key}"
  secret_key                  = "{key}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
"""


@dataclass
class TerraformRoot:
    """A root module calling deploy/terraform with the sandbox's endpoints; `run` is one terraform command."""

    path: Path
    environ: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """terraform ARGS in the root; a failure fails the test with terraform's own output."""
        proc = subprocess.run(["terraform", *args], cwd=self.path, env=self.environ, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"terraform {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def plan(self, **inputs: Any) -> dict[str, Any]:
        """Plan the module with `inputs` from empty state into plan.bin; the plan as `terraform show -json`."""
        self._start(inputs)
        self.run("plan", "-input=false", "-refresh=false", "-out=plan.bin")
        doc: dict[str, Any] = json.loads(self.run("show", "-json", "plan.bin").stdout)
        return doc

    def apply(self, **inputs: Any) -> dict[str, Any]:
        """Apply the module with `inputs` from empty state (one provider start: plan and apply together)."""
        self._start(inputs)
        self.run("apply", "-input=false", "-auto-approve", "-refresh=false")
        return self.outputs()

    def apply_plan(self) -> dict[str, Any]:
        """Apply the plan `plan` saved; the module's outputs."""
        self.run("apply", "-input=false", "plan.bin")
        return self.outputs()

    def outputs(self) -> dict[str, Any]:
        """The root's outputs by name."""
        doc: dict[str, Any] = json.loads(self.run("output", "-json").stdout)
        return {name: value["value"] for name, value in doc.items()}

    def _start(self, inputs: dict[str, Any]) -> None:
        for state in self.path.glob("terraform.tfstate*"):
            state.unlink()
        (self.path / "terraform.tfvars.json").write_text(json.dumps(inputs))


def write_root(path: Path, sandbox: AwsSandbox) -> TerraformRoot:
    """A root module in `path` and a CLI config that installs providers only from the mirror."""
    mirror = find_mirror()
    assert mirror is not None
    path.mkdir(parents=True, exist_ok=True)
    cli_config(path / "cli.tfrc", mirror)
    env = sandbox.environ()
    endpoints = "\n".join(f'    {name} = "{sandbox.endpoint_url}"' for name in _ENDPOINTS)
    variables = "\n".join(f'variable "{name}" {{\n  type    = {kind}\n  default = null\n}}'
                          for name, kind in _INPUTS.items())
    inputs = "\n".join(f"  {name} = var.{name}" for name in _INPUTS)
    source = os.path.relpath(MODULE, path)
    (path / "main.tf").write_text(
        _PROVIDER.format(region=sandbox.region, key=env["AWS_ACCESS_KEY_ID"], endpoints=endpoints)
        + f"\n{variables}\n\nmodule \"guard\" {{\n  source = \"{source}\"\n{inputs}\n}}\n\n"
        + 'output "guard" {\n  value = module.guard\n  sensitive = true\n}\n')
    environ = {**os.environ, "TF_CLI_CONFIG_FILE": str(path / "cli.tfrc"), "TF_IN_AUTOMATION": "1",
               "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    return TerraformRoot(path, environ)


@contextmanager
def packaged(package_dir: Path) -> Iterator[ModuleType]:
    """`guard.lambda_handler` imported from a built package directory (not this tree), restored afterwards."""
    owned = ("guard", "checks", "rollback")
    saved = {name: mod for name, mod in sys.modules.items() if name.split(".")[0] in owned}
    log = logging.getLogger("deploy_guard")
    handlers = list(log.handlers)
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(package_dir))
    try:
        import guard.lambda_handler as handler_module

        assert Path(handler_module.__file__ or "").is_relative_to(package_dir), handler_module.__file__
        yield handler_module
    finally:
        sys.path.remove(str(package_dir))
        for name in [n for n in sys.modules if n.split(".")[0] in owned]:
            del sys.modules[name]
        sys.modules.update(saved)
        log.handlers[:] = handlers  # the packaged handler's JSON log handler goes with its modules
