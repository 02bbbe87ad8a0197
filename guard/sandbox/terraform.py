"""Real terraform + the real hashicorp/aws provider against the sandbox, offline (the demo and the tests).

The provider comes from a filesystem mirror: $TF_PROVIDER_MIRROR, else the first usual place holding
`registry.terraform.io/hashicorp/aws`, named in a CLI config (`provider_installation { filesystem_mirror }`)
that TF_CLI_CONFIG_FILE points at. Without terraform or the mirror, `unavailable_reason()` says which is
missing. A `Workspace` is one directory, initialised once (the provider's start-up is most of the cost);
write `.tf` files into it, then `plan` / `apply` / `show_json` as often as needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.sandbox.aws import AwsSandbox

MIRROR_ENV = "TF_PROVIDER_MIRROR"
MIRROR_CANDIDATES = ("/opt/tf-plugins", "/usr/share/terraform/plugins", "/usr/local/share/terraform/plugins",
                     "~/.terraform.d/plugins", "~/.local/share/terraform/plugins")
ENDPOINTS = ("ec2", "ecr", "ecs", "iam", "lambda", "logs", "secretsmanager", "ssm", "sts")
_PROVIDER = """terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
    }}
  }}
}}

provider "aws" {{
  region                      = "{region}"
  access_key                  = "{key}"
  secret_key                  = "{secret}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {{
{endpoints}
  }}
}}
"""


class TerraformError(RuntimeError):
    """A terraform command failed; the message carries terraform's own output."""


def find_mirror() -> Path | None:
    """The provider mirror: $TF_PROVIDER_MIRROR, else the first usual place that holds hashicorp/aws."""
    named = os.environ.get(MIRROR_ENV)
    for candidate in [named] if named else MIRROR_CANDIDATES:
        path = Path(candidate).expanduser()
        if (path / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return path
    return None


def unavailable_reason() -> str | None:
    """Why real terraform cannot run here (no binary, no provider mirror), or None."""
    if shutil.which("terraform") is None:
        return "terraform is not on PATH"
    if find_mirror() is None:
        return (f"no hashicorp/aws provider mirror (set {MIRROR_ENV} to a directory holding "
                "registry.terraform.io/hashicorp/aws)")
    return None


def cli_config(path: Path, mirror: Path) -> Path:
    """Write a terraform CLI config at `path` that installs providers only from `mirror`."""
    path.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{mirror}"\n'
                    '    include = ["registry.terraform.io/*/*"]\n  }\n}\n')
    return path


@dataclass
class Workspace:
    """One terraform working directory wired to the sandbox; `environ` carries TF_CLI_CONFIG_FILE."""

    path: Path
    environ: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """terraform ARGS here; with `check`, a failure raises TerraformError with terraform's own output."""
        proc = subprocess.run(["terraform", *args], cwd=self.path, env=self.environ, capture_output=True,
                              text=True, check=False)
        if check and proc.returncode != 0:
            raise TerraformError(f"terraform {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def write(self, name: str, text: str) -> None:
        """Write one configuration file (relative to the workspace; folders are created)."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def init(self) -> None:
        """`terraform init` from the mirror (run again after adding a module)."""
        self.run("init", "-input=false")

    def plan(self, out: str = "plan.bin", **variables: Any) -> Path:
        """Plan with `variables` into a binary plan file; return its path."""
        self._variables(variables)
        self.run("plan", "-input=false", "-lock=false", f"-out={out}")
        return self.path / out

    def apply(self, *, check: bool = True, **variables: Any) -> subprocess.CompletedProcess[str]:
        """Apply with `variables` (state kept in the workspace); with `check`, a failed apply raises."""
        self._variables(variables)
        return self.run("apply", "-input=false", "-lock=false", "-auto-approve", "-no-color", check=check)

    def show_json(self, plan: Path) -> str:
        """`terraform show -json PLAN`: what a pipeline saves as plan.json."""
        return self.run("show", "-json", str(plan)).stdout

    def state(self) -> list[str]:
        """Addresses of the resources in the state (`terraform state list`)."""
        return self.run("state", "list").stdout.split()

    def reset_state(self) -> None:
        """Forget every applied resource (the sandbox was reset under it)."""
        for state in self.path.glob("terraform.tfstate*"):
            state.unlink()

    def _variables(self, variables: dict[str, Any]) -> None:
        (self.path / "terraform.tfvars.json").write_text(json.dumps(variables))


def workspace(path: Path, sandbox: AwsSandbox) -> Workspace:
    """A workspace in `path`: CLI config naming the mirror, and a provider block aimed at the sandbox."""
    mirror = find_mirror()
    if mirror is None:
        raise TerraformError(unavailable_reason() or "no provider mirror")
    path.mkdir(parents=True, exist_ok=True)
    config = cli_config(path / "cli.tfrc", mirror)
    env = sandbox.environ()
    endpoints = "\n".join(f'    {name} = "{sandbox.endpoint_url}"' for name in ENDPOINTS)
    (path / "provider.tf").write_text(_PROVIDER.format(region=sandbox.region, key=env["AWS_ACCESS_KEY_ID"],
                                                      secret=env["AWS_SECRET_ACCESS_KEY"], endpoints=endpoints))
    environ = {**os.environ, **env, "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0",
               "CHECKPOINT_DISABLE": "1"}
    return Workspace(path, environ)
