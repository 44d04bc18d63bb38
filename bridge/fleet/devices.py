"""The devices file of `bridge fleet`: one row per device, CSV, TOML or JSON (pure functions).

Every row needs ``device_id``. A column whose name is a setting - dotted for a section's field
(``mqtt.url``, ``iothub.connection_string``, ``iothub.shared_access_key``), plain for a
top-level one (``backend``) - overrides the base settings for that device. Every column, setting
or not, is also in the device's ``imp.configparams`` (imp agent code reads
``imp.configparams.deviceid``: that key is added when the file does not have it).

Shapes: CSV with a header row; JSON ``[{...}, ...]`` or ``{"devices": [...]}``; TOML
``[[devices]]`` tables. A bad row is an error naming the file, the row (line) and the column;
values of secret settings never appear in errors, logs or `Device.shown`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bridge.errors import ConfigError
from bridge.settings_base import MASK, describe_validation_error, is_secret_field

_AGENT_ID = re.compile(r"[^A-Za-z0-9._-]")
# Column names whose values are kept out of text even when they are not settings.
_SECRET_WORDS = ("password", "secret", "key", "token", "signature", "connection_string")


@dataclass(frozen=True, slots=True)
class Device:
    """One row: who the device is, its settings overrides, what its script sees."""

    device_id: str
    agent_id: str
    row: int  # line in the file (CSV, TOML) or 1-based index (JSON)
    overrides: dict[str, Any] = field(default_factory=dict)  # nested: {"mqtt": {"url": ..}}
    configparams: dict[str, Any] = field(default_factory=dict)
    secret_columns: frozenset[str] = frozenset()

    def shown(self) -> dict[str, Any]:
        """The row with secrets masked (for logs and status)."""
        return {key: (MASK if key in self.secret_columns else value)
                for key, value in self.configparams.items()}


def load_devices(path: Path, settings_model: type[BaseModel]) -> list[Device]:
    """Every device of *path*; `ConfigError` with one line per problem (file, row, column)."""
    try:
        rows = list(_rows(path))
    except (OSError, ValueError, tomllib.TOMLDecodeError, csv.Error) as exc:
        raise ConfigError([f"{path}: cannot read the devices file: {exc}"]) from None
    problems: list[str] = []
    devices: list[Device] = []
    seen: dict[str, int] = {}
    agent_ids: set[str] = set()
    for row_number, row in rows:
        where = f"{path}:{row_number}"
        device_id = row.get("device_id")
        if not isinstance(device_id, str) or not device_id.strip():
            problems.append(f"{where}: device_id: required (a non-empty text)")
            continue
        device_id = device_id.strip()
        if device_id in seen:
            problems.append(f"{where}: device_id: {device_id!r} is also on row {seen[device_id]}")
            continue
        seen[device_id] = row_number
        try:
            overrides, secrets = split_overrides(row, settings_model)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        agent_id = agent_id_for(device_id, agent_ids)
        agent_ids.add(agent_id)
        params = {str(k): v for k, v in row.items() if v is not None and v != ""}
        params.setdefault("deviceid", device_id)
        devices.append(Device(device_id, agent_id, row_number, overrides, params,
                              frozenset(secrets)))
    if problems:
        raise ConfigError(problems)
    if not devices:
        raise ConfigError([f"{path}: no devices (every row needs a device_id column)"])
    return devices


def _rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or "device_id" not in reader.fieldnames:
            raise ValueError("the header row has no device_id column")
        for row in reader:
            yield reader.line_num, {k.strip(): v.strip() if isinstance(v, str) else v
                                    for k, v in row.items() if k is not None}
    elif suffix == ".json":
        data = json.loads(text)
        items = data.get("devices") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError('expected a list of devices, or {"devices": [...]}')
        for index, item in enumerate(items, 1):
            yield index, _flat(item, f"device {index}")
    elif suffix == ".toml":
        data = tomllib.loads(text)
        items = data.get("devices")
        if not isinstance(items, list):
            raise ValueError("expected [[devices]] tables")
        lines = [n for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() == "[[devices]]"]
        for index, item in enumerate(items):
            yield (lines[index] if index < len(lines) else index + 1), _flat(item, "devices")
    else:
        raise ValueError(f"unknown devices file type {suffix!r}: use .csv, .json or .toml")


def _flat(item: Any, where: str, prefix: str = "") -> dict[str, Any]:
    """A row as flat dotted columns (a nested table ``{"mqtt": {"url": ..}}`` -> mqtt.url)."""
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected a table of columns")
    flat: dict[str, Any] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, where, f"{name}."))
        else:
            flat[name] = value
    return flat


def split_overrides(row: Mapping[str, Any], model: type[BaseModel]
                    ) -> tuple[dict[str, Any], set[str]]:
    """(nested settings overrides, secret column names) of one row. A dotted column that names
    no setting is an error (a misspelt setting must not pass silently as a plain parameter)."""
    overrides: dict[str, Any] = {}
    secrets: set[str] = set()
    fields = model.model_fields
    for column, value in row.items():
        lowered = column.lower()
        if any(word in lowered for word in _SECRET_WORDS):
            secrets.add(column)
        if column == "device_id" or value is None or value == "":
            continue
        head, dot, rest = column.partition(".")
        if head not in fields:
            if dot:
                raise ValueError(f"{column}: no such setting (the section {head!r} does not "
                                 f"exist); plain parameters have no '.'")
            continue  # a plain parameter: configparams only
        info = fields[head]
        section = info.annotation
        if dot:
            if not (isinstance(section, type) and issubclass(section, BaseModel)):
                raise ValueError(f"{column}: {head!r} is not a settings section")
            if rest not in section.model_fields:
                raise ValueError(f"{column}: no such setting in [{head}]")
            if is_secret_field(section.model_fields[rest]):
                secrets.add(column)
            overrides.setdefault(head, {})[rest] = value
        else:
            if is_secret_field(info):
                secrets.add(column)
            overrides[head] = value
    return overrides, secrets


def settings_for(base: Any, device: Device) -> Any:
    """The settings of *device*: *base* (a `bridge.settings.Settings`) with the device's
    overrides and its agent id; sections it does not touch are shared, not copied."""
    update: dict[str, Any] = {"agent_id": device.agent_id}
    problems: list[str] = []
    for name, value in device.overrides.items():
        current = getattr(base, name)
        try:
            if isinstance(value, dict) and isinstance(current, BaseModel):
                update[name] = type(current).model_validate({**dict(current), **value})
            else:
                checked = type(base).model_validate({**_plain(base), name: value})
                update[name] = getattr(checked, name)
        except ValidationError as exc:
            problems += [f"row {device.row} (device {device.device_id}): {name}.{line}"
                         if isinstance(value, dict) else f"row {device.row} (device "
                         f"{device.device_id}): {line}"
                         for line in describe_validation_error(exc, type(current)
                                                               if isinstance(value, dict)
                                                               else type(base))]
        except ConfigError as exc:
            problems += [f"row {device.row} (device {device.device_id}): {p}"
                         for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return base.model_copy(update=update)


def _plain(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in type(settings).model_fields}


def agent_id_for(device_id: str, taken: set[str]) -> str:
    """An agent id (``[A-Za-z0-9._-]+``) for *device_id*: the id itself when it fits, else
    with the other characters replaced and a short hash that keeps it unique."""
    clean = _AGENT_ID.sub("-", device_id)[:120] or "device"
    if clean == device_id and clean not in taken:
        return clean
    digest = hashlib.sha256(device_id.encode("utf-8")).hexdigest()[:8]
    return f"{clean}-{digest}"
