"""Devices files (CSV, JSON, TOML), per-device settings, shards (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge import Settings
from bridge.errors import ConfigError
from bridge.fleet.devices import agent_id_for, load_devices, settings_for
from bridge.fleet.shard import in_shard, parse_shard, shard_of

KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3ODkw"  # base64 of a test-only key


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_rows_become_devices_with_overrides_and_configparams(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "device_id,mqtt.url,site,iothub.shared_access_key\n"
                  f"d1,mqtt://127.0.0.1:1884,north,{KEY}\nd2,,south,\n")
    first, second = load_devices(path, Settings)
    assert first.device_id == "d1" and first.row == 2
    assert first.overrides == {"mqtt": {"url": "mqtt://127.0.0.1:1884"},
                               "iothub": {"shared_access_key": KEY}}
    assert first.configparams["site"] == "north" and first.configparams["deviceid"] == "d1"
    assert KEY not in str(first.shown()) and first.shown()["site"] == "north"
    assert second.overrides == {}  # empty cells override nothing


@pytest.mark.parametrize(("name", "text"), [
    ("d.json", json.dumps([{"device_id": "d1", "mqtt": {"url": "mqtt://127.0.0.1:1"}}])),
    ("d.json", json.dumps({"devices": [{"device_id": "d1", "mqtt.url": "mqtt://127.0.0.1:1"}]})),
    ("d.toml", '[[devices]]\ndevice_id = "d1"\nmqtt = {url = "mqtt://127.0.0.1:1"}\n'),
], ids=["json-nested", "json-dotted", "toml"])
def test_json_and_toml(tmp_path: Path, name: str, text: str) -> None:
    [device] = load_devices(_write(tmp_path, name, text), Settings)
    assert device.overrides == {"mqtt": {"url": "mqtt://127.0.0.1:1"}}


@pytest.mark.parametrize(("text", "expected"), [
    ("site\nx\n", "no device_id column"),
    ("device_id,mqtt.nope\nd1,1\n", "d.csv:2: mqtt.nope: no such setting in [mqtt]"),
    ("device_id,nosection.x\nd1,1\n", "d.csv:2: nosection.x: no such setting"),
    ("device_id\nd1\nd1\n", "d.csv:3: device_id: 'd1' is also on row 2"),
    ("device_id,site\n,x\n", "d.csv:2: device_id: required"),
], ids=["no-id-column", "unknown-field", "unknown-section", "duplicate", "empty-id"])
def test_bad_rows_name_the_file_row_and_column(tmp_path: Path, text: str,
                                               expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_devices(_write(tmp_path, "d.csv", text), Settings)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_settings_per_device_share_what_they_do_not_change(tmp_path: Path) -> None:
    base = Settings(backend="mqtt")
    path = _write(tmp_path, "d.csv", "device_id,mqtt.keepalive,close_timeout\n"
                                     "a/b@1,30,2\nd2,,\n")
    first, second = load_devices(path, Settings)
    one, two = settings_for(base, first), settings_for(base, second)
    assert one.mqtt.keepalive == 30 and one.close_timeout == 2  # converted, validated
    assert two.mqtt is base.mqtt and two.memory is base.memory  # shared, not copied
    assert one.agent_id == first.agent_id and "/" not in one.agent_id


def test_a_bad_value_names_the_device_and_setting(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "device_id,mqtt.keepalive\nd1,never\n")
    [device] = load_devices(path, Settings)
    with pytest.raises(ConfigError) as info:
        settings_for(Settings(), device)
    assert "row 2 (device d1): mqtt.keepalive" in info.value.problems[0]


def test_a_secret_in_a_bad_row_is_never_shown(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "device_id,iothub.shared_access_key\nd1,not base64 !!\n")
    [device] = load_devices(path, Settings)
    with pytest.raises(ConfigError) as info:
        settings_for(Settings(), device)
    assert "not base64 !!" not in str(info.value)


def test_agent_ids_fit_and_stay_unique() -> None:
    taken: set[str] = set()
    plain = agent_id_for("thermo-1", taken)
    taken.add(plain)
    odd = agent_id_for("dev:1/\u00e9", taken)
    assert plain == "thermo-1" and odd.startswith("dev-1--") and odd != agent_id_for("dev:1/\u00e8",
                                                                                   taken)


def test_three_shards_cover_every_device_exactly_once() -> None:
    devices = [f"device-{n}" for n in range(3000)]
    shards = [parse_shard(f"{k}/3") for k in range(3)]
    owners = [[k for k, shard in enumerate(shards) if in_shard(d, shard)] for d in devices]
    assert all(len(owner) == 1 for owner in owners)
    sizes = [sum(1 for owner in owners if owner == [k]) for k in range(3)]
    assert all(900 < size < 1100 for size in sizes)  # spread, not lumped
    assert shard_of("device-7", 3) == shard_of("device-7", 3)  # stable


@pytest.mark.parametrize("text", ["3/3", "1/0", "a/b", "1", "-1/2"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(text)
