"""A separate, cached virtualenv holding the official azure-iot-device SDK, for wire-format tests.

azure-iot-device 2.14 pins ``paho-mqtt<2`` while the bridge needs paho 2.x, so the SDK never goes
into the project's environment: it lives in its own venv (default ``<repo>/.sdk-venv/
azure-iot-device-<version>/``, override with ``BRIDGE_SDK_VENV``) and runs only as a subprocess
(`tests/support/sdk_probe.py`). The venv is built once, under a file lock so parallel test
processes do not race, and reused while its marker file says the same requirements.

`ensure_sdk_env` raises `SdkEnvError` with pip's output when the venv cannot be built; callers
turn that into a test *failure* (the comparison is a requirement, not an optional extra).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

SDK_VERSION = "2.14.0"
# The SDK's own pin is paho-mqtt>=1.6.1,<2; stating it keeps pip from ever picking paho 2 here.
REQUIREMENTS = (f"azure-iot-device=={SDK_VERSION}", "paho-mqtt>=1.6.1,<2")
REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("sdk_probe.py")
ENV_VAR = "BRIDGE_SDK_VENV"
PIP_TIMEOUT = 600.0


class SdkEnvError(RuntimeError):
    """The SDK virtualenv could not be created or does not work."""


def venv_dir() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return REPO_ROOT / ".sdk-venv" / f"azure-iot-device-{SDK_VERSION}"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _marker(venv: Path) -> Path:
    return venv / "bridge-sdk-env.json"


def _wanted() -> dict[str, Any]:
    return {"requirements": list(REQUIREMENTS),
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(args: list[str], what: str, timeout: float = PIP_TIMEOUT) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SdkEnvError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise SdkEnvError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def ensure_sdk_env() -> Path:
    """The SDK venv's python, building the venv first if needed (cached across runs)."""
    venv = venv_dir()
    try:
        with _locked(venv.parent / f".{venv.name}.lock"):
            marker = _marker(venv)
            if marker.exists() and _python(venv).exists():
                try:
                    if json.loads(marker.read_text()) == _wanted():
                        return _python(venv)
                except ValueError:
                    pass  # a broken marker: rebuild
            _build(venv)
            marker.write_text(json.dumps(_wanted()))
    except OSError as exc:
        raise SdkEnvError(f"cannot prepare {venv}: {exc}") from exc
    return _python(venv)


def _build(venv: Path) -> None:
    # --clear: a half-built venv from an interrupted run must not survive.
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], f"creating the venv {venv}")
    _run([str(_python(venv)), "-m", "pip", "install", "--disable-pip-version-check",
          "--no-input", "--quiet", *REQUIREMENTS],
         f"pip install {' '.join(REQUIREMENTS)} into {venv}")
    versions = _run([str(_python(venv)), "-c",
                     "import importlib.metadata as m; "
                     "print(m.version('azure-iot-device'), m.version('paho-mqtt'))"],
                    "checking the SDK venv").split()
    if versions[0] != SDK_VERSION or not versions[1].startswith("1."):
        raise SdkEnvError(f"SDK venv holds azure-iot-device {versions[0]} with paho-mqtt "
                          f"{versions[1]}; expected {SDK_VERSION} with paho 1.x")


class ProbeProcess:
    """`sdk_probe.py` running under the SDK venv; its JSON stdout lines arrive as events."""

    def __init__(self, python: Path, config: dict[str, Any], workdir: Path) -> None:
        config_file = workdir / "sdk_probe_config.json"
        config_file.write_text(json.dumps(config))
        self.stderr_file = workdir / "sdk_probe.stderr"
        self._stderr = open(self.stderr_file, "w")  # noqa: SIM115 - closed in close()
        # -I: isolated mode, so nothing from the bridge's venv or PYTHONPATH leaks in.
        self.process = subprocess.Popen(
            [str(python), "-I", str(PROBE), str(config_file)], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._events: Queue[dict[str, Any] | None] = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line:
                try:
                    self._events.put(json.loads(line))
                except ValueError:
                    self._events.put({"event": "noise", "text": line})
        self._events.put(None)

    def expect(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """The next event, which must be *event*; anything else fails with the probe's stderr."""
        try:
            item = self._events.get(timeout=timeout)
        except Empty:
            raise AssertionError(f"SDK probe: no {event!r} within {timeout}s\n"
                                 f"{self.stderr_tail()}") from None
        if item is None:
            code = self.process.wait(5)
            raise AssertionError(f"SDK probe exited ({code}) before {event!r}\n"
                                 f"{self.stderr_tail()}")
        if item.get("event") != event:
            raise AssertionError(f"SDK probe: expected {event!r}, got {item}\n"
                                 f"{self.stderr_tail()}")
        return item

    def stderr_tail(self, lines: int = 40) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        text = self.stderr_file.read_text(errors="replace").splitlines()
        return "probe stderr:\n" + "\n".join(text[-lines:])

    def kill(self) -> None:
        """Stop the probe at once (a failed test must not wait for its time-outs)."""
        if self.process.poll() is None:
            self.process.kill()

    def close(self, timeout: float = 15.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)
        finally:
            self._stderr.close()
