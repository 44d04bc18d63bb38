"""docs/deploy/fleet-statefulset.yaml kept honest without a cluster.

What a reader copies must work: the arguments are a real `bridge fleet` command line once
Kubernetes has expanded ``$(POD_INDEX)`` for every ordinal, the shard count equals the
replicas (so N pods split the fleet with no device run twice or never), the pod index comes
from the label Kubernetes sets on StatefulSet pods, every ``BRIDGE_*`` variable is a setting
that accepts its value, and both probes ask the metrics endpoint the settings turn on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.fleet import fleet_command
from bridge.fleet.shard import parse_shard, shard_of
from bridge.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
STATEFULSET = ROOT / "docs" / "deploy" / "fleet-statefulset.yaml"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    document = yaml.safe_load(STATEFULSET.read_text())
    assert document["kind"] == "StatefulSet" and document["apiVersion"] == "apps/v1"
    return document


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def expanded_args(manifest: dict[str, Any], ordinal: int) -> list[str]:
    """The container's args as Kubernetes expands them for pod *ordinal*."""
    env = {e["name"]: e for e in container(manifest)["env"]}
    values = {name: str(ordinal) if name == "POD_INDEX" else entry.get("value", "")
              for name, entry in env.items()}
    return [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg)
            for arg in container(manifest)["args"]]


def test_every_pod_runs_a_distinct_shard_of_as_many_as_there_are_replicas(
        manifest: dict[str, Any]) -> None:
    replicas = manifest["spec"]["replicas"]
    shards = []
    for ordinal in range(replicas):
        args = expanded_args(manifest, ordinal)
        shards.append(parse_shard(args[args.index("--shard") + 1]))
    assert shards == [(k, replicas) for k in range(replicas)]
    # and so a device file is split with every device in exactly one pod
    devices = [f"device-{n}" for n in range(300)]
    owners = [[k for k, n in shards if shard_of(d, n) == k] for d in devices]
    assert all(len(o) == 1 for o in owners)


def test_the_pod_index_comes_from_the_statefulset_label(manifest: dict[str, Any]) -> None:
    env = {e["name"]: e for e in container(manifest)["env"]}
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"


def test_the_arguments_are_a_real_bridge_fleet_command(manifest: dict[str, Any]) -> None:
    args = expanded_args(manifest, 0)
    assert args[0] == "fleet"
    options = {opt for param in fleet_command.params for opt in getattr(param, "opts", [])}
    flags = [a for a in args[1:] if a.startswith("--")]
    assert flags and set(flags) <= options
    mounts = {m["mountPath"] for m in container(manifest)["volumeMounts"]}
    for path in (args[1], args[args.index("--devices") + 1]):
        assert any(path.startswith(mount + "/") for mount in mounts), path


def test_bridge_variables_are_settings_and_the_probes_ask_the_metrics_port(
        manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = container(manifest)
    for entry in spec["env"]:
        if entry["name"].startswith("BRIDGE_") and "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
    settings = Settings()
    assert settings.backend == "iothub"
    port = settings.fleet.metrics_port
    assert port is not None and settings.fleet.metrics_host == "0.0.0.0"
    named = {p["name"]: p["containerPort"] for p in spec["ports"]}
    for probe in (spec["livenessProbe"], spec["readinessProbe"]):
        assert probe["httpGet"]["path"] == "/metrics"
        assert named[probe["httpGet"]["port"]] == port
    annotations = manifest["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
