"""docs/deploy/relay-deployment.yaml checked without a cluster: the YAML parses, the objects fit
together (selector and labels, ConfigMap and Secret referenced exist, the config is mounted
where BRIDGE_CONFIG points), the relay profile in the ConfigMap is valid `Settings` with the
Deployment's environment applied, and the numbers agree (grace period above the drain timeout,
probe and annotation ports on relay.metrics_port, a shared group for MQTT sources so replicas
share them, more than one replica)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.migration.relay import Relay
from bridge.settings import Settings

DEPLOYMENT_FILE = Path(__file__).resolve().parents[3] / "docs" / "deploy" / \
    "relay-deployment.yaml"


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(DEPLOYMENT_FILE.read_text()) if d]
    kinds = {d["kind"]: d for d in documents}
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Secret"]
    for document in documents:
        assert document["apiVersion"] == ("apps/v1" if document["kind"] == "Deployment"
                                          else "v1")
        assert document["metadata"]["name"]
    return kinds


def _container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _settings(objects: dict[str, dict[str, Any]], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Settings:
    container = _container(objects)
    config_volume = next(v for v in objects["Deployment"]["spec"]["template"]["spec"]["volumes"]
                         if "configMap" in v)
    mount = next(m for m in container["volumeMounts"] if m["name"] == config_volume["name"])
    (key,) = objects["ConfigMap"]["data"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BRIDGE_CONFIG"]["value"] == f"{mount['mountPath']}/{key}"
    profile = tmp_path / key
    profile.write_text(objects["ConfigMap"]["data"][key])
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, entry in env.items():
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
        else:  # the downward API: the pod name
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            monkeypatch.setenv(name, "bridge-relay-7d9f8c6b5-x2x4q")
    for name, value in objects["Secret"]["stringData"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    return Settings()


def test_the_deployment_selects_its_pods_and_references_what_exists(
        objects: dict[str, dict[str, Any]]) -> None:
    spec = objects["Deployment"]["spec"]
    assert spec["replicas"] >= 2  # scale-out is the point
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    container = _container(objects)
    assert container["args"] == ["relay"]
    assert ":" in container["image"] and not container["image"].endswith(":latest")
    refs = [s["secretRef"]["name"] for s in container.get("envFrom", [])]
    assert refs == [objects["Secret"]["metadata"]["name"]]
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= set(volumes)
    assert any(v.get("configMap", {}).get("name") == objects["ConfigMap"]["metadata"]["name"]
               for v in volumes.values())
    # secrets only in the Secret, never in the ConfigMap
    config_text = "\n".join(objects["ConfigMap"]["data"].values()).lower()
    assert "password" not in config_text and "@" not in config_text
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_config_is_valid_and_the_numbers_agree(
        objects: dict[str, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(objects, tmp_path, monkeypatch)
    assert settings.agent_id.startswith("bridge-relay-")  # one per replica
    assert settings.amqp.password is not None and settings.amqp.username == "relay"
    relay = settings.relay
    assert relay.rules and relay.metrics_port is not None
    # every rule and endpoint accepted at start (the ledger in a temporary folder here)
    Relay(settings.model_copy(update={"relay": relay.model_copy(
        update={"ledger": tmp_path / "relay.ledger"})})).agent.close()
    template = objects["Deployment"]["spec"]["template"]
    assert template["spec"]["terminationGracePeriodSeconds"] > relay.drain_timeout
    container = _container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == relay.metrics_port
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(relay.metrics_port)
    assert relay.metrics_host == "0.0.0.0"  # reachable from the kubelet and Prometheus
    assert f":{relay.metrics_port}/metrics" in " ".join(
        container["readinessProbe"]["exec"]["command"])
    if any(rule.source.startswith("mqtt:") for rule in relay.rules):
        assert settings.mqtt.shared_group  # replicas share MQTT sources
        assert not settings.mqtt.clean_start and settings.mqtt.session_expiry > 0
    assert relay.ledger is not None
    ledger_mount = next(m for m in container["volumeMounts"]
                        if str(relay.ledger).startswith(m["mountPath"] + "/"))
    assert not ledger_mount.get("readOnly")
