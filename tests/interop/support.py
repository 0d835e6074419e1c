"""The interop harness: a ``presence-core serve`` subprocess with a TOML config, and Node
scripts run against it whose named checks a test asserts.

conftest.py documents how tests use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

#: This folder: the scripts, package.json and (once installed) node_modules.
HERE: Final = Path(__file__).resolve().parent
#: The hang guard of a server start and of one script: far beyond what either needs, never a
#: verdict (a script's own waits give up sooner and report which step hung).
HANG: Final = 90.0
#: The key every config below accepts with every capability.
KEY: Final = "app.key:s3cret"
_BANNER: Final = re.compile(r"ws://127\.0\.0\.1:(\d+)/")

#: The credentials the interop configs share: the full key, a key whose only capability is
#: ``subscribe`` (no ``presence``), and opaque tokens bound to clientIds.
CREDENTIALS: Final = """
[[keys]]
name = "app.key"
secret = "s3cret"

[[keys]]
name = "watch.key"
secret = "s3cret"
capability = { "*" = ["subscribe"] }

[[tokens]]
token = "token-alice-1"
client_id = "alice"

[[tokens]]
token = "token-alice-2"
client_id = "alice"

[[tokens]]
token = "token-bob"
client_id = "bob"
"""


def node_executable() -> str:
    """The ``node`` to run scripts with, with this folder's packages installed.

    Skips the calling test when Node.js is absent (a developer's machine; CI installs it).
    With node present the tests never skip: a missing ``node_modules``, or one older than the
    lock file, is installed from the lock file with ``npm ci``, and a failure of that fails the
    test.
    """
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "Node.js is not installed: the interop tests run real ably-js clients under node "
            "(install node and npm; .ci/run does)"
        )
    installed = HERE / "node_modules" / ".package-lock.json"  # written by every npm install
    lock = HERE / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install tests/interop's packages")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {HERE}:\n{done.stdout}\n{done.stderr}")
    return node


class Served:
    """A running ``presence-core serve``: its port and its log."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        """The WebSocket URL of the server."""
        return f"ws://127.0.0.1:{self.port}/"

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def start_server(folder: Path, config: str, *flags: str) -> Iterator[Served]:
    """Run ``presence-core serve --port 0`` with the TOML ``config`` until the context ends.

    The config is written to ``folder``, where the server's stdout and log (stderr, at level
    debug) go too.  The port comes from the banner, so tests never race for a free port.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "serve.toml"
    config_path.write_text(config, encoding="utf-8")
    out_path, log_path = folder / "serve.out", folder / "serve.log"
    command = [sys.executable, "-m", "presence_core", "serve", "--port", "0"]
    command += ["--config", str(config_path), "--log-level", "debug", *flags]
    with out_path.open("wb") as out, log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=out, stderr=log)
    try:
        port = _wait_for_banner(process, out_path, log_path)
        yield Served(process, port, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_banner(process: subprocess.Popen[bytes], out_path: Path, log_path: Path) -> int:
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        found = _BANNER.search(out_path.read_text(encoding="utf-8", errors="replace"))
        if found is not None:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)  # polling for the banner to appear; nothing is decided by the wait
    log = log_path.read_text(encoding="utf-8", errors="replace")
    raise AssertionError(f"presence-core serve did not start (exit {process.poll()}):\n{log}")


class Result:
    """What one script reported: its named checks, extra info, and its stderr."""

    def __init__(
        self, script: str, payload: Mapping[str, Any], stderr: str, served: Served
    ) -> None:
        self.script = script
        self.checks: dict[str, dict[str, Any]] = dict(payload.get("checks", {}))
        self.info: dict[str, Any] = dict(payload.get("info", {}))
        self.stderr = stderr
        self.served = served

    def assert_checks(self, *names: str, others: bool = True) -> None:
        """Every check in ``names`` ran and passed, and (unless ``others`` is false, for a test
        that asserts one part of a script) so did every other check the script reported."""
        missing = [name for name in names if name not in self.checks]
        failed = {
            name: check.get("detail")
            for name, check in self.checks.items()
            if not check.get("ok") and (others or name in names)
        }
        if missing or failed:
            raise AssertionError(self.explain(missing=missing, failed=failed))

    def explain(self, **problems: object) -> str:
        """A failure message: the problems, the script's stderr and the server's log."""
        lines = [f"{self.script}: " + "; ".join(f"{k}: {v}" for k, v in problems.items())]
        lines += ["", "checks: " + json.dumps(self.checks, indent=1, default=str)]
        lines += ["", "info: " + json.dumps(self.info, default=str)]
        lines += ["", f"--- {self.script} stderr ---", self.stderr[-8000:]]
        lines += ["", "--- server log (tail) ---", self.served.log()[-12000:]]
        return "\n".join(lines)


class Running:
    """A script started with :func:`start_script`; :meth:`result` waits for it."""

    def __init__(self, script: str, process: subprocess.Popen[str], served: Served) -> None:
        self.script = script
        self.process = process
        self.served = served
        self._result: Result | None = None

    def result(self) -> Result:
        """The script's report, once it has exited (bounded by :data:`HANG`)."""
        if self._result is None:
            try:
                stdout, stderr = self.process.communicate(timeout=HANG)
            except subprocess.TimeoutExpired:
                self.process.kill()
                stdout, stderr = self.process.communicate()
                stderr += f"\n[killed after {HANG} s]"
            self._result = Result(self.script, _last_json(stdout), stderr, self.served)
            if not self._result.checks:
                raise AssertionError(self._result.explain(exit=self.process.returncode))
        return self._result

    def kill(self) -> None:
        """End the script if it still runs (a test that failed before waiting for it)."""
        if self._result is not None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                found: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue
            return found
    return {}


def start_script(node: str, served: Served, script: str, **options: Any) -> Running:
    """Start ``node <script>`` with the JSON options ``{"port": ..., **options}``."""
    payload = json.dumps({"port": served.port, **options})
    process = subprocess.Popen(
        [node, str(HERE / script), payload],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    return Running(script, process, served)


def run_script(node: str, served: Served, script: str, **options: Any) -> Result:
    """Run ``node <script>`` to its end and return its report."""
    return start_script(node, served, script, **options).result()


class Batch:
    """Scripts started together, so independent ones run at the same time; a test then takes
    its own report with ``batch[name]``.  Scripts still running at :meth:`close` are killed."""

    def __init__(self, node: str, served: Served) -> None:
        self.node = node
        self.served = served
        self._running: dict[str, Running] = {}

    def start(self, name: str, script: str, **options: Any) -> None:
        """Start ``script`` under ``name`` (its ``tag`` option defaults to ``name``)."""
        options.setdefault("tag", name)
        self._running[name] = start_script(self.node, self.served, script, **options)

    def __getitem__(self, name: str) -> Result:
        return self._running[name].result()

    def close(self) -> None:
        """Kill whatever still runs."""
        for running in self._running.values():
            running.kill()
