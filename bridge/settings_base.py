"""What every settings section shares: the model base, secrets, masking, error lines.

Imported by `bridge.settings` (which assembles the whole configuration) and by each backend's
own settings module; it imports nothing of the bridge, so a backend's section never ties it to
the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.fields import FieldInfo


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, assignments are validated."""

    # hide_input_in_errors: a ValidationError that escapes describe_validation_error (e.g. from
    # an assignment) must not print a secret it was given.
    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              hide_input_in_errors=True)


class ReconnectDelays(Section):
    """Sections with ``reconnect_min_delay`` / ``reconnect_max_delay`` (checked in order)."""

    @field_validator("reconnect_max_delay", check_fields=False)
    @classmethod
    def _delays_ordered(cls, value: float, info: Any) -> float:
        if value < info.data.get("reconnect_min_delay", 0):
            raise ValueError("must not be smaller than reconnect_min_delay")
        return value


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Field paths whose values must never be echoed."""
    found: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        annotation = str(field.annotation)
        if "SecretStr" in annotation:
            found.add((*prefix, name))
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            found |= _secret_paths(sub, (*prefix, name))
    return found


def describe_validation_error(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One readable line per bad field: where, what is allowed, what was given (never a secret)."""
    secrets = _secret_paths(model)
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        where = ".".join(loc) or "settings"
        message = error["msg"]
        unknown = error["type"] == "extra_forbidden"
        if unknown:
            message = "unknown setting"
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")  # our validators' text says it all
        is_secret = any(loc[: len(path)] == path for path in secrets)
        given = error.get("input")
        # An unknown key is often a misspelt secret ("pasword"): never echo its value.
        if is_secret or unknown or isinstance(given, dict | list):
            lines.append(f"{where}: {message}")
        else:
            shown = repr(mask_url_password(given) if isinstance(given, str) else given)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"{where}: {message} (given {shown})")
    return lines


MASK = "**********"

# scheme://user:password@host -> the password part; a URL setting may carry credentials.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^/@\s]+)@")


def mask_url_password(text: str) -> str:
    """``mqtt://user:secret@host`` -> ``mqtt://user:**********@host``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)


def leaf_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()
                ) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """Every leaf setting of *model* (sections are walked, lists and tables are leaves)."""
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from leaf_fields(sub, (*prefix, name))
        else:
            yield (*prefix, name), field


def is_secret_field(field: FieldInfo) -> bool:
    return "SecretStr" in str(field.annotation) or "SecretBytes" in str(field.annotation)
