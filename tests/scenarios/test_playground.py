"""`guard demo --keep` run as a user runs it: a process whose printed exports and commands work, until Ctrl-C.

The demo runs without the provider mirror here (TF_PROVIDER_MIRROR names an empty directory), so it also
shows the fallback saying which path ran; the real partial apply is asserted by the replay test.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GUARD = str(Path(sys.executable).parent / "guard")
STORY_DEADLINE_S = 300


@dataclass
class Playground:
    """A `guard demo --keep` process and the lines it has printed so far."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def start_reading(self) -> None:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        def pump() -> None:
            for line in stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def read_until(self, marker: str, deadline_s: float = STORY_DEADLINE_S) -> None:
        """Collect lines until one contains `marker`; fail with the output on EOF or past the deadline."""
        while True:
            try:
                line = self._queue.get(timeout=deadline_s)
            except queue.Empty:
                pytest.fail(f"no {marker!r} within {deadline_s}s:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"exited {self.proc.wait()} before {marker!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if marker in line:
                return

    def rest(self) -> str:
        """Everything printed after the process ended."""
        while (line := self._queue.get(timeout=60)) is not None:
            self.lines.append(line)
        return "\n".join(self.lines)

    def commands(self, verb: str) -> list[list[str]]:
        """The `$ guard … VERB …` lines printed, as argument lists with the installed `guard`."""
        found = [shlex.split(line[2:]) for line in self.lines if line.startswith("$ guard ")]
        return [[GUARD, *args[1:]] for args in found if verb in args]


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[Playground]:
    """`guard demo --keep --dir DIR` in its own process, with none of the test session's sandbox variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))}
    env |= {"PYTHONUNBUFFERED": "1", "TF_PROVIDER_MIRROR": str(tmp_path / "no-mirror")}
    proc = subprocess.Popen([GUARD, "demo", "--keep", "--dir", str(tmp_path / "kept")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    pg = Playground(proc)
    pg.start_reading()
    try:
        yield pg
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ports(exports: dict[str, str], config: str) -> list[int]:
    urls = [exports["AWS_ENDPOINT_URL"], exports["GITHUB_API_URL"], *re.findall(r'url = "([^"]+)"', config)]
    return [int(urllib.parse.urlsplit(url).port or 0) for url in urls]


def _undated(text: str) -> str:
    return re.sub(r"Generated \S+", "Generated", text)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_playground_commands_work_and_ctrl_c_stops_it(playground: Playground, tmp_path: Path) -> None:
    playground.read_until("(the same lines are in ")
    text = "\n".join(playground.lines)
    kept = tmp_path / "kept"
    assert "in place of terraform apply, the same API calls (no hashicorp/aws provider mirror" in text
    exports = {m[1]: shlex.split(m[2])[0] for m in re.finditer(r"^export (\w+)=(.*)$", text, re.M)}
    assert set(exports) >= {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                            "GITHUB_API_URL", "GITHUB_TOKEN", "GITHUB_REPOSITORY"}
    assert (kept / "env.sh").read_text().splitlines() == [line for line in playground.lines
                                                            if line.startswith("export ")]
    config = (kept / "guard.toml").read_text()
    ports = _ports(exports, config)
    assert len(ports) == 3 and all(_listening(p) for p in ports)
    # the paths it printed exist
    journals = re.findall(r"journal and postmortem: (\S+)", text)
    assert len(journals) == 2 and all(Path(p).is_file() for p in journals)
    [postmortem_file] = re.findall(r"Postmortem of INC-\w+: (\S+)", text)
    assert Path(postmortem_file).parent == kept
    # a user's shell: the exports, nothing of this session's sandbox
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))} | exports
    [postmortem] = playground.commands("postmortem")
    shown = subprocess.run(postmortem, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Postmortem")
    assert _undated(shown.stdout) == _undated(Path(postmortem_file).read_text())  # the same journal head
    watch = playground.commands("watch")[0]
    swept = subprocess.run(watch, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    latent = re.findall(r"error\s+(INC-\w+)\s+new\s+latent", text)[-1]
    assert swept.returncode == 1 and latent in swept.stdout, swept.stdout + swept.stderr
    green = playground.commands("check")[0]
    gated = subprocess.run(green, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    # the gate runs on the kept world: the lifecycle policy has since expired the green deploy's image
    assert gated.returncode == 1 and "shop/app:9c1e7b2" in gated.stdout and "\nBLOCKED " in gated.stdout, \
        gated.stdout + gated.stderr
    # Ctrl-C: the servers shut, the process exits 0, the files stay
    playground.proc.send_signal(signal.SIGINT)
    assert playground.proc.wait(timeout=120) == 0
    rest = playground.rest()
    assert "Stopping the playground." in rest and "every stage behaved as expected" in rest
    assert not any(_listening(p) for p in ports)
    assert Path(postmortem_file).is_file() and all(Path(p).is_file() for p in journals)


@pytest.mark.parametrize(("args", "message"), [
    (["--dir", "{tmp}"], "--dir needs --keep"),
    (["--keep", "--dir", "{tmp}/full"], "is not an empty directory"),
])
def test_playground_refuses_a_directory_it_cannot_own(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "guard.toml").write_text("")
    run = subprocess.run([GUARD, "demo", *(a.format(tmp=tmp_path) for a in args)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert (tmp_path / "full" / "guard.toml").read_text() == ""
