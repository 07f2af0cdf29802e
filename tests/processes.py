"""Child processes for tests: `python -m backend`, `streamlit run ...`, with their output in a log."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(probe: Callable[[], T], *, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Process:
    """A child process with its output in a log file (shown when something goes wrong)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_http(self, path: str, *, timeout: float = 120) -> None:
        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.args[:3]} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(self.url + path, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_for(answers, timeout=timeout, interval=0.3, what=f"{self.url}{path}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
