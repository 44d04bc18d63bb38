"""docker-compose.yml and the Dockerfile kept honest without a Docker engine.

There is no Docker engine where the tests run, so this file checks what an engine would need and
what a reader trusts: every service has a pinned image, every dependency waits on a condition the
target can satisfy (a health check where ``service_healthy`` is asked), every ``bridge`` command
and option exists in the CLI, every mounted file exists, every ``BRIDGE_*`` variable is accepted by
`Settings` and lands where intended. The Mosquitto config and health check are exercised on a
private broker. Then the very commands of the services run as subprocesses against the local
Mosquitto and RabbitMQ, translated only where a container differs from this machine: host names
(``mosquitto`` / ``rabbitmq`` -> 127.0.0.1), the demo broker user (-> guest), container paths
(-> their mounted host files) and names made unique per run (device ids, agent ids, queues), so
concurrent test runs do not collide.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from bridge.errors import ConfigError
from bridge.settings import Settings
from bridge.testing.hub.broker import MOSQUITTO, free_port
from tests.integration.amqp.rabbit import delete_queue, queue_address

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BRIDGE_IMAGE = "amqp-mqtt-bridge"

# Host names and credentials of the compose network -> this machine's shared brokers.
HOSTS = {
    "mqtt://mosquitto:1883": "mqtt://127.0.0.1:1883",
    "amqp://bridge:bridge-demo@rabbitmq:5672": "amqp://guest:guest@127.0.0.1:5672",
}
DEFAULT_SERVICES = {"mosquitto", "cloud", "device"}
RELAY_SERVICES = {"rabbitmq", "relay", "legacy-cloud", "legacy-device"}
FLEET_SERVICES = {"fleet-0", "fleet-1", "fleet-2"}

# Compose Specification attributes this project may use; anything else is most likely a typo
# that `docker compose` would reject (or, worse, silently ignore under an x- key).
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "volumes", "ports",
    "expose", "healthcheck", "depends_on", "profiles", "restart", "init", "read_only", "tmpfs",
    "stop_grace_period", "stop_signal", "networks", "labels", "user", "working_dir",
    "container_name", "hostname", "extra_hosts", "logging", "deploy", "cap_add", "cap_drop",
    "security_opt", "ulimits", "pull_policy",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval",
                    "disable"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
PINNED_TAG = re.compile(r"^[a-z0-9][a-z0-9./_-]*:\d+\.\d+\.\d+[A-Za-z0-9._-]*$")


# ------------------------------------------------------------------------------------------
# Reading the files
# ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def is_bridge(service: Mapping[str, Any]) -> bool:
    return str(service.get("image", "")).split(":")[0] == BRIDGE_IMAGE or "build" in service


def bridge_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if is_bridge(s)}


def project_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> host path of every bind mount (short syntax, relative to the file)."""
    found = {}
    for volume in service.get("volumes") or []:
        assert isinstance(volume, str), f"use the short volume syntax: {volume!r}"
        host, container, *_ = volume.split(":")
        assert host.startswith("./"), f"bind mounts are relative to the compose file: {volume}"
        found[container] = ROOT / host
    return found


def bridge_cli() -> list[str]:
    """What the image's ENTRYPOINT runs: the `bridge` console script of this interpreter."""
    script = Path(sys.executable).with_name("bridge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bridge"]


@cache
def cli_help(*command: str) -> str:
    done = subprocess.run([*bridge_cli(), *command, "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, (f"`bridge {' '.join(command)} --help` failed (exit "
                                  f"{done.returncode}): the compose file relies on this command"
                                  f"\n{done.stdout}{done.stderr}")
    return done.stdout


def cli_options(*command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cli_help(*command)))


def cli_choices(help_text: str, option: str) -> set[str] | None:
    """The choices click prints for *option* (``--role [both|device|cloud]``), if any."""
    found = re.search(rf"{re.escape(option)}\s+\[([^\]]+)\]", help_text)
    return set(found.group(1).split("|")) if found else None


@lru_cache(maxsize=1)
def cli_backends() -> set[str]:
    done = subprocess.run([*bridge_cli(), "backends"], capture_output=True, text=True,
                          timeout=60, check=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def split_command(argv: list[str]) -> tuple[list[str], str, list[str]]:
    """(global options, subcommand, subcommand arguments)."""
    for index, token in enumerate(argv):
        if not token.startswith("-"):
            return argv[:index], token, argv[index + 1:]
    raise AssertionError(f"no subcommand in {argv}")


def option_values(args: list[str]) -> list[tuple[str, str | None]]:
    """(option, value) pairs; a flag has value None."""
    pairs: list[tuple[str, str | None]] = []
    index = 0
    while index < len(args):
        token = args[index]
        if token.startswith("--") and "=" in token:
            name, value = token.split("=", 1)
            pairs.append((name, value))
        elif token.startswith("-"):
            has_value = index + 1 < len(args) and not args[index + 1].startswith("--")
            pairs.append((token, args[index + 1] if has_value else None))
            index += int(has_value)
        index += 1
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in lines if line and not line.startswith("#")]


# ------------------------------------------------------------------------------------------
# Structure
# ------------------------------------------------------------------------------------------


def test_services_and_profiles() -> None:
    found = services()
    assert set(found) == DEFAULT_SERVICES | RELAY_SERVICES | FLEET_SERVICES
    for name in DEFAULT_SERVICES:
        assert not found[name].get("profiles"), f"{name} must run on a plain `docker compose up`"
    for name in RELAY_SERVICES:
        assert found[name].get("profiles") == ["relay"], f"{name} belongs to profile relay"
    for name in FLEET_SERVICES:
        assert found[name].get("profiles") == ["fleet"], f"{name} belongs to profile fleet"
    for name, service in found.items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"{name}: unknown service attributes {sorted(unknown)}"


def test_every_image_is_pinned() -> None:
    for name, service in services().items():
        assert "image" in service or "build" in service, f"{name}: no image and no build"
        image = str(service.get("image", ""))
        assert not image.endswith(":latest"), f"{name}: {image} is not pinned"
        if is_bridge(service):
            assert service["build"]["context"] == "."
            assert (ROOT / service["build"].get("dockerfile", "Dockerfile")).is_file()
            assert image == f"{BRIDGE_IMAGE}:{project_version()}", (
                f"{name}: tag the bridge image with the project version")
        else:
            assert PINNED_TAG.match(image), f"{name}: {image!r} must name a patch release"
    assert services()["mosquitto"]["image"].startswith("eclipse-mosquitto:2.0.")
    assert re.match(r"^rabbitmq:3\.\d+\.\d+", services()["rabbitmq"]["image"]), (
        "RabbitMQ 3.x: its rabbitmq_amqp1_0 plugin gives the /queue/NAME addresses the demo uses")


def test_dependencies_wait_on_conditions_their_targets_satisfy() -> None:
    found = services()
    for name, service in found.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use depends_on with conditions"
        for target, spec in depends.items():
            assert target in found, f"{name} depends on unknown service {target}"
            condition = spec.get("condition")
            assert condition in CONDITIONS, f"{name} -> {target}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in found[target], (
                    f"{name} waits for {target} to be healthy, but {target} has no health check")
            # A service must never depend on one that its own profiles leave out.
            target_profiles = set(found[target].get("profiles") or [])
            own_profiles = set(service.get("profiles") or [])
            assert not target_profiles or target_profiles & own_profiles, (
                f"{name} depends on {target}, which only runs in profiles {target_profiles}")
    # Brokers first: every bridge service that talks to a broker waits for it to be healthy.
    for name, service in bridge_services().items():
        env = environment(service)
        for variable, broker in (("BRIDGE_MQTT__URL", "mosquitto"),
                                 ("BRIDGE_AMQP__URL", "rabbitmq")):
            if variable in env:
                assert service["depends_on"][broker]["condition"] == "service_healthy", (
                    f"{name} must wait for {broker} to be healthy")
    # And no cycle: compose could not start anything.
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for target in found[name].get("depends_on") or {}:
            visit(target, (*path, name))
        if name not in order:
            order.append(name)

    for name in found:
        visit(name, ())
    assert order.index("cloud") < order.index("device")
    assert order.index("relay") < order.index("legacy-cloud") < order.index("legacy-device")


def test_health_checks_are_well_formed() -> None:
    for name, service in services().items():
        check = service.get("healthcheck")
        if check is None:
            continue
        assert set(check) <= HEALTHCHECK_KEYS, f"{name}: unknown healthcheck keys"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
        for key in ("interval", "timeout", "start_period"):
            if key in check:
                assert DURATION.match(str(check[key])), f"{name}: {key} {check[key]!r}"
        assert int(check.get("retries", 3)) >= 3


def test_bridge_commands_and_options_exist_in_the_cli() -> None:
    global_options = cli_options()
    backends = cli_backends()
    for name, service in bridge_services().items():
        command = service.get("command")
        assert isinstance(command, list) and command, f"{name}: exec-form command expected"
        global_args, subcommand, args = split_command(command)
        for option, _ in option_values(global_args):
            assert option in global_options, f"{name}: `bridge {option}` does not exist"
        help_text = cli_help(subcommand)
        options = cli_options(subcommand)
        for option, value in option_values(args):
            assert option in options, f"{name}: `bridge {subcommand} {option}` does not exist"
            choices = cli_choices(help_text, option)
            if choices is not None and value is not None:
                assert value in choices, f"{name}: {option} {value} not in {choices}"
            if option == "--backend":
                assert value in backends, f"{name}: backend {value!r} not in {backends}"
            if option in ("--messages", "--rate", "--timeout", "--duration"):
                assert value is not None and float(value) > 0


def test_mounted_files_exist() -> None:
    for name, service in services().items():
        for container, host in mounts(service).items():
            assert host.is_file(), f"{name}: {host} (mounted at {container}) does not exist"
    for name, service in bridge_services().items():
        config = environment(service).get("BRIDGE_CONFIG")
        if config is not None:
            assert config in mounts(service), f"{name}: BRIDGE_CONFIG {config} is not mounted"


def settings_for(service: Mapping[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`Settings()` as the container builds it: only the service's BRIDGE_* variables set."""
    for variable in list(os.environ):
        if variable.startswith("BRIDGE_"):
            monkeypatch.delenv(variable)
    paths = mounts(service)
    for variable, value in environment(service).items():
        monkeypatch.setenv(variable, str(paths.get(value, value)))
    return Settings()


def landed(settings: Settings, variable: str) -> Any:
    value: Any = settings
    for part in variable.removeprefix("BRIDGE_").lower().split("__"):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def test_environment_names_are_accepted_by_settings(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, service in bridge_services().items():
        env = environment(service)
        assert all(v.startswith("BRIDGE_") for v in env), f"{name}: only BRIDGE_* variables"
        assert "BRIDGE_AGENT_ID" in env, f"{name}: give every agent its own id (MQTT client ids)"
        try:
            settings = settings_for(service, monkeypatch)
        except ConfigError as exc:
            pytest.fail(f"{name}: Settings rejects its environment: {exc}")
        paths = mounts(service)
        for variable, raw in env.items():
            value = landed(settings, variable)
            expected = str(paths.get(raw, raw))
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            assert shown == expected, f"{name}: {variable}={raw!r} landed as {value!r}"
    agent_ids = [environment(s)["BRIDGE_AGENT_ID"] for s in bridge_services().values()]
    assert len(set(agent_ids)) == len(agent_ids), "two agents with one id share MQTT client ids"


def test_relay_service_matches_its_profile(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    relay = services()["relay"]
    settings = settings_for(relay, monkeypatch)
    assert settings.relay.rules, "config/relay.toml forwards nothing"
    port = settings.relay.metrics_port
    assert port is not None and f"{port}:{port}" in relay["ports"]
    assert f"127.0.0.1:{port}/metrics" in " ".join(relay["healthcheck"]["test"])
    assert settings.relay.metrics_host == "0.0.0.0", "the published port needs all interfaces"
    grace = float(str(relay["stop_grace_period"]).removesuffix("s"))
    assert grace > settings.relay.drain_timeout, "docker stop would kill the relay mid-drain"
    # The relay's rules and the legacy demo services address the same queues and device.
    endpoints = {rule.source for rule in settings.relay.rules} | {
        rule.target for rule in settings.relay.rules}
    device = services()["legacy-device"]["command"]
    cloud = services()["legacy-cloud"]["command"]
    device_id = device[device.index("--device-id") + 1]
    assert cloud[cloud.index("--device-id") + 1] == device_id
    assert f"amqp:{device[device.index('--telemetry-path') + 1]}" in endpoints
    assert f"amqp:{device[device.index('--command-path') + 1]}" in endpoints
    assert f"mqtt:/devices/{device_id}/messages/events" in endpoints
    assert f"mqtt:/devices/{device_id}/messages/devicebound" in endpoints


def test_rabbitmq_config_enables_amqp_1_0_and_matches_the_clients() -> None:
    rabbit = services()["rabbitmq"]
    files = mounts(rabbit)
    plugins = files["/etc/rabbitmq/enabled_plugins"].read_text(encoding="utf-8")
    assert re.fullmatch(r"\s*\[\s*[a-z0-9_]+(\s*,\s*[a-z0-9_]+)*\s*\]\.\s*", plugins), (
        "enabled_plugins must be one Erlang list term ending with a full stop")
    assert "rabbitmq_amqp1_0" in plugins
    conf_path = next(path for container, path in files.items()
                     if container.startswith("/etc/rabbitmq/conf.d/"))
    conf = {}
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"rabbitmq.conf line without '=': {line!r}"
            conf[key.strip()] = value.strip()
    for name, service in bridge_services().items():
        url = environment(service).get("BRIDGE_AMQP__URL")
        if url is not None:
            parts = urlsplit(url)
            assert (parts.username, parts.password) == (conf["default_user"],
                                                        conf["default_pass"]), name
            assert parts.hostname == "rabbitmq" and parts.port == 5672


def test_dockerfile_is_slim_pinned_and_not_root() -> None:
    instructions = dockerfile_instructions()
    args = dict(value.split("=", 1) for kind, value in instructions if kind == "ARG"
                and "=" in value)
    bases = [value.split()[0] for kind, value in instructions if kind == "FROM"]
    assert len(bases) >= 2, "a builder stage keeps the compiler out of the image"
    for base in bases:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], base)
        assert re.match(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$", image), image
    users = [value for kind, value in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    entrypoint = [value for kind, value in instructions if kind == "ENTRYPOINT"]
    assert entrypoint == ['["bridge"]']
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "bridge" in scripts
    ignored = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ".env" in ignored and ".git" in ignored, "secrets and history stay out of the image"
    for kind, value in instructions:
        if kind != "COPY" or "--from=" in value:
            continue
        sources = [s for s in shlex.split(value) if not s.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


# ------------------------------------------------------------------------------------------
# Running it
# ------------------------------------------------------------------------------------------


def healthcheck_argv(service: Mapping[str, Any], replace: Callable[[str], str]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", "exec-form health checks can be run here as they are"
    # Compose turns $$ into a literal $ before the engine sees the command.
    return [replace(part.replace("$$", "$")) for part in test[1:]]


def wait_healthy(argv: list[str], what: str, timeout: float = 30.0,
                 alive: Callable[[], bool] = lambda: True) -> None:
    """Run the health check until it passes, as the engine would (with a short interval)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        assert alive(), f"{what} exited before it became healthy"
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        if done.returncode == 0:
            return
        last = done.stdout + done.stderr
        time.sleep(0.2)  # the health check's interval, not a synchronisation guess
    pytest.fail(f"{what} never became healthy: {last}")


def test_mosquitto_config_and_health_check_on_a_private_broker(tmp_path: Path) -> None:
    service = services()["mosquitto"]
    conf = mounts(service)["/mosquitto/config/mosquitto.conf"].read_text(encoding="utf-8")
    port = free_port()
    assert re.search(r"^listener 1883$", conf, re.M)
    assert re.search(r"^allow_anonymous true$", conf, re.M)
    private = tmp_path / "mosquitto.conf"
    private.write_text(re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf,
                              flags=re.M), encoding="utf-8")
    log = (tmp_path / "mosquitto.log").open("w")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(private)], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        argv = healthcheck_argv(service, lambda part: str(port) if part == "1883" else part)
        wait_healthy(argv, "mosquitto", alive=lambda: broker.poll() is None)
    finally:
        broker.terminate()
        broker.wait(10)
        log.close()
    assert broker.returncode == 0, (tmp_path / "mosquitto.log").read_text()


class Stack:
    """Services started as subprocesses, translated to this machine, stopped at the end."""

    def __init__(self, workdir: Path, names: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.names = names  # compose name -> unique name for this run
        self.pattern = re.compile("|".join(re.escape(n) for n in
                                           sorted(names, key=len, reverse=True)))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.extra_env: dict[str, dict[str, str]] = {}

    def translate(self, text: str) -> str:
        for compose_url, local_url in HOSTS.items():
            text = text.replace(compose_url, local_url)
        return self.pattern.sub(lambda m: self.names[m.group(0)], text)

    def env(self, name: str) -> dict[str, str]:
        service = services()[name]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        paths = mounts(service)
        for variable, value in environment(service).items():
            if value in paths:  # a mounted profile: translated copy in the work dir
                copy = self.workdir / f"{name}-{paths[value].name}"
                copy.write_text(self.translate(paths[value].read_text(encoding="utf-8")),
                                encoding="utf-8")
                value = str(copy)
            env[variable] = self.translate(value)
        env.update(self.extra_env.get(name, {}))
        return env

    def start(self, name: str) -> None:
        argv = [*bridge_cli(), *(self.translate(a) for a in services()[name]["command"])]
        out = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(argv, cwd=self.workdir, env=self.env(name),
                                                stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def output(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def finish(self, name: str, timeout: float) -> tuple[int, str]:
        try:
            code = self.processes[name].wait(timeout)
        except subprocess.TimeoutExpired:
            self.processes[name].kill()
            self.processes[name].wait()
            pytest.fail(f"{name} did not finish within {timeout}s:\n{self.output(name)[-3000:]}")
        return code, self.output(name)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@contextlib.contextmanager
def stack(tmp_path: Path, names: Mapping[str, str]) -> Iterator[Stack]:
    running = Stack(tmp_path, names)
    try:
        yield running
    finally:
        running.stop_all()


def assert_demo_succeeded(running: Stack, name: str, timeout: float = 60.0) -> str:
    code, output = running.finish(name, timeout)
    assert code == 0, f"{name} exited {code}:\n{output[-3000:]}"
    assert "SUCCESS" in output, f"{name} printed no SUCCESS summary:\n{output[-3000:]}"
    return output


def test_default_profile_runs_against_the_local_mosquitto(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    names = {n: f"{n}-{run}" for n in ("demo-device", "demo-cloud")}
    with stack(tmp_path, names) as running:
        running.start("cloud")
        running.start("device")  # depends_on: cloud started
        cloud = assert_demo_succeeded(running, "cloud")
        device = assert_demo_succeeded(running, "device")
    messages = services()["device"]["command"]
    count = messages[messages.index("--messages") + 1]
    assert re.search(rf"telemetry received {count}\b", cloud), cloud
    assert re.search(rf"telemetry sent {count}, confirmed {count}\b", device), device


def test_relay_profile_runs_against_the_local_brokers(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    telemetry, commands = queue_address("compose-telemetry"), queue_address("compose-commands")
    names = {"legacy-device": f"legacy-device-{run}", "legacy-cloud": f"legacy-cloud-{run}",
             "demo-relay": f"demo-relay-{run}", "/queue/telemetry": telemetry,
             "/queue/commands": commands}
    port = free_port()
    try:
        with stack(tmp_path, names) as running:
            # Published on all interfaces inside a container; here only on loopback.
            running.extra_env["relay"] = {"BRIDGE_RELAY__METRICS_PORT": str(port),
                                          "BRIDGE_RELAY__METRICS_HOST": "127.0.0.1"}
            running.start("relay")
            relay = running.processes["relay"]

            def local(part: str) -> str:
                return sys.executable if part == "python" else part.replace(":9108/",
                                                                            f":{port}/")

            wait_healthy(healthcheck_argv(services()["relay"], local), "relay",
                         alive=lambda: relay.poll() is None)
            running.start("legacy-cloud")
            running.start("legacy-device")
            assert_demo_succeeded(running, "legacy-cloud")
            assert_demo_succeeded(running, "legacy-device")
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                             timeout=5).read().decode()
            relay.send_signal(signal.SIGTERM)  # docker stop: drain, then exit cleanly
            code, output = running.finish("relay", 40)
            assert code == 0, f"relay exited {code} on SIGTERM:\n{output[-3000:]}"
    finally:
        delete_queue(telemetry)
        delete_queue(commands)
    forwarded = re.search(rf'bridge_relay_forwarded_total{{rule="amqp:{re.escape(telemetry)} '
                          rf'-> mqtt:[^"]+"}} (\d+)', metrics)
    count = int(services()["legacy-device"]["command"][
        services()["legacy-device"]["command"].index("--messages") + 1])
    assert forwarded is not None and int(forwarded.group(1)) >= count, metrics


def test_fleet_profile_shards_cover_every_device_once(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    names = {"examples/": f"{ROOT}/examples/",
             "fleet-{agent_id}": f"fleet-{run}-{{agent_id}}"}  # unique client ids per run
    with stack(tmp_path, names) as running:
        for name in sorted(FLEET_SERVICES):
            running.start(name)
        outputs = []
        for name in sorted(FLEET_SERVICES):
            code, output = running.finish(name, 90)
            assert code == 0, f"{name} exited {code}:\n{output[-3000:]}"
            outputs.append(output)
    devices = [line.split(",")[0] for line in
               (ROOT / "examples" / "devices.csv").read_text().splitlines()[1:] if line]
    for device in devices:  # each device ran in exactly one shard, and sent all it had to
        assert sum(f"[{device}] bridge.agent: all 3 readings confirmed" in out
                   for out in outputs) == 1, device

